"""Do two processes at one thread each get more done than one process at all the threads?

    python benchmarks/bench_cores.py [--seconds 20] [--results benchmarks/results]

``make test`` and ``advxai run --jobs N`` can run work side by side. That pays only where one
process cannot use the machine's cores on its own. This measures it with one fixed workload (the
training step of ``mnist_cnn``'s architecture on a batch of 128 random 28x28 images, forward and
backward), run for ``--seconds`` in three ways: one process at one thread, one process at every
thread, and one single-thread process per core at the same time. Prints steps per second for each
and writes ``cores-<UTC time>.json``. Nothing is asserted: measure on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from datetime import datetime, timezone
from pathlib import Path


def steps_per_second(threads: int, seconds: float, start=None) -> float:
    import torch

    from advxai.models.embedded import TRAINED

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = TRAINED["mnist_cnn"].arch(10, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    if start is not None:
        start.wait()  # the side-by-side processes start together
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)


def _worker(args):
    threads, seconds, start = args
    return steps_per_second(threads, seconds, start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args()
    cores = os.cpu_count() or 1
    ctx = multiprocessing.get_context("spawn")
    rows = {}
    with ctx.Pool(1) as pool:
        rows["1 process, 1 thread"] = pool.apply(steps_per_second, (1, args.seconds))
    with ctx.Pool(1) as pool:
        rows[f"1 process, {cores} threads"] = pool.apply(steps_per_second, (cores, args.seconds))
    with ctx.Manager() as manager:
        start = manager.Barrier(cores)
        with ctx.Pool(cores) as pool:
            each = pool.map(_worker, [(1, args.seconds, start)] * cores)
    rows[f"{cores} processes side by side, 1 thread each (total)"] = sum(each)
    base = rows["1 process, 1 thread"]
    print(f"{'setting':<52} {'steps/s':>8} {'vs one thread':>14}")
    for name, rate in rows.items():
        print(f"{name:<52} {rate:8.2f} {rate / base:13.2f}x")
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"cores-{stamp}.json"
    path.write_text(json.dumps({"cores": cores, "seconds": args.seconds, "steps_per_second": rows,
                                "load_average": os.getloadavg()}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
