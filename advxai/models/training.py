"""Deterministic, resumable training of the small embedded models.

Every epoch's randomness (shuffle order, augmentation) comes from a generator seeded with
``(seed, epoch)``, and the state after each epoch is written atomically to a ``.partial`` file
beside the final cache entry. A killed training resumes from the last finished epoch and ends
with exactly the weights an uninterrupted run would have produced.

Precision. Training runs in bfloat16 mixed precision (``torch.autocast``: the weights, the optimiser
and the losses stay fp32) on hardware that computes bfloat16 natively: CPUs with AVX512-BF16 or AMX,
GPUs that support it. There it is 1.4-2.2x faster (``benchmarks/bench_train.py``); elsewhere
emulated bfloat16 would be slower than fp32, so training stays fp32. :func:`training_precision`
decides, ``$ADVXAI_TRAIN_PRECISION`` (``auto`` | ``bf16`` | ``fp32``) overrides it, and the cache
keys hold the precision used. Only training is affected: every measurement the chapters make with
a trained model (accuracy, attacks, maps) runs in fp32.

Layout. Training runs with channels-last (NHWC) weights and activations, the layout the convolution
libraries of CPUs and GPUs compute fastest; the weights leave training in their usual layout. With
bf16 on this project's CPUs it gave bit-identical weights, 1.6-1.8x faster for the MNIST models
(the shapes models: unchanged).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm  # text bars: fine in a terminal and in Jupyter, no widget state

from ..accelerate import fast_math
from ..runtime import CacheCorrupted, atomic_save, load_checkpoint, remove_entry

PRECISIONS = ("auto", "bf16", "fp32")
PRECISION_ENV = "ADVXAI_TRAIN_PRECISION"


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 natively (AVX512-BF16 or AMX on a CPU; a GPU that has it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        # private but long-standing probes (PyTorch's own compiler uses them); absent: assume not
        probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
        return any(bool(probe()) for probe in probes if probe is not None)
    return False


def training_precision(device: torch.device | str, precision: str | None = None) -> str:
    """``"bf16"`` or ``"fp32"``: the precision trainings use on ``device``.

    ``precision`` (default: ``$ADVXAI_TRAIN_PRECISION``, else ``"auto"``): ``"auto"`` picks bf16 where
    :func:`native_bf16` holds and fp32 elsewhere; ``"bf16"`` / ``"fp32"`` force one."""
    choice = precision if precision is not None else (os.environ.get(PRECISION_ENV, "").strip().lower() or "auto")
    if choice not in PRECISIONS:
        source = "precision" if precision is not None else f"${PRECISION_ENV}"
        raise ValueError(f"{source} must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return choice


def check_precision(precision: str) -> str:
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'bf16' or 'fp32' (training_precision resolves 'auto'), got {precision!r}")
    return precision


def autocast(precision: str, device: torch.device | str):
    """The block of a training's forward passes in ``precision`` (``"bf16"``: bfloat16 autocast;
    ``"fp32"``: nothing). The backward passes run outside it, in the types the forward chose."""
    return fast_math(bf16=check_precision(precision) == "bf16", device=device)


def fast_layout(net: nn.Module):
    """The block of a training loop: ``net``'s weights (and so its activations) channels-last (NHWC),
    the convolutions' fast layout on CPUs and GPUs alike (1.2-2x here), and back in their own
    layout when the block ends."""
    return fast_math(net, channels_last=True)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    shift: int = 0  # random translation augmentation, pixels (0 = off)
    seed: int = 0


def random_shift(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero padding), batched."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    rows = (dy.view(b, 1) + torch.arange(h).view(1, h))  # [B, H]
    cols = (dx.view(b, 1) + torch.arange(w).view(1, w))  # [B, W]
    idx_b = torch.arange(b).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx_b, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)


@torch.no_grad()
def evaluate(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
             device="cpu") -> float:
    """Top-1 accuracy of ``model`` (a module in eval mode, or any callable returning logits)."""
    correct = 0
    for s in range(0, len(x), batch_size):
        correct += (model(x[s:s + batch_size].to(device)).argmax(1).cpu() == y[s:s + batch_size]).sum().item()
    return correct / max(1, len(x))


def train_classifier(
    net: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    cfg: TrainConfig,
    normalize: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    partial_path: Path | None = None,
    device: torch.device | str = "cpu",
    desc: str = "training",
    precision: str = "fp32",
) -> dict:
    """Train ``net`` (on normalised inputs) with AdamW + one-cycle; returns the state and history.

    ``partial_path``: where per-epoch progress is kept so a killed run resumes (removed at the end).
    ``precision``: ``"bf16"`` runs the forward passes under bfloat16 autocast (module docstring).
    """
    check_precision(precision)
    device = torch.device(device)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = (len(x_train) + cfg.batch_size - 1) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.25)
    history: list[dict] = []
    start_epoch = 0
    if partial_path is not None and Path(partial_path).exists():
        try:
            state = load_checkpoint(partial_path)
            if state.get("config") == asdict(cfg):
                net.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                history = state["history"]
                start_epoch = state["epoch"] + 1
        except CacheCorrupted:
            remove_entry(partial_path)

    with fast_layout(net):
        for epoch in tqdm(range(start_epoch, cfg.epochs), desc=desc, initial=start_epoch, total=cfg.epochs,
                          leave=False):
            g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout etc. inside the net
            net.train()
            order = torch.randperm(len(x_train), generator=g)
            t0, total_loss, correct = time.time(), 0.0, 0
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s:s + cfg.batch_size]
                xb = random_shift(x_train[idx], cfg.shift, g).to(device)
                yb = y_train[idx].to(device)
                with autocast(precision, device):
                    logits = net(normalize(xb))
                    loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total_loss += loss.item() * len(idx)
                correct += (logits.argmax(1) == yb).sum().item()
            history.append({"epoch": epoch, "loss": total_loss / len(order), "train_accuracy": correct / len(order),
                            "seconds": time.time() - t0})
            if partial_path is not None and epoch < cfg.epochs - 1:
                atomic_save({"config": asdict(cfg), "epoch": epoch, "model": net.state_dict(),
                             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "history": history},
                            partial_path)
    net.eval()
    if partial_path is not None:
        remove_entry(partial_path)
    return {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "history": history}
