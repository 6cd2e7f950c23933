"""Tools of chapter 3's study of the prediction-interpretation gap: random target maps, donor images,
calibrated noise, and Proposition 1 measured with integrated gradients."""
import math

import pytest
import torch

from advxai.attacks.target_maps import donor_indices, random_patch_maps
from advxai.data.noise import add_noise, scale_for_error_rate
from advxai.interpreters.ig import prediction_interpretation_losses

from .helpers import batch, digits_batch, small_digits_mlp, tiny_classifier


def test_random_patch_maps_are_binary_seeded_varied_and_inside_the_image():
    maps = random_patch_maps(64, (32, 40), seed=3)
    assert maps.shape == (64, 1, 32, 40)
    assert set(torch.unique(maps).tolist()) <= {0.0, 1.0}
    assert torch.equal(maps, random_patch_maps(64, (32, 40), seed=3))
    assert not torch.equal(maps, random_patch_maps(64, (32, 40), seed=4))
    area = maps.flatten(1).mean(1)
    # sides of 25-50 % of the short side: areas between a small disc and a large square
    assert area.min() > 0.25 ** 2 * math.pi / 4 * (32 / 40) * 0.8 and area.max() <= 0.5 ** 2 * 1.25
    assert len(torch.unique(area)) > 32  # positions, shapes and angles vary
    # the patch never touches the image border from outside: some margin row/column is empty somewhere
    assert (maps[:, :, 0, :].sum() + maps[:, :, -1, :].sum()) < maps.sum() * 0.2
    assert (maps.flatten(1).sum(1) > 0).all()  # every map has a patch


def test_random_patch_maps_bad_input():
    with pytest.raises(ValueError, match="size_range"):
        random_patch_maps(2, (16, 16), size_range=(0.6, 0.2))
    with pytest.raises(ValueError, match="positive integer"):
        random_patch_maps(0, (16, 16))


def test_donor_indices_avoid_the_target_and_true_class():
    labels = torch.arange(30) % 5
    target, true = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 4])
    idx = donor_indices(labels, target, true, seed=1)
    assert ((labels[idx] != target) & (labels[idx] != true)).all()
    assert torch.equal(idx, donor_indices(labels, target, true, seed=1))
    with pytest.raises(ValueError, match="third class"):
        donor_indices(torch.tensor([0, 1, 0, 1]), torch.tensor([0]), torch.tensor([1]))


def test_noise_scale_reaches_the_requested_error_rate():
    model = small_digits_mlp()
    x, y = digits_batch(model, 200, seed=5)
    for kind in ("normal", "uniform"):
        scale, achieved = scale_for_error_rate(model, x, y, kind, 0.3, seed=0)
        assert 0 < scale < 1 and abs(achieved - 0.3) < 0.05
        noisy = add_noise(x, kind, scale, seed=0)
        assert noisy.min() >= 0 and noisy.max() <= 1
        assert (model(noisy).argmax(1) != y).float().mean().item() == pytest.approx(achieved)
        # a smaller scale errs less
        assert scale_for_error_rate(model, x, y, kind, 0.05, seed=0)[0] < scale
    with pytest.raises(ValueError, match="noise kind"):
        add_noise(x, "poisson", 0.1)
    with pytest.raises(ValueError, match="error_rate"):
        scale_for_error_rate(model, x, y, "normal", 1.5)


def test_proposition_1_bound_and_completeness():
    model = tiny_classifier(in_channels=3, size=16, width=12)
    x, y = batch(model, 6, seed=2)
    g = torch.Generator().manual_seed(0)
    x_adv = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    cls = (y + 1) % 10
    out = prediction_interpretation_losses(model, x, x_adv, cls, steps=48)
    with torch.no_grad():
        rise = model(x_adv).softmax(1).gather(1, cls[:, None]).squeeze(1) - model(x).softmax(1).gather(1, cls[:, None]).squeeze(1)
    assert torch.allclose(out["l_prd"], rise, atol=1e-6)
    assert out["gap"].abs().max() < 0.02 * out["l_int"].max()  # completeness up to the quadrature error
    assert (out["l_prd"] <= out["l_int"] + out["gap"].abs() + 1e-6).all()
    assert (out["ratio"].abs() <= 1 + 1e-3).all()
    # the same input as its own baseline: nothing changes
    same = prediction_interpretation_losses(model, x, x.clone(), cls, steps=8)
    assert same["l_int"].abs().max() < 1e-6 and same["l_prd"].abs().max() < 1e-6
