"""The multi-interpreter detector: stacking, features, gradient boosting, balanced scores, bad input."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from advxai.defenses.multi_interpreter import (ModelFeatures, MultiInterpreterDetector, PixelFeatures, balanced_split,
                                               detection_scores, explain_all, stack_maps)
from advxai.interpreters import get_interpreter

from .helpers import batch, tiny_classifier


def _blobs(centres: torch.Tensor, size: int = 16, width: float = 2.0) -> torch.Tensor:
    """Min-max normalised Gaussian blobs [N, 1, size, size] around the given (row, col) centres."""
    r = torch.arange(size).float()
    d2 = (r.view(1, -1, 1) - centres[:, 0].view(-1, 1, 1)) ** 2 + (r.view(1, 1, -1) - centres[:, 1].view(-1, 1, 1)) ** 2
    m = torch.exp(-d2 / (2 * width ** 2))[:, None]
    return m / m.amax((2, 3), keepdim=True)


def _synthetic(n: int, seed: int):
    """Interpreter A's maps look alike on both sets (the attack fooled A); interpreter B's maps of
    adversarial inputs drift away from the object A points at."""
    g = torch.Generator().manual_seed(seed)
    centre = 8 + 2 * torch.randn(2 * n, 2, generator=g)
    a = _blobs(centre)
    drift = torch.zeros(2 * n, 2)
    drift[n:] = 5 + 2 * torch.rand(n, 2, generator=g)
    b = _blobs(centre + drift * torch.sign(torch.randn(2 * n, 2, generator=g)))
    noise = 0.05 * torch.rand(2 * n, 1, 16, 16, generator=g)
    a, b = (a + noise).clamp(0, 1), (b + noise).clamp(0, 1)
    return [a[:n], b[:n]], [a[n:], b[n:]]


@pytest.fixture(scope="module")
def extractor():
    return ModelFeatures(tiny_classifier(in_channels=3, size=16, width=8), pool=2)


@pytest.mark.parametrize("product", [False, True])
def test_separates_an_easy_synthetic_case(extractor, product):
    benign, adversarial = _synthetic(80, seed=0)
    test_b, test_a = _synthetic(40, seed=1)
    det = MultiInterpreterDetector(extractor, booster="gb", product=product, n_estimators=50).fit_maps(benign, adversarial)
    score = det.evaluate_maps(test_b, test_a)
    assert score.accuracy >= 0.85 and score.auc >= 0.9  # measured: accuracy 0.925 / 0.975, AUC 0.94 / 1.0; chance is 0.5
    assert score.n_benign == score.n_adversarial == 40 and score.accuracy == pytest.approx(score.balanced_accuracy)
    # interpreter A alone cannot tell the sets apart: the second interpreter is what detects
    alone = MultiInterpreterDetector(PixelFeatures(8), booster="hist").fit_maps(benign[:1], adversarial[:1])
    assert alone.evaluate_maps(test_b[:1], test_a[:1]).accuracy < 0.75


def test_features_shapes_and_determinism(extractor):
    benign, adversarial = _synthetic(30, seed=2)
    stacked = stack_maps(benign)
    assert stacked.shape == (30, 2, 16, 16)
    feats = extractor(stacked)
    assert feats.shape == (30, 2 * 16 * 4)  # 2 channels x 16 feature maps x 2x2 pool
    assert torch.equal(feats, extractor(stacked))
    p1 = MultiInterpreterDetector(extractor, n_estimators=20, seed=3).fit_maps(benign, adversarial).predict_proba(benign)
    p2 = MultiInterpreterDetector(extractor, n_estimators=20, seed=3).fit_maps(benign, adversarial).predict_proba(benign)
    assert np.array_equal(p1, p2)


def test_balanced_accuracy_computed_right():
    pb = [0.1, 0.2, 0.9, 0.3]  # 3 of 4 benign called benign
    pa = [0.8, 0.4]  # 1 of 2 adversarial detected
    s = detection_scores(pb, pa)
    assert s.benign_accuracy == 0.75 and s.adversarial_accuracy == 0.5
    assert s.accuracy == pytest.approx(4 / 6) and s.balanced_accuracy == pytest.approx(0.625)
    assert s.auc == pytest.approx(roc_auc_score([0, 0, 0, 0, 1, 1], pb + pa))
    balanced = detection_scores([0.1, 0.9], [0.8, 0.7])
    assert balanced.accuracy == balanced.balanced_accuracy == 0.75


def test_balanced_split():
    btr, bte, atr, ate = balanced_split(100, 37, test_fraction=0.3, seed=0)
    assert len(btr) == len(atr) == 26 and len(bte) == len(ate) == 11
    assert len(set(btr.tolist()) | set(bte.tolist())) == 37 and max(atr.tolist() + ate.tolist()) < 37
    assert all(torch.equal(u, v) for u, v in zip((btr, bte, atr, ate), balanced_split(100, 37, 0.3, seed=0)))
    with pytest.raises(ValueError, match="too few"):
        balanced_split(100, 1)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        balanced_split(10, 10, test_fraction=1.0)


def test_bad_input(extractor):
    a = torch.rand(5, 1, 16, 16)
    with pytest.raises(ValueError, match=r"different sizes \[\(16, 16\), \(8, 8\)\].*upsample_to"):
        stack_maps([a, torch.rand(5, 1, 8, 8)])
    with pytest.raises(ValueError, match="same images"):
        stack_maps([a, torch.rand(4, 1, 16, 16)])
    with pytest.raises(ValueError, match="exactly two"):
        stack_maps([a, a, a], product=True)
    with pytest.raises(ValueError, match="NaN"):
        stack_maps([a, torch.full((5, 1, 16, 16), float("nan"))])
    with pytest.raises(ValueError, match="gb, hist"):
        MultiInterpreterDetector(extractor, booster="xgb")
    det = MultiInterpreterDetector(extractor, n_estimators=5)
    with pytest.raises(RuntimeError, match="not fitted"):
        det.predict_proba(a)
    with pytest.raises(ValueError, match="balanced"):
        det.fit_maps([a, a], [a[:3], a[:3]])
    with pytest.raises(ValueError, match="fitted on 2-channel maps of \\(16, 16\\), got 3 channels"):
        det.fit_maps([a, a], [a, a, a])  # the benign and adversarial sets must come from the same interpreters
    det.fit_maps([a, a], [a.flip(-1), a.flip(-1)])
    with pytest.raises(ValueError, match="fitted on 2-channel maps"):
        det.predict_proba([a, a, a])
    with pytest.raises(ValueError, match="built without interpreters, so it works on maps"):
        det.score(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="explain one model"):
        MultiInterpreterDetector(extractor, [get_interpreter("cam", tiny_classifier(3, 16)),
                                             get_interpreter("cam", tiny_classifier(3, 16, seed=1))])


def test_with_real_interpreters():
    """The whole path on a model: maps of two interpreters, stacked, features of another model, boosting."""
    model = tiny_classifier(in_channels=3, size=16, width=8)
    x, _ = batch(model, 12)
    maps = explain_all([get_interpreter("cam", model), get_interpreter("grad", model)], x, batch_size=5)
    assert [tuple(m.shape) for m in maps] == [(12, 1, 16, 16)] * 2
    x_noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    noisy = explain_all([get_interpreter("cam", model), get_interpreter("grad", model)], x_noisy)
    det = MultiInterpreterDetector(ModelFeatures(tiny_classifier(3, 16, seed=1), pool=1), n_estimators=10)
    s = det.fit_maps(maps, noisy).evaluate_maps(maps, noisy)
    assert 0 <= s.accuracy <= 1 and s.n_benign == 12
    # on images, the detector computes the same maps itself: the same booster, the same probabilities
    on_images = MultiInterpreterDetector(ModelFeatures(tiny_classifier(3, 16, seed=1), pool=1),
                                         [get_interpreter("cam", model), get_interpreter("grad", model)],
                                         n_estimators=10, batch_size=5)
    on_images.fit(x, x_noisy)
    assert on_images.fitted and np.allclose(on_images.score(x_noisy).numpy(), det.predict_proba(noisy))
