"""What every interpreter (attribution method) shares.

An interpreter is built on a model with its settings and explains batches::

    interp = get_interpreter("gradcam", model)
    expl = interp(x)                     # explains the predicted class
    expl = interp(x, target=t)           # explains class t
    expl.maps                            # [B, 1, H, W] at input size, the method's normalisation
    expl.raw                             # the method's native output (e.g. a 7x7 map, [B, C, H, W] attributions)

``differentiable`` says whether ``maps`` can be differentiated with respect to the input
(``create_graph=True``), which ADV²-style attacks need; asking a non-differentiable
interpreter for a graph is an error, not a silently detached map.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..runtime import module_device

__all__ = ["Explanation", "Interpreter", "minmax_normalize", "upsample_to"]


@dataclass
class Explanation:
    maps: torch.Tensor  # [B, 1, H, W], input resolution
    raw: torch.Tensor  # native resolution / channels
    target: torch.Tensor  # [B] the class explained
    logits: torch.Tensor | None = None  # model(x), when the method computed it anyway
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.maps)


def minmax_normalize(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-image min-max scaling to [0, 1] (differentiable; a constant map becomes zeros)."""
    flat = maps.flatten(1)
    lo = flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo + eps)).view_as(maps)


def upsample_to(maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """[B, 1, h, w] -> [B, 1, H, W] (bilinear, align_corners=False), identity when already that size."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=size, mode=mode, align_corners=False if mode != "nearest" else None)


class Interpreter:
    """Base class. Subclasses set ``name`` and ``differentiable`` and implement :meth:`attribute`."""

    name = "interpreter"
    differentiable = False

    def __init__(self, model: nn.Module):
        self.model = model

    # -- to implement ---------------------------------------------------------------------------
    def attribute(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool) -> Explanation:
        raise NotImplementedError

    # -- the call -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    def explain(self, x: torch.Tensor, target: torch.Tensor | int | None = None,
                create_graph: bool = False) -> Explanation:
        if x.dim() != 4:
            raise ValueError(f"{self.name}: images must be [B, C, H, W], got {tuple(x.shape)}")
        if create_graph and not self.differentiable:
            raise ValueError(f"{self.name} is not differentiable with respect to its input; "
                             f"an attack that differentiates through the interpreter cannot use it")
        x = x.to(self.device)
        if target is None:
            with torch.no_grad():
                target = self.model(x).argmax(1)
        target = torch.as_tensor(target, device=x.device, dtype=torch.long)
        if target.dim() == 0:
            target = target.expand(len(x))
        info = getattr(self.model, "info", None)
        if info is not None and (target.min() < 0 or target.max() >= info.num_classes):
            raise ValueError(f"{self.name}: target classes must be in [0, {info.num_classes})")
        with torch.enable_grad():
            return self.attribute(x, target, create_graph)

    __call__ = explain

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "model"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"
