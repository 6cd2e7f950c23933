"""Attribution-driven causal analysis (Jha et al., 2019): mask the top attributions, watch the label.

The features are pixels. Integrated Gradients explains the model's own prediction on an input
(benign or adversarial); a pixel's score is the sum of its colour channels' attributions (so a
pixel counts as "positive" when its values together raise the predicted class's output). Only
pixels with a positive score are ever masked (the paper's restricted neighbourhood N+).

* the causal neighbour ``G(x, M_delta)`` sets the top-ranked positive pixels (every channel) to the
  baseline (black by default);
* how many: with ``fraction_of="positive"`` (Algorithm 1 as written) the top ``ceil(delta * m)`` of
  the ``m`` positive pixels; with ``fraction_of="all"`` (the "% of pixels" of the paper's figures)
  the top ``ceil(delta * k)`` of all ``k`` pixels, of which only the positive ones (at most ``m``)
  are masked;
* Algorithm 1's robustness ``rho(M, x)``: the smallest ``delta`` on the grid ``epsilon, 2 epsilon, ...``
  (up to ``max_delta``) at which the label of ``G(x, M_delta)`` differs from the label of ``x``;
  ``inf`` when it never does up to ``max_delta`` (the paper's loop ends at 1);
* the attribution sensitivity ``S(M, X, delta) = 1 - |{x : rho(x) <= delta}| / |X|`` (the fraction
  of inputs whose label survives masking up to ``delta``);
* the detector (:class:`CausalMasking`, a :class:`~advxai.defenses.base.Detector`) scores an input
  ``-rho`` (a label that never changes up to ``max_delta`` scores ``-(max_delta + epsilon)``), so a
  label that flips early is suspicious; its threshold is calibrated on benign inputs at a stated
  false-positive rate (the paper fixes a ``delta`` instead: ``rho <= delta``, which
  :meth:`MaskingResult.changed_fraction` reads off the analysis); ranking inputs by ``-rho`` gives
  ROC and AUC against benign inputs (:func:`detection_roc`).

:func:`theorem_violations` checks the paper's monotonicity theorem on a model: if masking some
subset of the top positive pixels changes the label, masking all of them should too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from ..interpreters import Interpreter, get_interpreter
from .base import Detector

__all__ = ["CausalMasking", "MaskingResult", "pixel_scores", "ranks", "masked_counts", "mask_top", "sensitivity",
           "detection_roc", "theorem_violations", "check_delta"]

FRACTIONS = ("positive", "all")


def check_delta(delta: float, name: str = "delta") -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 <= delta <= 1:
        raise ValueError(f"{name} (the fraction of features masked) must be in [0, 1], got {delta!r}")
    return float(delta)


def pixel_scores(attributions: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] attributions -> [B, H*W] pixel scores (the sum over colour channels)."""
    return attributions.sum(1).flatten(1)


def ranks(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rank, m)``: each pixel's position in decreasing score order (0 = highest; ties broken by
    index, so the order is deterministic) and the number ``m`` of positive pixels per image."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    return rank, (scores > 0).sum(1)


def masked_counts(delta: float | torch.Tensor, positives: torch.Tensor, pixels: int,
                  fraction_of: str = "positive") -> torch.Tensor:
    """How many top pixels ``G(x, M_delta)`` masks per image: ``ceil(delta m)``, or
    ``min(ceil(delta k), m)`` with ``fraction_of="all"``."""
    if fraction_of not in FRACTIONS:
        raise ValueError(f"fraction_of must be one of {FRACTIONS}, got {fraction_of!r}")
    delta = torch.as_tensor(delta, dtype=torch.float64, device=positives.device)
    if fraction_of == "positive":
        # a small tolerance so that e.g. 0.3 * 10 does not round up to 4
        return torch.ceil(delta * positives.double() - 1e-9).long().clamp(min=0)
    return torch.minimum(torch.ceil(delta * pixels - 1e-9).long(), positives)


