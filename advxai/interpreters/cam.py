"""CAM (Zhou et al.) and Grad-CAM (Selvaraju et al.): maps from the last convolutional feature map.

CAM, for a model whose logits are ``Linear(GAP(A))``: ``m_c[i, j] = sum_k w_{k,c} a_k[i, j]``
(Eq. 7 of Zhang et al.), min-max normalised at the feature map's resolution (7x7 on ResNet-50,
8x8 on the ``shapes`` models) and upsampled bilinearly to the input.

Grad-CAM: ``w_k = mean_{i,j} d score / d a_k[i, j]`` and ``m = ReLU(sum_k w_k a_k)`` (their Eqs.
14-15). The score is a class logit by default, or any scalar function of the input: pass
``score_fn`` (``x -> [B]`` or ``x -> [B, S]`` with ``target`` choosing the column), e.g. an
attribute score computed from the model's features, so Grad-CAM can localise more than classes.
Whatever ``score_fn`` computes must run the model's forward pass (the feature map is captured
there). On a GAP + linear head the two agree: Grad-CAM = ReLU(CAM) / (h w) before normalisation.

Both are differentiable with respect to the input (Grad-CAM through a second-order graph).
``raw`` is the unnormalised map at feature resolution; ``extras["native"]`` the normalised one.
"""
from __future__ import annotations

from typing import Callable

import torch

from .base import Explanation, Interpreter, minmax_normalize, upsample_to

__all__ = ["CAM", "GradCAM"]


def _layer_name(model, layer: str | None) -> str:
    info = getattr(model, "info", None)
    if layer is not None:
        return layer
    if info is None:
        raise ValueError("the model carries no ModelInfo; name the feature layer explicitly (layer=...)")
    return info.cam_layer


class CAM(Interpreter):
    name = "cam"
    differentiable = True

    def __init__(self, model, layer: str | None = None):
        super().__init__(model)
        info = getattr(model, "info", None)
        if info is not None and not info.gap_head:
            raise ValueError(f"CAM needs logits = Linear(GAP(feature map)); {info.name} has another head "
                             f"(use Grad-CAM)")
        self.layer = _layer_name(model, layer)

    def attribute(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool) -> Explanation:
        if create_graph:
            logits, (a,) = self.model.forward_with(x, [self.layer])
        else:
            with torch.no_grad():
                logits, (a,) = self.model.forward_with(x, [self.layer])
        w = self.model.classifier.weight[target]  # [B, K]
        raw = torch.einsum("bk,bkhw->bhw", w, a)[:, None]
        native = minmax_normalize(raw)
        maps = upsample_to(native, tuple(x.shape[-2:]))
        return Explanation(maps=maps, raw=raw, target=target, logits=logits.detach(), extras={"native": native})


class GradCAM(Interpreter):
    name = "gradcam"
    differentiable = True

    def __init__(self, model, layer: str | None = None,
                 score_fn: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__(model)
        self.layer = _layer_name(model, layer)
        self.score_fn = score_fn

    def explain(self, x: torch.Tensor, target: torch.Tensor | int | None = None,
                create_graph: bool = False) -> Explanation:
        if self.score_fn is None:
            return super().explain(x, target, create_graph)
        # A custom score: the target indexes its columns, not the model's classes.
        if x.dim() != 4:
            raise ValueError(f"{self.name}: images must be [B, C, H, W], got {tuple(x.shape)}")
        x = x.to(self.device)
        if target is not None:
            target = torch.as_tensor(target, device=x.device, dtype=torch.long)
            if target.dim() == 0:
                target = target.expand(len(x))
        with torch.enable_grad():
            return self.attribute(x, target, create_graph)

    def _scores(self, x: torch.Tensor, target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        captured = {}

        def hook(_m, _inp, out):
            captured["a"] = out

        handle = self.model.layer(self.layer).register_forward_hook(hook)
        try:
            out = self.model(x) if self.score_fn is None else self.score_fn(x)
        finally:
            handle.remove()
        if "a" not in captured:
            raise RuntimeError(f"{self.name}: the score function never ran the layer {self.layer!r}")
        if out.dim() == 1:
            score, target = out, (target if target is not None else torch.zeros(len(x), dtype=torch.long,
                                                                                   device=x.device))
        else:
            if target is None:
                target = out.argmax(1)
            if target.min() < 0 or target.max() >= out.shape[1]:
                raise ValueError(f"{self.name}: target must index the {out.shape[1]} scores")
            score = out.gather(1, target[:, None]).squeeze(1)
        return score, captured["a"], target

    def attribute(self, x: torch.Tensor, target: torch.Tensor | None, create_graph: bool) -> Explanation:
        if not x.requires_grad:  # the feature map must be part of a graph
            x = x.detach().requires_grad_(True)
        score, a, target = self._scores(x, target)
        grads, = torch.autograd.grad(score.sum(), a, create_graph=create_graph)
        weights = grads.mean((2, 3), keepdim=True)
        raw = torch.relu((weights * a).sum(1, keepdim=True))
        if not create_graph:
            raw = raw.detach()
        native = minmax_normalize(raw)
        maps = upsample_to(native, tuple(x.shape[-2:]))
        return Explanation(maps=maps, raw=raw, target=target, logits=None, extras={"native": native,
                                                                                    "score": score.detach()})
