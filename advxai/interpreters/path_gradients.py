"""Integrated gradients along a straight path, batched (Sundararajan et al.).

``integrated_gradients(f, x, baseline)`` returns ``(x - x0) * mean_t grad f(x0 + t (x - x0))`` with
``steps`` midpoint samples of t, so that ``sum(attributions) ~= f(x) - f(x0)`` (completeness). ADV²'s
Proposition 1 uses it with the benign image as the baseline of the adversarial one.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["integrated_gradients"]


def integrated_gradients(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                         baseline: torch.Tensor | None = None, steps: int = 64,
                         batch_size: int = 256) -> torch.Tensor:
    """Attributions [B, ...] of the scalar per-image function ``fn`` (``[N, ...] -> [N]``).

    The path integral uses the midpoint rule on ``steps`` intervals; interpolants of all images are
    evaluated together, ``batch_size`` at a time.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    x = x.detach()
    baseline = torch.zeros_like(x) if baseline is None else baseline.detach().to(x)
    if baseline.shape != x.shape:
        raise ValueError(f"baseline shape {tuple(baseline.shape)} differs from the inputs' {tuple(x.shape)}")
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps  # midpoints
    diff = x - baseline
    b = len(x)
    # [steps * B, ...]: step-major, so a chunk covers whole steps of every image
    total = torch.zeros_like(x)
    per_chunk = max(1, batch_size // max(1, b))
    for s0 in range(0, steps, per_chunk):
        a = alphas[s0:s0 + per_chunk]
        path = (baseline[None] + a.view(-1, *[1] * x.dim()) * diff[None]).reshape(-1, *x.shape[1:])
        path.requires_grad_(True)
        with torch.enable_grad():
            out = fn(path)
            grad, = torch.autograd.grad(out.sum(), path)
        total += grad.view(len(a), *x.shape).sum(0)
    return diff * total / steps
