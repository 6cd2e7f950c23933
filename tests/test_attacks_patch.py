"""Adversarial Patch and LaVAN: pasting, training, determinism, bad input; and the augmentation they train on."""
import math

import pytest
import torch

from advxai.attacks import AdversarialPatch, LaVAN, get_attack
from advxai.data.augment import augment

from .helpers import digits_batch, small_digits_mlp, tiny_classifier, trained_digits_classifier

TARGET = 3


@pytest.fixture(scope="module")
def mlp():
    return small_digits_mlp()


@pytest.fixture(scope="module")
def digits(mlp):
    from advxai.data import get_dataset

    train = get_dataset("digits", "train")
    x = train.batch(torch.arange(96)).x
    xt, yt = digits_batch(mlp, 32)
    keep = yt != TARGET
    return x, xt[keep], yt[keep]


@pytest.mark.parametrize("shape", ["circle", "square"])
def test_pasting_changes_only_the_patch_and_stays_in_range(shape):
    model = tiny_classifier(in_channels=3, size=32)
    x = torch.rand(6, 3, 32, 32)
    attack = AdversarialPatch(model, 2, size=0.2, shape=shape).set_patch(torch.rand(3, 20, 20))
    out, placement = attack.apply(x, seed=1, return_placement=True)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed = (out != x).any(1)  # [B, H, W]
    # every changed pixel is inside the patch's footprint
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    for i in range(len(x)):
        cy, cx = placement.center[i].tolist()
        r = placement.side[i].item() / 2
        if shape == "circle":
            inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r + 1e-6
        else:
            inside = ((ys - cy).abs() <= r + 1e-6) & ((xs - cx).abs() <= r + 1e-6)
        assert not (changed[i] & ~inside).any()
        # the covered fraction is the asked size (up to the pixel grid)
        assert abs(inside.float().mean().item() - 0.2) < 0.03
    # pixels outside the patch are bit-for-bit the input
    assert torch.equal(torch.where(changed.unsqueeze(1), x, out), x)


def test_fixed_location_and_rotation():
    model = tiny_classifier(in_channels=3, size=32)
    x = torch.zeros(2, 3, 32, 32)
    lavan = LaVAN(model, 1, size=64 / 1024, location=(4, 20)).set_patch(torch.ones(3, 8, 8))
    out = lavan.apply(x)
    assert torch.equal(out[:, :, 4:12, 20:28], torch.ones(2, 3, 8, 8))
    assert out.sum() == 2 * 3 * 64
    square = AdversarialPatch(model, 1, size=0.25, shape="square").set_patch(torch.ones(3, 16, 16))
    turned = square.apply(x, location=(8, 8), angle=45.0)
    flat = square.apply(x, location=(8, 8))
    assert not torch.equal(turned, flat)
    # a rotated square covers (about) the same area
    assert abs((turned[:, 0] > 0.5).float().mean() - (flat[:, 0] > 0.5).float().mean()) < 0.03


def test_training_raises_the_target_rate_over_a_random_patch(digits):
    """On a small CNN (translation-invariant, so a universal patch can work anywhere); a perceptron
    has no such invariance and a randomly placed patch barely moves it."""
    cnn = trained_digits_classifier()
    train = digits[0]
    x, y = digits_batch(cnn, 32)
    x, y = x[y != TARGET], y[y != TARGET]
    for cls, kw in ((AdversarialPatch, dict(size=0.12, shape="square", scale=(0.8, 1.2), max_angle=15.0)),
                    (LaVAN, dict(size=0.12))):
        attack = cls(cnn, TARGET, steps=60, lr=0.1, train_batch=16, **kw)
        random = cls(cnn, TARGET, **kw).set_patch(torch.rand(1, 10, 10, generator=torch.Generator().manual_seed(5)))
        base_rate = random(x, y).success_rate
        attack.fit(train)
        res = attack(x, y)
        assert res.success_rate >= base_rate + 0.3, (cls.__name__, base_rate, res.success_rate)
        assert (res.pred[res.success] == TARGET).all() and (res.target == TARGET).all()
        assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
        rates = attack.history["target_rate"]  # per mini-batch, so compare the first and last ten steps
        assert len(rates) == 60 and sum(rates[-10:]) > sum(rates[:10])


