"""The arena's additions for chapter 3's interpreters and defenses: the AID detector, ADV² against MASK
and RTS, the white-box attack on adversarial training, and the chapter's own claims."""
import numpy as np
import pandas as pd
import pytest
import torch

from advxai import arena
from advxai.arena import AIDDetector, ArenaAttack, MapAgreement, cross_claims, map_disagreement, study_attacks
from advxai.attacks.objectives import AttackState

from .helpers import batch, smoke_model, tiny_classifier


class FakeRTS:
    """An RTS stand-in: the mask of class ``c`` is the image's mean channel times ``gain`` where it is
    brighter than ``cut`` (so two of them can agree on dark images and differ on bright ones)."""

    def __init__(self, model, gain=1.0, cut=1.0):
        self.model, self.gain, self.cut = model, gain, cut

    def masks(self, x, cls):
        m = x.mean(1, keepdim=True)
        return torch.where(m > self.cut, self.gain * m, m).clamp(0, 1), None


def test_map_disagreement_is_the_mean_per_pixel_l1_and_the_term_uses_the_target():
    model = tiny_classifier(in_channels=3, size=16)
    rts, twin, other = FakeRTS(model), FakeRTS(model), FakeRTS(model, gain=0.0, cut=-1.0)  # other: all zeros
    x, y = batch(model, n=4)
    assert torch.equal(map_disagreement(rts, twin, x, y), torch.zeros(4))
    assert torch.allclose(map_disagreement(rts, other, x, y), x.mean(1).flatten(1).mean(1))
    state = AttackState(x=x, y=y, target=(y + 1) % 10)
    assert torch.allclose(MapAgreement(rts, other)(x, state), x.mean(1).flatten(1).mean(1))


def test_aid_detector_flags_inputs_whose_two_maps_differ():
    model = tiny_classifier(in_channels=3, size=16)
    g = torch.Generator().manual_seed(0)
    calib = torch.rand(40, 3, 16, 16, generator=g) * 0.4  # benign: dark, where both decoders agree
    bright = (torch.rand(6, 3, 16, 16, generator=g) * 0.3 + 0.6)
    det = AIDDetector(model, fpr=0.05, rts=FakeRTS(model), rts_aid=FakeRTS(model, gain=0.2, cut=0.5)).calibrate(calib)
    assert det.benign_calibration_rate == 0.0 and det.threshold == 0.0
    assert det.detect(bright).all() and not det.detect(calib).any()
    with pytest.raises(ValueError, match="RTS interpreter of the detector's model"):
        AIDDetector(model, rts=FakeRTS(model), rts_aid=FakeRTS(tiny_classifier(in_channels=3, size=16)))


def test_study_attacks_add_adv2_on_mask_and_rts_and_the_white_box_attack_on_adversarial_training():
    specs = study_attacks("smoke", num_classes=20, mask={"steps": 1}, mask_images=2)
    assert {"adv2_mask", "adv2_rts", "adv2_rts_aid", "adaptive_aid"} <= set(specs) and "pgd_at" not in specs
    assert specs["adv2_mask"].params["interpreter"] == "mask" and specs["adv2_mask"].params["steps"] == 1
    assert specs["adv2_mask"].max_images == 2 and specs["adv2_mask"].kind == "store"
    assert specs["adv2_rts"].params["aid"] is None and specs["adv2_rts_aid"].params["aid"] == "full"
    assert specs["adaptive_aid"].params["match_weight"] > 0 and "match_weight" not in specs["adv2_rts_aid"].params
    at = study_attacks("smoke", robust=dict(eps=0.06, steps=2))["pgd_at"]
    assert at.kind == "robust" and at.params["robust"] == {"eps": 0.06, "steps": 2}
    with pytest.raises(ValueError, match="aid_budget"):
        study_attacks("smoke", aid_budget="huge")
    with pytest.raises(ValueError, match="max_images"):
        ArenaAttack("x", "pgd", max_images=0)
    with pytest.raises(ValueError, match=r"params\['robust'\]"):
        ArenaAttack("x", "pgd", kind="robust")


def test_adaptive_rows_name_the_member_and_the_attack_they_extend():
    specs = study_attacks("smoke", num_classes=20, robust=dict(eps=0.06))
    assert arena.adaptive_rows(specs) == {
        "adaptive ADV² (CAM) vs FS": ("feature_squeezing", "ADV² (CAM)"),
        "PGD in Algorithm 2 vs H&B": ("heat_and_blur", "PGD"),
        "ADV² (RTS^A)": ("aid", "ADV² (RTS)"),
        "adaptive ADV² vs AID": ("aid", "ADV² (RTS)"),
        "PGD vs adv. training": ("adversarial_training", "PGD")}
    del specs["pgd"]  # a row whose base attack is left out of the arena is not paired
    assert "PGD vs adv. training" not in arena.adaptive_rows(specs)
    with pytest.raises(ValueError, match="unknown arena member 'squeezing'"):
        ArenaAttack("x", "pgd", adapts_to="squeezing")


def test_craft_attacks_only_the_first_max_images(monkeypatch):
    import advxai.attacks as attacks

    seen = []
    monkeypatch.setattr(attacks, "adversarial_set", lambda name, **kw: seen.append(kw["index"]) or "r")
    arena.craft(ArenaAttack("m", "adv2", {"interpreter": "mask"}, targeted=True, max_images=2), "shapes_resnet",
                "shapes", [5, 6, 7, 8], train_budget="smoke")
    assert seen[0].tolist() == [5, 6]


def test_rts_and_robust_kinds_are_crafted_and_cached(tmp_path, monkeypatch):
    """ADV² against RTS^A with the map-agreement term, and PGD against the adversarially trained model,
    end to end on the smoke model with tiny budgets, then loaded from the cache."""
    import advxai.data
    import advxai.models

    net = smoke_model("shapes_resnet")
    monkeypatch.setenv("ADVXAI_CACHE", str(tmp_path / "cache"))  # decoders, robust model and sets: an empty cache
    monkeypatch.setattr(advxai.models, "get_model", lambda *a, **k: net)
    spec = ArenaAttack("ada", "adv2", {"budget": "smoke", "eps": 0.031, "steps": 2, "warm_steps": 2, "rts_steps": 2,
                                        "rts_batch": 4, "aid": "smoke", "match_weight": 5.0,
                                        "match_with": "control"}, targeted=True, kind="rts")
    r = arena.craft(spec, "shapes_resnet", "shapes", [0, 1], train_budget="smoke", device="cpu")
    assert len(r) == 2 and r.target is not None and (r.linf <= 0.031 + 1e-6).all()
    again = arena.craft(spec, "shapes_resnet", "shapes", [0, 1], train_budget="smoke", device="cpu")
    assert torch.equal(again.x_adv, r.x_adv)
    at = ArenaAttack("pgd at", "pgd", {"eps": 0.031, "steps": 2, "alpha": 0.02,
                                       "robust": {"eps": 0.06, "steps": 1, "epochs": 1, "n_train": 32}}, kind="robust")
    r = arena.craft(at, "shapes_resnet", "shapes", [0, 1, 2], train_budget="smoke", device="cpu")
    from advxai.defenses.adversarial_training import robust_model

    robust = robust_model("shapes_resnet", 0.06, train_budget="smoke", device="cpu", steps=1, epochs=1, n_train=32)
    with torch.no_grad():
        assert torch.equal(robust(r.x_adv).argmax(1).cpu(), r.pred.cpu())  # attacked the robust copy, not net


def _records(cells):
    """Records as Arena.evaluate writes them: per cell the per-image hits and which images they are."""
    rows = []
    for (attack, member, kind), (images, hits) in cells.items():
        hits = np.asarray(hits, dtype=float)
        rows.append(dict(attack=attack, member=member, kind=kind, value=hits.mean() if len(hits) else float("nan"),
                         n=len(hits), hits=hits, images=np.asarray(images)))
    return pd.DataFrame(rows)


def _flags(n, k):
    return [1.0] * k + [0.0] * (n - k)


