"""Chapter 1's experiments (advxai.studies.causal_attribution) at smoke sizes on the digits."""
import math

import numpy as np
import pytest
import torch

from advxai import claims
from advxai.errors import EmptySelection
from advxai.studies import causal_attribution as ca

from .helpers import one_thread, smoke_model, tiny_classifier

MODEL, DATA = "digits_cnn", "digits"
PATCH_TARGET, LAVAN_TARGET = 3, 5


def _masking(n=10, attacks=None, seed=0):
    attacks = attacks or {"FGSM ε=0.3": ("fgsm", {"eps": 0.3}),
                          "PGD ε=0.1": ("pgd", {"eps": 0.1, "steps": 3, "alpha": 0.05, "seed": 0})}
    with one_thread():
        return ca.masking_study("mnist", DATA, MODEL, n, attacks, ig_steps=4, epsilon=0.05, max_delta=0.3,
                                fraction_of="positive", points=(0.10, 0.20), seed=seed, device="cpu",
                                train_budget="smoke")


@pytest.fixture(scope="module")
def masking():
    smoke_model(MODEL)  # trained on one thread into the session's cache first
    return _masking()


def test_masking_study_samples_correct_images_and_analyses_only_fooled_ones(masking):
    m = masking
    assert len(m.index) == 10 and torch.equal(m.index, torch.sort(m.index).values)
    assert len(set(m.index.tolist())) == 10
    with torch.no_grad():
        assert torch.equal(m.model(m.x).argmax(1).cpu(), m.y)  # every evaluated image is classified correctly
    assert len(m.benign) == 10
    for name, r in m.attacks.items():
        assert len(r) == 10 and len(m.results[name]) == int(r.success.sum())
        # an analysed adversarial image carries the label the attack produced
        assert torch.equal(m.results[name].label, r.pred[r.success].cpu())
    grid = set(np.round(m.deltas, 9).tolist())
    for name, r in m.results.items():
        assert all(math.isinf(v) or round(v, 9) in grid for v in r.rho.tolist())
        row = m.summary.set_index("inputs").loc[name]
        assert row["n"] == len(r)
        if len(r):
            assert row["changed at 20 %"] == pytest.approx(float((r.rho <= 0.2 + 1e-12).double().mean()))
        curve = m.curves[m.curves["inputs"] == name]["changed"].to_numpy()
        if len(r):  # the share of labels changed can only grow with the fraction masked
            assert np.all(np.diff(curve) >= 0)
    assert len(m.images) == sum(len(r) for r in m.results.values())
    assert list(m.attack_table["fooled"]) == [int(r.success.sum()) for r in m.attacks.values()]


def test_masking_study_is_repeatable(masking):
    again = _masking()
    assert torch.equal(again.index, masking.index)
    for name in masking.results:
        assert torch.equal(again.results[name].rho, masking.results[name].rho)


def test_no_correctly_classified_image_stops_with_the_numbers(monkeypatch):
    # a model that predicts one class only: among the drawn digits none of any other class is "correct",
    # and with no digit of class 0 (classes filtered away) the draw is empty
    wrong = tiny_classifier(in_channels=1, size=28)
    with torch.no_grad():
        wrong.net.head.fc.weight.zero_()
        wrong.net.head.fc.bias.copy_(torch.arange(10.0))  # always class 9
    monkeypatch.setattr(ca, "get_model", lambda *a, **k: wrong)
    from advxai.data import get_dataset

    digits = get_dataset(DATA, "test")
    keep = torch.nonzero(torch.as_tensor(digits.labels) != 9).flatten()
    monkeypatch.setattr(ca, "get_dataset", lambda *a, **k: _Subset(digits, keep))
    with pytest.raises(EmptySelection, match=r"classifies none of the \d+ .* images it was shown correctly"):
        ca.masking_study("mnist", DATA, MODEL, 4, {"FGSM ε=0.3": ("fgsm", {"eps": 0.3})}, ig_steps=2,
                         epsilon=0.1, max_delta=0.2, fraction_of="positive", points=(0.1, 0.2), device="cpu")


