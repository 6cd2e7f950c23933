"""Carlini & Wagner's L2 attack, built as a framework like PGD.

The attack optimises a change of variables ``x' = (tanh(w) + 1) / 2`` (so every iterate lies in
[0, 1] without clipping) with Adam, minimising per image

    ||x' - x||_2^2  +  c * f(x')  +  sum_k w_k(step) * term_k(x', state)

where ``f`` is the margin loss clipped at ``-kappa`` (:class:`~advxai.attacks.objectives.PredictionLoss`
``"cw"``): targeted ``max(max_{j != t} z_j - z_t, -kappa)``, untargeted ``max(z_y - max_{j != y} z_j, -kappa)``.
An outer binary search over the constant ``c`` (per image) looks for the smallest ``c`` that still
succeeds: ``c`` is multiplied by 10 until a success is found, then bisected.

As a framework it accepts, with the same calling conventions as :class:`~advxai.attacks.gradient.PGD`:

* ``terms``: extra weighted objective terms ``(weight, term)``; a term maps ``(x_adv, AttackState)``
  to a per-image loss [B], a weight is a constant or a schedule ``(step, steps) -> float`` over the
  iterations of one binary-search step. ``state.cache["const"]`` holds the current ``c`` per image;
* ``step_mask``: per-pixel weights in [0, 1] (a tensor [B|1, 1|C, H, W] or a function of the benign
  batch) multiplying every Adam update in tanh space; pixels of weight 0 are never changed;
  ``mask_steps`` limits it to the first iterations of each binary-search step (a warm start); an
  image whose mask is all zero is reported as failed (``extras["mask_empty"]``) with a warning;
* ``x_init``: a starting point other than the benign image (``perturb(..., x_init=...)``);
* ``keep``: which successful iterate to return per image: ``"l2"`` (the smallest perturbation, as
  Carlini & Wagner), ``"objective"`` (the lowest total objective, extra terms included) or ``"last"``.

Success inside the attack means success with the confidence margin: targeted ``z_t - max_{j!=t} z_j
> kappa``, untargeted ``max_{j!=y} z_j - z_y > kappa``. An image for which no iterate succeeded is
returned unchanged (its ``success`` is False and its norms are 0).

``abort_early`` stops updating an image when its loss has not improved by 0.01 % over the last
tenth of the steps (per image, so a result never depends on which other images share its batch);
without extra terms an aborted image also leaves the batch's forward and backward passes.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .base import Attack
from .gradient import MaskLike, check_mask_steps, report_empty_mask, resolve_mask
from .objectives import AttackState, Objective, PredictionLoss, Weight, margin

__all__ = ["CW", "to_tanh_space", "from_tanh_space"]

_SHRINK = 0.999999  # keeps atanh finite at 0 and 1


def to_tanh_space(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> R: ``atanh((2x - 1) * 0.999999)``."""
    return torch.atanh((2 * x - 1) * _SHRINK)


def from_tanh_space(w: torch.Tensor) -> torch.Tensor:
    """R -> (0, 1): ``(tanh(w) + 1) / 2``."""
    return (torch.tanh(w) + 1) / 2


