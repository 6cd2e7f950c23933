"""The GPU check's results as JSON: what ran where, how fast, and which speed goal is met.

    python benchmarks/gpu_report.py env --device cuda --out env.json
    python benchmarks/gpu_report.py compare --reference ref.metrics.json --run run.metrics.json --out quick.json
    python benchmarks/gpu_report.py summarize --work <step folder> --out gpu-<date>.json [--tiny]

``benchmarks/run_gpu.sh`` calls these; the benchmark scripts write their rows with :func:`write_json`.
The goals (all per image, ResNet-50 at 224 px, batched, on a GPU):

* ADV² on PGD at the paper's step counts takes at most 1/20 of the seconds AdvEdge's Table III reports
  (GRAD 32.7 s, CAM 15.4 s, MASK 189 s, RTS 8.8 s);
* PGD, Integrated Gradients and LRP take at most as long as torchattacks', captum's and zennit's on the
  same GPU, model and batch (time ratio ours / peer <= 1.0).

A goal is judged only on a GPU run at full size: on a CPU or at ``--tiny`` sizes its status says it
does not apply, whatever the numbers. Nothing here imports torch at module level, so the goal logic
can be tested on made-up timings.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

SCHEMA = 1
# Zhang et al.'s Table 11: (warm-start steps, ADV² steps) per interpreter.
PAPER_STEPS = {"grad": (300, 704), "cam": (400, 1200), "rts": (300, 1000), "mask": (400, 1000)}
# AdvEdge's Table III: seconds per image of ADV² on PGD against each interpreter, ResNet-50.
PAPER_SECONDS = {"grad": 32.7, "cam": 15.4, "mask": 189.0, "rts": 8.8}
SPEEDUP_GOAL = 20.0  # ours at most 1/20 of the papers' published time
PEER_RATIO_GOAL = 1.0  # ours / peer
PEER_GOALS = {"pgd": "torchattacks PGD", "ig": "captum IG", "lrp": "zennit LRP"}
NOT_A_GPU_RUN = "not applicable (not a GPU run)"
TINY_RUN = "not applicable (tiny sizes)"
# Tolerances for comparing a chapter's numbers between two devices: a number counts as the same when
# |a - b| <= ATOL + RTOL * |a| (probabilities and rates differ by whole images at small n, so the
# verdicts are the primary comparison and these only flag what moved).
RTOL, ATOL = 0.05, 1e-3


# --------------------------------------------------------------------------- files


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON through a temporary file renamed into place, so a run killed
    mid-write leaves the previous version, never half a file. NaN and infinities become ``null``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(payload), indent=2, sort_keys=False, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """One JSON object per line (the shell script appends them); a missing file is an empty list, and
    a damaged line is kept as ``{"unreadable": <text>}`` instead of hiding the rest."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"unreadable": line})
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _clean(value.item())
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    return None


# --------------------------------------------------------------------------- environment


