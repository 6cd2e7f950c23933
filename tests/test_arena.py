import pytest
import torch

from advxai import arena
from advxai.arena import (Arena, ArenaAttack, Detector, Undefended, as_result, detection_rate, get_member, matrix,
                          study_attacks, threshold_at_fpr)
from advxai.attributes import SJE, SJEDisagreement
from advxai.defenses.causal_masking import CausalMasking
from advxai.defenses.feature_squeezing import FeatureSqueezing
from advxai.defenses.heat_and_blur import HeatAndBlurChange
from advxai.defenses.multi_interpreter import MultiInterpreterDetector

from .helpers import batch, smoke_model, tiny_classifier


def test_threshold_flags_at_most_the_stated_share_of_benign_scores():
    scores = torch.arange(100, dtype=torch.float64)  # 0 .. 99
    t = threshold_at_fpr(scores, 0.05)
    assert t == 94.0  # 95 .. 99 lie above: exactly 5 %
    assert detection_rate(scores, t) == pytest.approx(0.05)
    g = torch.Generator().manual_seed(0)
    for fpr in (0.01, 0.05, 0.2):
        s = torch.randn(997, generator=g)
        rate = detection_rate(s, threshold_at_fpr(s, fpr))
        assert fpr - 1 / 997 < rate <= fpr  # continuous scores: as many as allowed, never more
    assert detection_rate(scores, threshold_at_fpr(scores, 0.0)) == 0.0


def test_threshold_with_tied_scores_never_exceeds_the_rate():
    s = torch.cat([torch.zeros(90), torch.ones(10)])  # a binary detector flagging 10 % of benign inputs
    assert threshold_at_fpr(s, 0.05) == 1.0 and detection_rate(s, 1.0) == 0.0
    assert threshold_at_fpr(s, 0.10) == 0.0 and detection_rate(s, 0.0) == pytest.approx(0.10)


def test_detection_rate_and_bad_input():
    assert detection_rate(torch.tensor([0.1, 0.5, 0.9]), 0.4) == pytest.approx(2 / 3)
    assert detection_rate(torch.tensor([0.1, 0.5, 0.9]), 0.9) == 0.0  # strictly above the threshold
    assert torch.isnan(torch.tensor(detection_rate(torch.zeros(0), 0.0)))
    with pytest.raises(ValueError, match=r"fpr .* must be in \[0, 1\)"):
        threshold_at_fpr(torch.arange(5.0), 1.5)
    with pytest.raises(ValueError, match="NaN"):
        threshold_at_fpr(torch.tensor([0.0, float("nan")]), 0.05)


class MeanBrightness(Detector):
    """A toy detector: the mean pixel value (bright images are 'adversarial')."""

    name = "brightness"

    def _score(self, x):
        return x.flatten(1).mean(1)


def test_arena_records_detection_rates_and_robust_accuracy():
    model = tiny_classifier(in_channels=3, size=16)
    g = torch.Generator().manual_seed(0)
    calib = torch.rand(40, 3, 16, 16, generator=g) * 0.5  # benign: dark
    x, y = batch(model, n=10)
    x = x * 0.5
    bright = (x + 0.5).clamp(0, 1)  # every "adversarial" image is brighter than any benign one
    res = as_result(model, x, bright, y)
    res.success[:] = True
    half = as_result(model, x, torch.cat([bright[:5], x[5:]]), y)
    half.success[:] = True
    a = Arena({"toy": MeanBrightness(model, fpr=0.1), "none": Undefended(model)}, model)
    with pytest.raises(RuntimeError, match="calibrate the arena"):
        a.evaluate({"bright": res}, x, y)
    a.calibrate(calib)
    df = a.evaluate({"bright": res, "half": half}, x, y, adaptive={"half": "toy"})
    assert len(df) == 2 * 3
    toy = df[df.member == "toy"].set_index("attack")
    assert toy.loc["bright", "value"] == 1.0 and toy.loc["bright", "auc"] == 1.0
    assert toy.loc["half", "value"] == pytest.approx(0.5)
    assert toy.loc["half", "adaptive_to"] == "toy"
    assert toy.loc["benign", "metric"] == "false-positive rate" and toy.loc["benign", "value"] <= 0.1 + 1e-9
    none = df[df.member == "none"].set_index("attack")
    assert none.loc["benign", "value"] == 1.0  # y are the model's own labels
    assert none.loc["bright", "metric"] == "robust accuracy"
    m = matrix(df)
    assert list(m.index) == ["benign", "bright", "half"] and list(m.columns) == ["toy", "none"]


