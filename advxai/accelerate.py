"""Opt-in speed settings for a block of GPU work: TF32, channels-last, bf16 autocast, cuDNN autotuning.

The study's default is plain fp32 and deterministic kernels. Each setting here trades some of that for
speed, so none is on unless asked for, and each is undone when the block ends::

    with fast_math(model, tf32=True, channels_last=True):
        x_adv = attack(x, y, target)

=================  ==========================================================================
``tf32``           ``True``: matrix products and convolutions in TensorFloat-32 (10-bit mantissa) on
                   GPUs that have it; ``False``: strict fp32 for both; ``None`` (default): leave
                   PyTorch's setting alone. Note that PyTorch's own default already lets cuDNN
                   convolutions use TF32; ``tf32=False`` is what makes a GPU run fp32 throughout.
``channels_last``  the model's 4-D weights in NHWC order, which Tensor-Core convolutions prefer; a
                   convolution whose weight is channels-last returns channels-last outputs, so the
                   inputs need no conversion. Values are unchanged, only the layout.
``bf16``           ``torch.autocast`` to bfloat16 (8-bit mantissa) on the model's device; losses
                   and reductions that autocast keeps in fp32 stay there.
``cudnn_benchmark`` cuDNN times its algorithms for each new shape and keeps the fastest; this also
                   turns off cuDNN's deterministic mode for the block, so runs stop being bitwise
                   repeatable.
=================  ==========================================================================

Whether a setting is worth it is measured, not assumed: ``benchmarks/bench_knobs.py`` times each one
against fp32 and reports the largest change it makes to logits, maps and adversarial images.
:func:`parse_knobs` turns a command-line list (``"tf32,channels_last"``) into keyword arguments.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn

from .runtime import module_device

__all__ = ["KNOBS", "fast_math", "parse_knobs", "tf32_state"]

KNOBS = ("tf32", "channels_last", "bf16", "cudnn_benchmark")


def parse_knobs(text: str | None) -> dict[str, bool]:
    """``"tf32,bf16"`` -> ``{"tf32": True, "bf16": True}``; ``""``, ``"none"`` or ``None`` -> ``{}``.

    Unknown names fail with the list of valid ones, so a typo never runs the slow path quietly."""
    if text is None or text.strip().lower() in ("", "none", "fp32"):
        return {}
    names = [part.strip().lower().replace("-", "_") for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in KNOBS]
    if unknown:
        raise ValueError(f"unknown speed setting(s) {unknown}; valid: {', '.join(KNOBS)} (or 'none')")
    return {n: True for n in names}


def _has_precision_api() -> bool:
    # PyTorch 2.9 added per-backend ``fp32_precision``; mixing it with the legacy ``allow_tf32`` flags
    # makes later reads raise, so use the new one wherever it exists and the legacy one only before.
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(
        getattr(torch.backends.cudnn, "conv", None), "fp32_precision")


def tf32_state() -> dict[str, str]:
    """What matrix products and cuDNN convolutions use for fp32 now: ``"tf32"`` or ``"ieee"``
    (``"none"`` where PyTorch defers to the global default)."""
    if _has_precision_api():
        return {"matmul": torch.backends.cuda.matmul.fp32_precision,
                "conv": torch.backends.cudnn.conv.fp32_precision}
    return {"matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee",
            "conv": "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"}


@contextlib.contextmanager
def _tf32(enabled: bool | None) -> Iterator[None]:
    if enabled is None:
        yield
        return
    mode = "tf32" if enabled else "ieee"
    if _has_precision_api():
        before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
        try:
            yield
        finally:
            torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before
    else:
        before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(enabled)
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _layouts(model: nn.Module) -> list[tuple[nn.Module, str, str, tuple[int, ...]]]:
    """Every 4-D parameter and buffer with its strides (by owner and name: ``Module.to`` replaces buffers)."""
    out = []
    for module in model.modules():
        for kind in ("_parameters", "_buffers"):
            for name, tensor in getattr(module, kind).items():
                if tensor is not None and tensor.dim() == 4:
                    out.append((module, kind, name, tensor.stride()))
    return out


@contextlib.contextmanager
def _channels_last(model: nn.Module | None, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    if model is None:
        raise ValueError("channels_last needs the model (fast_math(model, channels_last=True)): its weights change layout")
    # Restore the exact strides, not just "contiguous": a 1x1 kernel or a [1, C, 1, 1] buffer counts as
    # contiguous in both layouts, yet convolutions read the strides to choose their kernel, so such a
    # tensor left channels-last would change later results in the last bits.
    layouts = _layouts(model)
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for module, kind, name, stride in layouts:
            tensor = getattr(module, kind)[name]
            if tensor.stride() == stride:
                continue
            fixed = torch.empty_strided(tensor.shape, stride, dtype=tensor.dtype, device=tensor.device)
            fixed.copy_(tensor.detach())  # values as they are now: the block may have trained the model
            if kind == "_parameters":
                tensor.data = fixed
            else:
                getattr(module, kind)[name] = fixed


@contextlib.contextmanager
def _cudnn_benchmark(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before


@contextlib.contextmanager
def fast_math(model: nn.Module | None = None, *, tf32: bool | None = None, channels_last: bool = False,
              bf16: bool = False, cudnn_benchmark: bool = False,
              device: str | torch.device | None = None) -> Iterator[None]:
    """Run the block with the named speed settings (module docstring); all off by default.

    ``model`` is needed for ``channels_last`` (its weights are re-laid out, and restored on exit) and
    names the device for ``bf16`` unless ``device`` does. Settings are process-wide (TF32, cuDNN) or
    thread-local (autocast) in PyTorch, so the block should not overlap another that wants others."""
    for name, value in (("channels_last", channels_last), ("bf16", bf16), ("cudnn_benchmark", cudnn_benchmark)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if tf32 is not None and not isinstance(tf32, bool):
        raise TypeError(f"tf32 must be True, False or None (leave PyTorch's setting), got {tf32!r}")
    if bf16:
        if device is None and model is None:
            raise ValueError("bf16 needs the model or a device to know where to autocast")
        dev = torch.device(device) if device is not None else module_device(model)
        autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext()
    with _tf32(tf32), _cudnn_benchmark(cudnn_benchmark), _channels_last(model, channels_last), autocast:
        yield