def source_digest(root: str | os.PathLike) -> str:
    """A digest of the code a result depends on (the package, its profiles and the chapters), so two
    runs, or a run and its reference, can be told to come from the same source even where git is absent."""
    root = Path(root)
    h = hashlib.sha256()
    files = sorted([*root.glob("advxai/**/*.py"), *root.glob("advxai/profiles/*.yaml"), *root.glob("chapters/*.py")])
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        h.update(b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str, root: str | os.PathLike = ".") -> dict:
    """Where the check ran: device name, torch / CUDA / cuDNN versions, driver, Python, source."""
    import torch

    root = Path(root)
    env = {
        "device": device,
        "torch": torch.__version__,
        "torch_pinned": torch.__version__.split("+")[0] == "2.14.1",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "commit": _git_commit(root),
        "source_digest": source_digest(root),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:
        env["torchvision"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   compute_capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count)
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            env["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    else:
        env["gpu"] = None
    from advxai.accelerate import tf32_state

    env["fp32_default"] = tf32_state()  # PyTorch's own TF32 defaults, before any benchmark sets them
    return env


# --------------------------------------------------------------------------- goals


def _applicable(on_gpu: bool, tiny: bool) -> str | None:
    """None when a goal can be judged, else the reason it cannot."""
    if not on_gpu:
        return NOT_A_GPU_RUN
    if tiny:
        return TINY_RUN
    return None


def adv2_goals(rows: Iterable[dict], on_gpu: bool, tiny: bool = False, model: str = "resnet50") -> list[dict]:
    """One goal per interpreter: ADV² seconds per image at the paper's steps <= the paper's / 20.

    ``rows`` are ``bench_adv2.py --json`` rows; only those of ``model`` (the paper's ResNet-50) count."""
    goals = []
    reason = _applicable(on_gpu, tiny)
    for row in rows:
        interp = row.get("interpreter")
        if interp not in PAPER_SECONDS or not str(row.get("model", "")).startswith(model):
            continue
        value = _number(row.get("s_per_image_at_paper_steps"))
        paper = PAPER_SECONDS[interp]
        target = paper / SPEEDUP_GOAL
        goal = {"goal": f"ADV² {interp.upper()} s/image at the paper's steps <= {paper:g} / {SPEEDUP_GOAL:g}",
                "kind": "adv2", "interpreter": interp, "model": row.get("model"), "batch": row.get("batch"),
                "value": value, "target": target, "paper_s_per_image": paper,
                "ratio_to_paper": None if value is None else value / paper,
                "speedup_over_paper": None if not value else paper / value}
        goal["status"] = reason or ("no measurement" if value is None else "met" if value <= target else "not met")
        goals.append(goal)
    return goals


def peer_goals(rows: Iterable[dict], on_gpu: bool, tiny: bool = False, model: str = "resnet50") -> list[dict]:
    """One goal per method named in :data:`PEER_GOALS`: seconds ours / peer <= 1.0, same model and batch.

    ``rows`` hold ``method`` (``pgd``, ``ig``, ``lrp``), ``ours_s_per_image``, ``peer_s_per_image``."""
    goals = []
    reason = _applicable(on_gpu, tiny)
    for row in rows:
        method = row.get("method")
        if method not in PEER_GOALS or not str(row.get("model", "")).startswith(model):
            continue
        ours, peer = _number(row.get("ours_s_per_image")), _number(row.get("peer_s_per_image"))
        ratio = ours / peer if ours is not None and peer else None
        goal = {"goal": f"{method.upper()} time / {PEER_GOALS[method]} <= {PEER_RATIO_GOAL:g}", "kind": "peer",
                "method": method, "peer": row.get("peer", PEER_GOALS[method]), "model": row.get("model"),
                "batch": row.get("batch"), "value": ratio, "target": PEER_RATIO_GOAL,
                "ours_s_per_image": ours, "peer_s_per_image": peer}
        goal["status"] = reason or ("no measurement" if ratio is None else "met" if ratio <= PEER_RATIO_GOAL else "not met")
        goals.append(goal)
    return goals


def knob_verdicts(rows: Iterable[dict], on_gpu: bool, tiny: bool = False) -> list[dict]:
    """Per speed setting: kept only when every workload it ran stayed within its tolerance of fp32 and
    the setting made the workloads faster in total; else not kept, with the reason. A workload that
    failed under the setting (``torch.compile`` cannot differentiate twice) or was skipped for time is
    named in the status but does not by itself undo a kept setting.

    ``rows`` are ``bench_knobs.py --json`` rows: ``knob``, ``workload``, ``baseline_s``, ``knob_s``,
    ``diff``, ``tolerance``, ``error``."""
    by_knob: dict[str, list[dict]] = {}
    for row in rows:
        by_knob.setdefault(row["knob"], []).append(row)
    out = []
    reason = _applicable(on_gpu, tiny)
    for knob, runs in by_knob.items():
        failed = [r["workload"] for r in runs if r.get("error") and not str(r["error"]).startswith("skipped")]
        skipped = [r["workload"] for r in runs if str(r.get("error") or "").startswith("skipped")]
        measured = [r for r in runs if not r.get("error") and _number(r.get("knob_s")) is not None
                    and _number(r.get("baseline_s")) is not None]
        outside = [r["workload"] for r in measured
                   if _number(r.get("diff")) is None or r["diff"] > r["tolerance"]]
        base = sum(r["baseline_s"] for r in measured)
        fast = sum(r["knob_s"] for r in measured)
        speedup = base / fast if measured and fast > 0 else None
        verdict = {"knob": knob, "workloads": [r["workload"] for r in runs], "failed": failed, "skipped": skipped,
                   "outside_tolerance": outside, "baseline_s": base if measured else None,
                   "knob_s": fast if measured else None, "speedup": speedup}
        if not measured:
            verdict.update(kept=False, status="not kept: nothing measured" + (f" ({', '.join(failed)} failed)" if failed else "")
                           + (f" ({', '.join(skipped)} skipped)" if skipped else ""))
        elif outside:
            verdict.update(kept=False, status=f"not kept: outside tolerance on {', '.join(outside)}")
        elif speedup is None or speedup <= 1.0:
            verdict.update(kept=False, status="not kept: not faster")
        elif reason:
            verdict.update(kept=False, status=f"within tolerance, {speedup:.2f}x; {reason}")
        else:
            verdict.update(kept=True, status=f"kept: {speedup:.2f}x, within tolerance"
                           + (f" (failed on {', '.join(failed)})" if failed else "")
                           + (f" (not measured on {', '.join(skipped)}: time budget)" if skipped else ""))
        out.append(verdict)
    return out


# --------------------------------------------------------------------------- chapter metrics: CPU vs GPU


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists -> ``{"a/b/0": leaf}``."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}/{i}" if prefix else str(i)))
    else:
        out[prefix] = value
    return out


