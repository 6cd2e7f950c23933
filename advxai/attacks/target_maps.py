"""Target maps other than the benign map, for ADV²'s study of the prediction-interpretation gap (Zhang et al., § 5 Q1).

* :func:`random_patch_maps`: one binary map per image, 1 inside a patch of random shape (rectangle or
  circle), random angle and random position, 0 outside ("random patch interpretation", their Table 7).
  The paper gives no patch size; here each side (or the diameter) is drawn uniformly from
  ``size_range`` times the image side, and the patch lies wholly inside the image.
* :func:`donor_indices`: for "random class interpretation" (their Table 8), the target map of image
  ``i`` is the benign map of another image whose class differs from the target class ``c_t``, as the
  paper requires, and also from the image's own class, so that the requested interpretation is neither
  the one the prediction implies nor the one the image already has.

Both are seeded and return CPU tensors; ADV² resamples input-sized maps to the interpreter's resolution.
"""
from __future__ import annotations

import math

import torch

__all__ = ["random_patch_maps", "donor_indices"]


def random_patch_maps(n: int, size: tuple[int, int], seed: int = 0,
                      size_range: tuple[float, float] = (0.25, 0.5)) -> torch.Tensor:
    """``n`` binary maps [n, 1, h, w]: a rectangle (random sides and angle) or a circle per map, at a random
    position that keeps it inside the image."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    h, w = size
    if h < 2 or w < 2:
        raise ValueError(f"maps need at least 2x2 pixels, got {size}")
    lo, hi = size_range
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"size_range must satisfy 0 < low <= high <= 1 (fractions of the image side), got {size_range}")
    g = torch.Generator().manual_seed(seed)
    side = float(min(h, w))
    uniform = lambda a, b: a + (b - a) * torch.rand(n, generator=g, dtype=torch.float64)  # noqa: E731
    circle = torch.rand(n, generator=g) < 0.5
    a, b = uniform(lo, hi) * side, uniform(lo, hi) * side  # rectangle sides (a is the circle's diameter)
    b = torch.where(circle, a, b)
    angle = uniform(0.0, math.pi)
    # half extent of the rotated shape along each axis, so the whole patch fits in the image
    ext_y = torch.where(circle, a / 2, (a * angle.sin().abs() + b * angle.cos().abs()) / 2).clamp(max=h / 2)
    ext_x = torch.where(circle, a / 2, (a * angle.cos().abs() + b * angle.sin().abs()) / 2).clamp(max=w / 2)
    cy = ext_y + torch.rand(n, generator=g, dtype=torch.float64) * (h - 2 * ext_y)
    cx = ext_x + torch.rand(n, generator=g, dtype=torch.float64) * (w - 2 * ext_x)
    yy = torch.arange(h, dtype=torch.float64).view(1, h, 1) + 0.5 - cy.view(n, 1, 1)
    xx = torch.arange(w, dtype=torch.float64).view(1, 1, w) + 0.5 - cx.view(n, 1, 1)
    cos, sin = angle.cos().view(n, 1, 1), angle.sin().view(n, 1, 1)
    u, v = xx * cos + yy * sin, -xx * sin + yy * cos  # coordinates along the rectangle's own axes
    rect = (u.abs() <= a.view(n, 1, 1) / 2) & (v.abs() <= b.view(n, 1, 1) / 2)
    disc = (xx ** 2 + yy ** 2) <= (a.view(n, 1, 1) / 2) ** 2
    inside = torch.where(circle.view(n, 1, 1), disc, rect)
    return inside.float().unsqueeze(1)


def donor_indices(pool_labels: torch.Tensor, target: torch.Tensor, true: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """For each image ``i``, the index of a random pool image whose label is neither ``target[i]`` nor
    ``true[i]``. Raises when the pool has no such image for some ``i``."""
    pool_labels, target, true = (torch.as_tensor(t).cpu().long() for t in (pool_labels, target, true))
    if target.shape != true.shape or target.dim() != 1:
        raise ValueError(f"target and true must be 1-D of the same length, got {tuple(target.shape)} and "
                         f"{tuple(true.shape)}")
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(len(target), dtype=torch.long)
    for i, (t, y) in enumerate(zip(target.tolist(), true.tolist())):
        allowed = torch.nonzero((pool_labels != t) & (pool_labels != y)).flatten()
        if len(allowed) == 0:
            raise ValueError(f"the pool has no image outside classes {t} and {y}: give a pool with a third class")
        out[i] = allowed[torch.randint(len(allowed), (1,), generator=g)]
    return out
