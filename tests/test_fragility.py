"""targeted_pgd_success on a tiny model whose decision is known in closed form.

The model reads the mean of each colour channel and predicts the brightest channel (three classes).
An image whose two brightest channel means differ by less than eps can be pushed to any class by
an L-inf perturbation of size eps (raise one channel, lower the others); one whose channels differ
by far more than 2 eps cannot. So the measured rate can be checked against a known answer, not
only for its bookkeeping.
"""
import pytest
import torch
import torch.nn as nn

from advxai.data.base import InMemoryImageDataset
from advxai.models import Classifier, ModelInfo
from advxai.data import FewerCorrect
from advxai.errors import EmptySelection
from advxai.models.fragility import targeted_pgd_success

EPS = 8 / 255


class ChannelMean(nn.Module):
    def forward(self, x):
        return x.mean((2, 3)) * 50.0  # steep enough that the softmax follows the argmax


def _model(num_classes=3):
    info = ModelInfo(name="channel_mean", dataset="toy", input_size=(3, 8, 8),
                     class_names=[f"c{k}" for k in range(num_classes)], mean=(0.0,) * 3, std=(1.0,) * 3,
                     cam_layer="", feature_layer="", classifier_layer="")
    return Classifier(ChannelMean(), info)


def _dataset(n=60, gap=0.01, wrong_every=5, seed=0):
    """Images of flat colour: the label's channel brighter than the others by ``gap``; every
    ``wrong_every``-th image carries a wrong label (the model misclassifies it)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    base = 0.3 + 0.3 * torch.rand(n, generator=g)
    x = base.view(n, 1, 1, 1).repeat(1, 3, 8, 8)
    x[torch.arange(n), y] += gap
    x = x + 0.002 * torch.rand(x.shape, generator=g)  # texture, far below every gap used here
    labels = y.clone()
    wrong = torch.arange(n) % wrong_every == 0
    labels[wrong] = (y[wrong] + 1) % 3
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return InMemoryImageDataset(name="toy", split="test", classes=["c0", "c1", "c2"], labels=labels, images=images)


def test_only_correct_images_are_attacked_with_other_targets_and_within_budget():
    model, data = _model(), _dataset()
    r = targeted_pgd_success(model, data, 30, steps=20, seed=3)
    rec = r.records
    assert r.n == len(rec) == 30
    assert (rec["index"] % 5 != 0).all()  # the mislabelled images are never chosen
    b = data.batch(torch.tensor(rec["index"].tolist()))
    assert torch.equal(model(b.x).argmax(1), b.y)
    assert (rec["target"] != rec["y"]).all() and rec["target"].between(0, 2).all()
    assert (rec["linf"] <= EPS + 1e-6).all()
    assert r.count == int(rec["success"].sum()) and r.rate == pytest.approx(r.count / r.n)
    assert ((rec["pred"] == rec["target"]) == rec["success"]).all()
    assert r.interval[0] <= r.rate <= r.interval[1]


def test_rate_matches_the_closed_form_answer():
    model = _model()
    fragile = targeted_pgd_success(model, _dataset(gap=0.5 * EPS), 20, steps=40)
    robust = targeted_pgd_success(model, _dataset(gap=6 * EPS), 20, steps=40)
    assert fragile.rate == 1.0
    assert robust.rate == 0.0 and robust.records["target_prob"].max() < 0.01


def test_deterministic_under_a_seed_and_the_seed_matters():
    model, data = _model(), _dataset(n=80)
    a = targeted_pgd_success(model, data, 25, steps=10, seed=1)
    b = targeted_pgd_success(model, data, 25, steps=10, seed=1)
    c = targeted_pgd_success(model, data, 25, steps=10, seed=2)
    assert a.records.equals(b.records)
    assert not (a.records["index"].tolist() == c.records["index"].tolist()
                and a.records["target"].tolist() == c.records["target"].tolist())


def test_fewer_correct_images_than_asked_warns_and_none_fails():
    model, data = _model(), _dataset(n=50)  # 40 correctly classified
    with pytest.warns(FewerCorrect, match="only 40"):
        r = targeted_pgd_success(model, data, 45, steps=2)
    assert r.n == 40
    with pytest.raises(EmptySelection):
        targeted_pgd_success(model, _dataset(n=10, wrong_every=1), 5, steps=2)


def test_bad_input_fails_early():
    model, data = _model(), _dataset()
    with pytest.raises(ValueError, match="n must be a positive integer"):
        targeted_pgd_success(model, data, 0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        targeted_pgd_success(model, data, 5, steps=0)
    with pytest.raises(ValueError, match="3 classes and the model 4"):
        targeted_pgd_success(_model(num_classes=4), data, 5)
    with pytest.raises(ValueError, match="eps"):
        targeted_pgd_success(model, data, 5, eps=2.0)


def test_the_attack_starts_at_the_image_and_takes_steps_of_alpha():
    # no random start (as the chapters run PGD): after one step the perturbation is alpha, not eps
    r = targeted_pgd_success(_model(), _dataset(), 10, steps=1, alpha=1 / 255)
    assert r.records["linf"].max() == pytest.approx(1 / 255, abs=1e-6)


def test_a_second_measurement_loads_the_cached_attack_and_other_settings_do_not(tmp_cache, monkeypatch):
    from advxai.attacks.gradient import PGD

    model, data = _model(), _dataset()
    first = targeted_pgd_success(model, data, 12, eps=EPS, steps=20, seed=0)
    assert list((tmp_cache / "adversarial").rglob("*.pt"))

    def refuse(*args, **kwargs):
        raise AssertionError("PGD ran again although its result was cached")

    monkeypatch.setattr(PGD, "__call__", refuse)
    again = targeted_pgd_success(model, data, 12, eps=EPS, steps=20, seed=0)
    assert (again.count, again.n) == (first.count, first.n)
    assert again.records.equals(first.records)
    with pytest.raises(AssertionError, match="ran again"):  # other settings: a new entry, attacked anew
        targeted_pgd_success(model, data, 12, eps=EPS, steps=21, seed=0)
