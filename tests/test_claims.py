"""advxai.claims: intervals against independent oracles, the verdict rule's truth table, the records'
round trip through the metrics file and the summary, and the book page's worked examples."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from advxai import claims as C
from advxai import report, summary

BOOK = Path(__file__).resolve().parents[1] / "book"
S = C.Setting("MNIST", data="digits", model="digits_cnn", paper_data="mnist", profile="quick")


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 8), (5, 8), (8, 8), (1, 60), (55, 60), (30, 60), (999, 1000)])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_wilson_matches_scipy(k, n, confidence):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = C.wilson(k, n, confidence)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def _newcombe_oracle(k1, n1, k2, n2, confidence=0.95):
    """Newcombe's method 10, written from his paper's formula on scipy's Wilson intervals."""
    w1 = stats.binomtest(k1, n1).proportion_ci(confidence_level=confidence, method="wilson")
    w2 = stats.binomtest(k2, n2).proportion_ci(confidence_level=confidence, method="wilson")
    p1, p2 = k1 / n1, k2 / n2
    delta = np.hypot(p1 - w1.low, w2.high - p2)
    eps = np.hypot(w1.high - p1, p2 - w2.low)
    return p1 - p2 - delta, p1 - p2 + eps


@pytest.mark.parametrize("k1,n1,k2,n2", [(56, 70, 48, 80), (9, 10, 3, 10), (5, 56, 0, 29), (0, 10, 0, 20),
                                         (10, 10, 0, 10), (12, 40, 3, 60), (3, 8, 2, 8)])
def test_newcombe_matches_its_formula_on_scipys_wilson(k1, n1, k2, n2):
    lo, hi = C.newcombe(k1, n1, k2, n2)
    olo, ohi = _newcombe_oracle(k1, n1, k2, n2)
    assert lo == pytest.approx(olo, abs=1e-12) and hi == pytest.approx(ohi, abs=1e-12)
    assert lo <= k1 / n1 - k2 / n2 <= hi


@pytest.mark.parametrize("k1,n1,k2,n2,expected", [(56, 70, 48, 80, (0.0524, 0.3339)),
                                                  (9, 10, 3, 10, (0.1705, 0.8090)),
                                                  (5, 56, 0, 29, (-0.0381, 0.1926))])
def test_newcombe_reproduces_the_published_examples(k1, n1, k2, n2, expected):
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10
    lo, hi = C.newcombe(k1, n1, k2, n2)
    assert (round(lo, 4), round(hi, 4)) == expected


def test_bad_counts_fail_with_the_range():
    for k, n in ((3, 2), (-1, 5), (0, 0), (1.5, 4)):
        with pytest.raises(ValueError, match="k"):
            C.wilson(k, n)
    with pytest.raises(ValueError, match="confidence"):
        C.wilson(1, 2, confidence=95)


def test_bootstrap_is_deterministic_under_a_seed_and_independent_of_chunking():
    x = np.random.default_rng(1).normal(size=37)
    a = C.bootstrap_interval([x], C.STATISTICS["mean"], seed=3, n_resamples=2000)
    b = C.bootstrap_interval([x], C.STATISTICS["mean"], seed=3, n_resamples=2000, chunk=300)
    c = C.bootstrap_interval([x], C.STATISTICS["mean"], seed=4, n_resamples=2000)
    assert a == b and a != c


def test_bootstrap_agrees_with_scipys_percentile_bootstrap():
    x = np.random.default_rng(2).exponential(size=50)
    ours = C.bootstrap_interval([x], C.STATISTICS["mean"], n_resamples=20000, seed=0)
    ref = stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20000,
                          rng=np.random.default_rng(5)).confidence_interval
    # two independent Monte Carlo estimates of the same percentiles
    assert ours[0] == pytest.approx(ref.low, abs=0.02) and ours[1] == pytest.approx(ref.high, abs=0.02)


