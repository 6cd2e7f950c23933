"""Integrated Gradients (Sundararajan et al., 2017), batched over images and path points.

For a class ``c`` with output ``F_c`` (the logit by default, or the softmax probability), baseline
``x'`` and input ``x``, the attribution of input value ``i`` is

    IG_i(x) = (x_i - x'_i) * integral_0^1 dF_c(x' + a (x - x')) / dx_i da

approximated by a quadrature rule over ``steps`` points of the straight path: Gauss-Legendre by
default (exact for polynomials of degree 2*steps - 1, so far fewer points than a Riemann sum reach
the same accuracy), or the left / right / middle / trapezoid Riemann sums. The path points of
several images are evaluated together in chunks of ``internal_batch_size`` model inputs.

Completeness: ``sum_i IG_i = F_c(x) - F_c(x')`` up to the quadrature error; ``extras["delta"]`` is
that error per image (captum calls it the convergence delta).

``raw`` holds the attributions [B, C, H, W]; ``maps`` sums them over colour channels into one
signed score per pixel [B, 1, H, W] (summing keeps completeness per pixel: a pixel's score is the
change of the output its three values account for together).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .base import Explanation, Interpreter

__all__ = ["IntegratedGradients", "integrated_gradients", "path_coefficients", "prediction_interpretation_losses"]

METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def path_coefficients(steps: int, method: str = "gausslegendre") -> tuple[torch.Tensor, torch.Tensor]:
    """``(alphas, weights)`` of the quadrature rule on [0, 1] (weights sum to 1)."""
    if method not in METHODS:
        raise ValueError(f"unknown integration method {method!r}; valid: {', '.join(METHODS)}")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return torch.tensor(0.5 * (nodes + 1)), torch.tensor(0.5 * weights)
    if steps < 2:
        raise ValueError("Riemann sums need at least 2 steps")
    w = torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    kind = method.split("_")[1]
    if kind == "trapezoid":
        w[0] /= 2
        w[-1] /= 2
        a = torch.linspace(0, 1, steps, dtype=torch.float64)
    elif kind == "left":
        a = torch.linspace(0, 1 - 1 / steps, steps, dtype=torch.float64)
    elif kind == "right":
        a = torch.linspace(1 / steps, 1, steps, dtype=torch.float64)
    else:
        a = torch.linspace(1 / (2 * steps), 1 - 1 / (2 * steps), steps, dtype=torch.float64)
    return a, w


def integrated_gradients(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                         baseline: torch.Tensor | None = None, steps: int = 50, method: str = "gausslegendre",
                         internal_batch_size: int = 64) -> torch.Tensor:
    """Integrated gradients [B, ...] of any per-image scalar function along the straight path.

    ``fn(points, index)`` maps a stack of path points [N, ...] and the index of the image each
    point belongs to [N] to one value per point [N] (the index lets a function use per-image
    targets or references). ``baseline`` defaults to zeros (black). Points of all images are
    evaluated together, ``internal_batch_size`` at a time.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(internal_batch_size, int) or internal_batch_size < 1:
        raise ValueError(f"internal_batch_size must be a positive integer, got {internal_batch_size!r}")
    x = x.detach()
    base = torch.zeros_like(x) if baseline is None else baseline.detach().to(x).expand_as(x)
    if base.shape != x.shape:
        raise ValueError(f"baseline shape {tuple(base.shape)} differs from the inputs' {tuple(x.shape)}")
    b, rest = len(x), x.shape[1:]
    diff = x - base
    alphas, weights = path_coefficients(steps, method)
    alphas, weights = alphas.to(x.device, x.dtype), weights.to(x.device, x.dtype)
    # all (point, image) pairs, point-major: row s*b + i is image i at alpha_s
    total = len(alphas) * b
    grads = torch.empty((total, *rest), device=x.device, dtype=x.dtype)
    for start in range(0, total, internal_batch_size):
        rows = torch.arange(start, min(total, start + internal_batch_size), device=x.device)
        s, i = rows // b, rows % b
        points = (base[i] + alphas[s].view(-1, *[1] * len(rest)) * diff[i]).requires_grad_(True)
        with torch.enable_grad():
            out = fn(points, i)
            grads[rows], = torch.autograd.grad(out.sum(), points)
    avg = (grads.view(len(alphas), b, *rest) * weights.view(-1, 1, *[1] * len(rest))).sum(0)
    return diff * avg


