"""ADV² against MASK on Carlini & Wagner and on StAdv: the bilevel look-ahead as an objective term.

MASK is itself an optimisation (Adam on a keep-mask ``m``), so its map has no gradient with respect
to the input. ADV² on PGD attacks it with its own bilevel procedure (:class:`~advxai.attacks.adv2.ADV2Mask`,
the ADV² paper's Algorithm 1). C&W and StAdv descend a single objective with Adam instead of taking
PGD's two-stage steps, so against MASK the same bilevel idea enters them as one more term,
:class:`MaskLookaheadLoss`, evaluated at every step of the attack (the leader):

1. the follower: MASK's keep-mask ``m`` takes ``n_step`` plain Adam steps on ``l_map(m; x')`` at the
   current iterate ``x'`` (a running Adam state); every ``reset_every`` steps (and at the first) ``m`` is
   recomputed by MASK on ``x'`` (``reset_iterations`` Adam steps from the current mask) and the Adam
   state reset, the periodic reset of Algorithm 1;
2. the look-ahead: ``n_step`` more Adam steps ``m_1 .. m_n`` from ``m``, unrolled with their graph, so
   ``l_int = sum_j agg((1 - m_j) - m_t)^2`` (``agg`` the mean or the sum over the mask's pixels) is a
   differentiable function of ``x'``, and through it of C&W's tanh variable or StAdv's flow.

``m_t`` is the benign MASK map of the true class (MASK run on the benign image), or the maps given as
``attack(x, y, target, target_map=...)``. The follower's state lives in the attack's state for one
batch; C&W's binary-search rounds start again at step 0, and so with a fresh mask.

:class:`ADV2MaskCW` and :class:`ADV2MaskStAdv` are C&W and StAdv with this term (and the same step
masks, AdvEdge's edges, as the other frameworks). :func:`adv2_mask_stadv_settings` gives the ADV²
paper's Table 12 row for MASK on StAdv; the paper gives no settings for ADV² on C&W, so there are
none for C&W here either. Table 12's lambda (500) is read as the weight of the **mean** over the
mask's pixels, summed over the look-ahead steps (this package's ADV² against MASK on PGD measures
``l_int`` that way): on the sum over a 28x28 mask it would weigh 784 times more and leave the
prediction term (a cross-entropy of order 1) without any pull.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .adv2 import (TargetMapsSlot, _TargetMaps, _weight, check_architecture, check_reduction, check_settings_name,
                   placement_mask_steps, resolve_budget, resolve_interpreter, scale_steps, _is_mask, BUDGETS)
from .cw import CW
from .gradient import MaskLike
from .objectives import AttackState, Weight
from .stadv import StAdv

__all__ = ["MaskLookaheadLoss", "ADV2MaskCW", "ADV2MaskStAdv", "adv2_mask_stadv_settings", "make_adv2_mask",
           "MASK_STADV_SETTINGS"]


class MaskLookaheadLoss(TargetMapsSlot):
    """``l_int`` against MASK through an unrolled look-ahead of MASK's own optimisation (see the module
    doc); per image, differentiable with respect to the iterate. ``state.cache["l_int"]`` keeps the
    last value."""

    def __init__(self, interpreter, n_step: int = 4, reset_every: int = 50, reset_iterations: int | None = None,
                 reduction: str = "mean", seed: int = 0):
        if not _is_mask(interpreter):
            raise ValueError(f"the look-ahead term attacks MASK, got {getattr(interpreter, 'name', interpreter)!r}")
        for name, v in (("n_step", n_step), ("reset_every", reset_every)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if reset_iterations is not None and (isinstance(reset_iterations, bool) or not isinstance(reset_iterations, int)
                                             or reset_iterations < 1):
            raise ValueError(f"reset_iterations must be a positive integer or None, got {reset_iterations!r}")
        self.interpreter, self.n_step, self.reset_every = interpreter, n_step, reset_every
        self.reset_iterations = reset_iterations or interpreter.iterations
        self.reduction, self.seed = check_reduction(reduction), int(seed)
        self._pending = None

    def _target(self, state: AttackState) -> torch.Tensor:
        # default: the benign map of the true class
        return self._held_target(state, "mask_target", lambda: 1 - self.interpreter.optimise(state.x, state.y)[0])

    def _follow(self, x_adv: torch.Tensor, cls: torch.Tensor, state: AttackState) -> None:
        """The follower's moves at this step of the leader (once per step, whatever calls the term again)."""
        from ..interpreters.mask import AdamState, adam_step

        interp, step, cache = self.interpreter, state.step, state.cache
        if cache.get("mask_step") == step and "mask_m" in cache:
            return
        fresh = "mask_m" not in cache or step < cache.get("mask_step", -1)  # a new C&W search round restarts
        x_now = x_adv.detach()
        if fresh or step % self.reset_every == 0:
            m = interp.optimise(x_now, cls, m=None if fresh else cache["mask_m"], iterations=self.reset_iterations,
                                seed=self.seed + step)[0]
            adam = AdamState.zeros_like(m)
        else:
            m, adam = cache["mask_m"], cache["mask_adam"]
        alt = interp.alternative(x_now)
        for shift in interp.shifts(self.n_step, seed=self.seed * 1_000_003 + 2 * step):
            m = m.detach().requires_grad_(True)
            g, = torch.autograd.grad(interp.objective(m, x_now, alt, cls, shift).sum(), m)
            with torch.no_grad():
                m, adam = adam_step(m.detach(), g, adam, interp.lr)
        cache["mask_m"], cache["mask_adam"], cache["mask_step"] = m.detach(), adam.detach(), step

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        from ..interpreters.mask import adam_step

        interp = self.interpreter
        cls = state.target if state.targeted else state.logits.argmax(1).detach()
        target = self._target(state)
        with torch.enable_grad():  # MASK's own steps need gradients, even where the caller evaluates without
            self._follow(x_adv, cls, state)
            alt = interp.alternative(x_adv)
            mj, st = state.cache["mask_m"].detach().requires_grad_(True), state.cache["mask_adam"]
            l_int = torch.zeros(len(x_adv), device=x_adv.device, dtype=x_adv.dtype)
            for shift in interp.shifts(self.n_step, seed=self.seed * 1_000_003 + 2 * state.step + 1):
                g, = torch.autograd.grad(interp.objective(mj, x_adv, alt, cls, shift).sum(), mj,
                                         create_graph=x_adv.requires_grad)
                mj, st = adam_step(mj, g, st, interp.lr)
                sq = ((1 - mj) - target).pow(2).flatten(1)
                l_int = l_int + (sq.sum(1) if self.reduction == "sum" else sq.mean(1))
        state.cache["l_int"] = l_int.detach()
        return l_int

    def __repr__(self) -> str:
        return (f"MaskLookaheadLoss(n_step={self.n_step}, reset_every={self.reset_every}, "
                f"reduction={self.reduction!r})")


