"""Claims: the paper's number beside ours, with a 95 % interval and one rule for the verdict.

This module is the only place in the study where a verdict is decided. A chapter hands it the
per-image values a claim rests on (which images kept their label, the L1 distance of each map ...)
and the paper's number with a tolerance, as data; a constructor estimates the quantity, its 95 %
interval and the verdict, and returns a :class:`Claim` ready for the chapter's table and its
metrics file::

    digits = claims.Setting("MNIST", data=digits_data, model=digits_model, paper_data="mnist",
                            paper_model="mnist_cnn")
    claims.rate("benign labels unchanged, top 10 % masked", digits, unchanged, paper=0.94, tolerance=0.10)
    claims.difference_of_rates("FGSM changes labels more often than benign inputs", digits, fgsm_changed,
                               benign_changed, paper=0.72 - 0.19, tolerance=0.10, no_effect=0.0)

Intervals (all two-sided, 95 % unless ``confidence`` says otherwise):

* a rate k/n: **Wilson**'s score interval (:func:`wilson`), which stays inside [0, 1] and keeps its
  coverage at small n and at rates near 0 or 1, where the textbook ``p ± 1.96 se`` fails;
* a difference of two independent rates: **Newcombe**'s hybrid score interval (:func:`newcombe`),
  built from the two Wilson intervals;
* means, medians, differences and ratios of per-image values: a seeded **percentile bootstrap over
  images** (:func:`bootstrap_interval`), resampling images with replacement; the **paired** variant
  resamples the same images for both settings (one image measured twice), which keeps the
  correlation between the two measurements (resampling them apart would misstate the interval,
  usually making it too wide). Below about ten images a percentile interval is too narrow; the
  constructors refuse fewer than two.

**The rule** (:func:`decide`). A claim is either a *value* (the paper's number ``p`` with a tolerance
``t``: how far from ``p`` still counts as the same number) or an *inequality* (``"> 0"``, ``"< 1"``,
a :class:`Bound` ``op b``). Optionally it names the *no-effect reference* ``r``: the value the
quantity would take if the paper's effect were absent (0 for a difference, 1 for a ratio, chance for
a classifier, the false-positive rate a detector was set to); for an inequality it defaults to the
bound. With the interval ``[lo, hi]``:

* **reproduced** -- value: ``lo - t <= p <= hi + t`` and the interval does not also hold ``r``;
  inequality: it holds over the whole interval.
* **inconclusive** -- value: ``p`` fits as above, but ``r`` lies in ``[lo, hi]`` too (and ``p ± t``
  excludes ``r``): the data cannot tell the paper's effect from its absence; inequality: the interval
  straddles the bound, holding values that meet the claim and values that do not.
* **same direction** -- the interval excludes the paper's claim (value: excludes ``p ± t``;
  inequality: violates it everywhere) but lies wholly, strictly on the paper's side of ``r``: the
  effect has the paper's sign everywhere in the interval, its size differs. It needs an ``r`` that
  ``p ± t`` excludes (or, for an inequality, an ``r`` other than the bound).
* **not reproduced** -- the interval excludes the paper's claim and does not lie wholly beyond ``r``.
* **not measured** -- no interval (no images, no successful attack, missing data), always with its
  ``reason``.

Why these choices. With 8 images a Wilson interval spans half of [0, 1], so ``p`` is nearly always
inside it; calling that *reproduced* when the same interval also holds "no effect at all" would let
a claim pass because it was measured too coarsely to fail, hence *inconclusive*. A value claim is
compared with a number the paper measured with its own noise, so overlap within the tolerance is
enough; an inequality has no number to be close to, so it must hold everywhere in the interval, and
an interval across the bound settles nothing. *Same direction* keeps one meaning for both kinds: the
paper's claim is excluded, its sign is not. A claim of *no* effect (``|p - r| <= t``, e.g. "the
confidence is unchanged") is reproduced exactly when ``p ± t`` fits, and has no direction. A value
claim without ``r`` can only be reproduced or not: the interval's width, printed beside it, says how
much that is worth. A no-effect reference that is itself measured (a benign rate) belongs in a
difference claim (:func:`difference_of_rates`), so that its uncertainty enters the interval instead
of being ignored. Boundaries count as inside (``<=``); comparisons carry a slack of 1e-9 so that a
tolerance typed as a decimal (0.1) does not miss a boundary by a rounding error.

Where a claim was measured (:attr:`Claim.measured_at`, from the :class:`Setting` and the run's
profile): ``"paper"`` (the paper's data set and model at the ``paper`` profile, and at least the
paper's number of images when the setting states it), ``"paper data"`` (the paper's data set, but
another model or smaller sizes), ``"stand-in"`` (the embedded stand-ins), ``"unknown"`` (records
from before these fields existed).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "VERDICTS", "MEASURED_AT", "Bound", "Setting", "Claim", "decide", "wilson", "newcombe", "bootstrap_interval",
    "rate", "difference_of_rates", "mean", "median", "difference", "paired_difference", "ratio", "estimate",
    "not_measured", "frame", "record", "fmt", "paper_text", "interval_text", "STATISTICS", "UndefinedStatistic",
]

VERDICTS = ("reproduced", "same direction", "inconclusive", "not reproduced", "not measured")
MEASURED_AT = ("paper", "paper data", "stand-in", "unknown")
OPS = (">", ">=", "<", "<=")
EPS = 1e-9  # slack for decimal tolerances and bounds (0.1 is not exactly representable)
DEFAULT_RESAMPLES = 10_000


# --------------------------------------------------------------------------- what the paper says


@dataclass(frozen=True)
class Bound:
    """An inequality the paper claims of the quantity: ``Bound(">", 0)`` reads "ours > 0"."""

    op: str
    value: float

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"inequality operator must be one of {OPS}, got {self.op!r}")
        v = float(self.value)
        if math.isnan(v):
            raise ValueError("an inequality's bound must be a number, got NaN")
        object.__setattr__(self, "value", v)

    @property
    def above(self) -> bool:
        """True for ``>``/``>=``: the paper's side is above the bound."""
        return self.op.startswith(">")

    def holds_over(self, lo: float, hi: float) -> bool:
        """The inequality holds for every value in ``[lo, hi]``."""
        b = self.value
        return {">": lo > b + EPS, ">=": lo >= b - EPS, "<": hi < b - EPS, "<=": hi <= b + EPS}[self.op]

    def fails_over(self, lo: float, hi: float) -> bool:
        """The inequality fails for every value in ``[lo, hi]``."""
        b = self.value
        return {">": hi <= b + EPS, ">=": hi < b - EPS, "<": lo >= b - EPS, "<=": lo > b + EPS}[self.op]

    @classmethod
    def parse(cls, text: str) -> "Bound":
        """``"> 0"``, ``">=0.5"``, ``"< 1"`` -> a :class:`Bound`."""
        m = re.fullmatch(r"\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*", str(text))
        if not m:
            raise ValueError(f"cannot read {text!r} as an inequality: write e.g. '> 0', '>= 0.5', '< 1'")
        return cls(m.group(1), float(m.group(2)))

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"

    def to_dict(self) -> dict:
        return {"op": self.op, "value": self.value}


