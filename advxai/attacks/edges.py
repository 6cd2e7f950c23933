"""Edge-based step masks (AdvEdge and AdvEdge+): where on the image an attack may put its noise.

The edge map is the Sobel gradient magnitude of the benign image's channel mean, computed as
scikit-image's ``filters.sobel`` does (3x3 kernels: smoothing [1, 2, 1] / 4 across, difference [1, 0, -1] along, so a unit step has gradient 1;
magnitude ``sqrt((gx^2 + gy^2) / 2)``, borders extended by reflection), so it lies in [0, 1] and a
threshold means the same thing as with scikit-image.

* :func:`edge_weights` (AdvEdge): the magnitude itself multiplies every step;
* :func:`edge_mask` (AdvEdge+): 1 where the magnitude exceeds a threshold (0.1 in the paper, 0.05
  against RTS), 0 elsewhere.

Both are step masks for :class:`~advxai.attacks.PGD` (and the other frameworks): pass
``step_mask=edge_weights`` or ``step_mask=lambda x: edge_mask(x, 0.1)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sobel_magnitude", "edge_weights", "edge_mask"]

_SMOOTH = torch.tensor([1.0, 2.0, 1.0]) / 4.0
_DERIV = torch.tensor([1.0, 0.0, -1.0])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] in [0, 1] -> [B, 1, H, W] Sobel magnitude of the channel mean, in [0, 1]."""
    if x.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got {tuple(x.shape)}")
    grey = x.mean(1, keepdim=True)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")  # = scipy's 'reflect' for a 3x3 kernel
    smooth, deriv = _SMOOTH.to(x), _DERIV.to(x)
    kx = torch.outer(smooth, deriv).view(1, 1, 3, 3)  # derivative along columns
    ky = torch.outer(deriv, smooth).view(1, 1, 3, 3)  # derivative along rows
    # scipy's convolve flips the kernel; the sign is irrelevant for the magnitude
    gx, gy = F.conv2d(padded, kx), F.conv2d(padded, ky)
    return torch.sqrt((gx * gx + gy * gy) / 2.0)


def edge_weights(x: torch.Tensor) -> torch.Tensor:
    """AdvEdge's per-pixel step weights: the Sobel magnitude of the benign image, [B, 1, H, W]."""
    return sobel_magnitude(x)


def edge_mask(x: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """AdvEdge+'s binary step mask: 1 where the Sobel magnitude exceeds ``threshold``."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"edge threshold must be in [0, 1] (the Sobel magnitude's range), got {threshold}")
    return (sobel_magnitude(x) > threshold).to(x.dtype)