class ADV2MaskCW(_TargetMaps, CW):
    """Carlini & Wagner's L2 attack with the MASK look-ahead term: ``||x' - x||² + c f(x') + lam l_int``."""

    name = "adv2_cw"
    modes = ("targeted",)

    def __init__(self, model, interpreter="mask", lam: Weight = 1.0, c: float = 1e-1, kappa: float = 0.0,
                 steps: int = 200, lr: float = 1e-2, binary_search_steps: int = 3, abort_early: bool = True,
                 keep: str = "objective", targeted: bool = True, interpreter_settings: dict | None = None,
                 n_step: int = 4, reset_every: int = 50, reset_iterations: int | None = None, reduction: str = "mean",
                 step_mask: MaskLike = None, seed: int = 0, batch_size: int | None = None,
                 mask_steps: int | None = None, terms: Sequence[tuple[Weight, object]] = ()):
        interp = resolve_interpreter(model, interpreter, **(interpreter_settings or {}))
        term = MaskLookaheadLoss(interp, n_step, reset_every, reset_iterations, reduction, seed)
        super().__init__(model, c=c, kappa=kappa, steps=steps, lr=lr, binary_search_steps=binary_search_steps,
                         abort_early=abort_early, targeted=targeted, terms=[(_weight(lam), term), *terms],
                         step_mask=step_mask, keep=keep, seed=seed, batch_size=batch_size, mask_steps=mask_steps)
        self.interpreter, self.term, self.lam = interp, term, lam

    def perturb(self, x, y, target, x_init=None):
        self.term.set_target(self._next_maps(len(x), x.device))
        try:
            return super().perturb(x, y, target, x_init=x_init)
        finally:
            self.term.set_target(None)


