"""Chapter 6's experiments (advxai.arena's study steps) at smoke sizes: the images, the members the
data supports, a small arena end to end, and its claims measured on the per-image records."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from advxai import arena
from advxai import claims as C
from advxai.errors import EmptySelection

from .helpers import one_thread, smoke_model


@pytest.fixture(scope="module")
def setup():
    with one_thread():
        smoke_model("shapes_resnet")
        return arena.prepare("shapes", "shapes_resnet", n_images=6, n_calibration=8, seed=0, device="cpu",
                             train_budget="smoke")


def test_prepare_draws_correct_images_disjoint_from_the_calibration_images(setup):
    assert len(setup.attacked) == 6 and len(setup.calibration) == 8
    assert not set(setup.attacked.tolist()) & set(setup.calibration.tolist())
    with torch.no_grad():
        assert torch.equal(setup.net(setup.benign.x).argmax(1).cpu(), setup.benign.y.cpu())  # all correct
    assert torch.equal(setup.attacked, setup.attacked.sort().values)  # sample_correct's sorted draw
    assert len(set(setup.benign.y.tolist())) == 6  # stratified: six classes for six images
    frame = arena.setting_frame(setup, 0.05, 8 / 255)
    assert "6 correctly classified shapes test images" in frame.value.iloc[1]


def test_prepare_refuses_bad_sizes_and_an_empty_selection(monkeypatch):
    with pytest.raises(ValueError, match="n_images must be an integer of at least 2"):
        arena.prepare("shapes", "shapes_resnet", n_images=1, n_calibration=8, train_budget="smoke", device="cpu")
    with pytest.raises(ValueError, match="fewer than n_images \\+ n_calibration"):
        arena.prepare("shapes", "shapes_resnet", n_images=10 ** 6, n_calibration=8, train_budget="smoke",
                      device="cpu")
    import advxai.data

    def none_correct(*a, **k):
        raise EmptySelection("no image is classified correctly", reason="no correct image")

    monkeypatch.setattr(advxai.data, "sample_correct", none_correct)
    with pytest.raises(EmptySelection, match="no image is classified correctly"):
        arena.prepare("shapes", "shapes_resnet", n_images=2, n_calibration=2, train_budget="smoke", device="cpu")


def test_members_the_data_cannot_support_are_left_out_with_the_reason():
    names = ["feature_squeezing", "sje_disagreement", "adversarial_training", "undefended"]
    rows = ["pgd", "pgd_at", "fgsm"]
    members, kept, dropped = arena.available_members(SimpleNamespace(dataset="shapes", model="shapes_resnet"),
                                                     names, rows)
    assert members == names and kept == rows and dropped == {}
    # ImageNet has no attribute vectors (the digits neither); a torchvision model no adversarially trained copy
    members, kept, dropped = arena.available_members(SimpleNamespace(dataset="digits", model="resnet50"), names, rows)
    assert members == ["feature_squeezing", "undefended"] and kept == ["pgd", "fgsm"]
    assert "no class attribute vectors" in dropped["sje_disagreement"]
    assert "resnet50" in dropped["adversarial_training"]


def test_a_small_arena_end_to_end_with_claims_on_its_records(setup):
    specs = arena.study_attacks("smoke", num_classes=setup.net.info.num_classes, seed=0)
    assert specs["adv2_cam"].params["settings"] == "paper" and specs["adv2_cam"].params["budget"] == "smoke"
    assert arena.study_attacks("paper")["adv2_rts"].params["budget"] == "full"  # ADV²'s name for its step counts
    assert "Table 11" in arena.adv2_source(specs)
    # AID's sizes enter the RTS rows only where given (the sets cached without them keep their keys)
    assert "aid_batch" not in specs["adaptive_aid"].params
    sized = arena.study_attacks("smoke", aid_batch=2, aid_rounds=1)["adaptive_aid"].params
    assert sized["aid_batch"] == 2 and sized["aid_rounds"] == 1
    with pytest.raises(ValueError, match="unknown arena rows \\['nope'\\]"):
        arena.run_attacks(setup, specs, ["pgd", "nope"])
    with one_thread():
        attacks = arena.run_attacks(setup, specs, ["fgsm", "pgd"])
        members = arena.build_arena(setup, specs, ["feature_squeezing", "undefended"], fpr=0.25,
                                    settings={"feature_squeezing": {"squeezers": ["median_3x3"]}})
        result = arena.evaluate(members, attacks, setup)
    assert list(attacks.table.attack) == ["FGSM", "PGD"] and set(attacks.table.images) == {6}
    records = result.records
    assert len(records) == 2 * (2 + 1)  # two members x (two attacks + benign)
    attacked = set(setup.attacked.tolist())
    for _, r in records.iterrows():  # every value is the mean of its per-image hits, on attacked images
        assert len(r["hits"]) == r["n"] == len(r["images"]) and set(r["images"].tolist()) <= attacked
        if r["n"]:
            assert r["value"] == pytest.approx(np.mean(r["hits"]))
    pgd = attacks.results["PGD"]
    undefended = records[(records.attack == "PGD") & (records.member == "undefended")].iloc[0]
    assert undefended["value"] == pytest.approx(1 - pgd.success.float().mean().item())  # untargeted: fooled = wrong
    assert result.table.loc["benign", "undefended"] == 1.0  # the attacked images are classified correctly
    setting = C.Setting("ImageNet, ResNet-50", data="shapes", model="shapes_resnet", paper_data="imagenet",
                        paper_model="resnet50")
    claims = arena.cross_claims(records, universe=setup.attacked, setting=setting, aware=[],
                                attribution_detectors=["feature squeezing"], adv2=[], n_resamples=500)
    # feature squeezing is not attribution-based and no interpretation-aware row ran: not measured, with why
    assert [c.verdict for c in claims] == ["not measured"] * 3 and all(c.reason for c in claims)
