"""The GPU check's bookkeeping (benchmarks/gpu_report.py) on made-up timings: goals, knob verdicts,
the comparison of a chapter's metrics between devices, the summary record. No benchmark runs here."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("gpu_report", BENCHMARKS / "gpu_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_report"] = module
    spec.loader.exec_module(module)
    return module


def adv2_row(interpreter, at_paper, model="resnet50 (random, 224 px)"):
    return {"model": model, "attack": f"ADV² {interpreter.upper()}", "interpreter": interpreter, "batch": 32,
            "steps": 15, "s_per_image": 0.1, "s_per_image_at_paper_steps": at_paper}


# --------------------------------------------------------------------------- ADV² goals


def test_adv2_goal_is_a_twentieth_of_the_papers_time(report):
    rows = [adv2_row("grad", 32.7 / 20), adv2_row("cam", 0.771), adv2_row("mask", 5.0), adv2_row("rts", 0.5),
            {"model": "resnet50 (random, 224 px)", "attack": "PGD", "interpreter": None,
             "s_per_image_at_paper_steps": 0.2}]
    goals = {g["interpreter"]: g for g in report.adv2_goals(rows, on_gpu=True)}
    assert set(goals) == {"grad", "cam", "mask", "rts"}  # PGD is no goal of its own
    assert goals["grad"]["status"] == "met"  # exactly at the target counts
    assert goals["cam"]["status"] == "not met"  # 15.4 / 20 = 0.77
    assert goals["mask"]["status"] == "met"
    assert goals["rts"]["status"] == "not met"  # 8.8 / 20 = 0.44
    assert goals["mask"]["target"] == pytest.approx(9.45)
    assert goals["mask"]["ratio_to_paper"] == pytest.approx(5.0 / 189)
    assert goals["mask"]["speedup_over_paper"] == pytest.approx(189 / 5.0)


def test_goals_are_not_judged_off_a_gpu_or_at_tiny_sizes(report):
    rows = [adv2_row("grad", 0.01)]
    assert report.adv2_goals(rows, on_gpu=False)[0]["status"] == report.NOT_A_GPU_RUN
    assert report.adv2_goals(rows, on_gpu=True, tiny=True)[0]["status"] == report.TINY_RUN
    peer = [{"model": "resnet50 (random)", "method": "pgd", "ours_s_per_image": 1.0, "peer_s_per_image": 2.0}]
    assert report.peer_goals(peer, on_gpu=False)[0]["status"] == report.NOT_A_GPU_RUN


def test_adv2_goals_only_count_resnet50_and_a_missing_number_is_no_measurement(report):
    rows = [adv2_row("grad", 0.01, model="shapes_resnet"), adv2_row("cam", float("nan"))]
    goals = report.adv2_goals(rows, on_gpu=True)
    assert [g["interpreter"] for g in goals] == ["cam"]
    assert goals[0]["status"] == "no measurement" and goals[0]["value"] is None


# --------------------------------------------------------------------------- peers


def test_peer_goal_is_a_time_ratio_of_at_most_one(report):
    rows = [
        {"model": "resnet50 (random)", "method": "pgd", "ours_s_per_image": 0.010, "peer_s_per_image": 0.010},
        {"model": "resnet50 (random)", "method": "ig", "ours_s_per_image": 0.030, "peer_s_per_image": 0.020},
        {"model": "resnet50 (random)", "method": "lrp", "ours_s_per_image": 0.005, "peer_s_per_image": 0.020},
        {"model": "resnet50 (random)", "method": "fgsm", "ours_s_per_image": 9.0, "peer_s_per_image": 1.0},
        {"model": "digits_cnn", "method": "pgd", "ours_s_per_image": 9.0, "peer_s_per_image": 1.0},
    ]
    goals = {g["method"]: g for g in report.peer_goals(rows, on_gpu=True)}
    assert set(goals) == {"pgd", "ig", "lrp"}  # FGSM and other models are recorded, not goals
    assert goals["pgd"]["status"] == "met" and goals["pgd"]["value"] == pytest.approx(1.0)
    assert goals["ig"]["status"] == "not met" and goals["ig"]["value"] == pytest.approx(1.5)
    assert goals["lrp"]["status"] == "met" and goals["lrp"]["value"] == pytest.approx(0.25)


def test_a_peer_that_did_not_run_is_no_measurement(report):
    rows = [{"model": "resnet50 (random)", "method": "pgd", "ours_s_per_image": 0.01, "peer_s_per_image": None}]
    assert report.peer_goals(rows, on_gpu=True)[0]["status"] == "no measurement"


# --------------------------------------------------------------------------- knobs


def knob_row(knob, workload, base, fast, diff, tol=0.01, error=None):
    return {"knob": knob, "workload": workload, "baseline_s": base, "knob_s": fast, "diff": diff,
            "tolerance": tol, "error": error}


def test_a_knob_is_kept_only_within_tolerance_and_faster(report):
    rows = [
        knob_row("tf32", "forward", 1.0, 0.5, 0.001), knob_row("tf32", "pgd", 2.0, 1.0, 0.005),
        knob_row("bf16", "forward", 1.0, 0.3, 0.002), knob_row("bf16", "pgd", 2.0, 0.5, 0.2),  # fast, but off
        knob_row("channels_last", "forward", 1.0, 1.2, 0.0), knob_row("channels_last", "pgd", 2.0, 2.1, 0.0),
    ]
    verdicts = {v["knob"]: v for v in report.knob_verdicts(rows, on_gpu=True)}
    assert verdicts["tf32"]["kept"] and verdicts["tf32"]["speedup"] == pytest.approx(2.0)
    assert not verdicts["bf16"]["kept"] and verdicts["bf16"]["outside_tolerance"] == ["pgd"]
    assert not verdicts["channels_last"]["kept"] and "not faster" in verdicts["channels_last"]["status"]


def test_nothing_is_claimed_faster_off_a_gpu(report):
    rows = [knob_row("tf32", "forward", 1.0, 0.1, 0.0)]
    verdict = report.knob_verdicts(rows, on_gpu=False)[0]
    assert not verdict["kept"] and report.NOT_A_GPU_RUN in verdict["status"]


def test_failed_and_skipped_workloads_are_named_not_hidden(report):
    rows = [
        knob_row("compile", "forward", 1.0, 0.5, 0.0),
        knob_row("compile", "adv2_grad", 2.0, None, None, error="NotImplementedError: double backward"),
        knob_row("compile", "ig", 2.0, None, None, error="skipped: time budget spent"),
        knob_row("bf16", "forward", 1.0, None, None, error="RuntimeError: no kernel"),
    ]
    verdicts = {v["knob"]: v for v in report.knob_verdicts(rows, on_gpu=True)}
    assert verdicts["compile"]["kept"]
    assert verdicts["compile"]["failed"] == ["adv2_grad"] and verdicts["compile"]["skipped"] == ["ig"]
    assert "adv2_grad" in verdicts["compile"]["status"] and "ig" in verdicts["compile"]["status"]
    assert not verdicts["bf16"]["kept"] and "nothing measured" in verdicts["bf16"]["status"]


def test_a_missing_difference_counts_as_outside_tolerance(report):
    rows = [knob_row("tf32", "forward", 1.0, 0.5, None)]
    assert not report.knob_verdicts(rows, on_gpu=True)[0]["kept"]


def test_kept_knobs_lists_single_settings_in_a_fixed_order(report, tmp_path):
    report.write_json(tmp_path / "env.json", {"device": "cuda", "gpu": "NVIDIA H200"})
    rows = [knob_row(k, "forward", 1.0, 0.5, 0.0) for k in ("cudnn_benchmark", "combined", "tf32", "compile")]
    rows.append(knob_row("bf16", "forward", 1.0, 0.5, 0.5))
    report.write_json(tmp_path / "knobs.json", {"rows": rows})
    assert report.kept_knobs(tmp_path) == ["tf32", "cudnn_benchmark"]
    report.write_json(tmp_path / "env.json", {"device": "cpu", "gpu": None})
    assert report.kept_knobs(tmp_path) == []


# --------------------------------------------------------------------------- comparing a chapter's metrics


def metrics_file(device, claims, metrics, seed=0, digest="abc"):
    return {"chapter": "ch02_heat_and_blur", "claims": claims, "metrics": metrics, "source_digest": digest,
            "run": {"profile": "quick", "parameters": {"device": device, "seed": seed}, "seconds": 10.0,
                    "commit": "0000000", "date": "2026-01-01 00:00", "platform": "Linux"}}


def claim(text, ours, verdict):
    return {"claim": text, "setting": "digits", "paper": 0.9, "ours": ours, "verdict": verdict}


def test_compare_reports_changed_verdicts_moved_numbers_and_differing_metrics(report):
    ref = metrics_file("cpu", [claim("a", 0.90, "reproduced"), claim("b", 0.50, "not reproduced"),
                               claim("c", 0.40, "same direction"), claim("only ref", 1, "reproduced")],
                       {"acc": {"digits": 0.95, "photos": 0.5}, "n": 32, "name": "x", "curve": [0.1, 0.2]})
    run = metrics_file("cuda", [claim("a", 0.9001, "reproduced"), claim("b", 0.80, "reproduced"),
                                claim("c", 0.30, "same direction"), claim("only run", 1, "reproduced")],
                       {"acc": {"digits": 0.95, "photos": 0.6}, "n": 32, "name": "y", "curve": [0.1, 0.2]})
    out = report.compare_metrics(ref, run)
    c = out["claims"]
    assert c["compared"] == 3 and c["same_verdict"] == 2 and c["verdict_changed"] == 1
    assert c["number_moved_same_verdict"] == 1  # c: 0.40 -> 0.30; a moved within tolerance
    assert c["changes"][0]["change"] == "verdict changed" and c["changes"][0]["claim"].startswith("b")
    assert c["only_in_reference"] == ["only ref | digits"] and c["only_in_run"] == ["only run | digits"]
    m = out["metrics"]
    assert m["compared"] == 5 and m["differ"] == 2
    assert {d["metric"] for d in m["largest"]} == {"acc/photos", "name"}
    assert m["largest"][0]["metric"] == "name"  # a non-number that differs sorts first, then by size
    assert out["parameters_differing_besides_device"] == []  # the device alone is expected to differ
    assert out["same_source"] is True
    assert out["reference"]["device"] == "cpu" and out["run"]["device"] == "cuda"


def test_compare_flags_other_parameters_and_another_source(report):
    ref = metrics_file("cpu", [], {}, seed=0, digest="abc")
    run = metrics_file("cuda", [], {}, seed=1, digest="def")
    out = report.compare_metrics(ref, run)
    assert out["parameters_differing_besides_device"] == ["seed"]
    assert out["same_source"] is False


def test_flatten_paths(report):
    flat = report.flatten({"a": {"b": 1, "c": [{"d": 2}, {"d": 3}]}, "e": [1, 2]})
    assert flat == {"a/b": 1, "a/c/0/d": 2, "a/c/1/d": 3, "e": [1, 2]}


# --------------------------------------------------------------------------- files and the summary


def test_write_json_is_strict_json_and_replaces_in_one_step(report, tmp_path):
    path = tmp_path / "sub" / "x.json"
    report.write_json(path, {"nan": float("nan"), "inf": math.inf, "t": (1, 2)})
    text = path.read_text()
    assert json.loads(text) == {"nan": None, "inf": None, "t": [1, 2]}
    assert "NaN" not in text and "Infinity" not in text
    report.write_json(path, {"v": 2})
    assert report.read_json(path) == {"v": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left behind


def test_read_jsonl_keeps_a_damaged_line_visible(report, tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": "env", "status": "ok"}\n{"step": "adv2", "sta\n\n')
    rows = report.read_jsonl(path)
    assert rows[0] == {"step": "env", "status": "ok"} and "unreadable" in rows[1] and len(rows) == 2
    assert report.read_jsonl(tmp_path / "missing.jsonl") == []


def fabricate_gpu_run(report, folder: Path, gpu=True):
    report.write_json(folder / "env.json", {"device": "cuda" if gpu else "cpu", "gpu": "NVIDIA H200" if gpu else None,
                                            "torch": "2.11.0", "cuda": "13.0"})
    (folder / "steps.jsonl").write_text(
        '{"step": "setup", "status": "ok", "rc": 0, "seconds": 20, "limit_s": 0}\n'
        '{"step": "adv2", "status": "ok", "rc": 0, "seconds": 40, "limit_s": 100}\n'
        '{"step": "lrp", "status": "timed out", "rc": 124, "seconds": 45, "limit_s": 45}\n')
    report.write_json(folder / "adv2.json", {"benchmark": "adv2", "rows": [adv2_row("grad", 1.0), adv2_row("cam", 2.0)]})
    report.write_json(folder / "attacks.json", {"rows": [
        {"model": "resnet50 (random)", "method": "pgd", "ours_s_per_image": 0.9, "peer_s_per_image": 1.0}]})
    report.write_json(folder / "knobs.json", {"rows": [knob_row("tf32", "forward", 1.0, 0.5, 0.001)]})
    (folder / "smoke.jsonl").write_text(
        '{"chapter": "ch00_data_and_models", "status": "ok", "rc": 0, "seconds": 30, "limit_s": 200}\n'
        '{"chapter": "ch01_causal_attribution", "status": "failed", "rc": 1, "seconds": 12, "limit_s": 170}\n'
        '{"chapter": "ch02_heat_and_blur", "status": "skipped: time budget spent", "rc": 0, "seconds": 0, "limit_s": 0}\n')


def test_summary_judges_every_goal_and_names_failures(report, tmp_path):
    fabricate_gpu_run(report, tmp_path)
    record = report.summarize(tmp_path)
    statuses = {g["goal"].split(" s/image")[0].split(" time")[0]: g["status"] for g in record["goals"]}
    assert statuses == {"ADV² GRAD": "met", "ADV² CAM": "not met", "PGD": "met"}
    assert record["goals_met"] == 2 and record["goals_judged"] == 3
    assert record["knobs"]["verdicts"][0]["kept"]
    assert record["smoke"]["passed"] == 1
    assert record["smoke"]["failed"] == ["ch01_causal_attribution", "ch02_heat_and_blur"]
    assert "lrp" not in record and "quick" not in record  # steps that left no file
    lines = "\n".join(report.headline(record))
    assert "step lrp: timed out" in lines and "1/3 chapters passed" in lines and "NVIDIA H200" in lines


def test_summary_of_a_cpu_run_judges_nothing(report, tmp_path):
    fabricate_gpu_run(report, tmp_path, gpu=False)
    record = report.summarize(tmp_path)
    assert record["goals_judged"] == 0 and record["goals_met"] == 0
    assert {g["status"] for g in record["goals"]} == {report.NOT_A_GPU_RUN}


def test_summary_of_an_empty_folder_is_a_record_not_an_error(report, tmp_path):
    record = report.summarize(tmp_path, tiny=True)
    assert record["goals"] == [] and record["steps"] == [] and record["tiny"] is True
    report.write_json(tmp_path / "out.json", record)


def test_the_command_line_writes_the_summary_and_the_comparison(report, tmp_path, capsys):
    fabricate_gpu_run(report, tmp_path)
    assert report.main(["summarize", "--work", str(tmp_path), "--out", str(tmp_path / "gpu.json")]) == 0
    assert report.read_json(tmp_path / "gpu.json")["goals_met"] == 2
    assert report.main(["kept", "--work", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("tf32")
    ref, run = tmp_path / "ref.json", tmp_path / "run.json"
    report.write_json(ref, metrics_file("cpu", [claim("a", 0.9, "reproduced")], {"x": 1.0}))
    report.write_json(run, metrics_file("cuda", [claim("a", 0.2, "not reproduced")], {"x": 1.0}))
    assert report.main(["compare", "--reference", str(ref), "--run", str(run), "--out", str(tmp_path / "q.json")]) == 0
    assert report.read_json(tmp_path / "q.json")["claims"]["verdict_changed"] == 1
    assert report.main(["compare", "--reference", str(tmp_path / "none.json"), "--run", str(run),
                        "--out", str(tmp_path / "q2.json")]) == 2
    assert "no metrics file" in capsys.readouterr().err


def test_source_digest_follows_the_code(report, tmp_path):
    (tmp_path / "advxai").mkdir()
    (tmp_path / "chapters").mkdir()
    (tmp_path / "advxai" / "m.py").write_text("x = 1\n")
    (tmp_path / "chapters" / "ch01.py").write_text("# %%\n")
    first = report.source_digest(tmp_path)
    assert report.source_digest(tmp_path) == first
    (tmp_path / "chapters" / "ch01.py").write_text("# %% changed\n")
    assert report.source_digest(tmp_path) != first


def test_the_paper_numbers_match_advedge_table_iii(report):
    assert report.PAPER_SECONDS == {"grad": 32.7, "cam": 15.4, "mask": 189.0, "rts": 8.8}
    assert report.SPEEDUP_GOAL == 20 and report.PEER_RATIO_GOAL == 1.0