def test_bootstrap_covers_the_true_mean():
    rng = np.random.default_rng(0)
    covered = 0
    for i in range(200):
        x = rng.normal(loc=2.0, size=40)
        lo, hi = C.bootstrap_interval([x], C.STATISTICS["mean"], n_resamples=1000, seed=i)
        covered += lo <= 2.0 <= hi
    assert covered >= 180


def test_paired_bootstrap_covers_the_true_difference_and_is_narrower_than_unpaired():
    rng = np.random.default_rng(1)
    covered, widths = 0, []
    for i in range(200):
        base = rng.normal(size=30)  # per-image difficulty shared by both settings
        a, b = base + 0.3 + 0.2 * rng.normal(size=30), base + 0.2 * rng.normal(size=30)
        lo, hi = C.bootstrap_interval([a, b], lambda x, y: (x - y).mean(axis=-1), paired=True, n_resamples=1000,
                                      seed=i)
        ulo, uhi = C.bootstrap_interval([a, b], lambda x, y: x.mean(axis=-1) - y.mean(axis=-1), n_resamples=1000,
                                        seed=i)
        covered += lo <= 0.3 <= hi
        widths.append((hi - lo) / (uhi - ulo))
    assert covered >= 180
    assert np.median(widths) < 0.5  # pairing removes the shared per-image variation


def test_bootstrap_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="at least 2"):
        C.bootstrap_interval([np.ones(1)], C.STATISTICS["mean"])
    with pytest.raises(ValueError, match="one length"):
        C.bootstrap_interval([np.ones(3), np.ones(4)], lambda x, y: x.mean(-1), paired=True)
    with pytest.raises(ValueError, match="n_resamples"):
        C.bootstrap_interval([np.ones(3)], C.STATISTICS["mean"], n_resamples=10)


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("paper,interval,tol,r,expected", [
    # value claims
    (0.94, (0.82, 0.96), 0.10, None, "reproduced"),            # inside the interval
    (0.94, (0.72, 0.91), 0.10, None, "reproduced"),            # inside once widened by the tolerance
    (0.94, (0.54, 0.84), 0.10, None, "reproduced"),            # boundary: hi + tol == paper
    (0.94, (0.54, 0.8399), 0.10, None, "not reproduced"),      # just outside
    (0.25, (0.5, 0.75), 0.25, None, "reproduced"),             # boundary on the low side: lo - tol == paper
    (0.53, (-0.04, 0.77), 0.10, 0.0, "inconclusive"),          # holds the paper's effect and no effect
    (0.53, (0.0, 0.77), 0.10, 0.0, "inconclusive"),            # touching r counts as holding it
    (0.53, (0.10, 0.41), 0.10, 0.0, "same direction"),         # effect present, smaller
    (0.53, (0.70, 0.90), 0.10, 0.0, "same direction"),         # effect present, larger
    (-0.4, (-0.2, -0.1), 0.10, 0.0, "same direction"),         # a negative effect, same sign
    (0.53, (-0.12, 0.14), 0.10, 0.0, "not reproduced"),        # excludes the paper, holds no effect
    (0.53, (-0.5, -0.2), 0.10, 0.0, "not reproduced"),         # the opposite effect
    (0.0, (-0.14, 0.08), 0.05, 0.0, "reproduced"),             # a claim of no effect
    (0.03, (0.2, 0.3), 0.05, 0.0, "not reproduced"),           # no-effect claim: no direction to share
    (0.5, (0.5, 0.5), 0.0, None, "reproduced"),                # zero tolerance, exact
    # inequality claims
    ("> 0", (0.49, 0.78), None, None, "reproduced"),
    ("> 0", (-0.29, 0.49), None, None, "inconclusive"),
    ("> 0", (-0.27, -0.01), None, None, "not reproduced"),
    ("> 0", (0.0, 0.3), None, None, "inconclusive"),           # > is strict: 0 itself does not hold it
    (">= 0", (0.0, 0.3), None, None, "reproduced"),
    ("> 0", (-0.3, 0.0), None, None, "not reproduced"),
    (">= 0", (-0.3, 0.0), None, None, "inconclusive"),
    ("< 1", (0.2, 0.6), None, None, "reproduced"),
    ("< 0.5", (0.6, 0.9), None, 1.0, "same direction"),        # below 1 but not below 0.5
    ("< 0.5", (0.3, 0.9), None, 1.0, "inconclusive"),
    ("< 0.5", (0.6, 1.2), None, 1.0, "not reproduced"),
    ("> 0.9", (0.60, 0.86), None, 0.05, "same direction"),
    ("> 0.9", (0.80, 0.97), None, 0.05, "inconclusive"),
    ("> 0.9", (0.01, 0.17), None, 0.05, "not reproduced"),
    ("> 0", None, None, None, "not measured"),
    (0.5, None, 0.1, None, "not measured"),
])
def test_the_rule(paper, interval, tol, r, expected):
    assert C.decide(paper, interval, tol, r) == expected