def test_cross_claims_measure_differences_of_pooled_rates_with_intervals_over_images():
    from advxai import claims as C
    from advxai.arena import weighted

    D, F = "detector", "defense"
    ids = np.arange(100, 140)  # 40 attacked images
    fooled = ids[:30]  # ADV²'s successful images
    cells = {("benign", "IG", D): (ids, _flags(40, 2)), ("benign", "AID", D): (ids, _flags(40, 2)),
             ("benign", "H&B", F): (ids, _flags(40, 40)), ("benign", "none", F): (ids, _flags(40, 40)),
             ("PGD", "IG", D): (ids, _flags(40, 36)), ("PGD", "AID", D): (ids, _flags(40, 20)),
             ("PGD", "H&B", F): (ids, _flags(40, 20)), ("PGD", "none", F): (ids, _flags(40, 0)),
             ("ADV² (RTS)", "IG", D): (fooled, _flags(30, 3)), ("ADV² (RTS)", "AID", D): (fooled, _flags(30, 28)),
             ("ADV² (RTS)", "H&B", F): (ids, _flags(40, 35)), ("ADV² (RTS)", "none", F): (ids, _flags(40, 10)),
             ("ada", "IG", D): (fooled, _flags(30, 3)), ("ada", "AID", D): (fooled, _flags(30, 3)),
             ("ada", "H&B", F): (ids, _flags(40, 35)), ("ada", "none", F): (ids, _flags(40, 10))}
    setting = C.Setting("ImageNet, ResNet-50", data="shapes", model="shapes_resnet", paper_data="imagenet",
                        paper_model="resnet50")
    records = _records(cells)
    claims = cross_claims(records, universe=ids, setting=setting, aware=["ADV² (RTS)", "missing row"],
                          attribution_detectors=["IG", "AID", "absent"], adv2=["ADV² (RTS)"],
                          adaptive=[("ada", "ADV² (RTS)", "AID"), ("ada", "nope", "AID")], heat_and_blur="H&B",
                          undefended="none", aid="AID", sections={"aware": "s-aware"}, n_resamples=2000)
    assert len(claims) == 7 and all(c.measured_at == "stand-in" and c.n in (None, 40) for c in claims)
    ig, aid_aware, absent, hb, aid, ada, nope = claims
    # IG flags ADV² on 3 of 30 fooled images against PGD's 36 of 40: the whole interval below 0
    assert ig.ours == pytest.approx(0.1 - 0.9) and ig.section == "s-aware" and ig.verdict == "reproduced"
    assert ig.ours == pytest.approx(weighted(records, ["ADV² (RTS)"], "IG") - weighted(records, ["PGD"], "IG"))
    assert ig.interval[0] <= ig.ours <= ig.interval[1] < 0
    assert aid_aware.ours == pytest.approx(28 / 30 - 0.5) and aid_aware.verdict == "not reproduced"
    assert absent.verdict == "not measured" and absent.reason
    assert hb.ours == pytest.approx(35 / 40 - 10 / 40) and hb.verdict == "reproduced"
    assert aid.ours == pytest.approx(28 / 30 - 2 / 40) and aid.verdict == "reproduced"
    assert ada.ours == pytest.approx(0.1 - 28 / 30) and ada.verdict == "reproduced"
    assert nope.verdict == "not measured" and "did not run" in nope.reason
    # a detector that hardly flags PGD leaves an interpretation-aware attack nothing to evade
    cells[("PGD", "IG", D)] = (ids, _flags(40, 2))
    quiet = cross_claims(_records(cells), universe=ids, setting=setting, aware=["ADV² (RTS)"],
                         attribution_detectors=["IG"], adv2=[], n_resamples=500)[0]
    assert quiet.verdict == "not measured" and "nothing left to evade" in quiet.reason
    # a small difference on few images is inconclusive, not a verdict either way
    cells[("ada", "AID", D)] = (fooled, _flags(30, 26))
    small = cross_claims(_records(cells), universe=ids, setting=setting, aware=[], attribution_detectors=[], adv2=[],
                         adaptive=[("ada", "ADV² (RTS)", "AID")], n_resamples=2000)[-1]
    assert small.ours == pytest.approx(26 / 30 - 28 / 30) and small.verdict == "inconclusive"
    # the plain attack is hardly flagged: nothing left to evade
    cells[("ADV² (RTS)", "AID", D)] = (fooled, _flags(30, 2))
    last = cross_claims(_records(cells), universe=ids, setting=setting, aware=[], attribution_detectors=[], adv2=[],
                        adaptive=[("ada", "ADV² (RTS)", "AID")])[-1]
    assert last.verdict == "not measured" and "nothing left to evade" in last.reason


def test_cluster_interval_resamples_an_image_with_all_its_cells():
    from advxai.arena import cluster_interval, pooled

    ids = np.arange(10, 30)
    # every image flagged in row A and never in row B: the difference is 1 on every resample
    records = _records({("A", "d", "detector"): (ids, _flags(20, 20)), ("B", "d", "detector"): (ids, _flags(20, 0))})
    hits, count = pooled(records, ["A", "B"], "d", ids)
    assert hits.tolist() == [1.0] * 20 and count.tolist() == [2.0] * 20
    point, (lo, hi), undefined = cluster_interval(pooled(records, ["A"], "d", ids), pooled(records, ["B"], "d", ids),
                                                  n_resamples=500)
    assert point == lo == hi == 1.0 and undefined == 0
    # a row with no image cannot be measured
    empty = _records({("A", "d", "detector"): (ids[:0], []), ("B", "d", "detector"): (ids, _flags(20, 3))})
    assert cluster_interval(pooled(empty, ["A"], "d", ids), pooled(empty, ["B"], "d", ids)) is None
    # a row resting on one image of 20: most resamples miss it, too few images for an interval
    one = _records({("A", "d", "detector"): (ids[:1], [1.0]), ("B", "d", "detector"): (ids, _flags(20, 3))})
    assert cluster_interval(pooled(one, ["A"], "d", ids), pooled(one, ["B"], "d", ids), n_resamples=500) is None
    # on 3 of 4 images a resample misses all three with probability 1/256: those are left out, not fatal
    four = ids[:4]
    rec = _records({("A", "d", "detector"): (four[:3], [1.0, 1.0, 0.0]), ("B", "d", "detector"): (four, _flags(4, 1))})
    point, (lo, hi), undefined = cluster_interval(pooled(rec, ["A"], "d", four), pooled(rec, ["B"], "d", four),
                                                  n_resamples=20000)
    assert point == pytest.approx(2 / 3 - 1 / 4) and 0 < undefined < 0.01 and lo <= point <= hi
