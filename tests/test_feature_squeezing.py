"""Feature squeezing: squeezers against scipy/skimage, the detector's thresholds, adaptive ADV²."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advxai.attacks import get_attack, make_adv2, random_targets
from advxai.defenses.feature_squeezing import (SQUEEZERS, AdaptiveADV2, FeatureSqueezing, SqueezeLoss, bit_depth,
                                               get_squeezer, median_filter, nl_means)

from .helpers import digits_batch, tiny_classifier, trained_digits_classifier


@pytest.fixture(scope="module")
def digits():
    model = trained_digits_classifier()
    x, y = digits_batch(model, 8)
    return model, x, y, random_targets(y, 10, seed=1)


def _photo_batch(n=2, size=40):
    from advxai.data import get_dataset

    ds = get_dataset("shapes", split="test", n=n)
    x = ds.batch(torch.arange(n)).x
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def test_bit_depth():
    x = torch.tensor([0.0, 0.1, 0.2, 0.49, 0.51, 0.9, 1.0]).view(1, 1, 1, -1)
    assert torch.allclose(bit_depth(x, 1).flatten(), torch.tensor([0, 0, 0, 0, 1, 1, 1.0]))
    assert torch.allclose(bit_depth(x, 2).flatten(), torch.tensor([0, 0, 1 / 3, 1 / 3, 2 / 3, 1, 1]))
    assert len(torch.unique(bit_depth(torch.rand(1, 3, 9, 9), 3))) <= 8
    with pytest.raises(ValueError, match="bits"):
        bit_depth(x, 0)


def test_median_matches_scipy():
    from scipy import ndimage

    x = torch.rand(2, 3, 11, 13, dtype=torch.float64)
    got = median_filter(x, 3).numpy()
    ref = ndimage.median_filter(x.numpy(), size=(1, 1, 3, 3), mode="reflect")
    assert np.allclose(got, ref)
    # differentiable: the gradient reaches the selected (median) pixels
    xr = x.clone().requires_grad_(True)
    median_filter(xr, 3).sum().backward()
    assert xr.grad.abs().sum() > 0


def test_nl_means_is_close_to_skimage_and_behaves():
    from skimage.restoration import denoise_nl_means

    x = _photo_batch(2).double()
    h = 0.05
    got = nl_means(x, search=11, patch=3, h=h)
    for k in range(2):
        img = x[k].permute(1, 2, 0).numpy()
        # scikit-image's fast mode sums squared differences over a (patch - 1)^2 box and divides by
        # patch^2: the same weights need an h 1.5 times smaller there for 3x3 patches
        ref = denoise_nl_means(img, patch_size=3, patch_distance=5, h=h / 1.5, channel_axis=-1)
        diff = np.abs(got[k].permute(1, 2, 0).numpy() - ref)
        change = np.abs(ref - img).mean()
        assert change > 0.005
        assert diff.mean() < 0.5 * change  # the same filter up to its box quirk, not the identity
    const = torch.full((1, 3, 12, 12), 0.4, dtype=torch.float64)
    assert torch.allclose(nl_means(const), const)
    assert got.min() >= 0 and got.max() <= 1
    # smoothing: noise is reduced
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    assert (nl_means(noisy, h=0.1) - x).abs().mean() < (noisy - x).abs().mean()
    with pytest.raises(ValueError, match="odd"):
        nl_means(x, search=10)


def test_detector_threshold_sets_the_benign_false_positive_rate(digits):
    from advxai.data import get_dataset

    model, x, y, t = digits
    test = get_dataset("digits", "test")
    benign = test.batch(torch.arange(100, 300)).x
    det = FeatureSqueezing(model, ["bit_depth_1", "median_2x2"], fpr=0.05)
    with pytest.raises(RuntimeError, match="not calibrated"):
        det.detect(x)
    det.calibrate(benign)
    rate = det.detection_rate(benign)
    assert rate <= 0.05 + 1e-9 and det.benign_calibration_rate == rate
    assert det.calibrate(benign[:64]).detection_rate(benign[:64]) <= 0.05
    scores = det.squeezer_scores(x)
    assert set(scores) == {"bit_depth_1", "median_2x2", "joint"}
    assert torch.allclose(scores["joint"], torch.maximum(scores["bit_depth_1"], scores["median_2x2"]))
    assert torch.equal(det.score(x), scores["joint"].double())
    assert all(((s >= 0) & (s <= 2)).all() for s in scores.values())
    pgd = get_attack("pgd", model, targeted=True, eps=0.1, alpha=0.01, steps=30, random_start=False)(x, y, t)
    median = FeatureSqueezing(model, ["median_2x2"], fpr=0.05).calibrate(benign)
    assert median.detection_rate(pgd.x_adv) > median.benign_calibration_rate + 0.3
    with pytest.raises(ValueError, match="unknown squeezer"):
        FeatureSqueezing(model, ["jpeg"])
    with pytest.raises(ValueError, match="fpr"):
        FeatureSqueezing(model, fpr=1.0)


def test_adaptive_adv2_against_the_median_squeezer(digits):
    model, x, y, t = digits
    kw = dict(eps=0.1, alpha=0.01, warm_steps=20, steps=20, lam=5.0, confidence=0.5)
    det = FeatureSqueezing(model, ["median_3x3"])
    basic = make_adv2(model, "cam", **kw)(x, y, t)
    adaptive = AdaptiveADV2(model, "cam", det, sqz_weight=10.0, **kw)(x, y, t)  # adapted to the detector itself
    assert torch.all(adaptive.linf <= 0.1 + 1e-6) and adaptive.success.all()
    assert det.score(adaptive.x_adv).mean() < 0.7 * det.score(basic.x_adv).mean()


def test_adaptive_adv2_two_stage_bit_depth(digits):
    model, x, y, t = digits
    kw = dict(eps=0.1, alpha=0.01, warm_steps=20, steps=20, lam=5.0, confidence=0.5)
    det = FeatureSqueezing(model, ["bit_depth_2"])
    basic = make_adv2(model, "cam", **kw)(x, y, t)
    attack = get_attack("adaptive_adv2_fs", model, interpreter="cam", squeezer="bit_depth_2", sqz_weight=2.0,
                        plus_steps=40, **kw)
    adaptive = attack(x, y, t)
    assert torch.all(adaptive.linf <= 0.1 + 1e-6) and adaptive.success.all()
    assert adaptive.extras["x_plus_success"].any()  # stage (i) found squeezed-space adversaries
    assert det.score(adaptive.x_adv).mean() < det.score(basic.x_adv).mean()


def test_adaptive_bad_input():
    model = tiny_classifier(in_channels=3, size=16)
    with pytest.raises(ValueError, match="two-stage"):
        SqueezeLoss(model, "bit_depth_2")
    with pytest.raises(ValueError, match="unknown squeezer"):
        AdaptiveADV2(model, "cam", "blur")
    with pytest.raises(ValueError, match="not differentiable"):
        AdaptiveADV2(model, "ig", "median_3x3")
    assert isinstance(get_attack("adaptive_adv2_fs", model, interpreter="mask", budget="smoke"), AdaptiveADV2)
    assert get_squeezer("nl_means_11_3_4").kind == "smoothing" and "bit_depth_3" in SQUEEZERS
