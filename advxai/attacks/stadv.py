"""StAdv (Xiao et al.): spatially transformed adversarial examples, as a framework, and ADV² on it.

Instead of adding noise, StAdv moves pixels: a flow field ``r = (du, dv)`` [B, 2, H, W] (in pixels)
says where each output pixel samples the input, and the adversarial image is the bilinear
interpolation of the input at the displaced positions,

    x'_i = sum_j x_j max(0, 1 - |u_i + du_i - u_j|) max(0, 1 - |v_i + dv_i - v_j|),

(``torch.nn.functional.grid_sample``, ``align_corners=True`` so pixel centres map exactly; positions
outside the image take the nearest border pixel). The result lies in [0, 1] by construction. The
flow is optimised with Adam (learning rate 0.01, as in Zhang et al.'s Appendix B2) on

    l_prd(f(x'), c_t) + tau * l_flow(r) + sum_k w_k(step) * term_k(x', state),

with ``l_flow(r) = sum_i sum_{j in N(i)} sqrt(||du_i - du_j||^2 + ||dv_i - dv_j||^2 + delta)`` over the
4-neighbourhood (Xiao et al.'s smoothness loss; ``delta`` = 1e-8 keeps it differentiable at zero).
The prediction loss is the C&W margin (Xiao et al.) or the cross-entropy. Extra ``terms`` make it a
framework like PGD and C&W: :class:`ADV2StAdv` adds ADV²'s interpretation loss (and RTS's encoder
loss). The flow of the current iterate is in ``state.cache["flow"]``; the kept iterate per image is
the successful one of lowest objective (``keep="best"``) or the last one.
Xiao et al. optimise with L-BFGS; Adam follows the ADV² paper.

``step_mask`` (AdvEdge / AdvEdge+, see :mod:`advxai.attacks.edges`) weights each Adam update of the
flow per pixel: a pixel of weight 0 keeps a zero flow, i.e. samples itself and keeps its benign value
(the update is masked, not the gradient, because Adam would undo a scaled gradient); ``mask_steps``
limits the mask to the first steps. An image whose mask is all zero is left unchanged and reported
as failed (``extras["mask_empty"]``), as on PGD and C&W.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .adv2 import EncoderLoss, InterpretationLoss, _is_mask, _TargetMaps, resolve_interpreter
from .base import Attack
from .gradient import MaskLike, check_mask_steps, report_empty_mask, resolve_mask
from .objectives import AttackState, Objective, PredictionLoss, Weight

__all__ = ["warp", "flow_loss", "FlowLoss", "StAdv", "ADV2StAdv", "make_adv2_stadv"]


def _base_grid(b: int, h: int, w: int, device, dtype) -> torch.Tensor:
    ys = torch.linspace(-1, 1, h, device=device, dtype=dtype)
    xs = torch.linspace(-1, 1, w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1).expand(b, h, w, 2)


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of ``x`` [B, C, H, W] at the positions displaced by ``flow`` [B, 2, H, W]
    (channel 0: horizontal, 1: vertical displacement, in pixels). A zero flow returns ``x``."""
    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != x.shape[0] or flow.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"flow must be [B, 2, H, W] = [{x.shape[0]}, 2, {x.shape[2]}, {x.shape[3]}], "
                         f"got {tuple(flow.shape)}")
    b, _, h, w = x.shape
    scale = torch.tensor([2.0 / max(1, w - 1), 2.0 / max(1, h - 1)], device=x.device, dtype=x.dtype)
    grid = _base_grid(b, h, w, x.device, x.dtype) + flow.permute(0, 2, 3, 1) * scale
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def flow_loss(flow: torch.Tensor, delta: float = 1e-8) -> torch.Tensor:
    """Xiao et al.'s smoothness of a flow field, per image [B]: over every pixel and each of its 4
    neighbours (replicated at the border, so a border pixel's outside neighbour adds ~0),
    ``sqrt(||du_i - du_j||^2 + ||dv_i - dv_j||^2 + delta)``."""
    padded = F.pad(flow, (1, 1, 1, 1), mode="replicate")
    h, w = flow.shape[-2:]
    total = 0.0
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):  # up, down, left, right
        neighbour = padded[..., dy:dy + h, dx:dx + w]
        total = total + ((flow - neighbour).pow(2).sum(1) + delta).sqrt().flatten(1).sum(1)
    return total


