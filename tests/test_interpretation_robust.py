"""Interpretation-robust training (Boopathy et al.): the CAM discrepancy, its worst case, the min-max
training against normal training, Kendall's tau against scipy, cached models."""
import numpy as np
import pytest
import scipy.stats
import torch

from advxai.defenses import interpretation_robust as ir
from advxai.defenses.interpretation_robust import (InterpretationPGD, RobustTrainConfig, cam_class_maps, discrepancy,
                                                   fit_interpretation_robust, robustness_curve, train_model,
                                                   worst_case_discrepancy)
from advxai.interpreters import get_interpreter
from advxai.map_metrics import kendall_tau

from .helpers import batch, tiny_classifier


def _two_blobs(n: int, seed: int):
    """A two-class problem a tiny CNN learns in a second: a bright square top-left (0) or bottom-right (1)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.3 * torch.rand(n, 1, 16, 16, generator=g)
    rows = torch.arange(16).view(1, 16, 1)
    cols = torch.arange(16).view(1, 1, 16)
    r0 = torch.where(y == 0, 2, 9) + torch.randint(0, 3, (n,), generator=g)
    c0 = torch.where(y == 0, 2, 9) + torch.randint(0, 3, (n,), generator=g)
    square = ((rows >= r0.view(-1, 1, 1)) & (rows < r0.view(-1, 1, 1) + 4)
              & (cols >= c0.view(-1, 1, 1)) & (cols < c0.view(-1, 1, 1) + 4))
    return (x + 0.6 * square[:, None].float()).clamp(0, 1), y


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (2, 1, 5, 7), (2, 3, 4, 4)])
def test_kendall_tau_matches_scipy(shape):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(shape, generator=g)
    b = a + 0.5 * torch.rand(shape, generator=g)
    b[0] = torch.round(b[0] * 3) / 3  # many ties in one map
    a[-1] = torch.round(a[-1] * 4) / 4  # ties on the other side too
    ours = kendall_tau(a, b, chunk_elements=37)  # several chunks
    ref = [scipy.stats.kendalltau(a[i].flatten().numpy(), b[i].flatten().numpy())[0] for i in range(shape[0])]
    assert np.allclose(ours.numpy(), ref, atol=1e-6)
    assert torch.allclose(kendall_tau(a, a), torch.ones(shape[0]))
    assert torch.allclose(kendall_tau(a, -a), -torch.ones(shape[0]))
    assert torch.isnan(kendall_tau(a, torch.ones_like(a))).all()  # scipy gives NaN for a constant map too
    with pytest.raises(ValueError, match="same shape"):
        kendall_tau(a, b[:, :, :-1])


def test_cam_class_maps_are_the_cam_interpreters_maps():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, 5)
    other = (y + 3) % 10
    maps, logits = cam_class_maps(model, x, torch.stack([y, other], 1))
    cam = get_interpreter("cam", model)
    assert torch.allclose(maps[:, :1], cam(x, y).extras["native"], atol=1e-6)
    assert torch.allclose(maps[:, 1:], cam(x, other).extras["native"], atol=1e-6)
    assert torch.allclose(logits, model(x))


def test_discrepancy_properties_and_the_attack_term():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, 6)
    assert torch.allclose(discrepancy(model, x, x, y), torch.zeros(6), atol=1e-7)
    x2 = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    d = discrepancy(model, x, x2, y)
    assert (d >= 0).all() and (d <= 1).all() and (d > 0).any()
    state = ir.AttackState(x=x, y=y, target=None)
    assert torch.allclose(ir.DiscrepancyTerm(model)(x2, state), d, atol=1e-6)


def test_interpretation_pgd_raises_the_discrepancy_within_budget():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, 8)
    eps = 0.05
    x_adv, d = worst_case_discrepancy(model, x, y, eps=eps, steps=10)
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    start_only = InterpretationPGD(model, eps=eps, steps=1, alpha=1e-6)(x, y).x_adv  # the random start alone
    assert d.mean() > 1.5 * discrepancy(model, x, start_only, y).mean()
    with pytest.raises(ValueError, match="untargeted"):
        InterpretationPGD(model, eps=eps)(x, y, target=(y + 1) % 10)
    # reusing the framework's forward pass (a hook) changes the cost, not the result
    slow = InterpretationPGD(model, eps=eps, steps=10, reuse_forward=False)(x, y).x_adv
    assert torch.equal(slow, x_adv)


def test_robust_training_lowers_the_worst_case_discrepancy():
    """Same data, schedule and seed: lambda = 1 against normal training; the worst case is measured by a
    stronger attack (10 steps) than the one used in training (2 steps)."""
    x, y = _two_blobs(128, seed=0)
    xt, yt = _two_blobs(64, seed=1)
    results = {}
    for method in ("normal", "robust"):
        torch.manual_seed(0)
        model = tiny_classifier(in_channels=1, size=16, width=8, num_classes=2)
        cfg = RobustTrainConfig(epochs=20, batch_size=32, lr=1e-2, eps=0.1, steps=2, lam=1.0)
        history = fit_interpretation_robust(model, x, y, cfg, method=method)["history"]
        assert len(history) == 20 and not any(p.requires_grad for p in model.parameters()) and not model.training
        with torch.no_grad():
            acc = (model(xt).argmax(1) == yt).float().mean().item()
        _, d = worst_case_discrepancy(model, xt, yt, eps=0.1, steps=10)
        results[method] = (acc, d.mean().item())
    # measured: normal accuracy 1.00, D 0.16; robust accuracy 1.00, D 0.03
    assert results["normal"][0] >= 0.9 and results["robust"][0] >= 0.9
    assert results["robust"][1] < 0.5 * results["normal"][1]


def test_training_is_deterministic():
    x, y = _two_blobs(64, seed=0)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = tiny_classifier(in_channels=1, size=16, width=4, num_classes=2)
        fit_interpretation_robust(model, x, y, RobustTrainConfig(epochs=2, batch_size=32, eps=0.1, steps=1))
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_bf16_training_is_deterministic_and_not_the_fp32_run():
    x, y = _two_blobs(64, seed=0)
    cfg = RobustTrainConfig(epochs=2, batch_size=32, eps=0.1, steps=1)
    weights = {}
    for run in ("bf16", "bf16 again", "fp32"):
        torch.manual_seed(0)
        model = tiny_classifier(in_channels=1, size=16, width=4, num_classes=2)
        fit_interpretation_robust(model, x, y, cfg, precision=run.split()[0])
        weights[run] = torch.cat([p.flatten() for p in model.parameters()])
    assert weights["bf16"].dtype == torch.float32
    assert torch.equal(weights["bf16"], weights["bf16 again"])
    assert not torch.equal(weights["bf16"], weights["fp32"])  # the forward passes ran in bfloat16
    with pytest.raises(ValueError, match="'bf16' or 'fp32'"):
        fit_interpretation_robust(model, x, y, cfg, precision="fp16")


def test_the_cache_key_holds_the_training_precision(tmp_cache, monkeypatch):
    cfg = RobustTrainConfig(epochs=1, batch_size=30, eps=0.1, steps=1, lam=1.0)
    for precision in ("fp32", "bf16"):
        monkeypatch.setenv("ADVXAI_TRAIN_PRECISION", precision)
        train_model("digits_cnn", "normal", cfg, n_train=30, device="cpu")
    assert len(list((tmp_cache / "robust_models").glob("*.pt"))) == 2


def test_cached_models_keyed_on_their_settings(tmp_cache, monkeypatch):
    cfg = RobustTrainConfig(epochs=1, batch_size=30, eps=0.1, steps=1, lam=1.0)
    robust = train_model("digits_cnn", "robust", cfg, n_train=60, device="cpu")
    normal = train_model("digits_cnn", "normal", cfg, n_train=60, device="cpu")
    assert robust.info.name == "digits_cnn_robust" and "lambda=1.0" in robust.info.weights
    assert 0 <= robust.info.test_accuracy <= 1 and len(robust.info.notes["history"]) == 1
    files = sorted(p.name for p in (tmp_cache / "robust_models").glob("*.pt"))
    assert len(files) == 2

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of loading from the cache")

    monkeypatch.setattr(ir, "fit_interpretation_robust", no_training)
    again = train_model("digits_cnn", "robust", cfg, n_train=60, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), robust.state_dict().values()))
    # lambda and the attack's settings mean nothing to normal training: the same entry
    from dataclasses import replace
    train_model("digits_cnn", "normal", replace(cfg, lam=5.0, steps=3), n_train=60, device="cpu")
    with pytest.raises(AssertionError, match="trained again"):
        train_model("digits_cnn", "robust", replace(cfg, lam=2.0), n_train=60, device="cpu")
    assert len(list((tmp_cache / "robust_models").glob("*.pt"))) == 2
    assert not any(p.requires_grad for p in normal.parameters())


def test_robustness_curve_records():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, 6)
    rows = robustness_curve(model, x, y, [0, 0.03], steps=3, label="tiny")
    assert [r["eps"] for r in rows] == [0.0, 0.03] and rows[0]["accuracy"] == 1.0 and rows[0]["kendall_tau"] == 1.0
    assert rows[1]["accuracy"] <= 1.0 and -1 <= rows[1]["kendall_tau"] <= 1 and rows[1]["discrepancy"] > 0
    assert all(r["model"] == "tiny" and r["n"] == 6 for r in rows)


def test_bad_input():
    with pytest.raises(ValueError, match="normal, robust"):
        train_model("digits_cnn", "adversarial")
    with pytest.raises(ValueError, match="digits_cnn"):
        train_model("resnet50", "robust")
    with pytest.raises(ValueError, match="lam"):
        RobustTrainConfig(lam=-1).check()
    with pytest.raises(ValueError, match="eps"):
        RobustTrainConfig(eps=2.0).check()
    with pytest.raises(ValueError, match="epochs"):
        RobustTrainConfig(epochs=0).check()
    with pytest.raises(ValueError, match="n_train"):
        train_model("digits_cnn", "robust", n_train=0)
