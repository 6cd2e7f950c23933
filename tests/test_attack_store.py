import pytest
import torch

from advxai.attacks import PGD, adversarial_set, random_targets


def test_random_targets_differ_from_labels_and_repeat():
    y = torch.arange(10).repeat(5)
    t = random_targets(y, 10, seed=3)
    assert torch.all(t != y) and torch.all((0 <= t) & (t < 10))
    assert torch.equal(t, random_targets(y, 10, seed=3))


def test_adversarial_set_is_cached_and_identical(monkeypatch):
    kw = dict(train_budget="smoke", device="cpu", eps=0.1, steps=3)
    first = adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], **kw)
    assert torch.all(first.linf <= 0.1 + 1e-6) and len(first) == 4

    def no_attacking(*_args, **_kwargs):
        raise AssertionError("the cached set should have been loaded, not recomputed")

    monkeypatch.setattr(PGD, "perturb", no_attacking)
    second = adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], **kw)
    assert torch.equal(first.x_adv, second.x_adv) and torch.equal(first.success, second.success)
    with pytest.raises(AssertionError, match="recomputed"):
        adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 4], **kw)  # other images: a new set
    monkeypatch.undo()
    targeted = adversarial_set("pgd", "digits_cnn", "digits", [0, 1, 2, 3], targeted=True, **kw)
    assert targeted.target is not None and torch.all(targeted.target != targeted.y)
