"""Errors that say what went wrong in the study's own terms, before any heavy work starts.

``EmptySelection`` is raised when a step has nothing to work on: no correctly classified image to
attack, no successful adversarial example to analyse, a class with no images. Its message names
the cause and the numbers (how many were asked for, how many were looked at), so a run on real
data fails with a sentence, never with a stack trace from inside torch (``torch.stack`` of an
empty list, say). Code that can go on without the missing piece records the claim as "not
measured" with :attr:`EmptySelection.reason` instead of raising.
"""
from __future__ import annotations

__all__ = ["EmptySelection"]


class EmptySelection(ValueError):
    """A selection came out empty (or smaller than a step needs); ``reason`` is the short why."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message
