"""Metrics shared by the chapters (attack success, map distances, IoU, NDCG, SSIM, ...).

Every function is batched: it takes tensors with a leading batch dimension and returns one value
per image, so chapters can aggregate them as they need.
"""
from __future__ import annotations

import torch

__all__ = ["accuracy"]


def accuracy(logits_or_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy from logits [B, K] or predicted labels [B]."""
    pred = logits_or_pred.argmax(1) if logits_or_pred.dim() == 2 else logits_or_pred
    return (pred.cpu() == y.cpu()).float().mean().item()