def test_sje_disagreement_flags_inputs_where_sje_and_softmax_disagree():
    model = tiny_classifier(in_channels=3, size=16, num_classes=5)
    with torch.no_grad():
        model.net.head.fc.bias.zero_()
    w = model.net.head.fc.weight.detach().T.clone()  # [D, K]: SJE's compatibilities = the logits
    agree = SJE(torch.eye(5), feature_dim=w.shape[0], W=w)
    shifted = SJE(torch.eye(5)[[1, 2, 3, 4, 0]], feature_dim=w.shape[0], W=w)  # class k reads logit k+1
    x, _ = batch(model, n=12)
    det = SJEDisagreement(model, fpr=0.05, sje=agree)
    soft, sje_pred = det.predictions(x.to(model.device))
    assert torch.equal(soft, sje_pred)
    assert torch.all(det.score(x) == 0)
    det.calibrate(x)
    assert det.threshold == 0.0 and not det.detect(x).any()
    det.sje = shifted
    soft, sje_pred = det.predictions(x.to(model.device))
    disagree = soft != sje_pred
    assert disagree.any()
    assert torch.equal(det.detect(x), disagree)


def test_unknown_member_lists_the_valid_ones():
    model = tiny_classifier(in_channels=3, size=16)
    with pytest.raises(ValueError, match="unknown arena member 'squeeze'.*valid: adversarial_training, aid, "
                                         "feature_squeezing, heat_and_blur, heat_and_blur_change, ig_masking"):
        get_member("squeeze", model)
    assert isinstance(get_member("undefended", model), Undefended)
    with pytest.raises(ValueError, match="unknown arena member 'ig'"):
        arena.build_members(["undefended"], model, settings={"ig": {}})


def test_members_are_the_defenses_own_classes_on_a_tiny_model():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, n=8)
    calib = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    members = arena.build_members(
        ["ig_masking", "feature_squeezing", "heat_and_blur_change", "multi_interpreter", "heat_and_blur"], model,
        fpr=0.05, settings={"ig_masking": dict(epsilon=0.05, max_delta=0.5, ig_steps=4),
                            "multi_interpreter": dict(n_estimators=5), "heat_and_blur": dict(sigma=2.0)})
    kinds = [CausalMasking, FeatureSqueezing, HeatAndBlurChange, MultiInterpreterDetector]
    assert all(isinstance(m, k) for m, k in zip(members.values(), kinds))
    assert list(members) == ["IG masking", "feature squeezing", "H&B change", "multi-interpreter", "heat and blur"]
    assert members["heat and blur"].sigma == 2.0 and members["IG masking"].fpr == 0.05
    a = Arena(members, model)
    with pytest.raises(RuntimeError, match="'multi-interpreter' is supervised and not fitted"):
        a.calibrate(calib)
    with pytest.raises(ValueError, match="supervised: fit"):
        members["multi-interpreter"].fit(x)
    members["multi-interpreter"].fit(x, noisy)
    with pytest.raises(ValueError, match="calibration images were used to fit"):
        a.calibrate(x)
    a.calibrate(calib)
    for label, m in members.items():
        if m.kind == "detector":
            s = m.score(noisy)
            assert s.shape == (8,) and torch.isfinite(s).all() and s.dtype == torch.float64, label
            assert m.benign_calibration_rate <= m.fpr + 1e-9
    ig = members["IG masking"].score(x)
    assert (ig <= 0).all() and (ig >= -0.55).all()  # -rho, an unchanged label at -(max_delta + epsilon)
    df = a.evaluate({"noise": as_result(model, x, noisy, y)}, x, y)
    assert set(df.member) == set(members)


def test_arena_attacks_check_their_names_and_the_study_list_builds():
    with pytest.raises(ValueError, match="unknown attack 'pgdd'.*valid:"):
        ArenaAttack("x", "pgdd")
    with pytest.raises(ValueError, match="edges must be"):
        ArenaAttack("x", "adv2", kind="edges", edges="sobel")
    specs = study_attacks("smoke", num_classes=20)
    assert {"fgsm", "pgd", "cw", "deepfool", "patch", "lavan", "lbfgs", "boundary", "stadv", "adv2_cam", "adv2_grad",
            "advedge_cam", "advedge_plus_cam"} <= set(specs)
    assert specs["advedge_plus_cam"].edges == "advedge+" and specs["adv2_cam"].targeted
    with pytest.raises(ValueError, match="budget"):
        study_attacks("huge")


