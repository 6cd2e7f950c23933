"""PGD adversarial training (advxai.defenses.adversarial_training)."""
from __future__ import annotations

import copy

import pytest
import torch

from advxai.attacks import PGD
from advxai.data import get_dataset
from advxai.defenses.adversarial_training import (AdvTrainConfig, adversarial_train, fine_tuned_model, replace_head,
                                                  robust_model, robust_model_spec)

from .helpers import small_digits_mlp


def _pgd_accuracy(model, x, y, eps):
    result = PGD(model, eps=eps, steps=10, random_start=True, seed=1)(x, y)
    return (result.pred.cpu() == y).float().mean().item()


def test_adversarial_training_raises_adversarial_accuracy():
    model = small_digits_mlp()
    train, test = get_dataset("digits", "train"), get_dataset("digits", "test")
    xt, yt = train.load_images(torch.arange(len(train))), train.labels
    b = test.batch(torch.arange(200))
    eps = 0.1
    before_clean = (model(b.x).argmax(1) == b.y).float().mean().item()
    before_adv = _pgd_accuracy(model, b.x, b.y, eps)
    robust = copy.deepcopy(model)
    cfg = AdvTrainConfig(eps=eps, steps=5, epochs=10, lr=3e-3, batch_size=128)
    out = adversarial_train(robust, xt, yt, cfg)
    after_adv = _pgd_accuracy(robust, b.x, b.y, eps)
    after_clean = (robust(b.x).argmax(1) == b.y).float().mean().item()
    assert len(out["history"]) == 10
    assert before_adv < 0.3, before_adv  # the plain model is broken at this budget
    assert after_adv > before_adv + 0.3, (before_adv, after_adv)
    assert after_clean > 0.7 and before_clean > 0.9
    # the trained model is frozen and in eval mode again, as every Classifier
    assert not any(p.requires_grad for p in robust.parameters()) and not robust.training
    # the original was not touched
    assert _pgd_accuracy(model, b.x, b.y, eps) == before_adv


