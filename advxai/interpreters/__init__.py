"""Interpreters (attribution methods) by name: ``get_interpreter("gradcam", model)``.

Each returns an :class:`Explanation` whose ``maps`` are [B, 1, H, W] at the input's size and
whose ``raw`` is the method's native output; ``Interpreter.differentiable`` says whether ADV²-style
attacks can differentiate through it.
"""
from __future__ import annotations

from ..registry import Registry
from .base import Explanation, Interpreter, minmax_normalize, upsample_to
from .ig import IntegratedGradients

INTERPRETERS = Registry("interpreter")
INTERPRETERS.register("ig", "Integrated Gradients (Gauss-Legendre path integral from a black baseline by default)")(
    IntegratedGradients)


def get_interpreter(name: str, model, **settings) -> Interpreter:
    """The interpreter ``name`` on ``model`` with its settings."""
    return INTERPRETERS.get(name, model, **settings)


def list_interpreters() -> list[str]:
    return INTERPRETERS.names()


__all__ = ["INTERPRETERS", "Explanation", "IntegratedGradients", "Interpreter", "get_interpreter", "list_interpreters", "minmax_normalize",
           "upsample_to"]
