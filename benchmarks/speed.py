"""What the benchmark scripts share besides the timer: the ``--fast`` speed settings and ``--json`` rows.

Every benchmark runs in strict fp32 unless ``--fast`` names settings (``tf32``, ``channels_last``,
``bf16``, ``cudnn_benchmark``; see :mod:`advxai.accelerate`): PyTorch's own default lets cuDNN
convolutions use TF32, which would make the "fp32" baseline something else on a GPU. Peers run under
the same settings as this package's code, so a ratio compares like with like.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch

from advxai.accelerate import fast_math, parse_knobs
from gpu_report import write_json  # benchmarks/gpu_report.py


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", default="none",
                        help="comma-separated speed settings: tf32, channels_last, bf16, cudnn_benchmark (default: none, strict fp32)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON (rewritten after each row)")


def settings(args) -> dict:
    """``fast_math`` keywords from ``--fast``; TF32 is explicitly off unless named."""
    knobs = parse_knobs(args.fast)
    return {"tf32": False, **knobs}


def speed(model, args) -> contextlib.AbstractContextManager:
    """The block every timed call of a benchmark runs in."""
    return fast_math(model, **settings(args))


class Rows:
    """Rows of a benchmark, written to ``--json`` after each one, so a run stopped by its time budget
    still leaves what it measured."""

    def __init__(self, path: str | None, benchmark: str, device: torch.device, args, **extra):
        self.path = Path(path) if path else None
        self.rows: list[dict] = []
        self.header = {"benchmark": benchmark, "device": str(device), "fast": sorted(parse_knobs(args.fast)),
                       "torch_threads": torch.get_num_threads(), **extra}
        self.flush()

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.flush()

    def flush(self, complete: bool = False) -> None:
        if self.path is not None:
            write_json(self.path, {**self.header, "complete": complete, "rows": self.rows})

    def close(self) -> None:
        self.flush(complete=True)
