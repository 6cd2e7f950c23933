"""Chapter 5's experiments (advxai.studies.attributes) at smoke sizes, and its claims on hand-made cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from advxai import claims as C
from advxai.attributes import SJE
from advxai.attributes.pipeline import Embedded, select_and_ground
from advxai.data.shapes import load_shapes_dataset
from advxai.studies import attributes as study

from .helpers import one_thread, tiny_classifier


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("kwargs, message", [
    (dict(datasets=["digits"]), "valid: shapes, cub, awa2"),
    (dict(datasets=[]), "datasets is empty"),
    (dict(models=["shapes_resnet", "shapes_densenet"]), "one classifier per data set"),
    (dict(models=["digits_cnn"]), "trained here on digits, not shapes"),
    (dict(epsilons=[0.01, 1.5]), r"\(0, 1\]"),
    (dict(analysis_eps=0.06), "must be one of at_epsilons"),
    (dict(at_epsilons=[], analysis_eps=0.02), "must be one of epsilons"),
    (dict(dataset_roots=["a", "b"]), "one folder per data set"),
])
def test_bad_parameters_fail_before_any_work(kwargs, message):
    args = dict(datasets=["shapes"], models=["shapes_resnet"], epsilons=[0.01, 0.025], at_epsilons=[0.025],
                analysis_eps=0.025)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        study.check_parameters(args["datasets"], args["models"], args["epsilons"], args["at_epsilons"],
                               args["analysis_eps"], args.get("dataset_roots", ()))


# --------------------------------------------------------------------------- end to end, smoke sizes


@pytest.fixture(scope="module")
def run():
    """The whole study on shapes with the smoke model, 16 attacked images, one adversarially trained copy."""
    with one_thread():
        setups = study.prepare(["shapes"], ["shapes_resnet"], train_budget="smoke", n_sje_train=200, n_clean=64,
                               n_eval=16, sje_epochs=2, at_epsilons=[0.06], at_steps=2, at_epochs=1, at_n_train=64,
                               batch_size=32, seed=0)
        attacks = study.accuracy_under_attack(setups, [0.02, 0.06], steps=3, batch_size=32, seed=0,
                                              keep_images_at=0.06)
        dist = study.distances(setups, attacks, 0.06)
        ground = study.grounding(setups, attacks, 0.06, k_ground=3, n_show=2)
    records = study.paper_claims(setups, attacks, dist, ground, epsilons=[0.02, 0.06], analysis_eps=0.06)
    return setups, attacks, dist, ground, records


def test_setup_draws_correct_attack_images_and_a_clean_sample(run):
    (s,), *_ = run
    assert len(s.eval_index) == 16 and len(s.clean_index) == 64
    assert (s.clean.softmax_pred == s.y).all()  # attacks start from images the softmax labels correctly
    assert torch.equal(s.y, s.test.labels[s.eval_index])
    assert s.clean_all.softmax_pred.shape == (64,) and set(s.robust) == {0.06}
    assert torch.allclose(s.clean.z.norm(dim=1), torch.ones(16))  # predicted attributes have unit length
    tables = study.setup_tables([s])
    assert list(tables["models"]["training"]) == ["standard", "adversarial"]


def test_fig4_table_and_per_image_rows_agree(run):
    (s,), attacks, *_ = run
    t = attacks.table
    # 2 modes x 2 budgets x 2 classifiers for the standard model, 2 modes x 1 budget x 2 for the AT copy
    assert len(t) == 8 + 4 and set(t["attacked images"]) == {16}
    std = t[(t["training"] == "standard") & (t["classifier"] == "softmax")]
    assert std["clean"].nunique() == 1  # one clean accuracy per model, whatever the budget
    for r in t.to_dict("records"):
        per = attacks.correct("shapes", r["mode"], r["eps"], r["training"], r["classifier"])
        assert len(per) == 16 and per.mean() == pytest.approx(r["adversarial"])
    a = attacks.get("shapes", "targeted", 0.06)
    assert a.x is not None and attacks.get("shapes", "targeted", 0.02).x is None  # images kept at one budget
    assert ((a.x - s.x).abs().amax((1, 2, 3)) <= 0.06 + 1e-6).all() and (a.target != s.y).all()


def test_fig5_distances_are_bounded_and_select_the_panels_images(run):
    (s,), attacks, dist, *_ = run
    d = dist.per_image
    assert set(d["panel"]) <= set("abcd") and ((d["d1"] >= 0) & (d["d1"] <= 2 + 1e-6)).all()
    a = attacks.get("shapes", "untargeted", 0.06)
    wrong = s.eval_index[a.sje_pred != s.y].numpy()
    assert set(d[d["panel"] == "c"]["image"]) == set(wrong)  # (c) keeps the misclassified adversarial images
    for r in dist.table.to_dict("records"):
        p = d[d["panel"] == r["panel"]]
        assert len(p) == r["images"]
        if len(p):
            assert (p["d1"] < p["d2"]).mean() == pytest.approx(r["share d1 < d2"])


def test_grounding_with_the_perfect_detector_is_the_images_own_attributes(run):
    (s,), attacks, _, ground, _ = run
    for (dataset, name), g in ground.results.items():
        attrs = s.test.annotations["attributes"][g["index"]]
        assert torch.equal(g["grounded"], attrs.gather(1, g["selected"]) > 0.5), name
        assert g["selected"].shape[1] == 3 and g["maps"].shape[0] <= 2 and g["sweep_iou"].shape[0] == len(study.SWEEP)
    for (dataset, name), sh in ground.shown.items():
        assert len(sh["images"]) <= 2
    rows = study.example_rows([s], ground)
    assert all(p["label"].startswith("→") == title.startswith("adversarial,") for title, ps in rows for p in ps)


def test_every_claim_is_decided_by_the_claims_module(run):
    *_, records = run
    assert all(isinstance(c, C.Claim) and c.verdict in C.VERDICTS for c in records)
    ids = [c.claim for c in records]
    # CUB's own claims are listed, but not measured without CUB
    cub = [c for c in records if "ε = 0.025" in c.claim]
    assert cub and all(c.verdict == "not measured" and "CUB" in c.reason for c in cub)
    assert len(ids) >= len(study.PAPER_CLAIMS)
    assert not [c for c in records if c.verdict == "not measured" and not c.reason]


# --------------------------------------------------------------------------- claims on a hand-made run


def _embedded(pred: list[int], k: int = 3) -> Embedded:
    p = torch.tensor(pred)
    return Embedded(None, p, p.clone(), torch.nn.functional.normalize(torch.rand(len(p), k), dim=1))


def _fake_setup(dataset: str, y: list[int], clean_sje: list[int], clean_soft: list[int]) -> study.Setup:
    test = load_shapes_dataset("test", n=12, use_cache=False) if dataset == "shapes" else None
    n = len(y)
    clean = Embedded(None, torch.tensor(clean_soft), torch.tensor(clean_sje), torch.zeros(n, 3))
    return study.Setup(dataset, "m", None, test, None, None, [{"train_accuracy": 1.0}], torch.arange(n), clean,
                       torch.arange(n), torch.zeros(n, 3, 4, 4), torch.tensor(y), clean)


def test_claims_compute_the_papers_quantities_on_a_known_case(monkeypatch):
    y = [0, 1, 0, 1, 0, 1, 0, 1]
    s = _fake_setup("shapes", y, clean_sje=[0, 1, 0, 1, 0, 1, 1, 0], clean_soft=y)
    monkeypatch.setattr(study.Setup, "clean_y", property(lambda self: torch.tensor(y)))
    rows, per = [], []
    correct = {("untargeted", "softmax"): [1, 0, 0, 0, 0, 0, 0, 0], ("untargeted", "sje"): [1, 1, 0, 0, 0, 0, 0, 0],
               ("targeted", "softmax"): [1, 1, 1, 1, 0, 0, 0, 0], ("targeted", "sje"): [1, 1, 1, 0, 0, 0, 0, 0]}
    for (mode, clf), c in correct.items():
        for eps in (0.01, 0.02):
            per.append(pd.DataFrame({"dataset": "shapes", "mode": mode, "eps": eps, "training": "standard",
                                     "classifier": clf, "image": range(8), "adversarial": np.array(c, bool)}))
            rows.append({"dataset": "shapes", "mode": mode, "eps": eps, "training": "standard", "classifier": clf,
                         "adversarial": np.mean(c)})
    attacks = study.Attacks(pd.DataFrame(rows), pd.concat(per, ignore_index=True), {})
    dist = study.Distances(pd.DataFrame({"dataset": "shapes", "panel": ["c"] * 5, "image": range(5),
                                         "d1": [0.1, 0.2, 0.3, 0.9, 0.1], "d2": [0.5] * 5}), pd.DataFrame())
    ground = study.Grounding(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, {}, {"shapes": "no detector"})
    records = {c.claim: c for c in study.paper_claims([s], attacks, dist, ground, epsilons=[0.01, 0.02],
                                                      analysis_eps=0.02)}
    by_id = dict(zip(study.PAPER_CLAIMS["id"], study.PAPER_CLAIMS["claim"]))
    clean = records[by_id["clean-on-par"]]
    assert clean.ours == pytest.approx(-2 / 8) and clean.n == 8  # SJE wrong on 2 of 8 clean images
    robust = records[by_id["sje-robust"]]  # shapes stands in for AwA2: "slightly better", > 0
    assert robust.ours == pytest.approx(1 / 8) and str(robust.paper) == "> 0"
    milder = records[by_id["targeted-milder"]]
    assert milder.ours == pytest.approx(3 / 8)
    c = records[by_id["fig5c"]]
    assert c.ours == pytest.approx(4 / 5) and c.estimator.startswith("Wilson")
    assert records[by_id["sje-robust-cub"]].verdict == "not measured"
    assert records[by_id["ground-untargeted"]].reason == "no detector"
    assert records[by_id["at-gain"]].reason.startswith("no adversarially trained model")


# --------------------------------------------------------------------------- grounding in chunks


def test_grounding_in_chunks_matches_one_pass():
    ds = load_shapes_dataset("test", n=10, use_cache=False)
    model = tiny_classifier(in_channels=3, size=64, num_classes=ds.num_classes)
    sje = SJE.for_dataset(ds, feature_dim=16)
    sje.W = torch.randn(16, len(ds.attribute_names), generator=torch.Generator().manual_seed(0))
    b = ds.batch(torch.arange(10))
    z = torch.nn.functional.normalize(torch.rand(10, len(ds.attribute_names)), dim=1)
    one = select_and_ground(model, sje, ds, b, b.x, z, sje.phi[b.y], k=3, sweep=(0.3, 0.7))
    chunked = select_and_ground(model, sje, ds, b, b.x, z, sje.phi[b.y], k=3, sweep=(0.3, 0.7), chunk=3, keep_maps=4)
    for key in ("selected", "grounded", "cam_boxes", "iou", "pointing", "sweep_iou"):
        assert torch.allclose(one[key].float(), chunked[key].float(), equal_nan=True), key
    assert torch.allclose(one["maps"][:4], chunked["maps"]) and chunked["maps"].shape[0] == 4
