"""The arena's additions for chapter 3's interpreters and defenses: the AID detector, ADV² against MASK
and RTS, the white-box attack on adversarial training, and the chapter's own claims."""
import pandas as pd
import pytest
import torch

from advxai import arena
from advxai.arena import AIDDetector, ArenaAttack, MapAgreement, cross_claims, map_disagreement, study_attacks
from advxai.attacks.objectives import AttackState

from .helpers import batch, tiny_classifier


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
    det = AIDDetector(model, fpr=0.05, rts=FakeRTS(model), rts_aid=FakeRTS(model, gain=0.2, cut=0.5)).fit(calib)
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

    net = advxai.models.get_model("shapes_resnet", device="cpu", train_budget="smoke")  # the shared cache's
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
    rows = []
    for (attack, member, kind), (value, n) in cells.items():
        rows.append(dict(attack=attack, member=member, kind=kind, value=value, n=n))
    return pd.DataFrame(rows)


def test_cross_claims_read_their_verdicts_off_the_matrix():
    D, F = "detector", "defense"
    cells = {("benign", "IG", D): (0.05, 10), ("benign", "AID", D): (0.05, 10), ("benign", "H&B", F): (1.0, 10),
             ("benign", "none", F): (1.0, 10),
             ("PGD", "IG", D): (0.8, 10), ("PGD", "AID", D): (0.6, 10), ("PGD", "H&B", F): (0.5, 10),
             ("PGD", "none", F): (0.0, 10),
             ("ADV² (RTS)", "IG", D): (0.2, 5), ("ADV² (RTS)", "AID", D): (0.7, 5), ("ADV² (RTS)", "H&B", F): (0.9, 5),
             ("ADV² (RTS)", "none", F): (0.0, 5),
             ("ada", "IG", D): (0.2, 5), ("ada", "AID", D): (0.1, 5), ("ada", "H&B", F): (0.9, 5),
             ("ada", "none", F): (0.0, 5)}
    claims = cross_claims(_records(cells), aware=["ADV² (RTS)", "missing row"], attribution_detectors=["IG", "AID"],
                          adv2=["ADV² (RTS)"], adaptive=[("ada", "ADV² (RTS)", "AID"), ("ada", "nope", "AID")],
                          heat_and_blur="H&B", undefended="none", aid="AID", sections={"aware": "s-aware"})
    by = {c.claim.split(":")[0].split(" (")[0]: c for c in claims}
    assert len(claims) == 4  # the adaptive pair with an absent base row is left out
    aware = by["An interpretation-aware attack"]
    # IG sees them much less (0.2 vs 0.8), AID more (0.7 vs 0.6): lower on average only -> same direction
    assert aware.verdict == "same direction" and aware.ours == pytest.approx(0.45) and aware.section == "s-aware"
    assert by["Heat and blur removes ADV²'s effect"].verdict == "reproduced"
    assert by["AID"].verdict == "reproduced" and by["AID"].ours == pytest.approx(0.7)
    assert by["An attacker who knows AID evades it"].verdict == "reproduced"
    cells[("ADV² (RTS)", "H&B", F)] = (0.3, 5)  # above the undefended model's 0, below one half
    cells[("ada", "AID", D)] = (0.65, 5)  # lower than 0.7 by less than the margin
    claims = cross_claims(_records(cells), aware=["ADV² (RTS)"], attribution_detectors=["IG"], adv2=["ADV² (RTS)"],
                          adaptive=[("ada", "ADV² (RTS)", "AID")], heat_and_blur="H&B", undefended="none")
    assert [c.verdict for c in claims] == ["reproduced", "same direction", "reproduced", "same direction"]
    cells[("ADV² (RTS)", "AID", D)] = (0.05, 5)  # the plain attack is hardly flagged: nothing left to evade
    last = cross_claims(_records(cells), aware=[], attribution_detectors=[], adv2=[],
                        adaptive=[("ada", "ADV² (RTS)", "AID")])[-1]
    assert last.verdict == "not measured" and "already at 0.05" in last.note