def _claim_key(claim: dict) -> str:
    return f"{claim.get('claim')} | {claim.get('setting', '')}"


def _same(a: Any, b: Any, rtol: float, atol: float) -> bool:
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return abs(x - y) <= atol + rtol * abs(x)
    return a == b


def compare_metrics(reference: dict, run: dict, rtol: float = RTOL, atol: float = ATOL, limit: int = 40) -> dict:
    """What differs between a chapter's metrics file from one device (the reference) and another.

    Claims are matched by their text and setting; each verdict is compared, and the number behind it
    with the tolerance. Every other number under ``metrics`` is compared the same way. Parameters that
    differ besides the device are listed first: they make any other difference expected."""
    ref_params = dict(reference.get("run", {}).get("parameters", {}) or {})
    run_params = dict(run.get("run", {}).get("parameters", {}) or {})
    ref_params.pop("device", None)
    run_params.pop("device", None)
    param_diff = sorted(k for k in set(ref_params) | set(run_params) if ref_params.get(k) != run_params.get(k))

    ref_claims = {_claim_key(c): c for c in reference.get("claims", [])}
    run_claims = {_claim_key(c): c for c in run.get("claims", [])}
    changed, same_verdict, value_moved = [], 0, 0
    for key in ref_claims.keys() & run_claims.keys():
        a, b = ref_claims[key], run_claims[key]
        entry = {"claim": key, "reference_verdict": a.get("verdict"), "run_verdict": b.get("verdict"),
                 "reference_ours": a.get("ours"), "run_ours": b.get("ours")}
        if a.get("verdict") == b.get("verdict"):
            same_verdict += 1
            if not _same(a.get("ours"), b.get("ours"), rtol, atol):
                value_moved += 1
                entry["change"] = "number moved, same verdict"
                changed.append(entry)
        else:
            entry["change"] = "verdict changed"
            changed.append(entry)
    changed.sort(key=lambda e: e["change"] != "verdict changed")

    ref_m, run_m = flatten(reference.get("metrics", {})), flatten(run.get("metrics", {}))
    differ = []
    numeric = 0
    for key in sorted(ref_m.keys() & run_m.keys()):
        a, b = ref_m[key], run_m[key]
        if _number(a) is not None or _number(b) is not None:
            numeric += 1
        if not _same(a, b, rtol, atol):
            x, y = _number(a), _number(b)
            rel = abs(x - y) / max(abs(x), atol) if x is not None and y is not None else None
            differ.append({"metric": key, "reference": a, "run": b, "relative_difference": rel})
    differ.sort(key=lambda d: -(d["relative_difference"] if d["relative_difference"] is not None else math.inf))
    return {
        "chapter": run.get("chapter") or reference.get("chapter"),
        "tolerance": {"rtol": rtol, "atol": atol},
        "reference": _provenance(reference),
        "run": _provenance(run),
        "same_source": (reference.get("source_digest") is not None
                        and reference.get("source_digest") == run.get("source_digest")),
        "parameters_differing_besides_device": param_diff,
        "claims": {"compared": len(ref_claims.keys() & run_claims.keys()), "same_verdict": same_verdict,
                   "verdict_changed": sum(e["change"] == "verdict changed" for e in changed),
                   "number_moved_same_verdict": value_moved,
                   "only_in_reference": sorted(ref_claims.keys() - run_claims.keys()),
                   "only_in_run": sorted(run_claims.keys() - ref_claims.keys()), "changes": changed},
        "metrics": {"compared": len(ref_m.keys() & run_m.keys()), "numeric": numeric, "differ": len(differ),
                    "only_in_reference": sorted(ref_m.keys() - run_m.keys())[:limit],
                    "only_in_run": sorted(run_m.keys() - ref_m.keys())[:limit], "largest": differ[:limit]},
    }


