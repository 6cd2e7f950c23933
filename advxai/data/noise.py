"""Random input noise at a chosen strength, and the strength that makes a model err on a chosen share.

Zhang et al. (§ 5 Q3, Fig. 15) compare interpreters under Gaussian and uniform noise at "two noise
levels, which respectively cause 3% and 30% misclassification on the test set". :func:`add_noise`
draws the noise (``"normal"``: N(0, s²) per value; ``"uniform"``: U(-s√3, s√3), the same standard
deviation ``s``) and clips to [0, 1]; :func:`scale_for_error_rate` finds ``s`` by bisection on the
error rate of the model over the given images, with the same noise draw at every trial so the rate
changes only through ``s``.
"""
from __future__ import annotations

import math

import torch

__all__ = ["NOISE_KINDS", "add_noise", "scale_for_error_rate"]

NOISE_KINDS = ("normal", "uniform")


def _unit_noise(x: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; valid: {', '.join(NOISE_KINDS)}")
    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        z = torch.randn(x.shape, generator=g)
    else:
        z = (2 * torch.rand(x.shape, generator=g) - 1) * math.sqrt(3.0)
    return z.to(x.device, x.dtype)


def add_noise(x: torch.Tensor, kind: str, scale: float, seed: int = 0) -> torch.Tensor:
    """``x`` plus noise of standard deviation ``scale`` (before clipping to [0, 1])."""
    if not scale >= 0:
        raise ValueError(f"scale must be non-negative, got {scale!r}")
    return (x + scale * _unit_noise(x, kind, seed)).clamp(0, 1)


@torch.no_grad()
def scale_for_error_rate(model, x: torch.Tensor, y: torch.Tensor, kind: str, error_rate: float, seed: int = 0,
                         max_scale: float = 1.0, iterations: int = 14, batch_size: int = 128) -> tuple[float, float]:
    """``(scale, achieved error rate)``: the noise scale at which ``model`` misclassifies about
    ``error_rate`` of ``(x, y)`` (bisection in [0, max_scale]; the rate grows with the scale, up to the
    sampling noise of one fixed draw)."""
    if not 0 < error_rate < 1:
        raise ValueError(f"error_rate must be in (0, 1), got {error_rate!r}")
    z = _unit_noise(x, kind, seed)
    y = y.to(x.device)

    def error(s: float) -> float:
        wrong = 0
        for i in range(0, len(x), batch_size):
            xi = (x[i:i + batch_size] + s * z[i:i + batch_size]).clamp(0, 1)
            wrong += int((model(xi).argmax(1) != y[i:i + batch_size]).sum())
        return wrong / len(x)

    lo, hi = 0.0, float(max_scale)
    if error(hi) < error_rate:
        raise ValueError(f"even noise of scale {max_scale} leaves the error rate below {error_rate}; raise max_scale")
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if error(mid) < error_rate:
            lo = mid
        else:
            hi = mid
    return hi, error(hi)
