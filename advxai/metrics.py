"""Metrics shared by the chapters (attack success, map distances, IoU, NDCG, SSIM, ...).

Every function is batched: it takes tensors with a leading batch dimension and returns one value
per image, so chapters can aggregate them as they need.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["accuracy", "ssim", "noise_rate"]


def accuracy(logits_or_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy from logits [B, K] or predicted labels [B]."""
    pred = logits_or_pred.argmax(1) if logits_or_pred.dim() == 2 else logits_or_pred
    return (pred.cpu() == y.cpu()).float().mean().item()


# --------------------------------------------------------------------------- image similarity


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity per image [B] (Wang et al. 2004), averaged over channels and pixels.

    A Gaussian window (11 taps, sigma 1.5) over the valid region, population statistics: the same
    numbers as ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`` and ``pytorch_msssim.ssim``.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two [B, C, H, W] batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images of {tuple(x.shape[-2:])} are smaller than the {win_size}-pixel SSIM window")
    c = x.shape[1]
    g = _gaussian_window(win_size, sigma, x.device, x.dtype)
    wx = g.view(1, 1, 1, -1).expand(c, 1, 1, win_size)
    wy = g.view(1, 1, -1, 1).expand(c, 1, win_size, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def noise_rate(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM(x_adv, x)`` per image: the share of structure the perturbation changed."""
    return 1.0 - ssim(x_adv, x)