def _paper(paper) -> float | Bound | None:
    """What a chapter may pass as the paper's claim: a number, a :class:`Bound`, ``"> 0"``, or ``None``."""
    if paper is None or isinstance(paper, Bound):
        return paper
    if isinstance(paper, dict):
        return Bound(paper["op"], paper["value"])
    if isinstance(paper, str):
        return Bound.parse(paper)
    try:
        v = float(paper)
    except (TypeError, ValueError):
        raise TypeError(f"paper must be a number, an inequality ('> 0' or Bound) or None, got {paper!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"the paper's value must be finite, got {paper!r}")
    return v


# --------------------------------------------------------------------------- the rule


def decide(paper: float | Bound | str, interval: Sequence[float] | None, tolerance: float | None = None,
           no_effect: float | None = None) -> str:
    """The verdict for a claim: ``paper`` (a number or an inequality), ``interval`` ``[lo, hi]``, the
    ``tolerance`` of a value claim and the optional ``no_effect`` reference (see the module's table).
    ``interval=None`` gives ``"not measured"``."""
    paper = _paper(paper)
    if paper is None:
        raise ValueError("decide needs the paper's value or inequality")
    if interval is None:
        return "not measured"
    lo, hi = (float(v) for v in interval)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"interval must be [lo, hi] with lo <= hi, got {list(interval)}")
    r = None if no_effect is None else float(no_effect)
    if isinstance(paper, Bound):
        if tolerance not in (None, 0, 0.0):
            raise ValueError("an inequality claim takes no tolerance (move the bound instead)")
        r = paper.value if r is None else r
        if (r > paper.value + EPS) if paper.above else (r < paper.value - EPS):
            raise ValueError(f"the no-effect reference {r:g} lies on the claimed side of {paper}: "
                             "it must be at or beyond the bound, on the other side")
        if paper.holds_over(lo, hi):
            return "reproduced"
        if paper.fails_over(lo, hi):
            beyond_r = lo > r + EPS if paper.above else hi < r - EPS
            return "same direction" if beyond_r and abs(r - paper.value) > EPS else "not reproduced"
        return "inconclusive"  # the interval straddles the bound: it holds both the claim and its failure
    if tolerance is None or not math.isfinite(float(tolerance)) or float(tolerance) < 0:
        raise ValueError(f"a value claim needs a tolerance >= 0 (how far from the paper's value still counts as "
                         f"the same number), got {tolerance!r}")
    p, t = paper, float(tolerance)
    inside = lo - t - EPS <= p <= hi + t + EPS
    effect = r is not None and abs(p - r) > t + EPS  # the paper claims an effect this tolerance can tell from none
    if inside:
        if effect and lo - EPS <= r <= hi + EPS:
            return "inconclusive"
        return "reproduced"
    if effect and ((lo > r + EPS) if p > r else (hi < r - EPS)):
        return "same direction"
    return "not reproduced"