def mask_top(x: torch.Tensor, rank: torch.Tensor, counts: torch.Tensor, baseline: float | torch.Tensor = 0.0):
    """``G(x, M)``: the ``counts[i]`` top-ranked pixels of image ``i`` (every channel) set to the baseline."""
    b, c, h, w = x.shape
    hide = (rank < counts.view(-1, 1)).view(b, 1, h, w)
    base = baseline if isinstance(baseline, torch.Tensor) else torch.full_like(x, float(baseline))
    return torch.where(hide, base.expand_as(x), x)


def sensitivity(rho: torch.Tensor, delta: float) -> float:
    """``S(M, X, delta) = 1 - |{x : rho(x) <= delta}| / |X|``."""
    check_delta(delta)
    return 1.0 - (rho <= delta + 1e-12).float().mean().item()


def detection_roc(rho_benign: torch.Tensor, rho_adversarial: torch.Tensor, max_delta: float | None = None) -> dict:
    """ROC of the detector that flags small ``rho`` (adversarial = positive class).

    ``rho = inf`` (the label never changed up to ``max_delta``) ranks below every finite value. Returns
    ``fpr``, ``tpr``, ``thresholds`` (in delta units) and ``auc``.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    rb, ra = rho_benign.double().cpu().numpy(), rho_adversarial.double().cpu().numpy()
    finite = np.concatenate([rb, ra])
    finite = finite[np.isfinite(finite)]
    cap = max(max_delta or 0.0, float(finite.max()) if len(finite) else 0.0) + 1.0
    scores = -np.concatenate([np.where(np.isfinite(rb), rb, cap), np.where(np.isfinite(ra), ra, cap)])
    labels = np.concatenate([np.zeros(len(rb)), np.ones(len(ra))])
    if len(rb) == 0 or len(ra) == 0:
        raise ValueError("detection_roc needs benign and adversarial inputs")
    fpr, tpr, thr = roc_curve(labels, scores)
    return {"fpr": fpr, "tpr": tpr, "thresholds": -thr, "auc": float(roc_auc_score(labels, scores))}


@dataclass
class MaskingResult:
    """What :meth:`CausalMasking.analyse` returns for a batch."""

    rho: torch.Tensor  # [B] Algorithm 1's robustness (inf: unchanged up to max_delta)
    label: torch.Tensor  # [B] the model's label on the input
    positives: torch.Tensor  # [B] number of positive-attribution pixels m
    rank: torch.Tensor  # [B, H*W] rank of each pixel's score
    scores: torch.Tensor  # [B, H*W] pixel scores (channel-summed IG)
    deltas: torch.Tensor  # [D] the grid evaluated
    changed: torch.Tensor  # [B, D] label changed at each grid delta (False beyond an image's rho: not evaluated)
    extras: dict = field(default_factory=dict)

    def changed_fraction(self, delta: float) -> float:
        """Fraction of inputs whose label changed at some grid point <= delta (= 1 - S)."""
        return (self.rho <= delta + 1e-12).float().mean().item() if len(self.rho) else float("nan")

    def curve(self, deltas) -> list[float]:
        return [self.changed_fraction(float(d)) for d in deltas]

    def __len__(self) -> int:
        return len(self.rho)

    @staticmethod
    def concat(parts: list["MaskingResult"]) -> "MaskingResult":
        cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
        extras = {k: torch.cat([p.extras[k] for p in parts]) for k in parts[0].extras
                  if isinstance(parts[0].extras[k], torch.Tensor)}
        return MaskingResult(cat("rho"), cat("label"), cat("positives"), cat("rank"), cat("scores"), parts[0].deltas,
                             cat("changed"), extras)


class CausalMasking(Detector):
    """The masking analysis and detector on ``model``.

    ``CausalMasking(model, interpreter="ig", epsilon=0.01, max_delta=1.0, fraction_of="positive",
    baseline=0.0, fpr=0.05, steps=50)``; ``analyse(x)`` runs Algorithm 1 on every image of a batch
    (labels on a delta grid, evaluated in chunks, stopping for an image at its first change). As a
    detector it scores ``-rho`` (see the module docstring); nothing to fit, ``calibrate(x_benign)``
    sets the threshold. Further keywords (``steps``, ``internal_batch_size``) go to the interpreter.
    """

    name = "ig_masking"

    def __init__(self, model: nn.Module, interpreter: str | Interpreter = "ig", epsilon: float = 0.01,
                 max_delta: float = 1.0, fraction_of: str = "positive", baseline: float = 0.0,
                 batch_size: int = 64, chunk: int = 8, fpr: float = 0.05, **interpreter_settings):
        check_delta(max_delta, "max_delta")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon <= 1:
            raise ValueError(f"epsilon (the granularity) must be in (0, 1], got {epsilon!r}")
        if epsilon > max_delta:
            raise ValueError(f"epsilon ({epsilon}) must not exceed max_delta ({max_delta})")
        if fraction_of not in FRACTIONS:
            raise ValueError(f"fraction_of must be one of {FRACTIONS}, got {fraction_of!r}")
        if not 0 <= baseline <= 1:
            raise ValueError(f"baseline must be in [0, 1], got {baseline}")
        super().__init__(model, fpr, batch_size)
        if isinstance(interpreter, str):
            if interpreter == "ig":
                interpreter_settings.setdefault("baseline", baseline)
            interpreter = get_interpreter(interpreter, model, **interpreter_settings)
        elif interpreter_settings:
            raise ValueError("interpreter settings go to the interpreter when it is given by name")
        self.interpreter = interpreter
        self.epsilon, self.max_delta, self.fraction_of = float(epsilon), float(max_delta), fraction_of
        self.baseline, self.chunk = float(baseline), chunk

    @property
    def deltas(self) -> torch.Tensor:
        """The grid ``epsilon, 2 epsilon, ... <= max_delta`` (Algorithm 1's delta values)."""
        n = int(math.floor(self.max_delta / self.epsilon + 1e-9))
        return torch.arange(1, n + 1, dtype=torch.float64) * self.epsilon

    def explain(self, x: torch.Tensor):
        return self.interpreter(x)

    @torch.no_grad()
    def labels(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).argmax(1)

    @torch.no_grad()
    def neighbour(self, x: torch.Tensor, rank: torch.Tensor, positives: torch.Tensor, delta: float) -> torch.Tensor:
        """``G(x, M_delta)`` for one delta."""
        check_delta(delta)
        counts = masked_counts(delta, positives, rank.shape[1], self.fraction_of)
        return mask_top(x, rank, counts, self.baseline)

    def analyse(self, x: torch.Tensor, explanation=None) -> MaskingResult:
        """Algorithm 1 on every image: ``rho``, the per-delta label changes, the scores and ranks.

        ``explanation``: attributions already computed for all of ``x`` (an :class:`Explanation`
        whose ``target`` is the label to watch); by default the interpreter explains the prediction."""
        parts = []
        dev = self.interpreter.device
        if len(x) == 0:  # e.g. the successful images of an attack that fooled none: an empty result
            k = x.shape[-2] * x.shape[-1]
            empty = lambda *shape, dtype=torch.long: torch.zeros(*shape, dtype=dtype)  # noqa: E731
            return MaskingResult(empty(0, dtype=torch.float64), empty(0), empty(0), empty(0, k),
                                 empty(0, k, dtype=torch.float32), self.deltas, empty(0, len(self.deltas), dtype=torch.bool))
        for start in range(0, len(x), self.batch_size):
            sl = slice(start, start + self.batch_size)
            xb = x[sl].to(dev)
            expl = self.explain(xb) if explanation is None else explanation
            attributions, label = expl.raw[sl if explanation is not None else slice(None)], \
                expl.target[sl if explanation is not None else slice(None)]
            delta = expl.extras.get("delta")
            extras = {}
            if isinstance(delta, torch.Tensor):
                extras["ig_delta"] = delta[sl] if explanation is not None else delta
            parts.append(self._analyse(xb, attributions.to(dev), label.to(dev), extras))
        return MaskingResult.concat(parts)

    def _analyse(self, x: torch.Tensor, attributions: torch.Tensor, label: torch.Tensor, extras: dict) -> MaskingResult:
        scores = pixel_scores(attributions)
        rank, positives = ranks(scores)
        deltas = self.deltas
        b, d = len(x), len(deltas)
        rho = torch.full((b,), float("inf"), dtype=torch.float64, device=x.device)
        changed = torch.zeros(b, d, dtype=torch.bool, device=x.device)
        k = rank.shape[1]
        counts_all = masked_counts(deltas.to(x.device)[None, :], positives[:, None], k, self.fraction_of)  # [B, D]
        with torch.no_grad():
            for j0 in range(0, d, self.chunk):
                active = torch.isinf(rho)
                if not active.any():
                    break
                js = list(range(j0, min(d, j0 + self.chunk)))
                idx = torch.nonzero(active).flatten()
                xa, ra = x[idx], rank[idx]
                # every (image, delta) pair of the chunk in one batch
                xs = torch.cat([mask_top(xa, ra, counts_all[idx, j], self.baseline) for j in js])
                pred = self.model(xs).argmax(1).view(len(js), len(idx)).T  # [active, chunk]
                flip = pred != label[idx, None]
                changed[idx[:, None], torch.tensor(js, device=x.device)[None, :]] = flip
                first = torch.where(flip.any(1), flip.float().argmax(1), torch.full_like(idx, -1))
                hit = first >= 0
                rho[idx[hit]] = deltas.to(x.device)[torch.tensor(js, device=x.device)[first[hit]]]
        return MaskingResult(rho.cpu(), label.cpu(), positives.cpu(), rank.cpu(), scores.cpu(), deltas, changed.cpu(),
                             {k: v.cpu() for k, v in extras.items()})

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """``-rho``; an unchanged label scores one grid step below the last masked fraction tried."""
        rho = self.analyse(x).rho.double()
        floor = self.max_delta + self.epsilon
        return -torch.where(torch.isinf(rho), torch.full_like(rho, floor), rho)


@torch.no_grad()
def theorem_violations(model: nn.Module, x: torch.Tensor, scores: torch.Tensor, delta: float, subsets: int = 32,
                       fraction_of: str = "positive", baseline: float = 0.0, seed: int = 0,
                       exhaustive: bool = False) -> dict:
    """Check the monotonicity theorem on ``model``: for each image, masking random subsets ``M`` of the
    top positive pixels ``M_delta``; a violation is a subset that changes the label while ``M_delta``
    itself does not. ``exhaustive`` tries every subset (only for a handful of pixels).

    Returns ``{"violations": [B] count, "subsets": [B] tried, "changed_by_subset": [B], "changed_by_full": [B]}``.
    """
    check_delta(delta)
    b, c, h, w = x.shape
    rank, positives = ranks(scores)
    counts = masked_counts(delta, positives, h * w, fraction_of)
    label = model(x).argmax(1)
    full = model(mask_top(x, rank, counts, baseline)).argmax(1) != label
    g = torch.Generator().manual_seed(seed)
    violations = torch.zeros(b, dtype=torch.long)
    tried = torch.zeros(b, dtype=torch.long)
    by_subset = torch.zeros(b, dtype=torch.bool)
    for i in range(b):
        n = int(counts[i])
        if n == 0:
            continue
        top = torch.nonzero(rank[i] < n).flatten()
        if exhaustive:
            if n > 16:
                raise ValueError(f"exhaustive check of 2^{n} subsets is too many; use random subsets")
            codes = torch.arange(1, 2 ** n)
            choose = ((codes[:, None] >> torch.arange(n)[None, :]) & 1).bool()
        else:
            choose = torch.rand(subsets, n, generator=g) < torch.rand(subsets, 1, generator=g)
        hide = torch.zeros(len(choose), h * w, dtype=torch.bool)
        hide[:, top] = choose
        hide = hide.view(-1, 1, h, w).to(x.device)
        xs = torch.where(hide, torch.full_like(x[i:i + 1], baseline), x[i:i + 1].expand(len(choose), -1, -1, -1))
        flips = model(xs).argmax(1).cpu() != label[i].cpu()
        tried[i] = len(choose)
        by_subset[i] = flips.any()
        if not bool(full[i]):
            violations[i] = int(flips.sum())
    return {"violations": violations, "subsets": tried, "changed_by_subset": by_subset,
            "changed_by_full": full.cpu()}