class CW(Attack):
    name = "cw"

    def __init__(self, model, c: float = 1e-3, kappa: float = 0.0, steps: int = 1000, lr: float = 1e-2,
                 binary_search_steps: int = 9, abort_early: bool = True, targeted: bool = False,
                 terms: Sequence[tuple[Weight, object]] = (), step_mask: MaskLike = None, keep: str = "l2",
                 seed: int = 0, batch_size: int | None = None, mask_steps: int | None = None):
        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        if not (isinstance(c, (int, float)) and c > 0 and math.isfinite(c)):
            raise ValueError(f"c (the initial constant) must be a positive number, got {c!r}")
        if not (isinstance(kappa, (int, float)) and kappa >= 0):
            raise ValueError(f"kappa (the confidence margin) must be >= 0, got {kappa!r}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not isinstance(binary_search_steps, int) or binary_search_steps < 1:
            raise ValueError(f"binary_search_steps must be a positive integer, got {binary_search_steps!r}")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be positive, got {lr!r}")
        if keep not in ("l2", "objective", "last"):
            raise ValueError(f"keep must be 'l2', 'objective' or 'last', got {keep!r}")
        self.c, self.kappa, self.steps, self.lr = float(c), float(kappa), steps, float(lr)
        self.binary_search_steps, self.abort_early, self.keep = binary_search_steps, abort_early, keep
        self.prediction = PredictionLoss("cw", kappa=self.kappa)
        self.extra = Objective(list(terms)) if terms else None
        self.step_mask = step_mask
        self.mask_steps = check_mask_steps(mask_steps)

    # -- pieces a composed attack may reuse --------------------------------------------------
    def succeeds(self, logits: torch.Tensor, state: AttackState) -> torch.Tensor:
        """Success with the confidence margin kappa, per image."""
        if state.targeted:
            return margin(logits, state.target) > self.kappa
        return -margin(logits, state.y) > self.kappa

    def losses(self, x_adv: torch.Tensor, x_ref: torch.Tensor, const: torch.Tensor, state: AttackState):
        """``(total, l2_squared)`` per image at ``x_adv`` (``state.logits`` must be set)."""
        l2sq = (x_adv - x_ref).flatten(1).pow(2).sum(1)
        total = l2sq + const * self.prediction(x_adv, state)
        if self.extra is not None:
            total = total + self.extra(x_adv, state)
        return total, l2sq

    # -- the attack --------------------------------------------------------------------------
    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
                x_init: torch.Tensor | None = None) -> torch.Tensor:
        n = len(x)
        mask = resolve_mask(self.step_mask, x)
        empty = report_empty_mask(self, mask, n, self.mask_steps is None or self.mask_steps >= self.steps)
        start = x if x_init is None else x_init.detach().to(x.device).clamp(0, 1)
        w0 = to_tanh_space(start)
        x_ref = from_tanh_space(to_tanh_space(x))  # x as the tanh map reproduces it
        state = AttackState(x=x, y=y, target=target, steps=self.steps)

        dev = x.device
        const = torch.full((n,), self.c, device=dev, dtype=x.dtype)
        lower = torch.zeros(n, device=dev, dtype=x.dtype)
        upper = torch.full((n,), float("inf"), device=dev, dtype=x.dtype)
        best = x.clone()
        best_score = torch.full((n,), float("inf"), device=dev)  # l2 or objective of the kept iterate
        best_const = torch.full((n,), float("nan"), device=dev)
        check_every = max(1, math.ceil(self.steps / 10))
        b1, b2, adam_eps = 0.9, 0.999, 1e-8

        for _ in range(self.binary_search_steps):
            state.cache["const"] = const
            w = w0.clone()
            m = torch.zeros_like(w)
            v = torch.zeros_like(w)
            found = torch.zeros(n, dtype=torch.bool, device=dev)
            active = torch.ones(n, dtype=torch.bool, device=dev)
            previous = torch.full((n,), float("inf"), device=dev)
            for step in range(self.steps):
                # once an image has aborted, its iterate w stays fixed for this binary-search step, so
                # without extra terms (which may couple the images through ``state.cache``) only the
                # images still active are computed; each image's loss depends on itself alone
                rows = None if self.extra is not None or bool(active.all()) else active.nonzero().squeeze(1)
                pick = (lambda t: t) if rows is None else (lambda t: t[rows])
                step_state = state if rows is None else AttackState(
                    x=pick(x), y=pick(y), target=None if target is None else pick(target), steps=self.steps)
                step_state.step = step
                w_live = pick(w).detach().requires_grad_(True)
                x_adv = from_tanh_space(w_live)
                masked = mask is not None and (self.mask_steps is None or step < self.mask_steps)
                step_mask = mask if not masked or mask.shape[0] == 1 else pick(mask)
                if masked:  # pixels of weight 0 keep their exact benign value
                    x_adv = torch.where(step_mask > 0, x_adv, pick(x))
                step_state.logits = self.model(x_adv)
                total, l2sq = self.losses(x_adv, pick(x_ref), pick(const), step_state)
                grad, = torch.autograd.grad(total.sum(), w_live)
                with torch.no_grad():
                    ok = self.succeeds(step_state.logits, step_state)
                    x_adv = x_adv.detach()
                    if rows is not None:  # back to the whole batch; the aborted images stay inactive
                        total = previous.clone().index_copy_(0, rows, total)
                        l2sq = torch.zeros_like(previous).index_copy_(0, rows, l2sq)
                        ok = torch.zeros_like(active).index_copy_(0, rows, ok)
                        x_adv = best.clone().index_copy_(0, rows, x_adv)
                        grad = torch.zeros_like(w).index_copy_(0, rows, grad)
                        if masked:
                            step_mask = mask
                    if self.abort_early and step % check_every == 0:
                        active &= total <= 0.9999 * previous
                        previous = torch.where(active, total, previous)
                        if not active.any():
                            break
                    ok = ok & active
                    found |= ok
                    if self.keep == "last":
                        better = ok
                    else:
                        score = l2sq if self.keep == "l2" else total
                        better = ok & (score < best_score)
                        best_score = torch.where(better, score, best_score)
                    best = torch.where(better.view(-1, 1, 1, 1), x_adv, best)
                    best_const = torch.where(better, const, best_const)
                    # Adam in tanh space, its update weighted per pixel by the step mask
                    m.mul_(b1).add_((1 - b1) * grad)
                    v.mul_(b2).add_((1 - b2) * grad * grad)
                    t = step + 1
                    update = self.lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + adam_eps)
                    if masked:
                        update = update * step_mask
                    update = update * active.view(-1, 1, 1, 1)
                    w = w.detach() - update
            # binary search on c: bisect once a success bounds it from above, else grow tenfold
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            const = torch.where(torch.isinf(upper), const * 10, (lower + upper) / 2)
        self._extras = {"const": best_const.detach()}
        if empty is not None:
            self._extras["mask_empty"] = empty
        return best.detach()
