"""Seeded, batched image augmentation: random crops, horizontal flips and colour jitter.

Used where a handful of images must stand in for many (the universal patches of chapter 1 are
learned on augmented copies of the eight embedded photographs). One affine sampling grid per image
does the crop, the resize back to full size and the flip in a single ``grid_sample``; brightness,
contrast and saturation factors are drawn per image. Everything stays in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment"]


def augment(images: torch.Tensor, n: int, seed: int = 0, crop: tuple[float, float] = (0.6, 1.0),
            flip: bool = True, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2) -> torch.Tensor:
    """``n`` augmented copies drawn from ``images`` [N, C, H, W] in [0, 1] (sources taken in turn).

    ``crop``: range of the crop's area as a fraction of the image (a square-aspect crop at a random
    position, resized back to H x W); ``flip``: mirror half of them left-right; ``brightness``,
    ``contrast``, ``saturation``: each factor drawn from ``[1 - v, 1 + v]``.
    """
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty [N, C, H, W] tensor, got {tuple(images.shape)}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("images must be in [0, 1]")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not 0 < crop[0] <= crop[1] <= 1:
        raise ValueError(f"crop must be (lo, hi) with 0 < lo <= hi <= 1, got {crop!r}")
    for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        if not 0 <= v < 1:
            raise ValueError(f"{name} must be in [0, 1), got {v!r}")
    g = torch.Generator().manual_seed(int(seed))
    src = images[torch.arange(n) % len(images)]
    b = len(src)
    rand = lambda: torch.rand(b, generator=g)  # noqa: E731
    area = crop[0] + (crop[1] - crop[0]) * rand()
    scale = area.sqrt()  # side of the crop relative to the image
    # crop centre, normalised to [-1, 1], keeping the crop inside the image
    cx = (rand() * 2 - 1) * (1 - scale)
    cy = (rand() * 2 - 1) * (1 - scale)
    sign = torch.where(rand() < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = scale * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = scale, cy
    factors = [1 + (rand() * 2 - 1) * v for v in (brightness, contrast, saturation)]
    src = src.to(torch.float32)
    grid = F.affine_grid(theta.to(src.device), list(src.shape), align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    bri, con, sat = (f.to(src.device).view(-1, 1, 1, 1) for f in factors)
    out = out * bri
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * con + mean
    if out.shape[1] == 3:
        grey = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
        out = (out - grey) * sat + grey
    return out.clamp(0, 1).to(images.dtype)
