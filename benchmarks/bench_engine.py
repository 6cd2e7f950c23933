"""The engine's scaling: ADV² (CAM) on shapes images in shards, local vs Ray with 1 and 2 workers.

    python benchmarks/bench_engine.py [--images 64] [--shard-size 8] [--model shapes_resnet]
                                      [--train-budget full] [--budget smoke] [--json PATH]

Three timings of the same job (every shard computed: the cache is off), each on a fresh Ray instance:

* ``local``: the local engine, one torch thread;
* ``ray x1``: a local Ray instance with one CPU (one worker at a time, one thread);
* ``ray x2``: a local Ray instance with two CPUs (two workers at once, one thread each).

It reports the speed-up from one to two workers (``ray x1 / ray x2``; on two idle cores the goal is
at least 1.6) and the Ray engine's overhead at one worker (``ray x1 / local - 1``; the goal is at most
15 %): sending the model through the object store, the shards' images as task arguments, the
results back. Starting the Ray instance and its workers is measured apart (one small job first).
The machine's load average is recorded before and after: timings on a busy machine mean little.
Results go to ``benchmarks/results/bench_engine.json`` (or ``--json``). Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from advxai.data import get_dataset
from advxai.engine import AttackFactory, LocalEngine, RayEngine, map_attack
from advxai.models import get_model
from advxai.runtime import seed_everything
from timing import synchronizer, timed  # benchmarks/timing.py


def job(engine, model, x, y, target, factory, shard_size: int):
    return map_attack(factory, model, x, y, target, key={"name": "bench-engine"}, engine=engine,
                      shard_size=shard_size, cache=False)


def on_ray(num_cpus: int, run) -> tuple[float, float]:
    """``(seconds to start the instance and warm its workers, seconds of the job)`` on a fresh local Ray."""
    import ray

    t0 = time.perf_counter()
    engine = RayEngine(address="local", num_gpus_per_task=0, init_kwargs={"num_cpus": num_cpus,
                                                                          "include_dashboard": False})
    run(engine, warm=True)  # a one-image job per worker: worker processes start and import torch
    started = time.perf_counter() - t0
    try:
        return started, timed(lambda: run(engine), repeats=1, sync=lambda: None, warm_up=False)
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--model", default="shapes_resnet")
    parser.add_argument("--train-budget", default="full", help="the model's training budget (full | smoke)")
    parser.add_argument("--budget", default="quick", help="ADV²'s step budget (full | quick | smoke)")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_engine.json"))
    args = parser.parse_args()

    torch.set_num_threads(1)  # the Ray tasks run one thread each: the local engine does the same
    seed_everything(0)
    model = get_model(args.model, device="cpu", train_budget=args.train_budget)
    data = get_dataset("shapes", split="test")
    batch = data.batch(data.sample_indices(args.images, seed=0))
    k = model.info.num_classes
    target = (batch.y + 1 + torch.arange(len(batch.y)) % (k - 1)) % k
    factory = AttackFactory("adv2", {"interpreter": "cam", "budget": args.budget, "targeted": True})

    def run(engine, warm: bool = False):
        n = 2 if warm else len(batch.y)  # warm: one image per worker at most
        return job(engine, model, batch.x[:n], batch.y[:n], target[:n], factory, 1 if warm else args.shard_size)

    load_before = os.getloadavg()
    local = timed(lambda: run(LocalEngine()), repeats=1, sync=synchronizer(torch.device("cpu")), warm_up=False)
    start1, ray1 = on_ray(1, run)
    start2, ray2 = on_ray(2, run)
    load_after = os.getloadavg()

    import ray

    rows = {
        "images": args.images, "shard_size": args.shard_size, "shards": -(-args.images // args.shard_size),
        "model": args.model, "train_budget": args.train_budget, "adv2_budget": args.budget,
        "seconds": {"local": round(local, 2), "ray_x1": round(ray1, 2), "ray_x2": round(ray2, 2)},
        "ray_start_seconds": {"x1": round(start1, 2), "x2": round(start2, 2)},
        "speedup_1_to_2_workers": round(ray1 / ray2, 3), "goal_speedup": 1.6,
        "ray_overhead_at_1_worker": round(ray1 / local - 1, 3), "goal_overhead": 0.15,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "cpus": os.cpu_count(), "torch": torch.__version__, "ray": ray.__version__,
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps(rows, indent=2))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