class IntegratedGradients(Interpreter):
    """``IntegratedGradients(model, steps=50, baseline=0.0)``; ``baseline`` is a value in [0, 1] for
    every pixel (0 = black, the paper's choice), ``"black"``/``"white"``, or an image tensor."""

    name = "ig"
    differentiable = False

    def __init__(self, model, steps: int = 50, baseline: float | str | torch.Tensor = 0.0,
                 method: str = "gausslegendre", output: str = "logit", internal_batch_size: int = 64):
        super().__init__(model)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        path_coefficients(steps, method)  # validates the method
        if output not in ("logit", "probability"):
            raise ValueError(f"output must be 'logit' or 'probability', got {output!r}")
        if isinstance(baseline, str):
            if baseline not in ("black", "white"):
                raise ValueError(f"baseline must be 'black', 'white', a value in [0, 1] or an image, got {baseline!r}")
            baseline = 0.0 if baseline == "black" else 1.0
        elif isinstance(baseline, (int, float)) and not 0 <= baseline <= 1:
            raise ValueError(f"a constant baseline must be in [0, 1], got {baseline}")
        if not isinstance(internal_batch_size, int) or internal_batch_size < 1:
            raise ValueError(f"internal_batch_size must be a positive integer, got {internal_batch_size!r}")
        self.steps, self.method, self.output = steps, method, output
        self.baseline = baseline
        self.internal_batch_size = internal_batch_size

    def _output(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        if self.output == "probability":
            z = z.softmax(1)
        return z.gather(1, target[:, None]).squeeze(1)

    def baseline_like(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.baseline, torch.Tensor):
            b = self.baseline.to(x.device, x.dtype)
            return b.expand_as(x) if b.dim() == 3 or b.shape[0] == 1 else b
        return torch.full_like(x, float(self.baseline))

    def attribute(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool) -> Explanation:
        b = len(x)
        base = self.baseline_like(x)
        attributions = integrated_gradients(lambda points, i: self._output(points, target[i]), x, base,
                                            self.steps, self.method, self.internal_batch_size)
        with torch.no_grad():
            logits = self.model(x)
            ends = self._output(torch.cat([x, base]), torch.cat([target, target]))
            delta = attributions.flatten(1).sum(1) - (ends[:b] - ends[b:])
        return Explanation(maps=attributions.sum(1, keepdim=True).detach(), raw=attributions.detach(), target=target,
                           logits=logits, extras={"delta": delta, "steps": self.steps, "method": self.method,
                                                  "baseline": self.baseline if not isinstance(self.baseline, torch.Tensor)
                                                  else "image"})


def prediction_interpretation_losses(model, x_benign: torch.Tensor, x_adv: torch.Tensor, cls: torch.Tensor,
                                     steps: int = 64, internal_batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Zhang et al.'s Proposition 1, measured per image, with IG on the probability of class ``cls``.

    ``l_prd = f(x_adv) - f(x_benign)`` (the rise of the class probability) and ``l_int = ||dm||_1``
    where ``dm`` is IG of ``x_adv`` with the benign image as baseline (their Eq. 13). Completeness makes
    ``sum(dm) = l_prd`` up to the quadrature error ``gap``, so ``l_prd <= l_int + |gap|`` must hold;
    ``ratio = l_prd / l_int`` in [-1, 1] says how tight the bound is (1: every input value moved the
    probability the same way)."""
    if x_benign.shape != x_adv.shape:
        raise ValueError(f"benign and adversarial batches differ in shape: {tuple(x_benign.shape)} vs "
                         f"{tuple(x_adv.shape)}")
    cls = torch.as_tensor(cls, device=x_adv.device).long()

    def prob(points, i):
        return model(points).softmax(1).gather(1, cls[i][:, None]).squeeze(1)

    dm = integrated_gradients(prob, x_adv, x_benign, steps, "gausslegendre", internal_batch_size)
    with torch.no_grad():
        idx = torch.arange(len(x_adv), device=x_adv.device)
        l_prd = prob(x_adv, idx) - prob(x_benign, idx)
    l_int = dm.flatten(1).abs().sum(1)
    return {"l_prd": l_prd.detach(), "l_int": l_int.detach(), "gap": (dm.flatten(1).sum(1) - l_prd).detach(),
            "ratio": (l_prd / l_int.clamp_min(1e-12)).detach()}
