"""Gradient-sign attacks: FGSM, BIM / I-FGSM and PGD (L-inf and L2), PGD as a framework.

PGD minimises an :class:`~advxai.attacks.objectives.Objective` (by default the prediction loss
alone) with projected steps, and accepts:

* ``terms``: extra weighted terms (an interpretation loss for ADV², a squeezer loss for an
  adaptive attack ...), added to the prediction loss;
* ``step_mask``: per-pixel weights in [0, 1] multiplying every step and the random start
  (AdvEdge's Sobel edges), a tensor [B, 1|C, H, W] or a function of the benign batch;
  ``mask_steps`` limits it to the first steps (a warm start restricted to the edges, as the
  AdvEdge authors' code does). An image whose mask is all zero cannot change: a warning says so and
  its attack is reported as failed (``extras["mask_empty"]``);
* ``x_init``: a starting point other than the benign image (a warm start), still projected into
  the budget around the benign image;
* ``keep="best"``: return, per image, the successful iterate with the lowest objective instead of
  the last one;
* ``early_stop=True``: an image stops moving at the first iterate that succeeds (its target reached,
  or its label left) and is no longer computed on; the batch ends when every image has. The success
  rate then counts success at any step, not only at the last; for the prediction loss alone the two
  agree in practice (ch00's fragility check: the same counts on every model it attacks), at a fraction
  of the steps.

Steps descend the objective: ``x <- proj(x - alpha * sign(grad))`` (L-inf) or along the
L2-normalised gradient (L2). For the default loss this is exactly Madry et al.'s PGD (and
torchattacks' FGSM/PGD, which ascend the cross-entropy).
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch

from .base import Attack, check_budget
from .objectives import AttackState, Objective, PredictionLoss, Weight

__all__ = ["PGD", "FGSM", "BIM", "project", "resolve_mask", "check_mask_steps", "report_empty_mask"]

MaskLike = torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Into the eps-ball around ``x`` (L-inf or L2), then into [0, 1]."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
        delta = delta * (eps / n).clamp(max=1.0)
    return (x + delta).clamp(0, 1)


def resolve_mask(step_mask: MaskLike, x: torch.Tensor) -> torch.Tensor | None:
    """A step mask as a tensor broadcastable to ``x``, checked to lie in [0, 1]."""
    if step_mask is None:
        return None
    mask = step_mask(x) if callable(step_mask) else step_mask
    mask = mask.to(x.device, x.dtype)
    if mask.dim() != 4 or mask.shape[0] not in (1, x.shape[0]) or mask.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"step mask must be [B or 1, 1 or C, H, W] for images {tuple(x.shape)}, "
                         f"got {tuple(mask.shape)}")
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError("step mask values must be in [0, 1]")
    return mask


def check_mask_steps(mask_steps: int | None) -> int | None:
    if mask_steps is not None and (isinstance(mask_steps, bool) or not isinstance(mask_steps, int) or mask_steps < 0):
        raise ValueError(f"mask_steps must be None (the mask applies to every step) or an integer >= 0, got {mask_steps!r}")
    return mask_steps


def report_empty_mask(attack: Attack, mask: torch.Tensor | None, n: int, throughout: bool) -> torch.Tensor | None:
    """Per image, whether its step mask leaves no pixel to change (bool [n]); warns when one does.

    Only a mask that restricts every step makes the attack impossible; one limited to a warm start
    does not (the later steps are free), so then nothing is flagged.
    """
    if mask is None:
        return None
    from .edges import empty_masks

    empty = empty_masks(mask, n) & throughout
    if empty.any():
        warnings.warn(f"{attack.name}: the step mask leaves no pixel to perturb in {int(empty.sum())} of {n} image(s) "
                      f"(e.g. no edge above the threshold); they are left unchanged and reported as failed",
                      stacklevel=4)
    return empty


class PGD(Attack):
    name = "pgd"

    def __init__(self, model, eps: float = 8 / 255, alpha: float | None = None, steps: int = 10,
                 norm: str = "linf", random_start: bool = True, targeted: bool = False, loss: str = "ce",
                 kappa: float = 0.0, label_smoothing: float = 0.0, terms: Sequence[tuple[Weight, object]] = (),
                 step_mask: MaskLike = None, keep: str = "last", seed: int = 0, batch_size: int | None = None,
                 mask_steps: int | None = None, early_stop: bool = False):
        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
        if norm == "linf":
            check_budget("eps", eps)
        elif not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"eps (L2) must be positive, got {eps!r}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if keep not in ("last", "best"):
            raise ValueError(f"keep must be 'last' or 'best', got {keep!r}")
        self.eps, self.norm, self.steps = float(eps), norm, steps
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / steps
        if norm == "linf":
            check_budget("alpha", self.alpha)
        self.random_start, self.keep = random_start, keep
        self.objective = Objective([(1.0, PredictionLoss(loss, kappa, label_smoothing)), *terms])
        self.step_mask = step_mask
        self.mask_steps = check_mask_steps(mask_steps)
        if not isinstance(early_stop, bool):
            raise TypeError(f"early_stop must be True or False, got {early_stop!r}")
        if early_stop and (terms or keep != "last"):
            # extra terms keep improving a successful image (a map, a squeezer's score): stopping at
            # the first success would cut their attack short
            raise ValueError("early_stop applies to PGD on the prediction loss alone, with keep='last' "
                             "(no extra terms)")
        self.early_stop = early_stop

    # The default prediction term and the extra ones, exposed for frameworks built on PGD.
    def state(self, x, y, target) -> AttackState:
        return AttackState(x=x, y=y, target=target, steps=self.steps)

    def random_init(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        g = self.generator(x.device)
        if self.norm == "linf":
            noise = (torch.rand(x.shape, generator=g) * 2 - 1).to(x.device) * self.eps
        else:
            noise = torch.randn(x.shape, generator=g).to(x.device)
            noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            noise = noise * self.eps * torch.rand(len(x), 1, 1, 1, generator=g).to(x.device)
        if mask is not None:
            noise = noise * mask
        return project(x + noise, x, self.eps, self.norm)

    def step_direction(self, grad: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.norm == "linf":
            direction = grad.sign()
            return direction if mask is None else direction * mask
        if mask is not None:
            grad = grad * mask
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
                x_init: torch.Tensor | None = None) -> torch.Tensor:
        mask = resolve_mask(self.step_mask, x)
        throughout = self.mask_steps is None or self.mask_steps >= self.steps
        empty = report_empty_mask(self, mask, len(x), throughout)
        if empty is not None:
            self._extras = {**getattr(self, "_extras", {}), "mask_empty": empty}
        state = self.state(x, y, target)
        if x_init is not None:
            x_adv = project(x_init.detach().to(x.device), x, self.eps, self.norm)
        elif self.random_start:
            x_adv = self.random_init(x, mask)
        else:
            x_adv = x.clone()
        if self.early_stop:
            return self._until_success(x, y, target, x_adv, mask)
        best, best_loss = x_adv.clone(), torch.full((len(x),), float("inf"), device=x.device)
        for step in range(self.steps):
            state.step = step
            x_adv = x_adv.detach().requires_grad_(True)
            state.logits = self.model(x_adv)
            loss = self.objective(x_adv, state)
            grad, = torch.autograd.grad(loss.sum(), x_adv)
            if self.keep == "best":
                best, best_loss = self._track_best(x_adv.detach(), loss.detach(), state, best, best_loss)
            step_mask = mask if (self.mask_steps is None or step < self.mask_steps) else None
            x_adv = project(x_adv.detach() - self.alpha * self.step_direction(grad, step_mask), x, self.eps, self.norm)
        if self.keep == "best":
            with torch.no_grad():
                state.step, state.logits = self.steps, self.model(x_adv)
                final_loss = self.objective(x_adv, state)
            best, best_loss = self._track_best(x_adv, final_loss, state, best, best_loss)
            # an image that never succeeded keeps its last iterate
            return torch.where(torch.isinf(best_loss).view(-1, 1, 1, 1), x_adv, best)
        return x_adv.detach()

    def _until_success(self, x, y, target, x_adv, mask) -> torch.Tensor:
        """The steps of :meth:`perturb` on the images that have not yet succeeded (``early_stop``).

        Each image's loss and gradient depend on that image alone (the model is in eval mode), so
        leaving the finished ones out of the batch changes nothing for the others."""
        x_adv = x_adv.detach().clone()
        live = torch.arange(len(x), device=x.device)
        for step in range(self.steps):
            state = self.state(x[live], y[live], None if target is None else target[live])
            state.step = step
            xs = x_adv[live].requires_grad_(True)
            state.logits = self.model(xs)
            going = ~self._succeeds(state).detach()
            if not going.any():
                break
            grad, = torch.autograd.grad(self.objective(xs, state).sum(), xs)
            step_mask = mask if (self.mask_steps is None or step < self.mask_steps) else None
            if step_mask is not None and step_mask.shape[0] > 1:
                step_mask = step_mask[live]
            moved = project(xs.detach() - self.alpha * self.step_direction(grad, step_mask), x[live], self.eps,
                            self.norm)
            live = live[going]
            x_adv[live] = moved[going]
        return x_adv

    def _succeeds(self, state: AttackState) -> torch.Tensor:
        pred = state.logits.argmax(1)
        return pred == state.target if state.targeted else pred != state.y

    def _track_best(self, x_adv, loss, state, best, best_loss):
        better = self._succeeds(state) & (loss < best_loss)
        best = torch.where(better.view(-1, 1, 1, 1), x_adv, best)
        return best, torch.where(better, loss, best_loss)


class FGSM(PGD):
    """One step of size eps along the gradient sign (Goodfellow et al.)."""

    name = "fgsm"

    def __init__(self, model, eps: float = 8 / 255, targeted: bool = False, loss: str = "ce",
                 step_mask: MaskLike = None, seed: int = 0, batch_size: int | None = None):
        super().__init__(model, eps=eps, alpha=eps, steps=1, random_start=False, targeted=targeted, loss=loss,
                         step_mask=step_mask, seed=seed, batch_size=batch_size)


class BIM(PGD):
    """Basic iterative method / I-FGSM (Kurakin et al.): PGD from the image itself, step eps/steps by default."""

    name = "bim"

    def __init__(self, model, eps: float = 8 / 255, alpha: float | None = None, steps: int = 10,
                 targeted: bool = False, loss: str = "ce", step_mask: MaskLike = None, seed: int = 0,
                 batch_size: int | None = None):
        super().__init__(model, eps=eps, alpha=alpha if alpha is not None else eps / steps, steps=steps,
                         random_start=False, targeted=targeted, loss=loss, step_mask=step_mask, seed=seed,
                         batch_size=batch_size)