def _provenance(metrics: dict) -> dict:
    run = metrics.get("run", {}) or {}
    return {"device": (run.get("parameters") or {}).get("device"), "profile": run.get("profile"),
            "seconds": run.get("seconds"), "commit": run.get("commit"), "date": run.get("date"),
            "platform": run.get("platform"), "source_digest": metrics.get("source_digest")}


# --------------------------------------------------------------------------- the summary


def _load(work: Path, name: str) -> dict | None:
    path = work / name
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (json.JSONDecodeError, OSError) as exc:
        return {"unreadable": f"{name}: {exc}"}


def summarize(work: str | os.PathLike, tiny: bool = False) -> dict:
    """Everything the steps of ``run_gpu.sh`` left in ``work`` as one record, with the goals judged.

    Expected (each optional: a failed step leaves its file out): ``env.json``, ``python.json`` (which
    interpreter ran, and why that one), ``steps.jsonl`` (the shell's status lines), ``adv2.json``, ``attacks.json``, ``lrp.json``, ``knobs.json``,
    ``adv2_fast.json``, ``smoke.jsonl`` (one line per chapter) and ``quick.json``."""
    work = Path(work)
    env = _load(work, "env.json") or {}
    on_gpu = bool(env.get("gpu")) and str(env.get("device", "")).startswith("cuda")
    steps = read_jsonl(work / "steps.jsonl")
    record: dict[str, Any] = {"schema": SCHEMA, "tiny": tiny, "environment": env,
                              "python": _load(work, "python.json"), "steps": steps}

    adv2 = _load(work, "adv2.json")
    if adv2 is not None:
        record["adv2"] = {**adv2, "goals": adv2_goals(adv2.get("rows", []), on_gpu, tiny)}
    peers = []
    for name in ("attacks.json", "lrp.json"):
        data = _load(work, name)
        if data is not None:
            record[name[:-5]] = data
            peers.extend(data.get("rows", []))
    peer = peer_goals(peers, on_gpu, tiny)
    knobs = _load(work, "knobs.json")
    if knobs is not None:
        record["knobs"] = {**knobs, "verdicts": knob_verdicts(knobs.get("rows", []), on_gpu, tiny)}
    fast = _load(work, "adv2_fast.json")
    if fast is not None:
        record["adv2_fast"] = {**fast, "goals": adv2_goals(fast.get("rows", []), on_gpu, tiny)}
    chapters = read_jsonl(work / "smoke.jsonl")
    if chapters:
        record["smoke"] = {"chapters": chapters, "passed": sum(c.get("status") == "ok" for c in chapters),
                           "failed": [c.get("chapter") for c in chapters if c.get("status") != "ok"],
                           "seconds": sum(_number(c.get("seconds")) or 0.0 for c in chapters)}
    quick = _load(work, "quick.json")
    if quick is not None:
        record["quick"] = quick

    goals = list(record.get("adv2", {}).get("goals", [])) + peer
    record["goals"] = goals
    record["goals_met"] = sum(g["status"] == "met" for g in goals)
    record["goals_judged"] = sum(g["status"] in ("met", "not met") for g in goals)
    if "adv2_fast" in record:
        record["goals_with_kept_knobs"] = record["adv2_fast"]["goals"]
    return record