class _Subset:
    """A data set restricted to some images (for the empty-selection test)."""

    def __init__(self, base, keep):
        self.base, self.keep = base, keep
        self.name, self.split, self.classes = base.name, base.split, base.classes
        self.num_classes, self.image_shape = base.num_classes, base.image_shape
        self.labels = torch.as_tensor(base.labels)[keep]

    def __len__(self):
        return len(self.keep)

    def load_images(self, idx):
        return self.base.load_images(self.keep[torch.as_tensor(idx)])


def test_folds_are_balanced_and_seeded():
    f = ca._folds(9, 2, seed=3)
    assert sorted(torch.bincount(f).tolist()) == [4, 5]
    assert torch.equal(f, ca._folds(9, 2, seed=3)) and not torch.equal(f, ca._folds(9, 2, seed=4))


def _patches(m, **kw):
    settings = dict(patch_targets=[PATCH_TARGET], lavan_target=LAVAN_TARGET, patch_size=0.2, patch_scale=[1.0, 1.25],
                    lavan_size=0.1, steps=3, lr=0.1, train_batch=4, n_augmented=0, placements=3, n_detect=None,
                    detect_delta=0.1, seed=0)
    settings.update(kw)
    with one_thread():
        return ca.patch_study(m, **settings)


def test_cross_fitted_patches_never_see_the_images_they_are_evaluated_on(masking):
    p = _patches(masking)
    assert set(p.folds.tolist()) == {0, 1} and "cross-fitting" in p.train_source
    for k, train in p.train_images.items():
        evaluated = masking.x[p.folds == k]
        trained = masking.x[p.folds != k]
        assert torch.equal(train, trained)  # n_augmented=0: the other fold's images themselves
        assert not any(torch.equal(e, t) for e in evaluated for t in train)
    assert list(p.attacks) == [f"patch '{PATCH_TARGET}'", f"LaVAN '{LAVAN_TARGET}'"]
    for name, e in p.evaluated.items():
        target = p.attacks[name][0].target_class
        kept = int((masking.y != target).sum())
        assert len(e.result) == 3 * kept  # every image of another class, at every placement
        assert not (masking.y[e.image] == target).any()
        # each fooled image is analysed once, at a placement where it was fooled
        assert e.result.success[e.analysed].all()
        assert len(set(e.image[e.analysed].tolist())) == len(e.analysed)
        assert set(e.image[e.analysed].tolist()) == set(e.image[e.result.success.cpu()].tolist())
        # every image at placements 0, 1, 2: the same images in the same order each time
        assert torch.equal(torch.bincount(e.placement), torch.full((3,), kept))
        for j in (1, 2):
            assert torch.equal(e.image[e.placement == j], e.image[e.placement == 0])
        # the patched pixels are the patch's only: the rest of each image is untouched
        changed = (e.result.x_adv.cpu() != e.clean).any(1).float().mean(dim=(1, 2))
        assert float(changed.max()) <= p.attacks[name][0].size * 1.3 + 0.02
    assert set(p.inside["patch"]) <= set(p.attacks)


def test_patches_from_another_split_and_bad_settings(masking):
    p = _patches(masking, train_split="train", n_train=6, placements=1, n_detect=2)
    assert set(p.folds.tolist()) == {0} and list(p.train_images) == [0]
    assert len(p.train_images[0]) == 6 and "'train' split" in p.train_source
    assert all(len(e.masking) <= 2 for e in p.evaluated.values())
    with pytest.raises(ValueError, match="patch_folds must be an integer >= 2"):
        _patches(masking, folds=1)
    with pytest.raises(EmptySelection, match="needs at least 20 evaluated images"):
        _patches(masking, folds=20)
    with pytest.raises(ValueError, match="patch_placements must be a positive integer"):
        _patches(masking, placements=0)