# --------------------------------------------------------------------------- intervals


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def _count(k, n) -> tuple[int, int]:
    k_, n_ = int(k), int(n)
    if k_ != k or n_ != n:
        raise ValueError(f"k and n must be whole numbers, got k={k!r}, n={n!r}")
    if n_ < 1 or not 0 <= k_ <= n_:
        raise ValueError(f"a rate needs n >= 1 and 0 <= k <= n, got k={k_}, n={n_}")
    return k_, n_


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for the rate ``k / n``."""
    k, n = _count(k, n)
    z = _z(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # the exact ends at k = 0 and k = n (the formula gives them up to rounding)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``k1/n1 - k2/n2`` (two independent rates; his method 10)."""
    k1, n1 = _count(k1, n1)
    k2, n2 = _count(k2, n2)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


class UndefinedStatistic(ValueError):
    """The bootstrapped statistic is NaN on some resamples (e.g. 0/0 in a ratio)."""


def _mean(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=-1)


def _median(a: np.ndarray) -> np.ndarray:
    return np.median(a, axis=-1)


STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"mean": _mean, "median": _median}


def _statistic(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name not in STATISTICS:
        raise ValueError(f"unknown statistic {name!r}; valid: {', '.join(STATISTICS)}")
    return STATISTICS[name]


def bootstrap_interval(samples: Sequence[np.ndarray], statistic: Callable[..., np.ndarray], *, paired: bool = False,
                       confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                       chunk: int = 1000) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*samples)`` over images.

    ``samples`` are 1-d arrays of per-image values; ``statistic`` takes one array per sample, each of
    shape ``[R, n_i]`` (R resamples), and returns ``[R]``. ``paired=True`` draws the same image
    indices for every sample (they must have one length: one image measured in several settings);
    otherwise each sample is resampled on its own. Seeded: the same inputs and seed give the same
    interval. Resamples are drawn ``chunk`` at a time to bound memory."""
    _z(confidence)
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be at least 100 for a 95 % percentile interval, got {n_resamples}")
    arrays = [np.asarray(s, dtype=float) for s in samples]
    if not arrays or any(a.ndim != 1 or len(a) < 2 for a in arrays):
        raise ValueError("bootstrap samples must be 1-d arrays of at least 2 values each")
    if paired and len({len(a) for a in arrays}) != 1:
        raise ValueError(f"paired samples must have one length, got {[len(a) for a in arrays]}")
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - start)
        if paired:
            idx = rng.integers(0, len(arrays[0]), size=(r, len(arrays[0])))
            draws = [a[idx] for a in arrays]
        else:
            draws = [a[rng.integers(0, len(a), size=(r, len(a)))] for a in arrays]
        stats.append(np.asarray(statistic(*draws), dtype=float))
    values = np.concatenate(stats)
    if np.isnan(values).any():
        raise UndefinedStatistic("the statistic is undefined (NaN) on some resamples: a ratio of two zero means?")
    alpha = 1 - confidence
    if np.isfinite(values).all():
        lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    else:  # an unbounded resample (x/0): interpolating next to it gives inf - inf; take the outer order statistics
        lo = np.quantile(values, alpha / 2, method="lower")
        hi = np.quantile(values, 1 - alpha / 2, method="higher")
    return float(lo), float(hi)


# --------------------------------------------------------------------------- where a claim was measured


def _names(x) -> tuple[str, ...]:
    if x is None:
        return ()
    return (x,) if isinstance(x, str) else tuple(x)


@dataclass(frozen=True)
class Setting:
    """Where a claim is measured: the paper's setting (text), our data set and model (registry names),
    and which names count as the paper's own, so each claim can say how close to the paper it was.

    ``Setting("MNIST", data="digits", model="digits_cnn", paper_data="mnist", paper_model="mnist_cnn")``
    prints as ``MNIST | digits, digits_cnn``. ``profile`` defaults to the run's (``$ADVXAI_PROFILE``, set by
    ``advxai run``; a chapter run by hand has none and never counts as the paper's sizes). ``paper_n``:
    the paper's number of images, when a claim resting on fewer should not count as the paper's size.
    ``measured_at`` overrides the derivation (one of :data:`MEASURED_AT`)."""

    paper: str
    data: str = ""
    model: str = ""
    paper_data: str | Sequence[str] = ()
    paper_model: str | Sequence[str] = ()
    paper_n: int | None = None
    profile: str | None = None
    detail: str = ""
    measured_at: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "paper_data", _names(self.paper_data))
        object.__setattr__(self, "paper_model", _names(self.paper_model))
        if self.profile is None:
            object.__setattr__(self, "profile", os.environ.get("ADVXAI_PROFILE") or None)
        if self.measured_at is not None and self.measured_at not in MEASURED_AT:
            raise ValueError(f"measured_at must be one of {MEASURED_AT}, got {self.measured_at!r}")
        # a misspelt name would silently make every claim a stand-in: check the names against the registries
        if self.paper_data:
            from .data import DATASETS

            for name in self.paper_data:
                DATASETS.check(name)
        if self.paper_model:
            from .models import MODELS

            for name in self.paper_model:
                MODELS.check(name)

    def where(self, n: int | None = None) -> str:
        """``"paper"``, ``"paper data"`` or ``"stand-in"`` for a claim resting on ``n`` images."""
        if self.measured_at is not None:
            return self.measured_at
        if not self.data or self.data not in self.paper_data:
            return "stand-in"
        full = (self.model in self.paper_model and self.profile == "paper"
                and (self.paper_n is None or (n is not None and n >= self.paper_n)))
        return "paper" if full else "paper data"

    def but(self, detail: str) -> "Setting":
        """The same setting with ``detail`` added to its text (e.g. ``"sizes 25 % vs 40 %"``)."""
        return replace(self, detail=f"{self.detail}, {detail}" if self.detail else detail)

    def __str__(self) -> str:
        ours = ", ".join(v for v in (self.data, self.model, self.detail) if v)
        return f"{self.paper} | {ours}" if ours else self.paper


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Claim:
    """One headline claim of a paper beside this reproduction's estimate, with its interval and verdict.
    Build it with a constructor (:func:`rate`, :func:`mean`, ... :func:`not_measured`), never by hand:
    they compute ``verdict`` with :func:`decide`."""

    claim: str
    setting: str
    paper: float | Bound | None
    ours: float | None
    n: int | None
    interval: tuple[float, float] | None
    verdict: str
    tolerance: float | None = None
    no_effect: float | None = None
    measured_at: str = "unknown"
    estimator: str = ""
    confidence: float = 0.95
    section: str = ""
    note: str = ""
    reason: str = ""
    groups: tuple[int, ...] | None = None  # images per group for two-group claims (n is their sum)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.measured_at not in MEASURED_AT:
            raise ValueError(f"measured_at must be one of {MEASURED_AT}, got {self.measured_at!r}")
        if self.verdict == "not measured" and not self.reason.strip():
            raise ValueError(f"claim {self.claim!r} is not measured: say why (reason=...)")
        if self.verdict != "not measured" and self.interval is None:
            raise ValueError(f"claim {self.claim!r} has a verdict but no interval")

    def to_dict(self) -> dict:
        """The JSON form written to a chapter's metrics file (an infinite interval end becomes ``null``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["paper"] = self.paper.to_dict() if isinstance(self.paper, Bound) else self.paper
        out["interval"] = None if self.interval is None else [_finite_or_none(v) for v in self.interval]
        out["groups"] = None if self.groups is None else list(self.groups)
        out["ours"] = _finite_or_none(self.ours)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Claim":
        """A claim back from :meth:`to_dict` (the verdict is taken as written, not re-decided)."""
        d = record(data)
        d["paper"] = _paper(d["paper"]) if not isinstance(d["paper"], str) else d["paper"]
        d["interval"] = None if d["interval"] is None else tuple(d["interval"])
        d["groups"] = None if d["groups"] is None else tuple(d["groups"])
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def _finite_or_none(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def record(data: dict) -> dict:
    """A claim's JSON record with every field present: records written before intervals existed (no
    ``n``, ``interval``, ``measured_at`` ...) get ``None`` / ``"unknown"``; a ``null`` interval end is
    read as unbounded."""
    out = {f.name: (f.default if f.default is not MISSING else None) for f in fields(Claim)}
    out.update({k: v for k, v in data.items() if k in out})
    if out["interval"] is None and "confidence" not in data:
        out["confidence"] = None  # no interval was ever computed for it
    out["verdict"] = out.get("verdict") or "not measured"
    out["measured_at"] = out.get("measured_at") or "unknown"
    for key in ("section", "note", "reason", "estimator", "setting", "claim"):
        out[key] = out.get(key) or ""
    if out["verdict"] == "not measured" and not out["reason"]:
        out["reason"] = "no reason recorded"  # records written before every claim carried one
    iv = out.get("interval")
    if iv is not None:
        lo, hi = iv
        out["interval"] = [-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi)]
    return out


