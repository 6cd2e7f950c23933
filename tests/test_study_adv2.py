"""Chapter 3's experiments (advxai.studies.adv2) at smoke sizes on the shapes data set."""
import numpy as np
import pandas as pd
import pytest
import torch

from advxai import claims as C
from advxai.studies import adv2 as study
from advxai.studies.adv2 import paper
from advxai.studies.adv2.gap import Transfer

from .helpers import one_thread, smoke_model

MODEL = "shapes_resnet"
TOP_KS = (0.1, 0.2)


def _prepare(**over):
    kw = dict(train_budget="smoke", seed=0, n_images=3, batch_size=8, attack_budget="smoke",
              settings="paper", warm_steps=2, steps=2, mask_iterations=3, mask_steps=1, mask_reset_every=1,
              mask_reset_iterations=2, rts_steps=4, rts_batch=8, device="cpu")
    kw.update(over)
    return study.prepare("shapes", [MODEL], ["grad", "cam", "rts"], **kw)


@pytest.fixture(scope="module")
def run():
    with one_thread():
        smoke_model(MODEL)  # trained on one thread into the session's cache first
        s = _prepare()
        eff = study.attack_effectiveness(s, TOP_KS)
    return s, eff


def test_prepare_attacks_correctly_classified_images_with_other_targets(run):
    s, _ = run
    x, y, t = s.images[MODEL]
    assert len(x) == 3 and torch.all(t != y)
    with torch.no_grad():
        assert torch.equal(s.classifiers[MODEL](x).argmax(1).cpu(), y)
    assert torch.equal(s.test.batch(s.index[MODEL]).y, y)  # the indices name the attacked images


def test_prepare_names_the_valid_interpreters():
    with pytest.raises(ValueError, match="valid: grad, cam, mask, rts"):
        study.prepare("shapes", [MODEL], ["grad", "lime"], train_budget="smoke", device="cpu")


def test_experiments_name_the_interpreters_they_need(run):
    s, eff = run
    with pytest.raises(ValueError, match="uses interpreter.s. mask, which the study does not run"):
        study.random_targets_study(s, eff, ["grad", "mask"], top_k=0.2)


def test_localisation_scores_every_interpreter_on_the_object_masks(run):
    s, _ = run
    with one_thread():
        loc = study.localisation(s, 3)
    assert len(loc) == 3 * len(s.interpreters)
    assert loc["box IoU"].between(0, 1).all() and loc["mask IoU"].between(0, 1).all()
    assert (loc["correct"] == (loc["box IoU"] >= 0.5)).all()
    table = study.localisation_table(loc)
    assert table["localisation error"].to_numpy() == pytest.approx(
        1 - loc.groupby("interpreter", sort=False)["correct"].mean().to_numpy())


def test_attack_effectiveness_records_one_row_per_image_and_attack(run):
    s, eff = run
    f = eff.frame
    assert len(f) == 3 * 2 * 3  # interpreters x attacks x images
    assert (f["linf"] <= s.eps + 1e-5).all()
    assert f["L1"].between(0, 1).all() and f[[f"IoU@{k:g}" for k in TOP_KS]].stack().between(0, 1).all()
    # PGD does not know the interpreter: its rows repeat one attack
    pgd = f[f.attack == "PGD"]
    assert pgd.groupby("image")["success"].nunique().max() == 1
    t3 = study.table3(f)
    cell = f[(f.interpreter == "CAM") & (f.attack == "ADV²")]
    assert t3.set_index(["interpreter", "attack"]).loc[("CAM", "ADV²"), "ASR"] == pytest.approx(cell["success"].mean())
    # the L1 recorded is the maps' distance the study kept
    benign, m_pgd, m_adv = eff.maps[(MODEL, "cam")]
    assert cell["L1"].to_numpy() == pytest.approx((m_adv - benign).abs().flatten(1).mean(1).numpy(), abs=1e-6)


def test_transfer_diagonal_and_pgd_row_repeat_the_effectiveness_distances(run):
    s, eff = run
    tr = study.transfer_study(s, eff)
    f = eff.frame
    for iname in s.interpreters:
        key = study.LABEL[iname]
        adv = f[(f.interpreter == key) & (f.attack == "ADV²")]["L1"].mean()
        pgd = f[(f.interpreter == key) & (f.attack == "PGD")]["L1"].mean()
        row = tr.table.set_index("crafted against")
        assert row.loc[key, key] == pytest.approx(adv, rel=1e-5)
        assert row.loc["PGD", key] == pytest.approx(pgd, rel=1e-5)


def test_proposition1_bound_holds_up_to_the_quadrature(run):
    s, eff = run
    with one_thread():
        p1 = study.proposition1(s, eff, ig_steps=8)
    assert len(p1) == 3 * (1 + len(s.interpreters))
    assert (p1["l_prd"] <= p1["l_int"] + p1["quadrature gap"].abs() + 1e-6).all()
    assert p1["ratio"].between(-1 - 1e-6, 1 + 1e-6).all()