class FlowLoss:
    """``l_flow`` of the current flow (read from ``state.cache["flow"]``) as an objective term."""

    def __init__(self, delta: float = 1e-8):
        self.delta = delta

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        return flow_loss(state.cache["flow"], self.delta)

    def __repr__(self) -> str:
        return "FlowLoss()"


class StAdv(Attack):
    """Spatially transformed adversarial examples (a flow field optimised with Adam); a framework."""

    name = "stadv"

    def __init__(self, model, tau: float = 5e-4, steps: int = 200, lr: float = 0.01, loss: str = "cw",
                 kappa: float = 0.0, terms: Sequence[tuple[Weight, object]] = (), keep: str = "best",
                 targeted: bool = False, seed: int = 0, batch_size: int | None = None,
                 step_mask: MaskLike = None, mask_steps: int | None = None):
        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        if not (isinstance(tau, (int, float)) and tau >= 0):
            raise ValueError(f"tau (the flow-loss weight) must be >= 0, got {tau!r}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be positive, got {lr!r}")
        if keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {keep!r}")
        self.tau, self.steps, self.lr, self.keep = float(tau), steps, float(lr), keep
        self.flow_term = FlowLoss()
        self.objective = Objective([(1.0, PredictionLoss(loss, kappa)), (self.tau, self.flow_term), *terms])
        self.step_mask = step_mask
        self.mask_steps = check_mask_steps(mask_steps)

    def _succeeds(self, logits: torch.Tensor, state: AttackState) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred == state.target if state.targeted else pred != state.y

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
                flow_init: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        mask = resolve_mask(self.step_mask, x)
        empty = report_empty_mask(self, mask, b, self.mask_steps is None or self.mask_steps >= self.steps)
        flow = (torch.zeros(b, 2, h, w, device=x.device, dtype=x.dtype) if flow_init is None
                else flow_init.detach().to(x.device, x.dtype).clone())
        flow.requires_grad_(True)
        opt = torch.optim.Adam([flow], lr=self.lr)
        state = AttackState(x=x, y=y, target=target, steps=self.steps)
        best = x.clone()
        best_flow = torch.zeros_like(flow)
        best_loss = torch.full((b,), float("inf"), device=x.device)
        for step in range(self.steps + 1):
            state.step = min(step, self.steps - 1)
            x_adv = warp(x, flow)
            state.cache["flow"] = flow
            state.logits = self.model(x_adv)
            loss = self.objective(x_adv, state)
            with torch.no_grad():
                ok = self._succeeds(state.logits, state)
                better = ok & (loss < best_loss) if self.keep == "best" else ok
                best = torch.where(better.view(-1, 1, 1, 1), x_adv.detach(), best)
                best_flow = torch.where(better.view(-1, 1, 1, 1), flow.detach(), best_flow)
                best_loss = torch.where(better, loss.detach(), best_loss)
            if step == self.steps:  # the final iterate is only evaluated
                break
            opt.zero_grad()
            loss.sum().backward()
            if mask is not None and (self.mask_steps is None or step < self.mask_steps):
                before = flow.detach().clone()
                opt.step()
                with torch.no_grad():  # the update weighted per pixel (both flow components alike)
                    flow.copy_(before + mask[:, :1] * (flow - before))
            else:
                opt.step()
        found = torch.isfinite(best_loss).view(-1, 1, 1, 1)
        final = warp(x, flow.detach())
        self._extras = {"flow": torch.where(found, best_flow, flow.detach()),
                        "flow_loss": flow_loss(torch.where(found, best_flow, flow.detach())).detach()}
        out = torch.where(found, best, final).detach()
        if empty is not None:
            self._extras["mask_empty"] = empty
            out = torch.where(empty.view(-1, 1, 1, 1), x, out)  # nothing could move: exactly the benign image
        return out


