"""Chapter 4's experiments (advxai.studies.advedge) at smoke sizes, and its claims on made-up cells."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from advxai import claims as C
from advxai.studies import advedge as A

from .helpers import one_thread, smoke_model

TINY = A.Schedule(pgd_warm_steps=2, pgd_steps=2, mask_bilevel_steps=1, mask_iterations=3, mask_n_step=1,
                  mask_reset_every=1, mask_search_steps=2, mask_framework_reset_every=2, cw_steps=3, stadv_steps=3,
                  train_budget="smoke", seed=0)


@pytest.fixture(scope="module")
def setup():
    with one_thread():
        smoke_model("shapes_resnet")
        return A.prepare(["shapes_resnet"], ["cam", "mask"], n_images=3, schedule=TINY, device="cpu")


def test_prepare_draws_correct_images_with_other_targets(setup):
    im, net = setup.images["shapes_resnet"], setup.nets["shapes_resnet"]
    assert len(im["x"]) == len(im["index"]) == 3
    with torch.no_grad():
        assert torch.equal(net(im["x"]).argmax(1), im["y"])  # sample_correct: all classified correctly
    assert not torch.any(im["target"] == im["y"])
    assert torch.equal(im["index"], im["index"].sort().values)


def test_grid_rows_match_per_image_values_and_the_cache(setup):
    with one_thread():
        grid = A.attack_grid(setup, ["shapes_resnet"], ["pgd", "cw"], ["cam", "mask"], ["adv2", "advedge+"],
                             placement="throughout", n_images_mask=1, schedule=TINY)
    res = grid.results
    assert len(res) == 2 * 2 * 2 and set(res.n) == {3, 1}
    assert (res[res.interpreter == "MASK"].n == 1).all()
    for (m, f, i, v), kept in grid.store.items():
        row = grid.cell(model=m, framework=A.FRAMEWORK_LABEL[f], interpreter=A.INTERP_LABEL[i],
                        variant=A.VARIANT_LABEL[v]).iloc[0]
        ok = kept["success"]
        assert row.n_success == int(ok.sum()) and row.asr == pytest.approx(ok.float().mean().item())
        conf = kept["confidence"]
        assert torch.equal(torch.isnan(conf), ~ok)  # a failed image has no confidence
        if ok.any():
            assert row.confidence == pytest.approx(conf[ok].mean().item())
            assert 0 < row.confidence <= 1
        assert kept["x_adv"].min() >= 0 and kept["x_adv"].max() <= 1 and row.s_per_image > 0
    table = A.cell_table(res, "asr", ["adv2", "advedge+"])
    assert list(table.columns) == ["model", "framework", "interpreter", "ADV²", "AdvEdge+"] and len(table) == 4
    # a second run loads the cells (same images, the seconds of the run that computed them)
    with one_thread():
        row, kept = A.run_cell(setup, "shapes_resnet", "pgd", "cam", "adv2", "throughout", 3, TINY)
    first = grid.store[("shapes_resnet", "pgd", "cam", "adv2")]
    assert torch.equal(kept["x_adv"], first["x_adv"]) and kept["seconds"] == first["seconds"]
    rows = A.map_rows(setup, grid, "shapes_resnet", ["pgd"])
    assert len(rows) == 1 + 2 and len(rows[0]) == 3 and rows[1][0][2].startswith("PGD ADV²")


def test_an_image_without_edges_counts_as_failed(setup):
    im = setup.images["shapes_resnet"]
    flat = A.Setup(setup.nets, {"shapes_resnet": {"x": torch.full_like(im["x"][:2], 0.5), "y": im["y"][:2],
                                                  "target": im["target"][:2], "index": im["index"][:2]}},
                   setup.interps, setup.device)
    with one_thread():
        row, kept = A.run_cell(flat, "shapes_resnet", "pgd", "cam", "advedge+", "throughout", 2, TINY)
    assert row["mask_empty"] == 2 and row["asr"] == 0 and not kept["success"].any()
    assert np.isnan(row["confidence"]) and torch.equal(kept["x_adv"], flat.images["shapes_resnet"]["x"])


# --------------------------------------------------------------------------- claims on made-up cells


def fake_grid(models=("shapes_resnet", "shapes_densenet"), n=4, interpreters=("grad", "mask"), conf=0.6,
              seconds=None, noise=None):
    """A grid whose cells all succeed with the given per-image values (MASK cells on the first 2 images)."""
    store, rows = {}, []
    for m in models:
        for f in ("pgd", "stadv"):
            for i in interpreters:
                for v in ("adv2", "advedge"):
                    k = 2 if i == "mask" else n
                    ok = torch.ones(k, dtype=torch.bool)
                    nz = (noise or {}).get(v, 0.1)
                    store[(m, f, i, v)] = {"success": ok, "confidence": torch.full((k,), conf),
                                           "l1": torch.full((k,), 0.3 if v == "adv2" else 0.2),
                                           "iou": torch.full((k,), 0.4 if v == "adv2" else 0.5),
                                           "noise": torch.full((k,), nz) + 0.01 * torch.arange(k),
                                           "seconds": (seconds or {}).get(i, 1.0)}
                    rows.append({"model": m, "framework": A.FRAMEWORK_LABEL[f], "interpreter": A.INTERP_LABEL[i],
                                 "variant": A.VARIANT_LABEL[v], "asr": 1.0})
    grid = A.Grid(pd.DataFrame(rows), store, "throughout", list(models), ["pgd", "stadv"], list(interpreters),
                  ["adv2", "advedge"])
    setup = A.Setup({}, {m: {"x": torch.zeros(n, 3, 8, 8)} for m in models}, {}, torch.device("cpu"))
    return setup, grid


def test_table2_claims_take_the_papers_cell_and_column():
    _, grid = fake_grid()
    out = A.table2_claims(grid, "shapes")
    assert len(out) == len(grid.store)
    by = {c.claim: c for c in out}
    c = by["Table II, shapes_resnet: PGD ADV² vs GRAD, confidence"]
    assert c.paper == 0.927 and c.tolerance == 0.10 and c.ours == pytest.approx(0.6)
    assert c.verdict == "not reproduced"  # 0.6 with a zero-width interval is far from 0.927
    d = by["Table II, shapes_densenet: StAdv AdvEdge vs MASK, confidence"]
    assert d.paper == A.TABLE_II[("densenet", "stadv")]["mask"][1] == 0.482 and d.n == 2
    assert "DenseNet" in d.setting and d.measured_at == "stand-in"
    grid.store[("shapes_resnet", "pgd", "grad", "adv2")]["confidence"][:] = float("nan")
    empty = A.table2_claims(grid, "shapes")[0]
    assert empty.verdict == "not measured" and "no successful" in empty.reason


def test_headline_claims_per_model():
    setup, grid = fake_grid(seconds={"mask": 5.0, "grad": 1.0}, noise={"adv2": 0.2, "advedge": 0.1})
    out = A.paper_claims(setup, grid, {}, {}, None)
    by = {c.claim: c for c in out}
    for m in ("shapes_resnet", "shapes_densenet"):
        asr = by[f"{m}: PGD AdvEdge, success rate, mean over interpreters"]
        assert asr.paper == 1.0 and asr.ours == 1.0 and asr.verdict == "reproduced"
        st = by[f"{m}: StAdv ADV², success rate, mean over interpreters"]
        arch = A.architecture_of(m)
        assert st.paper == pytest.approx(np.mean([A.TABLE_I[(arch, "stadv")][i][0] for i in ("grad", "mask")]), abs=1e-4)
        less = by[f"{m}: AdvEdge(+) need less noise than ADV² under PGD (ADV² − edges, paired images)"]
        assert str(less.paper) == "> 0" and less.ours == pytest.approx(0.1) and less.verdict == "reproduced"
        more = by[f"{m}: AdvEdge(+) need more noise than ADV² under StAdv (ADV² − edges, paired images)"]
        assert str(more.paper) == "< 0" and more.verdict == "not reproduced"
        t = [c for c in out if c.claim.startswith(f"{m}: MASK is the slowest")][0]
        assert t.ours == pytest.approx(5.0) and t.verdict == "reproduced" and t.n == 4
        l1 = [c for c in out if c.claim.startswith(f"{m}: L1")][0]
        assert l1.ours == pytest.approx(0.1) and l1.verdict == "reproduced"
        det = [c for c in out if c.claim.startswith(f"{m}: the detector")][0]
        assert det.verdict == "not measured"
    _, no_mask = fake_grid(interpreters=("grad", "cam"))
    t = [c for c in A.paper_claims(setup, no_mask, {}, {}, None) if "slowest" in c.claim][0]
    assert t.verdict == "not measured"


def test_placement_and_robust_claims_on_known_values():
    setup, grid = fake_grid(models=("shapes_resnet",))
    ab = A.Ablation(pd.DataFrame(), pd.DataFrame(), {
        ("adv2", "-"): torch.tensor([True, True, True, True]),
        ("advedge", "throughout"): torch.tensor([False, False, True, False]),
        ("advedge", "warm_start"): torch.tensor([True, True, True, True])})
    n = 50
    rec = {"normal": [{"eps": 0.0, "correct": torch.ones(n, dtype=torch.bool), "tau": torch.ones(n)},
                      {"eps": 0.1, "correct": torch.zeros(n, dtype=torch.bool), "tau": torch.zeros(n)}],
           "robust": [{"eps": 0.0, "correct": torch.arange(n) % 10 != 0, "tau": torch.ones(n)},
                      {"eps": 0.1, "correct": torch.arange(n) % 5 == 0, "tau": torch.full((n,), 0.7)}]}
    robust = A.RobustStudy(pd.DataFrame(), rec, "mnist_cnn", "mnist", 0.1, {})
    out = A.paper_claims(setup, grid, {"shapes_resnet": ab}, {}, robust)

    def find(start):
        return next(c for c in out if start in c.claim)

    thr = find("edges in every step")
    assert thr.ours == pytest.approx(-0.75) and thr.verdict == "not reproduced"
    warm = find("edges in the warm start")
    assert warm.ours == 0 and warm.verdict == "reproduced"
    clean = find("robust training costs")
    assert clean.ours == pytest.approx(0.1) and clean.tolerance == 0.05 and clean.paper == pytest.approx(0.1)
    gain = find("robust training raises")
    assert gain.ours == pytest.approx(0.2) and gain.tolerance == pytest.approx(0.0975)
    tau = find("Kendall")
    assert tau.ours == pytest.approx(0.7) and tau.tolerance == 0.2 and tau.verdict == "reproduced"
    assert clean.measured_at == "stand-in" and "CIFAR-10" in clean.setting


def test_bad_names_fail_early():
    with pytest.raises(ValueError, match="grad, cam, mask, rts"):
        A.check_choices(["lrp"], ["pgd"], ["adv2"], "throughout")
    with pytest.raises(ValueError, match="pgd, cw, stadv"):
        A.check_choices(["cam"], ["fgsm"], ["adv2"], "throughout")
    with pytest.raises(ValueError, match="edge_placement"):
        A.check_choices(["cam"], ["pgd"], ["adv2"], "everywhere")
    with pytest.raises(ValueError, match="paper, code"):
        A.check_choices(["cam"], ["pgd"], ["adv2"], "throughout", "table12")
    with pytest.raises(ValueError, match="at least one"):
        A.check_choices([], ["pgd"], ["adv2"], "throughout")
    with pytest.raises(ValueError, match="trains"):
        A.robust_training_study(model="resnet50", eps_values=[0.0], n_eval=2, attack_steps=1,
                                train=A.RobustTrainConfig(), n_train=2)
    with pytest.raises(ValueError, match="rts_steps must be a positive integer"):
        A.Schedule(rts_steps=0)
    with pytest.raises(ValueError, match="train_budget must be one of full, smoke"):
        A.Schedule(train_budget="tiny")
    assert A.architecture_of("densenet169") == "densenet" and A.architecture_of("shapes_resnet") == "resnet"
    assert A.verdict_line([]) == "no claims"


def test_rts_training_size_overrides_only_what_is_given():
    assert A.Schedule(train_budget="smoke").interpreter_settings("rts") == {"train_budget": "smoke"}
    cfg = A.Schedule(train_budget="smoke", rts_steps=1).interpreter_settings("rts")["config"]
    assert cfg.steps == 1 and cfg.batch_size == A.RTS_BUDGETS["smoke"].batch_size
    cell = A.CellAttack("pgd", "rts", "adv2", "throughout", A.Schedule(rts_steps=2, rts_batch=3)).describe()
    assert cell["interpreter_settings"]["config"]["steps"] == 2  # plain values: the cell's cache key
    assert cell["interpreter_settings"]["config"]["batch_size"] == 3


def test_tolerances_leave_no_effect_outside():
    for row in A.PAPER_CLAIMS.to_dict("records"):
        ref, tol, paper = row["no_effect"], row["tolerance"], row["paper"]
        if isinstance(paper, float) and ref is not None and not np.isnan(ref) and paper != ref:
            assert abs(paper - ref) > tol, row["id"]  # the claim can fail: "no effect" is not within tolerance
    assert C.decide(A.PAPER_CLAIMS.set_index("id").loc["robust-clean", "paper"], (-0.02, 0.02), 0.05, 0.0) \
        == "not reproduced"
