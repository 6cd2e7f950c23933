import json

from advxai import report, summary


def _write(folder, monkeypatch, chapter, claims, profile="smoke"):
    monkeypatch.setenv("ADVXAI_BOOK_DIR", str(folder))
    path = report.save_metrics(chapter, f"Title of {chapter}", {"x": 1}, claims, report.Timings({"a": 2.0}))
    data = json.loads(path.read_text())
    data["run"] = {"profile": profile, "seconds": 12.5}
    path.write_text(json.dumps(data))


def test_claims_of_every_chapter_and_missing_chapters_listed_as_not_run(tmp_path, monkeypatch):
    c1 = [report.Claim("benign labels kept", "MNIST | digits", 0.94, 0.9, "reproduced", "1-digits", "n=10"),
          report.Claim("FGSM detected", "MNIST | digits", 0.72, 0.2, "not reproduced", "", "")]
    c3 = [report.Claim("ADV² ASR", "ResNet | shapes", 1.0, 0.875, "same direction", "2-asr")]
    _write(tmp_path, monkeypatch, "ch01_causal", c1)
    _write(tmp_path, monkeypatch, "ch03_adv2", c3)
    chapters = ["ch01_causal", "ch02_heat", "ch03_adv2"]
    df = summary.collect_claims(tmp_path, chapters, profile="smoke")
    assert list(df.chapter) == ["ch01_causal", "ch01_causal", "ch02_heat", "ch03_adv2"]
    assert list(df.verdict) == ["reproduced", "not reproduced", "not run", "same direction"]
    missing = df[df.chapter == "ch02_heat"].iloc[0]
    assert missing.command == f"advxai run ch02 --profile smoke --output-dir {tmp_path}"
    assert df.iloc[0].link == "ch01_causal.html#1-digits" and df.iloc[1].link == "ch01_causal.html"
    assert df.iloc[0].paper == 0.94 and df.iloc[0].ours == 0.9
    assert summary.verdict_counts(df) == {"not reproduced": 1, "not run": 1, "reproduced": 1, "same direction": 1}
    page = summary.to_html(df, "All claims")
    assert '<a href="ch01_causal.html#1-digits">ch01</a>' in page
    assert "advxai run ch02 --profile smoke" in page and "ADV²" in page
    status = summary.chapter_status(tmp_path, chapters).set_index("chapter")
    assert status.loc["ch02_heat", "status"] == "not run" and status.loc["ch01_causal", "claims"] == 2
    assert status.loc["ch01_causal", "reproduced"] == 1 and status.loc["ch03_adv2", "seconds"] == 12.5


def test_no_chapter_run_is_not_an_error(tmp_path):
    df = summary.collect_claims(tmp_path / "empty", ["ch01_x"])
    assert len(df) == 1 and df.verdict[0] == "not run"


def test_a_broken_metrics_file_says_what_to_do(tmp_path):
    (tmp_path / "ch01_x.metrics.json").write_text("{not json")
    try:
        summary.collect_claims(tmp_path, ["ch01_x"])
    except ValueError as exc:
        assert "advxai run ch01" in str(exc)
    else:
        raise AssertionError("a broken metrics file must fail")