def test_adversarial_training_is_deterministic():
    train = get_dataset("digits", "train")
    xt, yt = train.load_images(torch.arange(256)), train.labels[:256]
    cfg = AdvTrainConfig(eps=0.05, steps=2, epochs=1, batch_size=64)
    a, b = small_digits_mlp(epochs=5), small_digits_mlp(epochs=5)
    adversarial_train(a, xt, yt, cfg)
    adversarial_train(b, xt, yt, cfg)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_bf16_adversarial_training_is_deterministic_and_keyed(monkeypatch):
    train = get_dataset("digits", "train")
    xt, yt = train.load_images(torch.arange(256)), train.labels[:256]
    cfg = AdvTrainConfig(eps=0.05, steps=2, epochs=1, batch_size=64)
    a, b, c = small_digits_mlp(epochs=5), small_digits_mlp(epochs=5), small_digits_mlp(epochs=5)
    adversarial_train(a, xt, yt, cfg, precision="bf16")
    adversarial_train(b, xt, yt, cfg, precision="bf16")
    adversarial_train(c, xt, yt, cfg)
    assert all(p.dtype == torch.float32 and torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    with pytest.raises(ValueError, match="precision"):
        adversarial_train(a, xt, yt, cfg, precision="fp16")
    keys = {}
    for precision in ("fp32", "bf16"):
        monkeypatch.setenv("ADVXAI_TRAIN_PRECISION", precision)
        keys[precision] = robust_model_spec("digits_cnn", cfg, "smoke", "cpu")
    assert keys["fp32"]["precision"] == "fp32" and keys["bf16"]["precision"] == "bf16"
    assert keys["fp32"]["base"]["precision"] == "fp32"


def test_robust_model_is_cached_and_keyed(tmp_cache, monkeypatch):
    from dataclasses import replace

    from advxai.models import embedded
    from advxai.models.training import TrainConfig

    # one short epoch of base training keeps this test quick; the cache logic is what it checks
    spec = embedded.TRAINED["digits_cnn"]
    monkeypatch.setitem(embedded.TRAINED, "digits_cnn", replace(spec, smoke=TrainConfig(epochs=1, shift=2)))
    m1 = robust_model("digits_cnn", 0.05, train_budget="smoke", device="cpu")
    files = sorted(p.name for p in (tmp_cache / "models").glob("digits_cnn-at-*.pt"))
    assert len(files) == 1
    m2 = robust_model("digits_cnn", 0.05, train_budget="smoke", device="cpu")
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    assert m1.info.name == "digits_cnn_at"
    assert m1.info.notes["adversarial_training"]["eps"] == 0.05
    assert m1.info.notes["adversarial_training"]["epochs"] == 1  # the smoke overrides apply
    base = robust_model_spec("digits_cnn", AdvTrainConfig(eps=0.05), "smoke", "cpu")
    other = robust_model_spec("digits_cnn", AdvTrainConfig(eps=0.06), "smoke", "cpu")
    assert base != other


def test_adversarial_training_bad_input():
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        AdvTrainConfig(eps=1.5)
    with pytest.raises(ValueError, match=r"clean_weight must be in \[0, 1\]"):
        AdvTrainConfig(eps=0.1, clean_weight=1.5)
    with pytest.raises(ValueError, match=r"eps must be in"):
        AdvTrainConfig(eps=None)  # only clean training may go without a budget
    with pytest.raises(ValueError, match="valid: .*shapes_resnet"):
        robust_model_spec("resnet50", AdvTrainConfig(eps=0.1))
    model = small_digits_mlp(epochs=1)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        adversarial_train(model, torch.full((4, 1, 28, 28), 2.0), torch.zeros(4, dtype=torch.long),
                          AdvTrainConfig(eps=0.1, epochs=1))


def test_pretrained_model_fine_tuned_on_a_folder_data_set(tmp_cache, tmp_path, monkeypatch):
    """A registry model with another class set gets a new head, clean fine-tuning, then adversarial training."""
    from advxai.models import MODELS
    from advxai.registry import Entry

    from .helpers import tiny_classifier
    from .test_data import _fake_cub

    _fake_cub(tmp_path)
    monkeypatch.setitem(MODELS._entries, "tiny_imagenet", Entry(
        "tiny_imagenet", lambda device="auto", weights="imagenet": tiny_classifier(3, 32, 1000), "test",
        {"tier": "real", "dataset": "imagenet"}))
    kwargs = dict(dataset_kwargs={"root": str(tmp_path), "image_size": 32}, device="cpu", clean_epochs=2,
                  batch_size=2)
    ft = fine_tuned_model("tiny_imagenet", "cub", **kwargs)
    assert ft.info.num_classes == 2 and ft.classifier.out_features == 2 and ft.info.dataset == "cub"
    assert len(ft.info.notes["history"]) == 2
    at = fine_tuned_model("tiny_imagenet", "cub", eps=0.03, epochs=1, steps=2, **kwargs)
    assert at.info.name == "tiny_imagenet_cub_at" and len(at.info.notes["at_history"]) == 1
    assert not torch.equal(at.classifier.weight, ft.classifier.weight)
    names = sorted(p.name.split("-")[1] for p in (tmp_cache / "models").glob("*.pt"))
    assert names == ["cub", "cub"]  # one clean and one adversarial entry
    again = fine_tuned_model("tiny_imagenet", "cub", **kwargs)
    assert torch.equal(again.classifier.weight, ft.classifier.weight)


def test_replace_head_keeps_features():
    from .helpers import tiny_classifier

    model = tiny_classifier(3, 16, 10)
    new = replace_head(model, ["a", "b", "c"], "toy")
    x = torch.rand(2, 3, 16, 16)
    assert new(x).shape == (2, 3) and model(x).shape == (2, 10)
    assert torch.equal(new.features(x), model.features(x))
    assert not any(p.requires_grad for p in new.parameters())


def test_adversarial_training_as_a_defense_labels_with_the_robust_copy():
    from advxai.defenses.adversarial_training import AdversarialTraining
    from advxai.defenses.base import Defense

    from .helpers import tiny_classifier

    plain, robust = tiny_classifier(seed=0), tiny_classifier(seed=1)
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    defense = AdversarialTraining(plain, robust=robust, batch_size=4)
    assert isinstance(defense, Defense) and defense.kind == "defense" and defense.model is robust
    assert torch.equal(defense.predict(x), robust(x).argmax(1))
    assert defense.accuracy(x, robust(x).argmax(1)) == 1.0
