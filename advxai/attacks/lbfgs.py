"""Box-constrained L-BFGS (Szegedy et al., 2014), targeted.

For a constant ``c`` the attack solves, per image,

    minimise  c * ||x' - x||_2^2  +  CE(f(x'), t)      subject to  x' in [0, 1]

with scipy's L-BFGS-B (the box is a bound constraint, not a clip). The objective is a sum of
independent per-image terms, so the whole batch is one bound-constrained problem in
``B * C * H * W`` variables: one forward and backward pass of the batch per function evaluation.

The search over ``c`` (per image) looks for the largest weight on the distance that still reaches
the target, i.e. the smallest perturbation: starting from ``c``, it multiplies ``c`` by 10 while the
optimum is adversarial and divides it by 10 while it is not, until both a success and a failure
bracket ``c``, then bisects (geometrically) for the remaining ``search_steps``. The returned image is
the successful optimum with the smallest L2 distance; an image never brought to its target comes
back unchanged (``success`` False).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .base import Attack

__all__ = ["LBFGS"]


class LBFGS(Attack):
    name = "lbfgs"
    modes = ("targeted",)

    def __init__(self, model, c: float = 1e-2, search_steps: int = 6, max_iter: int = 100, targeted: bool = True,
                 seed: int = 0, batch_size: int | None = None):
        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        if not (isinstance(c, (int, float)) and c > 0 and math.isfinite(c)):
            raise ValueError(f"c (the weight of the distance) must be a positive number, got {c!r}")
        if not isinstance(search_steps, int) or search_steps < 1:
            raise ValueError(f"search_steps must be a positive integer, got {search_steps!r}")
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        self.c, self.search_steps, self.max_iter = float(c), search_steps, max_iter

    def _solve(self, x: torch.Tensor, target: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
        """The L-BFGS-B optimum for the constants ``const`` [B], started at ``x``."""
        from scipy.optimize import Bounds, minimize

        shape, dev = x.shape, x.device

        def fun(flat: np.ndarray):
            xa = torch.from_numpy(flat).to(dev, torch.float32).view(shape).requires_grad_(True)
            logits = self.model(xa)
            dist = (xa - x).flatten(1).pow(2).sum(1)
            loss = (const * dist + F.cross_entropy(logits, target, reduction="none")).sum()
            grad, = torch.autograd.grad(loss, xa)
            return float(loss.detach()), grad.flatten().double().cpu().numpy()

        x0 = x.detach().flatten().double().cpu().numpy()
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=Bounds(np.zeros_like(x0), np.ones_like(x0)),
                       options={"maxiter": self.max_iter})
        return torch.from_numpy(res.x).to(dev, torch.float32).view(shape).clamp(0, 1)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        n, dev = len(x), x.device
        const = torch.full((n,), self.c, device=dev)
        lo = torch.zeros(n, device=dev)  # largest c known to succeed (0: none yet)
        hi = torch.full((n,), float("inf"), device=dev)  # smallest c known to fail
        best = x.clone()
        best_l2 = torch.full((n,), float("inf"), device=dev)
        best_const = torch.full((n,), float("nan"), device=dev)
        for _ in range(self.search_steps):
            x_opt = self._solve(x, target, const)
            with torch.no_grad():
                ok = self.model(x_opt).argmax(1) == target
                l2 = (x_opt - x).flatten(1).norm(dim=1)
                better = ok & (l2 < best_l2)
                best = torch.where(better.view(-1, 1, 1, 1), x_opt, best)
                best_l2 = torch.where(better, l2, best_l2)
                best_const = torch.where(better, const, best_const)
                lo = torch.where(ok, torch.maximum(lo, const), lo)
                hi = torch.where(ok, hi, torch.minimum(hi, const))
                bracketed = (lo > 0) & torch.isfinite(hi)
                const = torch.where(bracketed, torch.sqrt(lo.clamp(min=1e-30) * hi),
                                    torch.where(ok, const * 10, const / 10))
        self._extras = {"const": best_const}
        return best
