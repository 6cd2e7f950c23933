"""Chapter 2's experiments (advxai.studies.heat_and_blur) at smoke sizes on the session's smoke models."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from advxai import claims as cl
from advxai.attacks import AttackResult
from advxai.defenses.heat_and_blur import AdaptiveHeatAndBlur, DefendedModel, HeatAndBlur
from advxai.studies import heat_and_blur as study

from .helpers import one_thread, smoke_model


@pytest.fixture(scope="module")
def arm():
    """Eight correctly classified test digits of the smoke digits_vgg, with the four groups attacked
    briefly (the photo arm's next-image targets, so nothing touches the user's cache)."""
    with one_thread():
        smoke_model("digits_vgg")
        a = study.load_arm("digits", "digits_vgg", 8, 0, torch.device("cpu"), "smoke")
        study.attack_groups(a, seed=0, cw_steps=8, cw_search=1, cw_c=10.0, cw_lr=0.1, lbfgs_iter=8,
                            lbfgs_search=1, boundary_steps=10, n_boundary=3, targets="next")
    return a


def _fake_group(a: study.Arm, x_adv: torch.Tensor, success: torch.Tensor, target=None) -> AttackResult:
    with torch.no_grad():
        probs = a.model(x_adv).softmax(1)
    conf, pred = probs.max(1)
    z = torch.zeros(len(a.x))
    return AttackResult(x_adv, success, pred, conf, a.y, target, z, z, z)


def test_arm_holds_correctly_classified_stratified_images(arm):
    assert len(arm.index) == 8 and arm.looked_at >= 8
    with torch.no_grad():
        assert torch.equal(arm.model(arm.x).argmax(1), arm.y)
    assert len(set(arm.y.tolist())) == 8  # stratified: eight classes for eight images


def test_attack_groups(arm):
    assert list(arm.groups) == list(study.GROUPS)
    assert len(arm.groups["Boundary"]) == 3 and len(arm.groups["C&W targeted"]) == 8
    t = arm.groups["C&W targeted"].target
    assert torch.equal(t, arm.y.roll(1)) or not torch.any(t == arm.y)
    table = study.attack_table(arm)
    assert list(table["attack"]) == list(study.GROUPS)
    ok = table["successful"] > 0
    assert (table.loc[ok, "top-1 on successful"] == 0).all()  # successful examples are wrong by definition
    with pytest.raises(ValueError, match="random, next"):
        study.attack_groups(arm, seed=0, cw_steps=1, cw_search=1, cw_c=1.0, cw_lr=0.1, lbfgs_iter=0,
                            lbfgs_search=1, boundary_steps=1, n_boundary=0, targets="shuffled")


def test_maps_across_neurons_identical_inputs_overlap_fully(arm):
    """An 'adversarial example' equal to its benign image has the same top-1 map: IoU exactly 1."""
    same = study.Arm(**{**arm.__dict__, "groups": {"C&W untargeted": _fake_group(arm, arm.x.clone(),
                                                                                   torch.ones(8, dtype=bool))}})
    frame, figure = study.maps_across_neurons([same], thresholds=["mean2std", "topk"], top=0.05, seed=0)
    assert set(frame["threshold"]) == {"mean2std", "topk"}
    adv_top1 = frame[frame["map"] == "adversarial, top-1"]
    assert len(adv_top1) == 16 and (adv_top1["IoU"] == 1.0).all()
    assert frame["IoU"].between(0, 1).all()
    chance = frame[frame["map"].str.startswith("another")]
    assert len(chance) == 16 and chance["IoU"].mean() < 1.0
    masks = figure[("digits", "C&W untargeted")][1]["topk"]
    kept = masks["benign, top-1"].flatten(1).sum(1)
    assert (kept == math.ceil(0.05 * 28 * 28)).all()  # the top 5 % rule keeps exactly 5 % of the pixels
    rows = study.neuron_mask_rows(*figure[("digits", "C&W untargeted")], n_show=2)
    assert len(rows) == 2 and len(rows[0]) == 1 + 4 * 2


def test_sigma_sweep_reference_rows_are_the_undefended_classifier(arm):
    frame = study.sigma_sweep(arm, "L-BFGS targeted", [0.5, 2.0], thresholds=["mean2std"])
    assert sorted(frame["sigma"].unique()) == [0.0, 0.5, 2.0]
    ref = frame[frame["sigma"] == 0.0]
    assert ref[ref["input"] == "benign"]["true label"].all()  # correctly classified by selection
    adv = ref[ref["input"] == "adversarial"]
    assert len(adv) == int(arm.groups["L-BFGS targeted"].success.sum())
    assert not adv["true label"].any() and adv["target label"].all()  # successful targeted examples
    assert (ref["L-inf"] == 0).all()
    summary = study.sweep_summary(frame)
    assert list(summary["sigma"]) == [0.0, 0.5, 2.0]
    assert summary["L-inf to the input (benign, median)"].is_monotonic_increasing
    text = study.sweep_reading(summary, arm, 0.5)  # written from the numbers, against the undefended classifier
    at = summary[summary["sigma"] == 0.5].iloc[0]
    assert "L-BFGS targeted" in text and f"{at['adversarial, true label']:.2f} of the" in text
    assert "the undefended one to 0.00" in text
    with pytest.raises(ValueError, match="positive"):
        study.sigma_sweep(arm, "L-BFGS targeted", [0.0], thresholds=["mean2std"])


def test_ndcg_study_with_a_defense_that_keeps_every_pixel(arm):
    """Keeping 100 % of the pixels makes the defense the identity: Control scores 1, Cleaned equals Adv."""
    frame = study.ndcg_study(arm, thresholds=["topk"], top=1.0)
    control = frame[frame["series"] == "Control"]
    assert (control[[f"NDCG@{k}" for k in study.K]] == 1.0).all().all() and control["top-1"].all()
    adv = frame[frame["series"] == "Adv"].reset_index(drop=True)
    cleaned = frame[frame["series"] == "Cleaned"].reset_index(drop=True)
    pd.testing.assert_series_equal(adv["NDCG@5"], cleaned["NDCG@5"])
    assert not adv["top-1"].any()
    summary = study.ndcg_summary(frame)
    panels = study.ndcg_panels_data(summary, "digits", "topk")
    assert set(panels) <= set(study.GROUPS) and all(set(v) == {"Adv", "Cleaned", "Control"} for v in panels.values())


def test_adaptive_study_budget_and_rows(arm):
    frame = study.adaptive_study(arm, eps=0.1, steps=2, iterations=1, n=4, thresholds=["topk"],
                                 variants=["as written", "restricted, defense-aware"])
    assert set(frame["variant"]) == {study.PLAIN, "as written", "restricted, defense-aware"}
    assert len(frame) == 3 * 4 and (frame["L-inf"] <= 0.1 + 1e-6).all()
    written = frame[frame["variant"] != study.PLAIN]
    kept = math.ceil(0.05 * 28 * 28) / (28 * 28)  # the top 5 % rule keeps 40 of 784 pixels
    assert (written["pixels changed"] <= kept + 1e-6).all()  # one iteration: at most the map's pixels
    summary = study.adaptive_summary(frame)
    assert len(summary) == 3 and summary["fools the defended model"].between(0, 1).all()
    with pytest.raises(ValueError, match="as written"):
        study.adaptive_study(arm, eps=0.1, steps=1, iterations=1, variants=["strong"])


def test_restricted_inner_attack_only_touches_the_map(arm):
    defense = HeatAndBlur(arm.model, threshold="topk", top=0.05)
    attack = AdaptiveHeatAndBlur(arm.model, defense, "pgd", attack_params={"eps": 0.2, "steps": 3},
                                 iterations=1, eps=0.2, restrict="during", through_defense=True)
    heat, _ = defense.heatmap(arm.x)
    mask = defense.mask(heat)
    inner = attack.inner_attack(mask)
    assert isinstance(inner.model, DefendedModel)
    res = inner(arm.x, arm.y)
    changed = (res.x_adv != arm.x).any(1, keepdim=True)
    assert not (changed & ~mask).any()  # the step mask keeps the inner attack on the heat-map pixels
    with torch.no_grad():  # the defended model is the defense's own prediction for that mask
        assert torch.equal(DefendedModel(defense, mask)(arm.x).argmax(1), defense.clean(arm.x).pred)
    with pytest.raises(ValueError, match="by name"):
        AdaptiveHeatAndBlur(arm.model, defense, inner, restrict="during")
    with pytest.raises(ValueError, match="step mask"):
        AdaptiveHeatAndBlur(arm.model, defense, "boundary", restrict="during")


def test_claims_cover_every_claim_and_rule(arm):
    rules = ["mean2std", "topk"]
    iou, _ = study.maps_across_neurons([arm], thresholds=rules)
    sweep = study.sigma_sweep(arm, "L-BFGS targeted", [0.5, 1.0, 2.0], thresholds=rules)
    scores = study.ndcg_study(arm, thresholds=rules)
    adaptive = study.adaptive_study(arm, eps=0.1, steps=1, iterations=1, n=4, thresholds=rules)
    claims = study.paper_claims(arm, ndcg_frame=scores, iou=iou, sweep=sweep, adaptive=adaptive, sigma=1.0,
                                thresholds=rules)
    assert all(isinstance(c, cl.Claim) for c in claims)
    per_rule = int(study.CLAIMS["per_rule"].sum()) + 3 + 2  # 'restores' per group; two adaptive variants
    assert len(claims) == int((~study.CLAIMS["per_rule"]).sum()) + len(rules) * per_rule
    assert all(c.reason for c in claims if c.verdict == "not measured")
    assert {c.measured_at for c in claims} == {"stand-in"}
    regain = [c for c in claims if c.claim.startswith("the defense gives back")]
    assert len(regain) == 2 and all(c.no_effect == 0.0 for c in regain)
    related = [c for c in claims if c.claim.startswith("... and lands")]
    assert len(related) == 4 and all(c.no_effect == pytest.approx(2 / 9) for c in related)  # ten classes


def test_claims_table_is_consistent():
    for row in study.CLAIMS.itertuples():
        inequality = isinstance(row.paper, str)
        assert (row.tolerance is None or (isinstance(row.tolerance, float) and math.isnan(row.tolerance))) == inequality
    assert study.CLAIMS["id"].is_unique
    with pytest.raises(ValueError, match="mean2std, topk"):
        study.check_thresholds(["mean2std", "median"])