# --------------------------------------------------------------------------- constructors


def _values(x, name: str) -> np.ndarray:
    """Per-image values as a 1-d float array (numpy, lists, torch tensors on any device)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one value per image (1-d), got shape {a.shape}")
    return a


def _flags(x, name: str) -> np.ndarray:
    a = _values(x, name)
    if np.isnan(a).any() or not np.isin(a, (0.0, 1.0)).all():
        raise ValueError(f"{name} must be one True/False per image (0/1), got other values")
    return a.astype(bool)


def _where(setting, measured_at, n) -> tuple[str, str]:
    if isinstance(setting, Setting):
        return str(setting), (measured_at or setting.where(n))
    if measured_at is None:
        raise ValueError("a setting given as text needs measured_at= (one of "
                         f"{MEASURED_AT[:3]}); pass a claims.Setting to have it derived")
    if measured_at not in MEASURED_AT:
        raise ValueError(f"measured_at must be one of {MEASURED_AT}, got {measured_at!r}")
    return str(setting), measured_at


def _make(claim, setting, *, paper, ours, n, interval, estimator, tolerance, no_effect, confidence, section, note,
          measured_at, groups=None) -> Claim:
    text, where = _where(setting, measured_at, n)
    p = _paper(paper)
    if p is None:
        raise ValueError(f"claim {claim!r}: give the paper's value (a number) or inequality ('> 0')")
    if isinstance(p, Bound) and tolerance is not None:
        raise ValueError(f"claim {claim!r}: an inequality claim ({p}) takes no tolerance (move the bound instead)")
    tol = tolerance
    verdict = decide(p, interval, tol, no_effect)
    return Claim(claim, text, p, float(ours), int(n), (float(interval[0]), float(interval[1])), verdict,
                 None if tol is None else float(tol), None if no_effect is None else float(no_effect), where,
                 estimator, confidence, section, note, "", groups)


def not_measured(claim: str, setting: Setting | str, reason: str, *, paper=None, tolerance: float | None = None,
                 no_effect: float | None = None, n: int | None = None, section: str = "", note: str = "",
                 measured_at: str | None = None, confidence: float = 0.95) -> Claim:
    """A claim that could not be measured, and why (no images, no successful attack, missing data)."""
    if not str(reason).strip():
        raise ValueError(f"claim {claim!r}: a claim that is not measured needs its reason")
    text, where = _where(setting, measured_at, n)
    p = _paper(paper)
    if isinstance(p, Bound) and tolerance is not None:
        raise ValueError(f"claim {claim!r}: an inequality claim ({p}) takes no tolerance (move the bound instead)")
    return Claim(claim, text, p, None, n, None, "not measured", None if tolerance is None else float(tolerance),
                 None if no_effect is None else float(no_effect), where, "", confidence, section, note, str(reason))


def _kw(d: dict) -> dict:
    return {k: d[k] for k in ("paper", "tolerance", "no_effect", "section", "note", "measured_at", "confidence")}


def rate(claim: str, setting: Setting | str, hits, n: int | None = None, *, paper, tolerance: float | None = None,
         no_effect: float | None = None, section: str = "", note: str = "", measured_at: str | None = None,
         confidence: float = 0.95, empty: str = "no images to measure") -> Claim:
    """A rate with its Wilson interval. ``hits``: one True/False per image, or the count k with ``n``.
    With no images the claim is *not measured* with the reason ``empty``."""
    if n is None:
        flags = _flags(hits, "hits")
        k, n = int(flags.sum()), len(flags)
    else:
        k = hits
    if n == 0:
        return not_measured(claim, setting, empty, **_kw(locals()), n=0)
    k, n = _count(k, n)
    return _make(claim, setting, ours=k / n, n=n, interval=wilson(k, n, confidence),
                 estimator=f"Wilson, {k}/{n}", **_kw(locals()))


def difference_of_rates(claim: str, setting: Setting | str, hits_a, hits_b, *, paper, tolerance: float | None = None,
                        no_effect: float | None = 0.0, section: str = "", note: str = "",
                        measured_at: str | None = None, confidence: float = 0.95,
                        empty: str = "no images in one of the two groups") -> Claim:
    """The rate of ``hits_a`` minus the rate of ``hits_b`` (two independent groups of images, e.g.
    adversarial and benign) with Newcombe's interval. Each is one True/False per image or a ``(k, n)`` pair.
    The no-effect reference defaults to 0 (the same rate in both groups)."""
    (k1, n1), (k2, n2) = (_pair(h, name) for h, name in ((hits_a, "hits_a"), (hits_b, "hits_b")))
    if n1 == 0 or n2 == 0:
        return not_measured(claim, setting, empty, **_kw(locals()), n=n1 + n2)
    return _make(claim, setting, ours=k1 / n1 - k2 / n2, n=n1 + n2, interval=newcombe(k1, n1, k2, n2, confidence),
                 estimator=f"Newcombe, {k1}/{n1} - {k2}/{n2}", groups=(n1, n2), **_kw(locals()))


def _pair(h, name) -> tuple[int, int]:
    """A group given as counts ``(k, n)`` (a tuple) or as one True/False per image (anything else)."""
    if isinstance(h, tuple):
        if len(h) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in h):
            raise ValueError(f"{name}: a tuple is read as counts (k, n) of whole numbers, got {h!r}; pass "
                             "per-image True/False values as a list, an array or a tensor")
        return int(h[0]), int(h[1])
    flags = _flags(h, name)
    return int(flags.sum()), len(flags)


def _clean(arrays: list[np.ndarray], paired: bool) -> tuple[list[np.ndarray], str]:
    """Drop images without a value (NaN), pair-wise when paired; say how many in the note."""
    if paired:
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"paired values must have one value per image in each setting, got lengths "
                             f"{[len(a) for a in arrays]}")
        ok = np.all([~np.isnan(a) for a in arrays], axis=0) if arrays[0].size else np.ones(0, bool)
        dropped = int((~ok).sum())
        return [a[ok] for a in arrays], (f"{dropped} of {len(ok)} images without a value left out" if dropped else "")
    out, msgs = [], []
    for a in arrays:
        ok = ~np.isnan(a)
        if (~ok).any():
            msgs.append(f"{int((~ok).sum())} of {len(a)}")
        out.append(a[ok])
    return out, ("images without a value left out: " + ", ".join(msgs) if msgs else "")


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _boot(claim, setting, arrays, statistic: Callable, label: str, paired: bool, *, point: Callable, n_resamples, seed,
          empty, kw) -> Claim:
    arrays, dropped = _clean(arrays, paired)
    kw = {**kw, "note": _join(kw["note"], dropped)}
    sizes = [len(a) for a in arrays]
    n = sizes[0] if paired or len(arrays) == 1 else sum(sizes)
    if min(sizes) == 0:
        return not_measured(claim, setting, empty, n=n, **kw)
    if min(sizes) < 2:
        return not_measured(claim, setting, "one image: too few for an interval over images (at least 2)", n=n, **kw)
    ours = float(point(*arrays))
    if not math.isfinite(ours):
        return not_measured(claim, setting, f"{label} is undefined on these images", n=n, **kw)
    try:
        iv = bootstrap_interval(arrays, statistic, paired=paired, confidence=kw["confidence"],
                                n_resamples=n_resamples, seed=seed)
    except UndefinedStatistic:
        return not_measured(claim, setting, f"the {label} is undefined (0/0) on some resamples of these images",
                            n=n, **kw)
    how = (f"{'paired ' if paired and len(arrays) > 1 else ''}bootstrap over images of the {label}, "
           f"{n_resamples} resamples, seed {seed}")
    groups = None if paired or len(arrays) == 1 else tuple(sizes)
    return _make(claim, setting, ours=ours, n=n, interval=iv, estimator=how, groups=groups, **kw)


def mean(claim: str, setting: Setting | str, values, *, paper, tolerance: float | None = None,
         no_effect: float | None = None, section: str = "", note: str = "", measured_at: str | None = None,
         confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
         empty: str = "no images to measure") -> Claim:
    """The mean of per-image ``values`` with a bootstrap interval over images."""
    a = _values(values, "values")
    return _boot(claim, setting, [a], _mean, "mean", False, point=lambda x: x.mean(), n_resamples=n_resamples,
                 seed=seed, empty=empty, kw=_kw(locals()))


def median(claim: str, setting: Setting | str, values, *, paper, tolerance: float | None = None,
           no_effect: float | None = None, section: str = "", note: str = "", measured_at: str | None = None,
           confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
           empty: str = "no images to measure") -> Claim:
    """The median of per-image ``values`` with a bootstrap interval over images."""
    a = _values(values, "values")
    return _boot(claim, setting, [a], _median, "median", False, point=np.median, n_resamples=n_resamples, seed=seed,
                 empty=empty, kw=_kw(locals()))


def difference(claim: str, setting: Setting | str, values_a, values_b, *, paper, tolerance: float | None = None,
               no_effect: float | None = 0.0, statistic: str = "mean", section: str = "", note: str = "",
               measured_at: str | None = None, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
               seed: int = 0, empty: str = "no images in one of the two groups") -> Claim:
    """``statistic(values_a) - statistic(values_b)`` for two **independent** groups of images (each
    resampled on its own). For the same images in two settings use :func:`paired_difference`."""
    f = _statistic(statistic)
    a, b = _values(values_a, "values_a"), _values(values_b, "values_b")
    return _boot(claim, setting, [a, b], lambda x, y: f(x) - f(y), f"difference of {statistic}s", False,
                 point=lambda x, y: f(x) - f(y), n_resamples=n_resamples, seed=seed, empty=empty, kw=_kw(locals()))


def paired_difference(claim: str, setting: Setting | str, values_a, values_b, *, paper,
                      tolerance: float | None = None, no_effect: float | None = 0.0, statistic: str = "mean",
                      section: str = "", note: str = "", measured_at: str | None = None, confidence: float = 0.95,
                      n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      empty: str = "no images measured in both settings") -> Claim:
    """The same images under two settings: ``statistic`` of the per-image differences ``a - b`` (for the
    mean, the difference of the means), images resampled jointly."""
    f = _statistic(statistic)
    a, b = _values(values_a, "values_a"), _values(values_b, "values_b")
    return _boot(claim, setting, [a, b], lambda x, y: f(x - y), f"{statistic} of the per-image differences a - b", True,
                 point=lambda x, y: f(x - y), n_resamples=n_resamples, seed=seed, empty=empty, kw=_kw(locals()))


def ratio(claim: str, setting: Setting | str, values_a, values_b, *, paper, tolerance: float | None = None,
          no_effect: float | None = 1.0, paired: bool = True, statistic: str = "mean", section: str = "",
          note: str = "", measured_at: str | None = None, confidence: float = 0.95,
          n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, empty: str = "no images measured") -> Claim:
    """``statistic(values_a) / statistic(values_b)`` (e.g. the mean L1 of ADV²'s maps over PGD's), paired
    (the same images; the default) or not. The no-effect reference defaults to 1. A denominator that is
    zero on the images makes the claim *not measured*; on some resamples only, it makes the interval
    unbounded."""
    f = _statistic(statistic)
    a, b = _values(values_a, "values_a"), _values(values_b, "values_b")

    def stat(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            num, den = f(x), f(y)
            out = num / den
        return np.where(den == 0, np.where(num == 0, np.nan, np.inf * np.sign(num)), out)

    def point(x, y):
        den = f(y)
        return f(x) / den if den != 0 else float("nan")

    return _boot(claim, setting, [a, b], stat, f"ratio of {statistic}s", paired, point=point,
                 n_resamples=n_resamples, seed=seed, empty=empty, kw=_kw(locals()))


def estimate(claim: str, setting: Setting | str, ours: float, interval: Sequence[float], n: int, *, paper,
             estimator: str, tolerance: float | None = None, no_effect: float | None = None, section: str = "",
             note: str = "", measured_at: str | None = None, confidence: float = 0.95) -> Claim:
    """A claim whose interval comes from elsewhere (``estimator`` names how it was computed); the verdict
    is still decided here."""
    if not str(estimator).strip():
        raise ValueError("estimate needs estimator= (how the interval was computed)")
    lo, hi = (float(v) for v in interval)
    if not lo - EPS <= float(ours) <= hi + EPS:
        raise ValueError(f"the estimate {ours!r} lies outside its interval [{lo}, {hi}]")
    return _make(claim, setting, ours=ours, n=n, interval=(lo, hi), estimator=estimator, **_kw(locals()))


# --------------------------------------------------------------------------- display


def fmt(v: Any) -> str:
    """A number to three significant digits (``-`` when missing, ``∞`` when unbounded)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
        v = float(v)
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.3g}"
    return str(v)