def test_adv2_step_counts_override_the_budget_in_every_adv2_row_but_masks():
    plain = study_attacks("smoke", num_classes=20, mask={"steps": 1, "warm_steps": 2})
    assert all("steps" not in s.params for k, s in plain.items() if s.attack == "adv2" and k != "adv2_mask")
    specs = study_attacks("smoke", num_classes=20, mask={"steps": 1, "warm_steps": 2}, adv2_warm_steps=0,
                          adv2_steps=3)
    adv2_rows = [k for k, s in specs.items() if s.attack == "adv2" and k != "adv2_mask"]
    assert {"adv2_cam", "adv2_grad", "advedge_cam", "adaptive_adv2_fs", "adv2_rts", "adaptive_aid"} <= set(adv2_rows)
    assert all((specs[k].params["warm_steps"], specs[k].params["steps"]) == (0, 3) for k in adv2_rows)
    assert (specs["adv2_mask"].params["warm_steps"], specs["adv2_mask"].params["steps"]) == (2, 1)
    assert specs["pgd"].params == plain["pgd"].params
    for bad in (dict(adv2_steps=0), dict(adv2_warm_steps=-1), dict(adv2_steps=2.5), dict(adv2_steps=True)):
        with pytest.raises(ValueError, match="adv2_(warm_)?steps must be None or an integer"):
            study_attacks("smoke", **bad)


def test_craft_reuses_the_attack_store(tmp_cache, monkeypatch):
    """A store attack goes through adversarial_set (same cache entry on a second call)."""
    calls = []
    import advxai.attacks as attacks

    def fake_set(name, **kw):
        calls.append((name, kw))
        return "result"

    monkeypatch.setattr(attacks, "adversarial_set", fake_set)
    out = arena.craft(ArenaAttack("PGD", "pgd", {"eps": 0.03}), "shapes_resnet", "shapes", [0, 1], train_budget="smoke")
    assert out == "result" and calls[0][0] == "pgd" and calls[0][1]["eps"] == 0.03
    assert calls[0][1]["model"] == "shapes_resnet" and not calls[0][1]["targeted"]


def test_adaptive_kinds_are_crafted_and_cached(tmp_path, monkeypatch):
    """Both adaptive attacks run end to end on the smoke model (a few steps) and come back from the cache."""
    import advxai.data
    import advxai.models

    net = smoke_model("shapes_resnet")
    data = advxai.data.get_dataset("shapes", split="test")
    monkeypatch.setattr(advxai.models, "get_model", lambda *a, **k: net)
    monkeypatch.setattr(advxai.data, "get_dataset", lambda *a, **k: data)
    monkeypatch.setenv("ADVXAI_CACHE", str(tmp_path / "cache"))  # the adversarial sets go to an empty cache
    specs = study_attacks("smoke", num_classes=20)
    hb = specs["adaptive_hb"]
    hb.params.update(iterations=1, steps=2)
    r = arena.craft(hb, "shapes_resnet", "shapes", [0, 1], train_budget="smoke", device="cpu")
    assert len(r) == 2 and (r.linf <= hb.params["eps"] + 1e-6).all()
    assert "defended_success" in r.extras
    again = arena.craft(hb, "shapes_resnet", "shapes", [0, 1], train_budget="smoke", device="cpu")
    assert torch.equal(again.x_adv, r.x_adv)
    fs = specs["adaptive_adv2_fs"]
    r = arena.craft(fs, "shapes_resnet", "shapes", [0, 1], train_budget="smoke", device="cpu")
    assert r.target is not None and (r.target.cpu() != r.y.cpu()).all()
    assert (r.linf <= fs.params["eps"] + 1e-6).all()


def test_plot_matrix_draws_every_cell():
    import pandas as pd

    rows = [dict(attack=a, member=m, kind=k, value=v, adaptive_to=ad) for a, m, k, v, ad in (
        ("benign", "d", "detector", 0.05, ""), ("PGD", "d", "detector", 0.8, ""), ("ada", "d", "detector", 0.1, "d"),
        ("benign", "u", "defense", 1.0, ""), ("PGD", "u", "defense", 0.0, ""), ("ada", "u", "defense", float("nan"), "d"))]
    fig = arena.plot_matrix(pd.DataFrame(rows), "m")
    ax = fig.axes[0]
    assert len(ax.texts) == 6 and len(ax.patches) == 1  # one outlined adaptive cell
