"""What a chapter reports: headline metrics, claim records, stage timings, tables.

Each chapter ends by calling :func:`save_metrics`, which writes ``<chapter>.metrics.json`` next to
the executed notebook (the folder in ``$ADVXAI_BOOK_DIR``, set by the runner; the current folder
when a chapter is run by hand). The summary chapter reads these files, so their layout is fixed:

.. code-block:: json

    {"chapter": "ch01_...", "title": "...", "metrics": {...},
     "claims": [{"claim": ..., "setting": ..., "paper": 0.94 or {"op": ">", "value": 0}, "ours": ...,
                 "n": ..., "interval": [lo, hi], "verdict": ..., "tolerance": ..., "no_effect": ...,
                 "measured_at": ..., "estimator": ..., "confidence": 0.95, "section": ..., "note": ...,
                 "reason": ..., "groups": [n1, n2] or null}],
     "timings": {"stage": seconds}, "parameters": {...}}

Claims are :class:`advxai.claims.Claim` records (their constructors decide the verdict with the
book's one rule). The older :class:`Claim` / :func:`verdict` / :func:`claims_frame` of this module
are deprecated: they remain only until every chapter builds its claims with :mod:`advxai.claims`;
their records are written with the same fields, ``n`` and ``interval`` empty and ``measured_at``
``"unknown"``.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import claims as _claims

__all__ = ["Claim", "verdict", "claims_frame", "Timings", "save_metrics", "load_metrics", "book_dir", "glue", "show"]

VERDICTS = _claims.VERDICTS


def verdict(paper: float, ours: float, tolerance: float, direction: Callable[[float], bool] | None = None) -> str:
    """Deprecated: decide verdicts with :mod:`advxai.claims` (an interval, one rule for the book).

    ``reproduced`` when ``|ours - paper| <= tolerance``; ``same direction`` when ``direction(ours)``
    holds (the qualitative claim: e.g. ``lambda v: v > 0.5``); otherwise ``not reproduced``."""
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "not measured"
    if abs(float(ours) - float(paper)) <= tolerance:
        return "reproduced"
    if direction is not None and direction(float(ours)):
        return "same direction"
    return "not reproduced"


@dataclass
class Claim:
    """Deprecated: one headline claim without ``n`` or interval; build :class:`advxai.claims.Claim`
    records with the constructors of :mod:`advxai.claims` instead."""

    claim: str
    setting: str  # the paper's setting and ours, e.g. "MNIST, FGSM eps=0.1 | digits, digits_cnn"
    paper: float | str
    ours: float | str | None
    verdict: str
    section: str = ""  # anchor of the section that measured it (for links from the summary)
    note: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def claims_frame(claims: list[Claim]):
    """Deprecated: :func:`advxai.claims.frame` shows the new records (this delegates to it for them)."""
    import pandas as pd

    claims = list(claims)
    if claims and all(isinstance(c, _claims.Claim) for c in claims):
        return _claims.frame(claims)
    return pd.DataFrame([asdict(c) for c in claims])[["claim", "setting", "paper", "ours", "verdict", "note"]]


def claim_record(c) -> dict:
    """The JSON record of a claim: an :class:`advxai.claims.Claim`, or a deprecated :class:`Claim` (its
    missing fields empty, ``measured_at`` ``"unknown"``)."""
    if isinstance(c, _claims.Claim):
        return _plain(c.to_dict())
    if isinstance(c, Claim):
        return _plain(_claims.record(asdict(c)))
    raise TypeError(f"claims must be advxai.claims.Claim records, got {type(c).__name__}")


@dataclass
class Timings:
    """Wall-clock seconds per stage: ``with timings("attacks"): ...``; ``timings.frame()``."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def frame(self):
        import pandas as pd

        df = pd.DataFrame({"stage": list(self.seconds), "seconds": [round(s, 1) for s in self.seconds.values()]})
        total = pd.DataFrame({"stage": ["total"], "seconds": [round(sum(self.seconds.values()), 1)]})
        return pd.concat([df, total], ignore_index=True)


def book_dir() -> Path:
    """Where executed notebooks and metrics go: ``$ADVXAI_BOOK_DIR`` or the current folder."""
    return Path(os.environ.get("ADVXAI_BOOK_DIR", "."))


def _plain(obj: Any) -> Any:
    """JSON-safe copies of numbers, arrays and tensors; NaN becomes null."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy / torch
        return _plain(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def save_metrics(chapter: str, title: str, metrics: dict, claims: list[Claim] = (), timings: Timings | None = None,
                 parameters: dict | None = None) -> Path:
    """Write ``<book dir>/<chapter>.metrics.json`` atomically and return its path. ``claims`` are
    :class:`advxai.claims.Claim` records (deprecated :class:`Claim` records are still accepted)."""
    payload = {
        "chapter": chapter,
        "title": title,
        "metrics": _plain(metrics),
        "claims": [claim_record(c) for c in claims],
        "timings": _plain(timings.seconds if timings else {}),
        "parameters": _plain(parameters or {}),
    }
    path = book_dir() / f"{chapter}.metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False))
    os.replace(tmp, path)
    return path


def load_metrics(chapter: str, folder: Path | None = None) -> dict:
    path = (folder or book_dir()) / f"{chapter}.metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the chapter first (advxai run {chapter.split('_')[0]})")
    return json.loads(path.read_text())


def glue(name: str, value: Any, display: bool = False) -> None:
    """Make ``value`` citable in the book's prose (``{glue:text}`name```) when myst-nb is present."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # running without Jupyter Book installed: nothing to glue into
        if display:
            print(f"{name} = {value}")
        return
    _glue(name, value, display=display)


def show(df, caption: str | None = None, precision: int = 3):
    """Display a DataFrame as a compact table with a caption (works in Jupyter and the book)."""
    from IPython.display import display

    styler = df.style.format(precision=precision, na_rep="-").hide(axis="index")
    if caption:
        styler = styler.set_caption(caption)
    display(styler)