def _frame(ratios: dict, n=12, seed=0):
    """Per-image L1 records whose ADV²/PGD ratio of means is exactly ``ratios[interpreter]``."""
    rng = np.random.default_rng(seed)
    rows = []
    for key, r in ratios.items():
        pgd = rng.uniform(0.2, 0.4, n)
        adv = pgd * r  # per image, so the ratio of means is r too
        for attack, values in (("PGD", pgd), ("ADV²", adv)):
            rows += [{"model": "m", "interpreter": key, "attack": attack, "image": i, "L1": v}
                     for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_claims_cover_every_model_and_interpreter(run):
    s, eff = run
    with one_thread():
        tr = study.transfer_study(s, eff)
    out = paper.build_claims(s, eff=eff, top_k=0.2, tr=tr)
    assert len(out) == len(s.models) * (4 * len(s.interpreters) + 1) + 1
    assert all(c.verdict in C.VERDICTS for c in out)
    assert {c.measured_at for c in out} == {"stand-in"}  # shapes is not the paper's data


def test_grad_hardest_claim_measures_the_difference_of_ratios():
    where = C.Setting("ImageNet, ResNet-50", data="shapes", model="m", measured_at="stand-in")
    c = paper._grad_hardest(_frame({"GRAD": 0.5, "CAM": 0.2, "RTS": 0.3}), "m", ["grad", "cam", "rts"], where, 0)
    assert c.ours == pytest.approx(0.2) and c.verdict == "reproduced"
    c = paper._grad_hardest(_frame({"GRAD": 0.2, "CAM": 0.6}), "m", ["grad", "cam"], where, 0)
    assert c.ours == pytest.approx(-0.4) and c.verdict == "not reproduced"
    c = paper._grad_hardest(_frame({"CAM": 0.6}), "m", ["cam"], where, 0)
    assert c.verdict == "not measured"


def test_transfer_claim_is_off_diagonal_over_pgd():
    where = C.Setting("ImageNet, ResNet-50", data="shapes", model="m", measured_at="stand-in")
    n = 10
    per = {}
    for r in ("grad", "cam"):
        per[("PGD", r)] = torch.full((n,), 0.2)
        for c in ("grad", "cam"):
            per[(r, c)] = torch.full((n,), 0.05 if r == c else 0.226)
    c = paper._transfer(Transfer(pd.DataFrame(), per, "m"), ["grad", "cam"], where, 0)
    assert c.ours == pytest.approx(1.13) and c.verdict == "reproduced"
    assert c.interval[0] == pytest.approx(1.13) and c.interval[1] == pytest.approx(1.13)


def test_claim_sections_are_headings_of_the_chapter():
    import re
    from pathlib import Path

    from advxai import summary

    text = (Path(__file__).resolve().parents[1] / "chapters" / "ch03_adv2.py").read_text()
    ids = {summary.anchor(m.group(1)) for m in re.finditer(r"^# #{1,6} (.+)$", text, flags=re.M)}
    assert set(paper.SECTIONS.values()) <= ids


def test_feature_squeezing_flags_every_image_and_attack(run):
    s, eff = run
    with one_thread():
        sq = study.feature_squeezing(s, eff, ["median_3x3"], fpr=0.25, n_benign=6, sqz_weight=1.0)
    n = len(s.images[MODEL][0])
    assert {k: len(v) for k, v in sq.flags.items()} == {("median_3x3", "benign"): 6, ("median_3x3", "PGD"): n,
                                                          ("median_3x3", "RTS-A"): n, ("median_3x3", "RTS-A*"): n}
    row = sq.table.iloc[0]
    for who in ("benign", "PGD", "RTS-A", "RTS-A*"):
        assert row[who] == pytest.approx(sq.flags[("median_3x3", who)].double().mean().item())
    assert row["RTS-A* ASR"] == pytest.approx(sq.adaptive["median_3x3"].success.float().mean().item())
    assert (sq.adaptive["median_3x3"].x_adv - s.images[MODEL][0]).abs().max() <= s.eps + 1e-5


def test_stadv_study_compares_both_attacks_on_the_same_images(run):
    s, eff = run
    with one_thread():
        st = study.stadv_study(s, eff, ["cam"], steps=2, top_k=0.2)
    n = len(s.images[MODEL][0])
    assert st.images == {"cam": n} and st.steps == {"cam": 2} and "Table 12" in st.sources["cam"]
    assert len(st.frame) == 2 * n and set(st.table["attack"]) == {"StAdv", "StAdv ADV²"}
    for row in st.table.itertuples():
        cell = st.frame[st.frame.attack == row.attack]
        assert row.ASR == pytest.approx(cell["success"].mean()) and row.L1 == pytest.approx(cell["L1"].mean())
    assert st.frame["L1"].between(0, 1).all()


def test_aid_study_trains_the_rounds_asked_and_a_control(run):
    s, eff = run
    with one_thread():
        aid = study.aid_study(s, eff, aid_budget="smoke", aid_batch=2, aid_rounds=1, n_noise=16,
                              noise_error_rates=[0.3], top_k=0.2)
    assert len(aid.history.split("per round: ")[1].split(", ")) == 1  # one round of ADV² against the decoder
    assert list(aid.adv_table["interpreter"]) == list(study.VARIANTS)
    assert len(aid.noise_table) == 2 * 1 * len(study.VARIANTS)  # noise kinds x levels x variants
    # RTS's own row repeats the effectiveness study's ADV² result against RTS
    assert aid.adv_table.set_index("interpreter").loc["RTS", "ADV² ASR"] == pytest.approx(
        eff.results[(MODEL, "rts")][1].success.float().mean().item())
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        study.aid_study(s, eff, aid_budget="smoke", aid_rounds=0, n_noise=8, noise_error_rates=[0.3], top_k=0.2)
    with pytest.raises(ValueError, match=r"noise_error_rates must be error rates in \(0, 1\)"):
        study.aid_study(s, eff, aid_budget="smoke", n_noise=8, noise_error_rates=[0.3, 1.5], top_k=0.2)