def test_every_verdict_is_reachable():
    cases = [(0.94, (0.82, 0.96), 0.1, None), (0.53, (0.1, 0.41), 0.1, 0.0), (0.53, (-0.04, 0.77), 0.1, 0.0),
             (0.53, (-0.12, 0.14), 0.1, 0.0), (0.5, None, 0.1, None)]
    assert {C.decide(*c) for c in cases} == set(C.VERDICTS)


def test_the_rule_rejects_ill_posed_claims():
    with pytest.raises(ValueError, match="tolerance"):
        C.decide(0.5, (0.4, 0.6))  # a value claim must say what counts as the same number
    with pytest.raises(ValueError, match="tolerance"):
        C.decide(0.5, (0.4, 0.6), -0.1)
    with pytest.raises(ValueError, match="no tolerance"):
        C.decide("> 0", (0.4, 0.6), 0.1)
    with pytest.raises(ValueError, match="other side"):
        C.decide("> 0.5", (0.4, 0.6), None, 0.8)  # "no effect" cannot be on the claimed side of the bound
    with pytest.raises(ValueError, match="lo <= hi"):
        C.decide(0.5, (0.6, 0.4), 0.1)
    with pytest.raises(ValueError, match="'> 0'"):
        C.decide("about a half", (0.4, 0.6), 0.1)
    with pytest.raises(ValueError, match="operator"):
        C.Bound("=", 0)


# --------------------------------------------------------------------------- constructors


def test_rate_from_flags_counts_and_tensors_agree():
    flags = np.r_[np.ones(55), np.zeros(5)].astype(bool)
    a = C.rate("benign labels unchanged", S, flags, paper=0.94, tolerance=0.10)
    b = C.rate("benign labels unchanged", S, 55, 60, paper=0.94, tolerance=0.10)
    c = C.rate("benign labels unchanged", S, torch.from_numpy(flags), paper=0.94, tolerance=0.10)
    assert a == b == c
    assert a.n == 60 and a.ours == pytest.approx(55 / 60) and a.interval == pytest.approx(C.wilson(55, 60))
    assert a.verdict == "reproduced" and a.tolerance == 0.10 and a.estimator == "Wilson, 55/60"
    assert a.setting == "MNIST | digits, digits_cnn" and a.measured_at == "stand-in"


def test_empty_inputs_are_not_measured_with_their_reason():
    c = C.rate("FGSM detected", S, [], paper=0.72, tolerance=0.1, empty="no successful adversarial image")
    assert c.verdict == "not measured" and c.reason == "no successful adversarial image" and c.n == 0
    assert c.interval is None and c.ours is None
    d = C.difference_of_rates("FGSM > benign", S, (0, 0), (3, 60), paper="> 0")
    assert d.verdict == "not measured" and "no images" in d.reason
    m = C.mean("mean L1", S, [0.3], paper=0.1, tolerance=0.05)
    assert m.verdict == "not measured" and "one image" in m.reason
    with pytest.raises(ValueError, match="reason"):
        C.not_measured("x", S, "  ")
    with pytest.raises(ValueError, match="reason"):
        C.Claim("x", "s", 0.5, None, None, None, "not measured")


