"""A smooth surrogate for ReLU's derivative, so second-order gradients through ReLU networks exist.

ReLU is piecewise linear: its second derivative is zero almost everywhere, so the gradient of a
gradient-based map (GRAD) with respect to the input carries no curvature from the activations.
Zhang et al. (ADV²) keep ReLU's forward value and replace its derivative ``r(z) = 1[z > 0]`` in
the backward pass by

    h(z) = 1 + z / sqrt(z² + tau)   for z < 0
    h(z) =     z / sqrt(z² + tau)   for z >= 0           (tau = 1e-4),

whose own derivative ``tau / (z² + tau)^(3/2)`` is positive everywhere. ``h`` is the derivative of
``s(z) = z + sqrt(z² + tau)`` (z < 0) and ``sqrt(z² + tau)`` (z >= 0); writing the activation as
``relu(z) + s(z) - stop_gradient(s(z))`` gives ReLU's value, ``h`` as first derivative and ``h'``
as second derivative, with no custom autograd function (so double and triple backward work).

The paper also compares the sigmoid as the surrogate derivative (``kind="sigmoid"``, the
derivative of softplus). ReLU6 (EfficientNet-Lite) is ``relu(z) - relu(z - 6)`` and gets
``h(z) - h(z - 6)``.

Use :func:`smooth_relu_backward` as a context manager around any computation that needs the
second-order gradient::

    with smooth_relu_backward(model):
        grad = torch.autograd.grad(score, x, create_graph=True)[0]
        loss(grad).backward()          # now non-zero through every ReLU

It swaps every ``nn.ReLU``/``nn.ReLU6`` module of the model for a surrogate module (restoring
them on exit). Functional calls (``F.relu``, ``torch.relu``, ``F.relu6``; torchvision's DenseNet and
Inception make them in their ``forward``) are routed through the surrogate by a
:class:`torch.overrides.TorchFunctionMode` that is active only while one of the model's modules
runs, and only on the thread running it: nothing is patched in ``torch`` itself, so a ReLU computed
outside the model, or by another thread, keeps its exact derivative. Without a model
(``smooth_relu_backward(None)``) the mode covers the whole block, on the entering thread only.
"""
from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["DEFAULT_TAU", "surrogate_derivative", "smooth_relu", "smooth_relu6", "SmoothReLU", "SmoothReLU6",
           "smooth_relu_backward"]

DEFAULT_TAU = 1e-4
KINDS = ("h", "sigmoid")

_lock = threading.RLock()  # one surrogate context at a time: two on one model would undo each other's module swaps


def _antiderivative(z: torch.Tensor, tau: float, kind: str) -> torch.Tensor:
    """``s(z)`` whose derivative is the surrogate ``h(z)`` (or the sigmoid)."""
    if kind == "sigmoid":
        return F.softplus(z)
    root = torch.sqrt(z * z + tau)
    return torch.where(z < 0, z + root, root)


def surrogate_derivative(z: torch.Tensor, tau: float = DEFAULT_TAU, kind: str = "h") -> torch.Tensor:
    """The surrogate derivative itself: ``h(z)`` (the paper's piecewise form) or ``sigmoid(z)``."""
    _check(tau, kind)
    if kind == "sigmoid":
        return torch.sigmoid(z)
    q = z / torch.sqrt(z * z + tau)
    return torch.where(z < 0, 1 + q, q)


def _check(tau: float, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"surrogate kind must be one of {KINDS}, got {kind!r}")
    if not (isinstance(tau, (int, float)) and tau > 0):
        raise ValueError(f"tau must be positive, got {tau!r}")


def smooth_relu(z: torch.Tensor, tau: float = DEFAULT_TAU, kind: str = "h") -> torch.Tensor:
    """``relu(z)`` in value; ``h(z)`` as derivative; ``h'(z)`` as second derivative."""
    s = _antiderivative(z, tau, kind)
    return z.detach().clamp_min(0) + (s - s.detach())


