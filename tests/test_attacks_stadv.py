"""StAdv (flow field, bilinear sampling, flow loss) and ADV² on StAdv."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advxai import map_metrics as mm
from advxai.attacks import ADV2StAdv, StAdv, get_attack, list_attacks, random_targets
from advxai.attacks.stadv import flow_loss, make_adv2_stadv, warp
from advxai.interpreters import get_interpreter

from .helpers import batch, digits_batch, tiny_classifier, trained_digits_classifier


@pytest.fixture(scope="module")
def digits():
    model = trained_digits_classifier()
    x, y = digits_batch(model, 4)
    return model, x, y, random_targets(y, 10, seed=1)


def _bilinear_oracle(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Xiao et al.'s formula, pixel by pixel, positions clamped to the image (the border rule)."""
    c, h, w = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            u = min(max(j + flow[0, i, j], 0), w - 1)
            v = min(max(i + flow[1, i, j], 0), h - 1)
            for q in range(h):
                for p in range(w):
                    wt = max(0, 1 - abs(u - p)) * max(0, 1 - abs(v - q))
                    if wt:
                        out[:, i, j] += wt * img[:, q, p]
    return out


def test_zero_flow_is_the_identity_and_warp_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 7, 9, generator=g, dtype=torch.float64)
    assert torch.allclose(warp(x, torch.zeros(2, 2, 7, 9, dtype=torch.float64)), x, atol=1e-12)
    flow = (torch.rand(2, 2, 7, 9, generator=g, dtype=torch.float64) - 0.5) * 3
    got = warp(x, flow).numpy()
    for k in range(2):
        assert np.allclose(got[k], _bilinear_oracle(x[k].numpy(), flow[k].numpy()), atol=1e-10)
    # an integer shift moves the image by whole pixels
    shift = torch.zeros(1, 2, 7, 9, dtype=torch.float64)
    shift[:, 0] = 1.0
    assert torch.allclose(warp(x[:1], shift)[..., :-1], x[:1, ..., 1:])
    with pytest.raises(ValueError, match="flow must be"):
        warp(x, torch.zeros(2, 3, 7, 9))


def test_flow_loss_definition():
    const = torch.full((1, 2, 5, 5), 0.7)
    assert flow_loss(const, delta=0).item() == 0.0
    f = torch.zeros(1, 2, 3, 3)
    f[0, 0, 1, 1] = 1.0  # one pixel displaced: it differs from its 4 neighbours, each of them from it
    assert flow_loss(f, delta=0).item() == pytest.approx(8.0)
    f2 = torch.randn(2, 2, 6, 6)
    assert torch.allclose(flow_loss(2 * f2, delta=0), 2 * flow_loss(f2, delta=0), rtol=1e-5)


def test_stadv_targeted_success_range_and_tau(digits):
    model, x, y, t = digits
    res = StAdv(model, targeted=True, steps=60, tau=5e-4)(x, y, t)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.success.float().mean() >= 0.75 and torch.all(res.pred[res.success] == t[res.success])
    assert torch.allclose(warp(x, res.extras["flow"]), res.x_adv, atol=1e-6)
    smooth = StAdv(model, targeted=True, steps=60, tau=0.05)(x, y, t)
    assert smooth.extras["flow_loss"].mean() < res.extras["flow_loss"].mean()
    untargeted = StAdv(model, steps=40)(x, y)
    assert untargeted.success.float().mean() >= 0.75


def test_adv2_on_stadv_lowers_the_map_distance(digits):
    model, x, y, t = digits
    cam = get_interpreter("cam", model)
    plain = StAdv(model, targeted=True, steps=60, loss="ce")(x, y, t)
    adv = make_adv2_stadv(model, "cam", lam=5.0, steps=60)(x, y, t)
    assert adv.x_adv.min() >= 0 and adv.x_adv.max() <= 1
    both = adv.success & plain.success
    assert both.sum() >= 2
    benign = cam(x, target=y).extras["native"]
    d_adv = mm.map_l1(cam(adv.x_adv, target=t).extras["native"], benign)[both]
    d_plain = mm.map_l1(cam(plain.x_adv, target=t).extras["native"], benign)[both]
    assert d_adv.mean() < d_plain.mean()


def test_registry_settings_and_bad_input():
    assert {"stadv", "adv2_stadv"} <= set(list_attacks())
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, 3)
    assert isinstance(get_attack("adv2_stadv", model, interpreter="grad", budget="smoke"), ADV2StAdv)
    assert get_attack("adv2_stadv", model, interpreter="cam", budget="paper").steps == 600
    with pytest.raises(ValueError, match="tau"):
        StAdv(model, tau=-1)
    with pytest.raises(ValueError, match="not differentiable"):
        make_adv2_stadv(model, "mask")
    with pytest.raises(ValueError, match="not differentiable"):
        make_adv2_stadv(model, "ig")
    with pytest.raises(ValueError, match="target equals the true label"):
        make_adv2_stadv(model, "cam", steps=2)(x, y, y)
    with pytest.raises(ValueError, match="target maps must be"):
        make_adv2_stadv(model, "cam", steps=2)(x, y, (y + 1) % 10, target_map=torch.zeros(3, 1, 4, 4))
    a = StAdv(model, steps=3, seed=1)(x, y).x_adv
    b = StAdv(model, steps=3, seed=1)(x, y).x_adv
    assert torch.equal(a, b)