def test_size_sweep_reuses_the_trained_size_and_the_same_images(masking):
    p = _patches(masking)
    name = list(p.attacks)[0]
    s = ca.patch_size_study(masking, p, name, [0.15, 0.2, 0.25], n_detect=None)
    assert s.by_size[0.2] is p.evaluated[name]
    assert s.table["patched images"].nunique() == 1  # the same images and placements at every size
    for a, e in s.by_size.items():
        assert torch.equal(e.image, p.evaluated[name].image)
    with pytest.raises(ValueError, match="unknown patch"):
        ca.patch_size_study(masking, p, "nope", [0.2], n_detect=None)


def test_paper_claims_measure_every_row_or_say_why(masking):
    p = _patches(masking)
    s = ca.patch_size_study(masking, p, list(p.attacks)[0], [0.15, 0.25], n_detect=None)
    setting = claims.Setting("MNIST", data=DATA, model=MODEL, paper_data="mnist", paper_model="mnist_cnn")
    records = ca.paper_claims(masking, masking, p, s, mnist_setting=setting, imagenet_setting=setting,
                              patch_setting=setting)
    assert len(records) == len(ca.PAPER_CLAIMS)
    assert all(c.verdict in claims.VERDICTS for c in records)
    by_text = {c.claim: c for c in records}
    # a difference claim is the attack's changed share minus the benign one, over both groups' images
    fgsm = by_text["FGSM ε=0.3: labels changed at 20 % masked, minus benign"]
    adv, ben = masking.results["FGSM ε=0.3"], masking.benign
    if len(adv):
        assert fgsm.ours == pytest.approx(ca.changed_at(adv, 0.2) - ca.changed_at(ben, 0.2))
        assert fgsm.n == len(adv) + len(ben) and fgsm.no_effect == 0.0
    benign = by_text["benign labels unchanged, top 10 % masked"]
    assert benign.ours == pytest.approx(1 - ca.changed_at(ben, 0.1)) and benign.paper == 0.94
    # attacks this run did not make are "not measured", with the reason
    missing = [c for c in records if c.verdict == "not measured" and "not among the attacks run" in c.reason]
    assert {c.claim.split(":")[0] for c in missing} >= {"DeepFool", "C&W", "FGSM ε=2/255"}
    # the second adversarial patch was not run
    assert any("fewer adversarial patches" in c.reason for c in records)
    # fooling counts images (each at its first placement, as the paper pastes once), with Wilson's interval
    name = list(p.attacks)[0]
    fooled = next(c for c in records if c.claim.startswith(name) and "share of images fooled" in c.claim)
    e = p.evaluated[name]
    assert fooled.n == int((masking.y != PATCH_TARGET).sum()) and fooled.estimator.startswith("Wilson")
    assert fooled.ours == pytest.approx(float(e.result.success[e.placement == 0].float().mean()))
    assert "headline claims" in ca.claims_summary(records)
    # the size claim: detection at the smallest size minus at the largest, over the fooled images analysed
    size = next(c for c in records if c.claim.startswith("smaller patches"))
    small, large = s.by_size[0.15].masking, s.by_size[0.25].masking
    if len(small) and len(large):
        assert size.ours == pytest.approx(ca.changed_at(small, 0.004) - ca.changed_at(large, 0.004))
    else:
        assert size.verdict == "not measured"
    text = ca.data_deviations(masking, masking, p)
    assert f"{len(masking.index)} correctly classified test digits" in text and "cross-fitting" in text


def test_roc_and_observation(masking):
    roc = ca.roc_study([("mnist", masking.benign, masking.adversarial, 0.3, 0.2)])
    assert len(roc) == sum(1 for r in masking.adversarial.values() if len(r))
    assert roc["AUC"].between(0, 1).all()
    text = ca.observation(masking.benign, masking.adversarial, 0.2, "the top 20 %")
    assert text.startswith("**Measured here.**") and f"n={len(masking.benign)}" in text
