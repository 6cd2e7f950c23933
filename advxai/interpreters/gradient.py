"""GRAD: gradient saliency (Simonyan et al.), ``m = |d f_c(x) / d x|``, as ADV² uses it.

The map is the absolute input gradient of the class score, reduced over colour channels by the
maximum, average-pooled by ``pool`` (4: a 224-pixel image gives the 56x56 map of Zhang et al.'s
code, a 64-pixel one 16x16) and min-max normalised per image. ``score`` picks what is
differentiated: ``"prob"`` (the paper's Eq. 5, the softmax probability), ``"log_prob"`` (the
authors' code differentiates the cross-entropy, i.e. ``-log p_c``; the absolute value is the same
as for ``log p_c``) or ``"logit"``.

Asked for a graph (``create_graph=True``, what ADV² needs), the map is computed with ReLU's
derivative replaced by the smooth surrogate ``h`` (:mod:`advxai.interpreters.surrogate`), so its
gradient with respect to the input is informative; without a graph it is the exact gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Explanation, Interpreter, minmax_normalize, upsample_to
from .surrogate import DEFAULT_TAU, smooth_relu_backward

__all__ = ["Grad", "class_score"]

SCORES = ("prob", "log_prob", "logit")


def class_score(logits: torch.Tensor, target: torch.Tensor, score: str) -> torch.Tensor:
    """The per-image scalar a gradient interpreter differentiates: [B]."""
    if score == "logit":
        out = logits
    elif score == "prob":
        out = logits.softmax(1)
    elif score == "log_prob":
        out = logits.log_softmax(1)
    else:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    return out.gather(1, target[:, None]).squeeze(1)


class Grad(Interpreter):
    """``|d score_c / d x|``: max over channels, ``pool`` x ``pool`` average pooling, min-max normalised."""

    name = "grad"
    differentiable = True

    def __init__(self, model, score: str = "prob", pool: int = 4, surrogate: bool = True, tau: float = DEFAULT_TAU,
                 surrogate_kind: str = "h"):
        super().__init__(model)
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        if not isinstance(pool, int) or pool < 1:
            raise ValueError(f"pool must be a positive integer, got {pool!r}")
        self.score, self.pool, self.surrogate, self.tau, self.surrogate_kind = score, pool, surrogate, tau, surrogate_kind

    def gradient(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d score / d x [B, C, H, W], logits)``; differentiable w.r.t. ``x`` when ``create_graph``."""
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        logits = self.model(x)
        s = class_score(logits, target, self.score)
        grad, = torch.autograd.grad(s.sum(), x, create_graph=create_graph)
        return grad, logits

    def attribute(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool) -> Explanation:
        if create_graph and self.surrogate:
            with smooth_relu_backward(self.model, self.tau, self.surrogate_kind):
                grad, logits = self.gradient(x, target, True)
        else:
            grad, logits = self.gradient(x, target, create_graph)
            if not create_graph:
                grad = grad.detach()
        saliency = grad.abs().amax(1, keepdim=True)
        native = F.avg_pool2d(saliency, self.pool) if self.pool > 1 else saliency
        native = minmax_normalize(native)
        maps = upsample_to(native, tuple(x.shape[-2:]))
        return Explanation(maps=maps, raw=grad, target=target, logits=logits.detach(), extras={"native": native})
