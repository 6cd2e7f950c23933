"""Training time and test accuracy of the embedded models trained here, each from an empty cache entry.

    python benchmarks/bench_train.py [--models mnist_cnn mnist_vgg] [--budget full|smoke] [--device cpu]
                                     [--threads 2] [--results benchmarks/results]

Every model is trained in a fresh temporary ``$ADVXAI_CACHE`` (so nothing cached is reused, and the
user's cache is left alone); MNIST is read from where it already is (``$ADVXAI_MNIST`` or the usual
cache). Prints a table and writes ``train-<UTC time>.json`` (each model's seconds, epochs, accuracy,
and the machine: threads, load average before and after) to the results folder. Nothing is asserted:
timings belong here, not in tests. Training times depend on the other work on the machine; the load
averages in the JSON say how busy it was.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from advxai.fetch import default_mnist_root
from advxai.models import get_model
from advxai.models.embedded import TRAINED
from advxai.runtime import resolve_device
from timing import synchronizer  # benchmarks/timing.py


def train_one(name: str, budget: str, device: torch.device) -> dict:
    """Train ``name`` from nothing in a temporary cache; its wall time, epochs and test accuracy."""
    sync = synchronizer(device)
    previous = os.environ.get("ADVXAI_CACHE")
    with tempfile.TemporaryDirectory(prefix="advxai-bench-train-") as cache:
        os.environ["ADVXAI_CACHE"] = cache
        try:
            load_before = os.getloadavg()[0]
            sync()
            t0 = time.perf_counter()
            model = get_model(name, device=str(device), train_budget=budget)
            sync()
            seconds = time.perf_counter() - t0
        finally:
            if previous is None:
                os.environ.pop("ADVXAI_CACHE", None)
            else:
                os.environ["ADVXAI_CACHE"] = previous
    history = model.info.notes["history"]
    return {
        "model": name, "dataset": TRAINED[name].dataset, "budget": budget, "epochs": len(history),
        "seconds (data, training, test)": round(seconds, 1),
        "seconds training": round(sum(h["seconds"] for h in history), 1),
        "seconds per epoch": [round(h["seconds"], 1) for h in history],
        "test accuracy": round(model.info.test_accuracy, 4),
        "load before": round(load_before, 2), "load after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(TRAINED), help=f"default: all of {', '.join(TRAINED)}")
    parser.add_argument("--budget", default="full", choices=["full", "smoke"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(TRAINED))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; valid: {', '.join(TRAINED)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    # The temporary caches must not hide MNIST: read it from where it is now.
    os.environ.setdefault("ADVXAI_MNIST", str(default_mnist_root()))

    machine = {"cpus": os.cpu_count(), "torch threads": torch.get_num_threads(), "device": str(device),
               "torch": torch.__version__, "python": platform.python_version(),
               "load average before (1, 5, 15 min)": [round(v, 2) for v in os.getloadavg()]}
    rows = []
    for name in args.models:
        print(f"[bench_train] {name} ({args.budget}) ...", flush=True)
        rows.append(train_one(name, args.budget, device))
    machine["load average after (1, 5, 15 min)"] = [round(v, 2) for v in os.getloadavg()]

    table = pd.DataFrame(rows).drop(columns=["seconds per epoch"])
    print(f"device: {device}, threads: {torch.get_num_threads()}, load average before/after: "
          f"{machine['load average before (1, 5, 15 min)']} / {machine['load average after (1, 5, 15 min)']}")
    print(table.to_string(index=False))
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"train-{stamp}.json"
    path.write_text(json.dumps({"machine": machine, "models": rows}, indent=2) + "\n")
    print(f"written: {path.name} in the results folder")


if __name__ == "__main__":
    main()