def test_deterministic_under_a_seed(mlp, digits):
    train, x, y = digits
    a = LaVAN(mlp, TARGET, size=0.1, steps=5, train_batch=8, seed=3).fit(train)
    b = LaVAN(mlp, TARGET, size=0.1, steps=5, train_batch=8, seed=3).fit(train)
    c = LaVAN(mlp, TARGET, size=0.1, steps=5, train_batch=8, seed=4).fit(train)
    assert torch.equal(a.patch, b.patch) and not torch.equal(a.patch, c.patch)
    assert torch.equal(a(x, y).x_adv, b(x, y).x_adv)
    # with batches, each batch draws its placements from its own stream: still repeatable
    a.batch_size = 4
    assert torch.equal(a(x, y).x_adv, a(x, y).x_adv)
    assert torch.equal(augment(train[:4], 10, seed=2), augment(train[:4], 10, seed=2))


def test_fit_cached_learns_once_per_model_images_and_settings(mlp, digits, tmp_cache, monkeypatch):
    train, x, y = digits
    first = LaVAN(mlp, TARGET, size=0.1, steps=4, train_batch=8, seed=3).fit_cached(train)
    fitted = LaVAN(mlp, TARGET, size=0.1, steps=4, train_batch=8, seed=3).fit(train)
    assert torch.equal(first.patch, fitted.patch) and first.history == fitted.history
    assert len(list((tmp_cache / "patches").glob("lavan-*.pt"))) == 1

    def no_training(self, *args, **kwargs):
        raise AssertionError("fit_cached trained a patch it had in the cache")

    monkeypatch.setattr(LaVAN, "fit", no_training)
    again = LaVAN(mlp, TARGET, size=0.1, steps=4, train_batch=8, seed=3).fit_cached(train)
    assert torch.equal(again.patch, first.patch) and again.history == first.history
    # other images, other settings or other weights are another patch
    for attack, images in ((LaVAN(mlp, TARGET, size=0.1, steps=4, train_batch=8, seed=3), train[:48]),
                           (LaVAN(mlp, TARGET, size=0.1, steps=5, train_batch=8, seed=3), train)):
        with pytest.raises(AssertionError, match="trained a patch"):
            attack.fit_cached(images)
    other = small_digits_mlp(seed=1)
    with pytest.raises(AssertionError, match="trained a patch"):
        LaVAN(other, TARGET, size=0.1, steps=4, train_batch=8, seed=3).fit_cached(train)


def test_registry_and_bad_input(mlp, digits):
    train, x, y = digits
    assert isinstance(get_attack("patch", mlp, target_class=1), AdversarialPatch)
    assert isinstance(get_attack("lavan", mlp, target_class=1), LaVAN)
    with pytest.raises(ValueError, match=r"target_class must be a class index in \[0, 10\)"):
        AdversarialPatch(mlp, 10)
    with pytest.raises(ValueError, match=r"target_class"):
        LaVAN(mlp, -1)
    with pytest.raises(ValueError, match="larger than the image"):
        AdversarialPatch(mlp, 1, size=0.9, shape="circle")  # a circle over 90 % is wider than the image
    with pytest.raises(ValueError, match="larger than the image"):
        AdversarialPatch(mlp, 1, size=0.7, scale=(1.0, 1.5), shape="square")
    with pytest.raises(ValueError, match=r"size .* must be in \(0, 1\)"):
        LaVAN(mlp, 1, size=1.5)
    with pytest.raises(ValueError, match="scale must be"):
        AdversarialPatch(mlp, 1, scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="shape must be one of"):
        AdversarialPatch(mlp, 1, shape="star")
    with pytest.raises(ValueError, match="has no untargeted mode"):
        AdversarialPatch(mlp, 1, targeted=False)
    with pytest.raises(ValueError, match="does not fit"):
        LaVAN(mlp, 1, size=0.1, location=(25, 0)).set_patch(torch.rand(1, 9, 9)).apply(x)
    attack = LaVAN(mlp, TARGET, size=0.1)
    with pytest.raises(RuntimeError, match="call fit"):
        attack(x, y)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        attack.fit(train * 2)
    attack.set_patch(torch.rand(1, 9, 9))
    with pytest.raises(ValueError, match="targets class 3"):
        attack(x, y, torch.full_like(y, 4))
    with pytest.raises(ValueError, match="target equals the true label"):
        attack(x, torch.full_like(y, TARGET))
    with pytest.raises(ValueError, match="n must be"):
        augment(train, 0)


def test_augment_keeps_range_and_varies():
    x = torch.rand(3, 3, 24, 24)
    out = augment(x, 9, seed=0)
    assert out.shape == (9, 3, 24, 24) and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out[0], out[3])  # same source, different draw
    plain = augment(x, 3, crop=(1.0, 1.0), flip=False, brightness=0, contrast=0, saturation=0)
    assert torch.allclose(plain, x, atol=1e-5)
    assert math.isfinite(out.sum().item())