def smooth_relu6(z: torch.Tensor, tau: float = DEFAULT_TAU, kind: str = "h") -> torch.Tensor:
    """``relu6(z) = relu(z) - relu(z - 6)`` in value, with ``h(z) - h(z - 6)`` as derivative."""
    s = _antiderivative(z, tau, kind) - _antiderivative(z - 6.0, tau, kind)
    return z.detach().clamp(0, 6) + (s - s.detach())


class SmoothReLU(nn.Module):
    def __init__(self, tau: float = DEFAULT_TAU, kind: str = "h"):
        super().__init__()
        _check(tau, kind)
        self.tau, self.kind = float(tau), kind

    def forward(self, z):
        return smooth_relu(z, self.tau, self.kind)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, kind={self.kind!r}"


class SmoothReLU6(SmoothReLU):
    def forward(self, z):
        return smooth_relu6(z, self.tau, self.kind)


def _swap_modules(model: nn.Module, tau: float, kind: str) -> list[tuple[nn.Module, str, nn.Module]]:
    swapped = []
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.ReLU:
                replacement: nn.Module = SmoothReLU(tau, kind)
            elif type(child) is nn.ReLU6:
                replacement = SmoothReLU6(tau, kind)
            else:
                continue
            setattr(parent, name, replacement)
            swapped.append((parent, name, child))
    return swapped


class _FunctionalSurrogate(TorchFunctionMode):
    """Answers ``F.relu``, ``torch.relu`` and ``F.relu6`` with the surrogate (forward values unchanged);
    every other function runs as it is. (``inplace=True`` is ignored: the surrogate builds a new tensor,
    and the callers use the returned one.)"""

    def __init__(self, tau: float, kind: str):
        super().__init__()
        self.tau, self.kind = tau, kind

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.relu or func is torch.relu:
            return smooth_relu(args[0], self.tau, self.kind)
        if func is F.relu6:
            return smooth_relu6(args[0], self.tau, self.kind)
        return func(*args, **(kwargs or {}))


class _WhileRunning:
    """Forward hooks on every module of a model that keep a :class:`_FunctionalSurrogate` entered while any
    of them runs on the calling thread (entered at the outermost module, left when it returns or raises)."""

    def __init__(self, model: nn.Module, tau: float, kind: str):
        self.tau, self.kind = tau, kind
        self.local = threading.local()  # depth and mode per thread: other threads never see the mode
        self.handles = []
        for module in model.modules():
            self.handles.append(module.register_forward_pre_hook(self._enter))
            self.handles.append(module.register_forward_hook(self._leave, always_call=True))

    def _enter(self, module, args):
        depth = getattr(self.local, "depth", 0)
        if depth == 0:
            self.local.mode = _FunctionalSurrogate(self.tau, self.kind)
            self.local.mode.__enter__()
        self.local.depth = depth + 1

    def _leave(self, module, args, output):
        self.local.depth -= 1
        if self.local.depth == 0:
            mode, self.local.mode = self.local.mode, None
            mode.__exit__(None, None, None)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@contextlib.contextmanager
def smooth_relu_backward(model: nn.Module | None = None, tau: float = DEFAULT_TAU, kind: str = "h",
                         functional: bool = True):
    """Inside the block, ReLU/ReLU6 of ``model`` (modules and functional calls in its forward) use the
    surrogate derivative; with ``model=None``, every functional ReLU call of the block on this thread.

    Forward values are unchanged (bit for bit), so predictions and first-order maps computed inside
    the block equal ReLU's except where ``|z|`` is within a few ``sqrt(tau)`` of zero. Modules and hooks
    are restored on exit, also when the block raises. ``functional=False`` leaves functional calls alone.
    """
    _check(tau, kind)
    with _lock:
        swapped = _swap_modules(model, tau, kind) if model is not None else []
        scope = _WhileRunning(model, tau, kind) if functional and model is not None else None
        block = _FunctionalSurrogate(tau, kind) if functional and model is None else contextlib.nullcontext()
        try:
            with block:
                yield model
        finally:
            if scope is not None:
                scope.remove()
            for parent, name, child in reversed(swapped):
                setattr(parent, name, child)
