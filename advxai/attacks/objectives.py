"""Objective terms that attack frameworks minimise.

A term maps the current adversarial batch to a per-image loss [B] (lower is better for the
attacker). An :class:`Objective` is a weighted sum of terms, where a weight may depend on the
step (a schedule), so ADV² (prediction + interpretation), AdvEdge (the same under a step mask) and
adaptive attacks (prediction + a defense's loss) are compositions, not copies of PGD or C&W.

Terms receive an :class:`AttackState` with the benign images, labels, target, the current step,
and the logits of the current iterate (computed once per step by the framework).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F

__all__ = ["AttackState", "Term", "PredictionLoss", "Objective", "margin"]


@dataclass
class AttackState:
    x: torch.Tensor  # benign images
    y: torch.Tensor  # true labels
    target: torch.Tensor | None  # target labels (targeted attacks)
    step: int = 0
    steps: int = 1
    logits: torch.Tensor | None = None  # model(x_adv) at this step
    cache: dict = field(default_factory=dict)  # per-attack scratch space (e.g. target maps)

    @property
    def targeted(self) -> bool:
        return self.target is not None


class Term(Protocol):
    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:  # [B]
        ...


def margin(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """``z_label - max_{j != label} z_j`` per image."""
    z_label = logits.gather(1, label[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, label[:, None], float("-inf"))
    return z_label - other.amax(1)


class PredictionLoss:
    """The classifier's part of the objective.

    * ``"ce"``: targeted: CE(f(x'), t); untargeted: -CE(f(x'), y) (optionally label-smoothed);
    * ``"cw"``: Carlini & Wagner's margin, clipped at -kappa: targeted max(max_{j!=t} z_j - z_t, -kappa),
      untargeted max(z_y - max_{j!=y} z_j, -kappa).
    """

    def __init__(self, kind: str = "ce", kappa: float = 0.0, label_smoothing: float = 0.0):
        if kind not in ("ce", "cw"):
            raise ValueError(f"prediction loss must be 'ce' or 'cw', got {kind!r}")
        if kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {kappa}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.kind, self.kappa, self.label_smoothing = kind, float(kappa), float(label_smoothing)

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        logits = state.logits
        if self.kind == "ce":
            if state.targeted:
                return F.cross_entropy(logits, state.target, reduction="none", label_smoothing=self.label_smoothing)
            return -F.cross_entropy(logits, state.y, reduction="none", label_smoothing=self.label_smoothing)
        if state.targeted:
            return (-margin(logits, state.target)).clamp(min=-self.kappa)
        return margin(logits, state.y).clamp(min=-self.kappa)

    def __repr__(self) -> str:
        return f"PredictionLoss({self.kind!r}, kappa={self.kappa}, label_smoothing={self.label_smoothing})"


Weight = float | Callable[[int, int], float]  # a constant, or a schedule (step, steps) -> weight


class Objective:
    """``sum_k w_k(step) * term_k(x_adv, state)`` per image; :meth:`parts` gives each term's value."""

    def __init__(self, terms: Sequence[tuple[Weight, Term]]):
        if not terms:
            raise ValueError("an objective needs at least one term")
        self.terms = list(terms)

    def parts(self, x_adv: torch.Tensor, state: AttackState) -> list[torch.Tensor]:
        return [term(x_adv, state) for _, term in self.terms]

    def weights(self, state: AttackState) -> list[float]:
        return [w(state.step, state.steps) if callable(w) else float(w) for w, _ in self.terms]

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        total = 0.0
        for w, value in zip(self.weights(state), self.parts(x_adv, state)):
            total = total + w * value
        return total

    def __repr__(self) -> str:
        return "Objective(" + " + ".join(f"{w if not callable(w) else 'w(t)'}*{t!r}" for w, t in self.terms) + ")"