def test_difference_of_rates_takes_flags_or_counts():
    a = C.difference_of_rates("FGSM changes more labels than benign", S, [True] * 12 + [False] * 28,
                              [True] * 3 + [False] * 57, paper=0.53, tolerance=0.10)
    b = C.difference_of_rates("FGSM changes more labels than benign", S, (12, 40), (3, 60), paper=0.53,
                              tolerance=0.10)
    assert a == b and a.verdict == "same direction" and a.no_effect == 0.0 and a.groups == (40, 60) and a.n == 100
    assert a.interval == pytest.approx(C.newcombe(12, 40, 3, 60))
    with pytest.raises(ValueError, match="counts"):
        C.difference_of_rates("x", S, (True, False), (1, 2), paper="> 0")


def test_bootstrap_constructors():
    rng = np.random.default_rng(0)
    pgd = rng.uniform(0.2, 0.3, size=40)
    adv2 = pgd * 0.4 + rng.normal(0, 0.01, size=40)
    r = C.ratio("ADV² maps closer to benign than PGD's (L1 ratio)", S, adv2, pgd, paper=0.4, tolerance=0.15)
    assert r.verdict == "reproduced" and r.no_effect == 1.0 and r.ours == pytest.approx(adv2.mean() / pgd.mean())
    assert r.interval[0] <= r.ours <= r.interval[1] and "paired bootstrap" in r.estimator
    d = C.paired_difference("PGD maps farther than ADV²'s", S, pgd, adv2, paper="> 0")
    assert d.verdict == "reproduced" and d.n == 40 and d.tolerance is None
    u = C.difference("PGD maps farther than ADV²'s", S, pgd, adv2, paper="> 0")
    assert u.groups == (40, 40) and u.n == 80 and u.ours == pytest.approx(d.ours)
    med = C.median("median L1", S, pgd, paper=0.25, tolerance=0.02)
    assert med.ours == pytest.approx(np.median(pgd)) and med.verdict == "reproduced"
    again = C.median("median L1", S, pgd, paper=0.25, tolerance=0.02)
    assert again == med  # seeded
    with pytest.raises(ValueError, match="unknown statistic.*mean, median"):
        C.difference("x", S, pgd, adv2, paper="> 0", statistic="mode")


def test_missing_values_are_left_out_and_said():
    a = np.array([0.2, np.nan, 0.3, 0.25, 0.22])
    b = np.array([0.1, 0.1, np.nan, 0.12, 0.11])
    c = C.paired_difference("x", S, a, b, paper="> 0")
    assert c.n == 3 and "2 of 5 images without a value left out" in c.note


def test_a_zero_denominator_is_not_measured_and_a_partial_one_unbounded():
    c = C.ratio("ratio", S, [0.1, 0.2, 0.3], [0.0, 0.0, 0.0], paper=0.5, tolerance=0.1)
    assert c.verdict == "not measured" and "undefined" in c.reason
    d = C.ratio("ratio", S, [0.1, 0.2, 0.3], [0.0, 0.0, 1.0], paper="< 1", paired=False)
    assert d.interval[1] == math.inf and d.verdict == "inconclusive"


def test_inequality_claims_take_no_tolerance():
    with pytest.raises(ValueError, match="no tolerance"):
        C.rate("x", S, 3, 4, paper="> 0.5", tolerance=0.1)