class ADV2MaskStAdv(_TargetMaps, StAdv):
    """StAdv with the MASK look-ahead term: ``prd_weight l_prd + lam l_int + tau l_flow``, targeted, the
    prediction loss the cross-entropy (as ADV² on StAdv against the other interpreters)."""

    name = "adv2_stadv"
    modes = ("targeted",)

    def __init__(self, model, interpreter="mask", lam: Weight = 1.0, tau: float = 5e-4, steps: int = 200,
                 lr: float = 0.01, loss: str = "ce", keep: str = "best", interpreter_settings: dict | None = None,
                 n_step: int = 4, reset_every: int = 50, reset_iterations: int | None = None, reduction: str = "mean",
                 targeted: bool = True, seed: int = 0, batch_size: int | None = None, step_mask: MaskLike = None,
                 mask_steps: int | None = None, prd_weight: float = 1.0, source: str | None = None,
                 terms: Sequence[tuple[Weight, object]] = ()):
        interp = resolve_interpreter(model, interpreter, **(interpreter_settings or {}))
        term = MaskLookaheadLoss(interp, n_step, reset_every, reset_iterations, reduction, seed)
        super().__init__(model, tau=tau, steps=steps, lr=lr, loss=loss, terms=[(_weight(lam), term), *terms],
                         keep=keep, targeted=targeted, seed=seed, batch_size=batch_size, step_mask=step_mask,
                         mask_steps=mask_steps, prd_weight=prd_weight)
        self.interpreter, self.term, self.lam, self.source = interp, term, lam, source

    def perturb(self, x, y, target, flow_init=None):
        self.term.set_target(self._next_maps(len(x), x.device))
        try:
            return super().perturb(x, y, target, flow_init=flow_init)
        finally:
            self.term.set_target(None)


# The ADV² paper's Table 12, MASK row (ResNet; DenseNet's tau where it differs). reduction: see the module doc.
MASK_STADV_SETTINGS = {"paper": dict(steps=1000, n_step=4, reset_every=50, lam=500.0, tau=0.004, reduction="mean")}
MASK_STADV_DENSENET = {"paper": dict(tau=0.005)}


def adv2_mask_stadv_settings(budget: str = "full", settings: str = "paper", architecture: str = "resnet") -> dict:
    """ADV²-on-StAdv settings against MASK (Table 12's MASK row; only ``settings="paper"`` exists), step
    counts scaled by the budget as for the other interpreters (the reset period with them, at least 2)."""
    check_settings_name(settings, tuple(MASK_STADV_SETTINGS), "StAdv-based ADV² against MASK")
    check_architecture(architecture)
    budget = resolve_budget(budget)
    s = dict(MASK_STADV_SETTINGS[settings])
    if architecture == "densenet":
        s.update(MASK_STADV_DENSENET[settings])
    s["steps"] = scale_steps(s["steps"], budget)
    s["reset_every"] = max(2, int(round(s["reset_every"] * max(BUDGETS[budget], 0.1))))
    s["source"] = (f"paper: Zhang et al., Table 12, MASK row ({'DenseNet' if architecture == 'densenet' else 'ResNet'} "
                   f"column); lambda on the mean over the mask; budget {budget}")
    return s


def make_adv2_mask(model, interpreter="mask", framework: str = "cw", budget: str | None = None,
                   edge_placement: str = "throughout", settings: str | None = None, architecture: str = "resnet",
                   **params):
    """ADV² against MASK on ``framework`` ``"cw"`` or ``"stadv"``. On StAdv, ``budget`` or ``settings`` start
    from :func:`adv2_mask_stadv_settings`; the paper gives no settings for C&W (``settings`` is an error
    there). ``edge_placement`` as for :func:`~advxai.attacks.adv2.make_adv2` (these frameworks have no
    warm-start stage: ``"warm_start"`` restricts their first steps)."""
    if framework not in ("cw", "stadv"):
        raise ValueError(f"framework must be 'cw' or 'stadv' here (MASK on PGD is ADV2Mask), got {framework!r}")
    preset: dict = {}
    if framework == "cw" and settings is not None:
        raise ValueError("the paper gives no settings for ADV² on C&W: pass its parameters (lam, c, steps, lr ...)")
    if framework == "stadv" and (budget is not None or settings is not None):
        preset = adv2_mask_stadv_settings("full" if budget is None else budget, settings or "paper", architecture)
    preset.update(params)
    preset["mask_steps"] = placement_mask_steps(edge_placement, preset.get("steps", 200), preset.get("mask_steps"))
    return (ADV2MaskCW if framework == "cw" else ADV2MaskStAdv)(model, interpreter, **preset)
