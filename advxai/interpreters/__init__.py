"""Interpreters (attribution methods) by name: ``get_interpreter("gradcam", model)``.

Each returns an :class:`Explanation` whose ``maps`` are [B, 1, H, W] at the input's size and
whose ``raw`` is the method's native output; ``Interpreter.differentiable`` says whether ADV²-style
attacks can differentiate through it.
"""
from __future__ import annotations

from functools import partial

from ..registry import Registry
from .base import Explanation, Interpreter, minmax_normalize, upsample_to
from .cam import CAM, GradCAM
from .gradient import Grad
from .ig import IntegratedGradients, integrated_gradients
from .lrp import LRP, LRPError
from .mask import Mask
from .rts import RTS
from .surrogate import smooth_relu_backward

INTERPRETERS = Registry("interpreter")
INTERPRETERS.register("ig", "Integrated Gradients (Gauss-Legendre path integral from a black baseline by default)",
                      differentiable=False)(IntegratedGradients)
INTERPRETERS.register("grad", "gradient saliency |d p_c / d x| (max over channels, pooled, min-max normalised)",
                      differentiable=True)(Grad)
INTERPRETERS.register("cam", "class activation mapping: last conv map weighted by the linear head",
                      differentiable=True)(CAM)
INTERPRETERS.register("gradcam", "Grad-CAM: gradient-weighted last conv map, any class or scalar score",
                      differentiable=True)(GradCAM)
INTERPRETERS.register("mask", "meaningful perturbation (Fong & Vedaldi): Adam on a deletion mask",
                      differentiable=False)(Mask)
INTERPRETERS.register("rts", "real-time saliency (Dabkowski & Gal): a trained masking model, cached per model",
                      differentiable=True)(RTS)

INTERPRETERS.register("lrp", "layer-wise relevance propagation; default deep Taylor decomposition (z+ and z^B at "
                      "the input), also epsilon and alpha-beta rules", differentiable=False)(LRP)
INTERPRETERS.register("clrp", "contrastive LRP (Gu et al.): target relevance minus the others', rescaled",
                      differentiable=False)(partial(LRP, variant="clrp"))
INTERPRETERS.register("sglrp", "softmax-gradient LRP (Iwana et al.): seeds y_t(1-y_t) and -y_t y_n",
                      differentiable=False)(partial(LRP, variant="sglrp"))


def get_interpreter(name: str, model, **settings) -> Interpreter:
    """The interpreter ``name`` on ``model`` with its settings."""
    return INTERPRETERS.get(name, model, **settings)


def list_interpreters() -> list[str]:
    return INTERPRETERS.names()


__all__ = ["CAM", "INTERPRETERS", "Explanation", "Grad", "GradCAM", "IntegratedGradients", "Interpreter", "LRP", "LRPError", "Mask", "RTS",
           "get_interpreter", "integrated_gradients", "list_interpreters", "minmax_normalize", "smooth_relu_backward",
           "upsample_to"]