def test_where_a_claim_was_measured(monkeypatch):
    kw = dict(data="imagenet", model="resnet50", paper_data="imagenet", paper_model=["resnet50", "densenet169"])
    monkeypatch.setenv("ADVXAI_PROFILE", "paper")
    assert C.Setting("ImageNet", **kw).where(1000) == "paper"
    assert C.Setting("ImageNet", **kw, paper_n=1000).where(999) == "paper data"  # fewer images than the paper
    assert C.Setting("ImageNet", **{**kw, "model": "efficientnet_lite0"}).where(1000) == "paper data"
    assert C.Setting("ImageNet", **{**kw, "data": "photos"}).where(1000) == "stand-in"
    monkeypatch.setenv("ADVXAI_PROFILE", "quick")
    assert C.Setting("ImageNet", **kw).where(1000) == "paper data"  # the paper's data at the quick sizes
    monkeypatch.delenv("ADVXAI_PROFILE")
    assert C.Setting("ImageNet", **kw).where(1000) == "paper data"  # run by hand: sizes unknown
    assert C.Setting("ImageNet", **kw, measured_at="stand-in").where(1) == "stand-in"
    with pytest.raises(ValueError, match="measured_at"):
        C.rate("x", "MNIST | digits", 1, 2, paper=0.5, tolerance=0.1)  # text alone cannot say where
    c = C.rate("x", "MNIST | digits", 1, 2, paper=0.5, tolerance=0.1, measured_at="stand-in")
    assert c.measured_at == "stand-in" and str(S.but("sizes 25 % vs 40 %")).endswith("digits_cnn, sizes 25 % vs 40 %")
    with pytest.raises(ValueError, match="unknown data set 'MNIST'.*valid: .*mnist"):
        C.Setting("MNIST", data="digits", paper_data="MNIST")
    with pytest.raises(ValueError, match="unknown model 'resnet-50'.*valid: .*resnet50"):
        C.Setting("ImageNet", data="photos", paper_data="imagenet", paper_model="resnet-50")


def test_estimate_checks_its_interval():
    c = C.estimate("AUC", S, 0.8, (0.7, 0.9), 50, paper=0.9, tolerance=0.05, estimator="DeLong")
    assert c.verdict == "reproduced" and c.estimator == "DeLong"
    with pytest.raises(ValueError, match="outside"):
        C.estimate("AUC", S, 0.95, (0.7, 0.9), 50, paper=0.9, tolerance=0.05, estimator="DeLong")


def test_frame_shows_interval_n_and_reasons():
    rows = [C.rate("a", S, 55, 60, paper=0.94, tolerance=0.1),
            C.not_measured("b", S, "no successful adversarial image", paper="> 0")]
    df = C.frame(rows)
    assert list(df.columns) == ["claim", "setting", "measured at", "paper", "ours", "95 % interval", "n", "verdict",
                                "note"]
    assert df.loc[0, "paper"] == "0.94 ± 0.1" and df.loc[0, "95 % interval"] == "[0.819, 0.964]"
    assert df.loc[1, "paper"] == "> 0" and df.loc[1, "note"] == "no successful adversarial image"
    assert report.claims_frame(rows).equals(df)  # the old helper shows new records the new way


# --------------------------------------------------------------------------- records, metrics file, summary


def _claims_for_file():
    return [C.rate("benign labels unchanged", S, 55, 60, paper=0.94, tolerance=0.1, section="1-digits"),
            C.difference_of_rates("FGSM > benign", S, (30, 40), (5, 60), paper="> 0", section="1-digits"),
            C.ratio("ratio", S, [0.1, 0.2, 0.3], [0.0, 0.0, 1.0], paper="< 1", paired=False),
            C.not_measured("patch detected", S, "no successful adversarial image", paper=0.99, tolerance=0.05)]


