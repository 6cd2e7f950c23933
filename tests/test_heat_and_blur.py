"""Heat and Blur (Algorithm 1), its adaptive attack (Algorithm 2), and the NDCG metric (Eqs. 3-7)."""
import math

import numpy as np
import pytest
import torch

from advxai.attacks import PGD
from advxai.defenses.heat_and_blur import AdaptiveHeatAndBlur, HeatAndBlur, HeatAndBlurChange, binarize, mask_iou
from advxai.metrics import coverage_count, dcg, ndcg, ndcg_relevance

from .helpers import batch, tiny_classifier


# --------------------------------------------------------------------------- binarisation and blur

def test_binarize_mean_plus_two_std_and_topk():
    g = torch.Generator().manual_seed(0)
    heat = torch.rand(3, 1, 20, 20, generator=g).pow(4)
    m = binarize(heat)
    flat = heat.flatten(1).numpy()
    expected = flat > flat.mean(1, keepdims=True) + 2 * flat.std(1, keepdims=True)
    assert np.array_equal(m.flatten(1).numpy(), expected)
    top = binarize(heat, "topk", top=0.05)
    assert (top.flatten(1).sum(1) == math.ceil(0.05 * 400)).all()
    kept = heat.flatten(1)[top.flatten(1)].view(3, -1).min(1).values
    dropped = heat.flatten(1).masked_fill(top.flatten(1), -1).max(1).values
    assert (kept >= dropped).all()


def test_blur_matches_scipy_and_restores_masked_pixels():
    ndimage = pytest.importorskip("scipy.ndimage")
    model = tiny_classifier(in_channels=3, size=24)
    defense = HeatAndBlur(model, sigma=1.2)
    x, _ = batch(model, 2)
    ours = defense.blur(x).numpy()
    ref = np.stack([[ndimage.gaussian_filter(x[i, c].numpy(), 1.2, mode="mirror", truncate=3.0)
                     for c in range(3)] for i in range(2)])
    assert np.abs(ours - ref).max() < 1e-5
    res = defense.clean(x)
    m = res.mask.expand_as(x)
    assert torch.equal(res.x_clean[m], x[m])  # original pixels under the map, every channel
    assert torch.equal(res.x_clean[~m], res.blurred[~m])
    assert res.mask.any() and not res.mask.all()
    assert torch.equal(res.pred_input, model(x).argmax(1))
    assert torch.equal(res.pred, model(res.x_clean).argmax(1))


def test_heatmap_is_dtd_of_the_predicted_class():
    from advxai.interpreters.lrp import LRP

    model = tiny_classifier(in_channels=3, size=24)
    x, _ = batch(model, 3)
    heat, cls = HeatAndBlur(model).heatmap(x)
    assert torch.equal(cls, model(x).argmax(1))
    torch.testing.assert_close(heat, LRP(model, rule="dtd")(x).maps.abs())


def test_sigma_sweep_shares_one_heatmap():
    model = tiny_classifier(in_channels=3, size=24)
    x, _ = batch(model, 4)
    defense = HeatAndBlur(model, threshold="topk", top=0.1)
    results = defense.clean(x, sigmas=[0.5, 2.0])
    assert torch.equal(results[0].mask, results[1].mask)
    d = [(r.x_clean - x).abs().amax() for r in results]
    assert d[1] > d[0]  # more blur, farther from the input


def test_bad_input():
    model = tiny_classifier(in_channels=3, size=24)
    for s in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sigma .* must be > 0"):
            HeatAndBlur(model, sigma=s)
    with pytest.raises(ValueError, match="unknown binarisation 'otsu'"):
        HeatAndBlur(model, threshold="otsu")
    with pytest.raises(ValueError, match=r"top .* must be in \(0, 1\]"):
        HeatAndBlur(model, threshold="topk", top=1.5)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        HeatAndBlur(model).clean(torch.full((1, 3, 24, 24), 2.0))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        HeatAndBlur(model).predict(torch.full((1, 3, 24, 24), 2.0))
    with pytest.raises(ValueError, match="sigma"):
        HeatAndBlur(model).clean(torch.rand(1, 3, 24, 24), sigmas=[1.0, 0.0])
    with pytest.raises(ValueError, match="the detector.s own model"):
        HeatAndBlurChange(model, defense=HeatAndBlur(tiny_classifier(in_channels=3, size=24)))


def test_mask_iou():
    a = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    b = a.clone()
    a[0, 0, 0, :2] = True
    b[0, 0, 0, 1:3] = True
    assert mask_iou(a, b).tolist() == [pytest.approx(1 / 3), 1.0]


