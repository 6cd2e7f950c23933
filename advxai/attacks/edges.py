"""Edge-based step masks (AdvEdge and AdvEdge+): where on the image an attack may put its noise.

The edge map is the Sobel gradient magnitude of the benign image's channel mean, computed as
scikit-image's ``filters.sobel`` does (3x3 kernels: smoothing [1, 2, 1] / 4 across, difference [1, 0, -1] along, so a unit step has gradient 1;
magnitude ``sqrt((gx^2 + gy^2) / 2)``, borders extended by reflection), so it lies in [0, 1] and a
threshold means the same thing as with scikit-image.

* :func:`edge_weights` (AdvEdge): the magnitude itself multiplies every step;
* :func:`edge_mask` (AdvEdge+): 1 where the magnitude exceeds a threshold (0.1 in the paper, 0.05
  against RTS), 0 elsewhere.

Both are step masks for :class:`~advxai.attacks.PGD` (and the other frameworks): pass
``step_mask=edge_weights`` or ``step_mask=edge_step("advedge+", 0.1)``.

By name, for chapters and parameter sweeps: :func:`edge_step_mask` / :func:`edge_step` (variant
``"advedge"`` or ``"advedge+"``, the threshold checked to lie in [0, 1]); :func:`advedge_threshold`
gives the paper's threshold per interpreter. Where the edges apply is a choice: the paper restricts
the whole attack (``placement="throughout"``), the authors' code only its warm start
(``"warm_start"``); :func:`split_by_placement` turns the choice into the masks of the two stages, and
PGD / C&W accept ``mask_steps`` for a single run whose first steps are the warm start.

A mask that leaves an image no pixel to perturb (a flat image has no edges; a threshold of 1 keeps
none) is not an error: the frameworks warn, leave that image unchanged and report its attack as
failed (``extras["mask_empty"]``), so a sweep over thresholds runs to the end.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["sobel_magnitude", "edge_weights", "edge_mask", "edge_step_mask", "edge_step", "advedge_threshold",
           "check_threshold", "split_by_placement", "empty_masks", "EDGE_VARIANTS", "EDGE_PLACEMENTS"]

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
    threshold = check_threshold(threshold)
    return (sobel_magnitude(x) > threshold).to(x.dtype)


# --------------------------------------------------------------------------- AdvEdge / AdvEdge+ by name

EDGE_VARIANTS = ("advedge", "advedge+")
EDGE_PLACEMENTS = ("throughout", "warm_start")
ADVEDGE_PLUS_THRESHOLD = 0.1  # the paper's threshold on the Sobel magnitude
ADVEDGE_PLUS_THRESHOLD_RTS = 0.05  # against RTS, whose masks are coarser, the paper lowers it


def check_threshold(threshold: float) -> float:
    """An edge threshold is a Sobel magnitude: a number in [0, 1]."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"edge threshold must be in [0, 1] (the Sobel magnitude's range), got {threshold!r}")
    return float(threshold)


def advedge_threshold(interpreter: str | None = None) -> float:
    """AdvEdge+'s threshold as the paper sets it: 0.05 against RTS, 0.1 against every other interpreter."""
    return ADVEDGE_PLUS_THRESHOLD_RTS if (interpreter or "").lower() == "rts" else ADVEDGE_PLUS_THRESHOLD


def _check_variant(variant: str, threshold: float | None) -> tuple[str, float | None]:
    name = str(variant).lower()
    if name not in EDGE_VARIANTS:
        raise ValueError(f"unknown edge variant {variant!r}; valid: {', '.join(EDGE_VARIANTS)}")
    if name == "advedge":
        if threshold is not None:
            raise ValueError("AdvEdge weights every step by the edge map and takes no threshold "
                             "(the threshold belongs to AdvEdge+)")
        return name, None
    return name, check_threshold(ADVEDGE_PLUS_THRESHOLD if threshold is None else threshold)


def edge_step_mask(x: torch.Tensor, variant: str = "advedge", threshold: float | None = None) -> torch.Tensor:
    """The step mask of ``variant`` for the benign batch ``x``: [B, 1, H, W] in [0, 1].

    ``"advedge"``: the Sobel magnitude itself (steps weighted by the edges); ``"advedge+"``: 1 where
    the magnitude exceeds ``threshold`` (default 0.1; see :func:`advedge_threshold`), 0 elsewhere.
    """
    name, threshold = _check_variant(variant, threshold)
    return edge_weights(x) if name == "advedge" else edge_mask(x, threshold)


def edge_step(variant: str = "advedge", threshold: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``edge_step_mask`` as a ``step_mask`` for PGD / C&W (a function of the benign batch).

    The variant and threshold are checked now, not at the first attack call::

        PGD(model, eps=8/255, step_mask=edge_step("advedge+", 0.05))
    """
    name, threshold = _check_variant(variant, threshold)
    return partial(edge_step_mask, variant=name, threshold=threshold)


def split_by_placement(step_mask, placement: str = "throughout"):
    """``(warm_start_mask, main_mask)`` for an attack run in two stages (a warm start, then the joint objective).

    ``"throughout"`` (the paper): both stages are restricted to the edges. ``"warm_start"`` (the
    authors' code): only the warm start is; the joint stage takes ordinary steps from where it ended.
    """
    if placement not in EDGE_PLACEMENTS:
        raise ValueError(f"unknown edge placement {placement!r}; valid: {', '.join(EDGE_PLACEMENTS)}")
    return (step_mask, step_mask) if placement == "throughout" else (step_mask, None)


def empty_masks(mask: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Per image, whether the mask leaves no pixel to perturb (all weights 0): bool [B] (or [n] for a shared mask)."""
    empty = mask.flatten(1).amax(1) <= 0
    if n is not None and len(empty) == 1 and n != 1:
        empty = empty.expand(n)
    return empty