def test_records_round_trip_through_json():
    for c in _claims_for_file():
        assert C.Claim.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_metrics_file_to_summary_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVXAI_BOOK_DIR", str(tmp_path))
    made = _claims_for_file()
    path = report.save_metrics("ch01_x", "t", {}, made, report.Timings({}))
    data = json.loads(path.read_text())  # strict JSON: no NaN or Infinity
    json.loads(path.read_text(), parse_constant=lambda s: pytest.fail(f"non-standard JSON constant {s}"))
    for rec in data["claims"]:
        assert {"n", "interval", "tolerance", "measured_at", "reason", "no_effect", "estimator"} <= set(rec)
    assert data["claims"][2]["interval"][1] is None  # unbounded above
    df = summary.collect_claims(tmp_path, ["ch01_x"])
    assert df.n[:3].tolist() == [c.n for c in made[:3]] and df.n.isna().tolist() == [False] * 3 + [True]
    assert df.interval[0] == pytest.approx(made[0].interval) and df.interval[2][1] == math.inf
    assert df.interval[3] is None and df.reason[3] == "no successful adversarial image"
    assert list(df.paper) == [0.94, "> 0", "< 1", 0.99] and df.tolerance[0] == 0.1
    assert list(df.verdict) == [c.verdict for c in made] and set(df.measured_at) == {"stand-in"}
    assert df.link[0] == "ch01_x.html#1-digits"
    page = summary.to_html(df)
    assert "[0.819, 0.964]" in page and "<td>60</td>" in page and "0.94 ± 0.1" in page and "∞]" in page
    status = summary.chapter_status(tmp_path, ["ch01_x"]).set_index("chapter")
    assert status.loc["ch01_x", "inconclusive"] == 1 and status.loc["ch01_x", "not measured"] == 1
    assert summary.verdict_counts(df)["inconclusive"] == 1


def test_claim_objects_and_their_dicts_make_the_same_summary_rows():
    made = _claims_for_file()
    import dataclasses

    assert summary.claim_rows("ch06_x", made) == summary.claim_rows("ch06_x", [dataclasses.asdict(c) for c in made])


def test_old_metrics_files_still_read(tmp_path):
    old = {"chapter": "ch01_x", "title": "t", "metrics": {}, "timings": {}, "parameters": {},
           "claims": [{"claim": "benign kept", "setting": "MNIST | digits", "paper": 0.94, "ours": 0.9,
                       "verdict": "reproduced", "section": "", "note": "n=10"},
                      {"claim": "patch", "setting": "s", "paper": "> 0", "ours": None, "verdict": "not measured",
                       "section": "", "note": ""}]}
    (tmp_path / "ch01_x.metrics.json").write_text(json.dumps(old))
    df = summary.collect_claims(tmp_path, ["ch01_x"])
    assert df.n.isna().all() and df.interval.isna().all() and list(df.measured_at) == ["unknown", "unknown"]
    assert df.ours[0] == 0.9 and df.reason[1] == "no reason recorded"
    page = summary.to_html(df)
    assert "<td>-</td>" in page and "benign kept" in page
    text = summary.trust_paragraph(df)
    assert "2 claims come from metrics files that do not record where they were measured" in text
    assert "The one measured claim records no n and no interval" in text


