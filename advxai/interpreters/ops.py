"""Small differentiable image operations the perturbation-based interpreters share."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_kernel1d", "gaussian_blur", "total_variation", "shift_images"]


def gaussian_kernel1d(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W], per channel, reflect padding (replicate when the image
    is smaller than the kernel). ``sigma <= 0`` returns ``x``."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, x.dtype, x.device)
    r = (len(k) - 1) // 2
    c = x.shape[1]
    mode = "reflect" if r < min(x.shape[-2:]) else "replicate"
    y = F.pad(x, (r, r, 0, 0), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode=mode)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def total_variation(m: torch.Tensor, beta: float = 2.0, reduction: str = "sum") -> torch.Tensor:
    """``sum |m[i+1,j] - m[i,j]|^beta + |m[i,j+1] - m[i,j]|^beta`` per image ([B]); ``reduction="mean"``
    divides by the number of pixels."""
    dh = (m[..., 1:, :] - m[..., :-1, :]).abs().pow(beta).flatten(1).sum(1)
    dw = (m[..., :, 1:] - m[..., :, :-1]).abs().pow(beta).flatten(1).sum(1)
    tv = dh + dw
    if reduction == "mean":
        tv = tv / m[0].numel()
    return tv


def shift_images(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate by (dy, dx) pixels, filling the uncovered border by replication."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]
