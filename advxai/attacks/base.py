"""What every attack shares: input checks, batching, devices, and the result it returns.

An attack is a small callable object, built once with its settings and called on batches::

    attack = PGD(model, eps=8/255, steps=10)
    result = attack(x, y)                    # untargeted
    result = PGD(model, targeted=True)(x, y, target=t)

Every call returns an :class:`AttackResult`: the adversarial images, a success mask (targeted:
the prediction is the target; untargeted: it is not the true label), the prediction and its
confidence, and per-image perturbation norms. Inputs are checked before any work: images in
[0, 1], labels and targets inside the model's classes, a target unequal to the true label, a
mode the attack has.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..runtime import module_device

__all__ = ["Attack", "AttackResult", "check_budget", "perturbation_norms"]


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image L-inf, L2 and L0 (fraction of changed pixel values) of ``x_adv - x``."""
    d = (x_adv - x).flatten(1)
    return {"linf": d.abs().amax(1), "l2": d.norm(dim=1), "l0": (d.abs() > 1e-8).float().mean(1)}


@dataclass
class AttackResult:
    x_adv: torch.Tensor
    success: torch.Tensor  # bool [B]
    pred: torch.Tensor  # label predicted on x_adv [B]
    confidence: torch.Tensor  # softmax probability of pred [B]
    y: torch.Tensor
    target: torch.Tensor | None
    linf: torch.Tensor
    l2: torch.Tensor
    l0: torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x_adv)

    @property
    def success_rate(self) -> float:
        return self.success.float().mean().item() if len(self) else float("nan")

    def frame(self, **columns):
        """One row per image (tidy records) with the given constant columns added."""
        import pandas as pd

        data = {
            "y": self.y.tolist(), "pred": self.pred.tolist(), "success": self.success.tolist(),
            "confidence": self.confidence.tolist(), "linf": self.linf.tolist(), "l2": self.l2.tolist(),
            "l0": self.l0.tolist(),
        }
        if self.target is not None:
            data["target"] = self.target.tolist()
        df = pd.DataFrame(data)
        for k, v in columns.items():
            df[k] = v
        return df

    @staticmethod
    def concat(parts: list["AttackResult"]) -> "AttackResult":
        def cat(name):
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat(values)

        gathered: dict[str, list] = {}
        for p in parts:
            for k, v in p.extras.items():
                gathered.setdefault(k, []).append(v)
        extras = {k: torch.cat(v) if all(isinstance(t, torch.Tensor) and t.dim() > 0 for t in v)
                  else (v[0] if len(v) == 1 else v) for k, v in gathered.items()}
        return AttackResult(cat("x_adv"), cat("success"), cat("pred"), cat("confidence"), cat("y"), cat("target"),
                            cat("linf"), cat("l2"), cat("l0"), extras)


def check_budget(name: str, value: float, low: float = 0, high: float = 1, inclusive_low: bool = False) -> float:
    """A budget or step in pixel units must lie in the data range (0, 1]."""
    ok = (value >= low if inclusive_low else value > low) and value <= high
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not ok:
        bracket = "[" if inclusive_low else "("
        raise ValueError(f"{name} must be in {bracket}{low}, {high}] (images are in [0, 1]; 8/255 = {8 / 255:.4f}), "
                         f"got {value!r}")
    return float(value)


class Attack:
    """Base class. Subclasses set ``name`` and ``modes`` and implement :meth:`perturb`."""

    name = "attack"
    modes: tuple[str, ...] = ("untargeted", "targeted")

    def __init__(self, model: nn.Module, targeted: bool = False, seed: int = 0, batch_size: int | None = None):
        mode = "targeted" if targeted else "untargeted"
        if mode not in self.modes:
            raise ValueError(f"{self.name} has no {mode} mode; it supports: {', '.join(self.modes)}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.targeted = targeted
        self.seed = int(seed)
        self.batch_size = batch_size

    # -- to implement ---------------------------------------------------------------------------
    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    # -- the call -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    def num_classes(self) -> int | None:
        info = getattr(self.model, "info", None)
        return info.num_classes if info is not None else None

    def check_inputs(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> None:
        if x.dim() != 4:
            raise ValueError(f"{self.name}: images must be [B, C, H, W], got shape {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"{self.name}: images must be in [0, 1] (got [{x.min():.3f}, {x.max():.3f}])")
        if y.shape != (x.shape[0],):
            raise ValueError(f"{self.name}: labels must be [B] = [{x.shape[0]}], got {tuple(y.shape)}")
        k = self.num_classes()
        if self.targeted:
            if target is None:
                raise ValueError(f"{self.name}: a targeted attack needs target labels")
            if target.shape != y.shape:
                raise ValueError(f"{self.name}: targets must be [B], got {tuple(target.shape)}")
            if k is not None and (target.min() < 0 or target.max() >= k):
                raise ValueError(f"{self.name}: target classes must be in [0, {k}), got {target.tolist()[:8]}")
            if torch.any(target.cpu() == y.cpu()):
                raise ValueError(f"{self.name}: a target equals the true label for images "
                                 f"{torch.nonzero(target.cpu() == y.cpu()).flatten().tolist()[:8]}")
        elif target is not None:
            raise ValueError(f"{self.name}: targets given to an untargeted attack; build it with targeted=True")
        if k is not None and y.numel() and (y.min() < 0 or y.max() >= k):
            raise ValueError(f"{self.name}: labels must be in [0, {k})")

    def __call__(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> AttackResult:
        y = torch.as_tensor(y, dtype=torch.long)
        target = None if target is None else torch.as_tensor(target, dtype=torch.long)
        self.check_inputs(x, y, target)
        dev = self.device
        size = self.batch_size or max(1, len(x))
        parts = []
        for start in range(0, len(x), size):
            sl = slice(start, start + size)
            xb, yb = x[sl].to(dev), y[sl].to(dev)
            tb = None if target is None else target[sl].to(dev)
            with torch.enable_grad():
                x_adv = self.perturb(xb, yb, tb)
            extras = getattr(self, "_extras", {})
            self._extras = {}
            parts.append(self.result(xb, x_adv.detach(), yb, tb, extras))
        return AttackResult.concat(parts)

    @torch.no_grad()
    def result(self, x, x_adv, y, target, extras=None) -> AttackResult:
        probs = self.model(x_adv).softmax(1)
        conf, pred = probs.max(1)
        success = pred == target if target is not None else pred != y
        if extras and "mask_empty" in extras:  # an attack with no pixel to change failed, whatever f(x) says
            success = success & ~extras["mask_empty"].to(success.device)
        norms = perturbation_norms(x_adv, x)
        return AttackResult(x_adv, success, pred, conf, y, target, norms["linf"], norms["l2"], norms["l0"],
                            extras or {})

    def generator(self, device: torch.device) -> torch.Generator:
        """Random numbers drawn on the CPU from ``seed`` (so GPU and CPU runs start alike)."""
        return torch.Generator().manual_seed(self.seed)

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "model"}
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items() if not isinstance(v, (torch.Tensor, list)))
        return f"{type(self).__name__}({inner})"