def test_adaptive_attack_keeps_perturbation_on_heatmap_pixels():
    model = tiny_classifier(in_channels=3, size=24)
    x, y = batch(model, 6)
    defense = HeatAndBlur(model, threshold="topk", top=0.05)
    attack = PGD(model, eps=8 / 255, alpha=2 / 255, steps=5)
    res = AdaptiveHeatAndBlur(model, defense, attack, iterations=2, eps=8 / 255).run(x, y)
    assert res.linf.max() <= 8 / 255 + 1e-6
    assert res.x_adapt.min() >= 0 and res.x_adapt.max() <= 1
    changed = (res.x_adapt - x).abs().sum(1, keepdim=True) > 0
    assert changed.flatten(1).float().mean(1).max() <= 2 * 0.05 + 1e-6  # at most one map per iteration
    assert torch.equal(res.success, res.pred_defended != y)
    with pytest.raises(ValueError, match="iterations"):
        AdaptiveHeatAndBlur(model, defense, attack, iterations=0)
    with pytest.raises(ValueError, match="inner attack is untargeted"):
        AdaptiveHeatAndBlur(model, defense, attack, targeted=True)


# --------------------------------------------------------------------------- NDCG


def test_ndcg_identity_and_unrelated_class():
    b = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    assert torch.allclose(ndcg(b, b, [1, 2, 3, 4, 5]), torch.ones(1, 5))
    far = torch.tensor([[0.0, 0.0, 0.0, 0.0, 9.0]])  # confidently a class outside the benign coverage
    assert torch.equal(ndcg(b, far, [1, 5]), torch.zeros(1, 2))


def test_ndcg_by_hand():
    b = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    a = torch.tensor([[2.0, 3.0, 1.0, 0.0, -1.0]])
    # K1 = 4 (top-4 probabilities 0.988 <= 0.99); logits 3, 2, 1, 0 over a sum of 6
    rel = ndcg_relevance(b).squeeze(0)
    assert torch.allclose(rel, torch.tensor([0.5, 1 / 3, 1 / 6, 0.0, 0.0]))
    g = [2 ** r - 1 for r in (0.5, 1 / 3)]
    ideal2 = g[0] + g[1] / math.log2(3)
    ours2 = g[1] + g[0] / math.log2(3)
    assert ndcg(b, a, 2).item() == pytest.approx(ours2 / ideal2, rel=1e-5)
    assert dcg(torch.tensor([[0.5, 1 / 3]]), 2).item() == pytest.approx(ideal2, rel=1e-6)


def test_ndcg_edge_cases():
    confident = torch.tensor([[12.0, 1.0, 0.0, -2.0]])  # top probability > 0.99: the paper's K1 = 0
    assert coverage_count(confident.softmax(1), 0.99).item() == 1  # the top class is still scored
    assert coverage_count(confident.softmax(1), 0.99, rule="reach").item() == 1
    assert ndcg(confident, confident, 1).item() == pytest.approx(1.0)
    flat = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert coverage_count(flat.softmax(1), 0.5).item() == 2 and coverage_count(flat.softmax(1), 1.0).item() == 4
    assert torch.allclose(ndcg_relevance(flat, 1.0), torch.full((1, 4), 0.25))  # all equal: 1/K1 each
    assert torch.allclose(ndcg_relevance(flat - 1, 1.0), torch.full((1, 4), 0.25))  # all zero: by probability
    negative = torch.tensor([[-1.0, -2.0, -3.0, -9.0]])  # no positive logit: relevance from the probabilities
    rel = ndcg_relevance(negative, 0.999)
    p = negative.softmax(1)[0]
    assert (rel >= 0).all() and rel.sum().item() == pytest.approx(1.0)
    assert coverage_count(negative.softmax(1), 0.999).item() == 2
    torch.testing.assert_close(rel[0, :2], p[:2] / p[:2].sum())
    mixed = torch.tensor([[4.0, 3.5, -0.5, -9.0]])  # negative scored logits count as 0
    rel = ndcg_relevance(mixed, 1.0)
    assert coverage_count(mixed.softmax(1), 1.0).item() == 4
    torch.testing.assert_close(rel, torch.tensor([[4 / 7.5, 3.5 / 7.5, 0.0, 0.0]]))
    swapped = torch.tensor([[-2.0, -1.0, -3.0, -9.0]])
    v = ndcg(negative, swapped, [1, 2, 4])
    assert ((v > 0) & (v < 1)).all()


def test_ndcg_bad_input():
    b = torch.randn(2, 5)
    for c in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"coverage_b .* must be in \(0, 1\]"):
            ndcg(b, b, coverage_b=c)
        with pytest.raises(ValueError, match=r"coverage_a .* must be in \(0, 1\]"):
            ndcg(b, b, coverage_a=c)
    with pytest.raises(ValueError, match="k must be integers in"):
        ndcg(b, b, k=6)
    with pytest.raises(ValueError, match="one shape"):
        ndcg(b, torch.randn(2, 4))
    with pytest.raises(ValueError, match="unknown coverage rule"):
        ndcg(b, b, rule="all")


def test_empty_batch():
    model = tiny_classifier(in_channels=3, size=24)
    res = HeatAndBlur(model).clean(torch.zeros(0, 3, 24, 24))
    assert res.x_clean.shape == (0, 3, 24, 24) and res.pred.shape == (0,) and res.logits.shape == (0, 10)
