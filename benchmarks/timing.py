"""The one timer the benchmark scripts share (run them as ``python benchmarks/bench_*.py``)."""
from __future__ import annotations

import time
from typing import Callable

import torch


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for queued GPU work, so a timer stops when the work is done, not when it is queued."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None], warm_up: bool = True) -> float:
    """Mean seconds of ``fn`` over ``repeats`` calls, after one untimed call unless ``warm_up`` is off
    (for work too slow to run twice, such as a full ADV² attack)."""
    if warm_up:
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats
