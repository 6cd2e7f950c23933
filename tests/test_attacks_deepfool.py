"""DeepFool (L2): against foolbox's L2DeepFoolAttack, and its invariants.

Both implement the same iteration (top-10 candidate classes, +1e-4 on the distance, overshoot on
the accumulated step, clipping to [0, 1]); the adversarial images agree to 1e-5 per pixel value.
"""
import foolbox as fb
import pytest
import torch

from advxai.attacks import DeepFool, get_attack

from .helpers import digits_batch, small_digits_mlp


@pytest.fixture(scope="module")
def mlp():
    return small_digits_mlp()


@pytest.mark.parametrize("overshoot", [0.02, 0.5])
def test_deepfool_matches_foolbox(mlp, overshoot):
    x, y = digits_batch(mlp, 12)
    ours = DeepFool(mlp, steps=50, overshoot=overshoot)(x, y)
    raw, _, success = fb.attacks.L2DeepFoolAttack(steps=50, overshoot=overshoot, candidates=10)(
        fb.PyTorchModel(mlp, bounds=(0, 1)), x, y, epsilons=None)
    assert torch.equal(ours.success, success)
    assert (ours.x_adv - raw).abs().max() <= 1e-5
    assert ours.success.all()


def test_overshoot_grows_the_step_and_stays_in_range(mlp):
    x, y = digits_batch(mlp, 12)
    small = DeepFool(mlp, overshoot=0.0)(x, y)
    large = DeepFool(mlp, overshoot=0.5)(x, y)
    assert large.l2.mean() > small.l2.mean()
    assert large.x_adv.min() >= 0 and large.x_adv.max() <= 1
    assert (large.extras["iterations"] >= 1).all()


def test_misclassified_images_are_left_alone(mlp):
    x, y = digits_batch(mlp, 4)
    wrong = (y + 1) % 10
    res = DeepFool(mlp)(x, wrong)
    assert torch.equal(res.x_adv, x) and res.success.all()


def test_bad_input(mlp):
    with pytest.raises(ValueError, match="deepfool has no targeted mode; it supports: untargeted"):
        get_attack("deepfool", mlp, targeted=True)
    with pytest.raises(ValueError, match="overshoot"):
        DeepFool(mlp, overshoot=-0.1)
    with pytest.raises(ValueError, match="candidates"):
        DeepFool(mlp, candidates=1)