class ADV2StAdv(_TargetMaps, StAdv):
    """ADV² on StAdv (Zhang et al.'s Eq. 21): ``l_prd + lam * l_int + tau * l_flow`` (+ ``enc_weight * l_enc``
    for RTS), targeted, with the prediction loss the cross-entropy."""

    name = "adv2_stadv"
    modes = ("targeted",)

    def __init__(self, model, interpreter="grad", lam: Weight = 1.0, tau: float = 5e-4, enc_weight: float = 0.0,
                 steps: int = 200, lr: float = 0.01, loss: str = "ce", keep: str = "best",
                 interpreter_settings: dict | None = None, targeted: bool = True, seed: int = 0,
                 batch_size: int | None = None, step_mask: MaskLike = None, mask_steps: int | None = None):
        interp = resolve_interpreter(model, interpreter, **(interpreter_settings or {}))
        if _is_mask(interp):
            raise ValueError("MASK is not differentiable with respect to its input; ADV² on StAdv needs GRAD, CAM, "
                             "Grad-CAM or RTS here")
        term = InterpretationLoss(interp)
        if enc_weight and not hasattr(interp, "encoder"):
            raise ValueError(f"enc_weight applies to RTS only, not to {interp.name}")
        terms: list = [(lam, term)]
        if enc_weight:
            terms.append((float(enc_weight), EncoderLoss(interp)))
        super().__init__(model, tau=tau, steps=steps, lr=lr, loss=loss, terms=terms, keep=keep, targeted=targeted,
                         seed=seed, batch_size=batch_size, step_mask=step_mask, mask_steps=mask_steps)
        self.interpreter, self.term, self.lam, self.enc_weight = interp, term, lam, float(enc_weight)

    def perturb(self, x, y, target, flow_init=None):
        self.term.set_target(self._next_maps(len(x), x.device))
        try:
            return super().perturb(x, y, target, flow_init=flow_init)
        finally:
            self.term.set_target(None)


# The ADV²-on-StAdv settings of Zhang et al.'s Table 12 (ResNet column).
STADV_SETTINGS = {
    "grad": dict(steps=800, lam=0.023, tau=5e-4),
    "cam": dict(steps=600, lam=0.653, tau=5e-4),
    "gradcam": dict(steps=600, lam=0.653, tau=5e-4),
    "rts": dict(steps=600, lam=0.0408, enc_weight=0.1, tau=5e-4),
}


def make_adv2_stadv(model, interpreter="grad", budget: str | None = None, edge_placement: str = "throughout",
                    **params) -> ADV2StAdv:
    """ADV² on StAdv; ``budget`` ("paper", "quick", "smoke") starts from the paper's Table 12 settings.

    ``edge_placement`` says where a ``step_mask`` applies (see :func:`~advxai.attacks.adv2.make_adv2`):
    ``"throughout"`` (the paper), or ``"warm_start"``: the first ``mask_steps`` steps only (default
    :data:`~advxai.attacks.adv2.WARM_FRACTION` of them; StAdv has no warm-start stage of its own)."""
    from ..interpreters import Interpreter
    from .adv2 import BUDGETS

    name = interpreter.name if isinstance(interpreter, Interpreter) else interpreter
    settings: dict = {}
    if budget is not None:
        if budget not in BUDGETS:
            raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
        if name not in STADV_SETTINGS:
            raise ValueError(f"no StAdv-based ADV² settings for {name!r}; known: {', '.join(STADV_SETTINGS)}")
        settings = dict(STADV_SETTINGS[name])
        settings["steps"] = max(3, int(round(settings["steps"] * BUDGETS[budget])))
    settings.update(params)
    from .adv2 import placement_mask_steps

    settings["mask_steps"] = placement_mask_steps(edge_placement, settings.get("steps", 200), settings.get("mask_steps"))
    return ADV2StAdv(model, interpreter, **settings)