def paper_text(paper, tolerance=None) -> str:
    """``0.94 ± 0.1``, ``> 0``, or ``-``: what the paper claims, as the tables print it."""
    if isinstance(paper, dict):
        paper = Bound(paper["op"], paper["value"])
    if paper is None:
        return "-"
    if isinstance(paper, (Bound, str)):
        return str(paper)
    return fmt(paper) + (f" ± {fmt(tolerance)}" if tolerance not in (None, 0, 0.0) else "")


def interval_text(interval) -> str:
    if interval is None:
        return "-"
    lo, hi = interval
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    return f"[{fmt(lo)}, {fmt(hi)}]"


def frame(claims: Iterable[Claim]):
    """The claims as a table for a chapter: claim, setting, where measured, the paper's claim (with its
    tolerance), ours, the 95 % interval, n, the verdict and a note (the reason when not measured)."""
    import pandas as pd

    rows = []
    for c in claims:
        if not isinstance(c, Claim):
            raise TypeError(f"frame takes advxai.claims.Claim records, got {type(c).__name__}")
        rows.append({"claim": c.claim, "setting": c.setting, "measured at": c.measured_at,
                     "paper": paper_text(c.paper, c.tolerance), "ours": c.ours, "95 % interval": interval_text(c.interval),
                     "n": c.n, "verdict": c.verdict, "note": _join(c.reason, c.note)})
    df = pd.DataFrame(rows, columns=["claim", "setting", "measured at", "paper", "ours", "95 % interval", "n",
                                     "verdict", "note"])
    df["n"] = df["n"].astype("Int64")  # whole numbers, blank where nothing was measured
    return df