def test_deprecated_claims_are_written_with_every_field(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVXAI_BOOK_DIR", str(tmp_path))
    path = report.save_metrics("ch01_x", "t", {}, [report.Claim("a", "s", 1.0, 0.9, "reproduced")])
    rec = json.loads(path.read_text())["claims"][0]
    assert rec["n"] is None and rec["interval"] is None and rec["measured_at"] == "unknown"
    assert rec["confidence"] is None and rec["paper"] == 1.0 and rec["verdict"] == "reproduced"
    with pytest.raises(TypeError, match="advxai.claims.Claim"):
        report.save_metrics("ch01_x", "t", {}, [{"claim": "a dict"}])


# --------------------------------------------------------------------------- "How far to trust this"


def test_trust_paragraph_counts_from_the_records(tmp_path):
    paper_setting = C.Setting("ImageNet", data="imagenet", model="resnet50", paper_data="imagenet",
                              paper_model="resnet50", profile="paper")
    smaller = C.Setting("ImageNet", data="imagenet", model="resnet50", paper_data="imagenet",
                        paper_model="resnet50", profile="quick")
    made = [C.rate("A", paper_setting, 900, 1000, paper=0.9, tolerance=0.05),       # [0.881, 0.917]
            C.rate("B", smaller, 5, 8, paper=0.94, tolerance=0.1),                  # [0.306, 0.863]
            C.rate("C", S, 30, 40, paper="> 0.9", no_effect=0.05),                  # [0.598, 0.858]
            C.difference_of_rates("D", S, (4, 6), (1, 6), paper=0.53, tolerance=0.1),  # [-0.0403, 0.773]: widest
            C.not_measured("E", S, "no successful adversarial image", paper=0.5, tolerance=0.1),
            C.not_measured("F", S, "no successful adversarial image", paper=0.5, tolerance=0.1),
            C.not_measured("G", S, "missing data", paper=0.5, tolerance=0.1)]
    rows = summary.claim_rows("ch01_x", made[:4]) + summary.claim_rows("ch03_y", made[4:])
    import pandas as pd

    missing = summary.collect_claims(tmp_path, ["ch05_z"])
    df = pd.concat([pd.DataFrame(rows, columns=summary.COLUMNS), missing], ignore_index=True)
    text = summary.trust_paragraph(df, widest=2)
    assert text.startswith("**How far to trust this.** The book checks 7 claims from 2 chapters (1 chapter not run "
                           "here: ch05).")
    assert ("Of these, 1 was measured at the paper's own setting (its data, model and sizes), 1 on the paper's data "
            "set with another model or at a smaller size, and 5 on the embedded stand-ins.") in text
    assert "3 claims could not be measured (the most common reason, 2 of them: no successful adversarial image)." in text
    # n of the measured claims: 1000, 8, 40, 12 -> median 26
    assert "rest on a median of 26 images or pairs (from 8 to 1000)." in text
    assert "“D” (ch01, [-0.0403, 0.773]); “B” (ch01, [0.306, 0.863])." in text
    # A (width 0.036, tolerance 0.05) is inside its band; B and D are wider than 0.2; C has no tolerance
    assert "Value claims whose interval is wider than their whole tolerance band (twice the tolerance): 2 of 3;" in text
    assert "Verdicts: 2 reproduced, 1 same direction, 1 inconclusive, 0 not reproduced, 3 not measured." in text


# --------------------------------------------------------------------------- the book page


def _page_examples():
    text = (BOOK / "verdicts.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(rows) >= 10
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in rows]


@pytest.mark.parametrize("row", _page_examples(), ids=lambda r: f"case {r[0]}")
def test_the_book_pages_worked_examples_are_what_the_code_gives(row):
    _, claim, paper, tol, r, data, ours, interval, verdict = row
    paper = paper if paper.startswith(("<", ">")) else float(paper)
    tol = None if tol == "–" else float(tol)
    r = None if r == "–" else float(r)
    groups = [tuple(int(v) for v in g.split("/")) for g in re.split(r"\s+[−-]\s+", data)]
    if any(n == 0 for _, n in groups):
        c = C.difference_of_rates(claim, S, *groups, paper=paper, tolerance=tol, no_effect=r)
        assert c.verdict == verdict == "not measured" and ours == interval == "–"
        return
    if len(groups) == 1:
        c = C.rate(claim, S, *groups[0], paper=paper, tolerance=tol, no_effect=r)
    else:
        c = C.difference_of_rates(claim, S, *groups, paper=paper, tolerance=tol, no_effect=r)
    assert c.verdict == verdict
    assert c.ours == pytest.approx(float(ours), abs=5e-4)
    lo, hi = (float(v) for v in interval.strip("[]").split(","))
    assert c.interval[0] == pytest.approx(lo, abs=5e-3) and c.interval[1] == pytest.approx(hi, abs=5e-3)


def test_the_book_page_states_the_codes_constants():
    text = (BOOK / "verdicts.md").read_text()
    assert f"{C.DEFAULT_RESAMPLES:,}" in text and "95 %" in text
    verdicts_on_page = set(re.findall(r"\*\*(reproduced|inconclusive|same direction|not reproduced|not measured)\*\*",
                                      text))
    assert verdicts_on_page == set(C.VERDICTS)