def kept_knobs(work: str | os.PathLike, tiny: bool = False) -> list[str]:
    """The single speed settings (not ``combined`` or ``compile``, which are not ``--fast`` flags) the
    knob benchmark in ``work`` kept, in the order of :data:`advxai.accelerate.KNOBS`."""
    work = Path(work)
    env = _load(work, "env.json") or {}
    knobs = _load(work, "knobs.json") or {}
    on_gpu = bool(env.get("gpu")) and str(env.get("device", "")).startswith("cuda")
    kept = {v["knob"] for v in knob_verdicts(knobs.get("rows", []), on_gpu, tiny) if v["kept"]}
    return [k for k in ("tf32", "channels_last", "bf16", "cudnn_benchmark") if k in kept]


def headline(record: dict) -> list[str]:
    """A few lines for the log: the device, each goal's value and status, the smoke and quick results."""
    env = record.get("environment", {})
    lines = [f"device {env.get('gpu') or env.get('device')}, torch {env.get('torch')} (CUDA {env.get('cuda')})"
             + (", tiny sizes" if record.get("tiny") else "")]
    for g in record.get("goals", []):
        value = "-" if g["value"] is None else f"{g['value']:.4g}"
        lines.append(f"  {g['goal']}: {value} (target {g['target']:.4g}) -> {g['status']}")
    for v in record.get("knobs", {}).get("verdicts", []):
        lines.append(f"  knob {v['knob']}: {v['status']}")
    smoke = record.get("smoke")
    if smoke:
        lines.append(f"  smoke: {smoke['passed']}/{len(smoke['chapters'])} chapters passed in {smoke['seconds']:.0f} s"
                     + (f"; failed: {', '.join(map(str, smoke['failed']))}" if smoke["failed"] else ""))
    quick = record.get("quick")
    if quick and "claims" in quick:
        c = quick["claims"]
        lines.append(f"  {quick.get('chapter')} vs the CPU reference: {c['same_verdict']}/{c['compared']} verdicts the same, "
                     f"{quick['metrics']['differ']}/{quick['metrics']['compared']} numbers beyond tolerance")
    for s in record.get("steps", []):
        if s.get("status") != "ok":
            lines.append(f"  step {s.get('step')}: {s.get('status')} (rc {s.get('rc')}, {s.get('seconds')} s)")
    return lines


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("env", help="write the environment record")
    p.add_argument("--device", required=True)
    p.add_argument("--root", default=".")
    p.add_argument("--out", required=True)
    p = sub.add_parser("compare", help="compare a chapter's metrics file with a reference one")
    p.add_argument("--reference", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("stamp", help="add the source digest to a metrics file (a reference made here)")
    p.add_argument("metrics")
    p.add_argument("--root", default=".")
    p = sub.add_parser("kept", help="print the speed settings kept by the knob benchmark, comma-separated")
    p.add_argument("--work", required=True)
    p.add_argument("--tiny", action="store_true")
    p = sub.add_parser("summarize", help="one JSON record of every step's results, goals judged")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "env":
        env = environment(args.device, args.root)
        write_json(args.out, env)
        print(json.dumps(env, indent=1))
    elif args.command == "compare":
        for path in (args.reference, args.run):
            if not Path(path).exists():
                print(f"gpu_report: no metrics file at {path}", file=sys.stderr)
                return 2
        result = compare_metrics(read_json(args.reference), read_json(args.run))
        write_json(args.out, result)
        c, m = result["claims"], result["metrics"]
        print(f"{result['chapter']}: {c['same_verdict']}/{c['compared']} verdicts the same, {c['verdict_changed']} changed; "
              f"{m['differ']}/{m['compared']} numbers beyond rtol {RTOL}; same source: {result['same_source']}")
        for e in c["changes"][:10]:
            print(f"  {e['change']}: {e['claim']}: {e['reference_verdict']} ({e['reference_ours']}) -> "
                  f"{e['run_verdict']} ({e['run_ours']})")
    elif args.command == "stamp":
        data = read_json(args.metrics)
        data["source_digest"] = source_digest(args.root)
        write_json(args.metrics, data)
    elif args.command == "kept":
        print(",".join(kept_knobs(args.work, tiny=args.tiny)))
    elif args.command == "summarize":
        record = summarize(args.work, tiny=args.tiny)
        write_json(args.out, record)
        print("\n".join(headline(record)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
