"""Metrics for attacks on interpreters (ADV²-style studies), batched: one value per image.

* :func:`attack_success_rate` and :func:`misclassification_confidence` (the probability the model
  gives the target class) for targeted attacks;
* :func:`map_l1` / :func:`map_l2`: distance between two attribution maps, normalised per pixel
  (L1 divided by the number of pixels, L2 by its square root, as Zhang et al. normalise), so maps
  in [0, 1] give values in [0, 1];
* :func:`binarize_topk` and :func:`map_iou`: Jaccard similarity of the maps' top-k fractions of
  pixels. The papers state no binarisation; the default here keeps the top ``DEFAULT_TOP_K`` =
  20 % of each map (chapters show a sweep);
* :func:`localization`: weakly supervised localisation against ground-truth object masks (the
  benchmark of Table 2): threshold a map at ``alpha`` times its mean, keep the largest connected
  region, and count the image as localised when its bounding box overlaps the object's box with
  IoU >= 0.5 (Dabkowski & Gal's protocol, boxes derived from the masks).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["DEFAULT_TOP_K", "attack_success_rate", "misclassification_confidence", "map_l1", "map_l2",
           "binarize_topk", "map_iou", "box_of", "box_iou", "localization", "largest_component"]

DEFAULT_TOP_K = 0.2


def attack_success_rate(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of images classified as their target."""
    return (pred.cpu() == target.cpu()).float().mean().item() if len(pred) else float("nan")


def misclassification_confidence(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The probability assigned to the target class, per image [B]."""
    return probs.gather(1, target.to(probs.device)[:, None]).squeeze(1)


def _flat(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a.flatten(1).float(), b.flatten(1).float()


def map_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a - b||_1 / n`` per image."""
    a, b = _flat(a, b)
    return (a - b).abs().mean(1)


def map_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a - b||_2 / sqrt(n)`` per image."""
    a, b = _flat(a, b)
    return (a - b).pow(2).mean(1).sqrt()


def binarize_topk(maps: torch.Tensor, top_k: float = DEFAULT_TOP_K) -> torch.Tensor:
    """Boolean maps marking exactly the ``ceil(top_k * n)`` largest values of each map (ties broken by
    position), so every map keeps the same number of pixels."""
    if not 0 < top_k <= 1:
        raise ValueError(f"top_k must be in (0, 1], got {top_k}")
    flat = maps.flatten(1)
    k = max(1, int(np.ceil(top_k * flat.shape[1])))
    idx = flat.topk(k, dim=1).indices
    out = torch.zeros_like(flat, dtype=torch.bool)
    out.scatter_(1, idx, True)
    return out.view_as(maps)


def map_iou(a: torch.Tensor, b: torch.Tensor, top_k: float = DEFAULT_TOP_K) -> torch.Tensor:
    """Jaccard similarity of the top-k binarisations of two maps, per image."""
    _flat(a, b)
    ba, bb = binarize_topk(a, top_k).flatten(1), binarize_topk(b, top_k).flatten(1)
    inter = (ba & bb).sum(1).float()
    union = (ba | bb).sum(1).float().clamp_min(1)
    return inter / union


def box_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box (x0, y0, x1, y1), inclusive, of a boolean [H, W] mask; None when empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def box_iou(a, b) -> float:
    if a is None or b is None:
        return 0.0
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = ix * iy
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def localization(maps: torch.Tensor, objects: torch.Tensor, alpha: float = 1.0) -> dict[str, np.ndarray]:
    """Per image: ``correct`` (box IoU >= 0.5), ``box_iou`` and ``mask_iou`` (pixel IoU of the kept region
    with the object mask), for maps [B, 1, H, W] thresholded at ``alpha`` times their mean."""
    m = maps.detach().float().cpu().numpy()[:, 0]
    o = objects.detach().cpu().numpy().astype(bool).reshape(m.shape)
    out = {"correct": [], "box_iou": [], "mask_iou": []}
    for mi, oi in zip(m, o):
        region = largest_component(mi >= alpha * mi.mean())
        biou = box_iou(box_of(region), box_of(oi))
        out["box_iou"].append(biou)
        out["correct"].append(biou >= 0.5)
        union = np.logical_or(region, oi).sum()
        out["mask_iou"].append(np.logical_and(region, oi).sum() / union if union else 0.0)
    return {k: np.asarray(v) for k, v in out.items()}


def kendall_tau(a: torch.Tensor, b: torch.Tensor, chunk_elements: int = 1 << 24) -> torch.Tensor:
    """Kendall's rank correlation tau-b between two maps, per image [B] (scipy.stats.kendalltau's default).

    ``tau_b = (C - D) / sqrt((n0 - t_a) (n0 - t_b))`` over the ``n0`` pixel pairs, ties counted as
    scipy counts them; a constant map gives NaN, as in scipy. The pairwise signs are summed in row
    chunks of at most ``chunk_elements`` values, so a 64x64 map never builds its whole 4096^2 pair
    matrix at once. Exact, O(n^2) per image: compute it on native-resolution maps (e.g. CAM's 8x8)
    or downsampled ones for large inputs.
    """
    a, b = _flat(a, b)
    n_img, n = a.shape
    if n < 2:
        raise ValueError(f"Kendall's tau needs at least 2 values per map, got {n}")
    concordance = torch.zeros(n_img, dtype=torch.float64, device=a.device)
    untied_a = torch.zeros_like(concordance)
    untied_b = torch.zeros_like(concordance)
    rows = max(1, chunk_elements // max(1, n_img * n))
    for start in range(0, n, rows):
        sa = torch.sign(a[:, start:start + rows, None] - a[:, None, :])  # [B, r, n]
        sb = torch.sign(b[:, start:start + rows, None] - b[:, None, :])
        concordance += (sa * sb).sum((1, 2), dtype=torch.float64)
        untied_a += sa.abs().sum((1, 2), dtype=torch.float64)
        untied_b += sb.abs().sum((1, 2), dtype=torch.float64)
    # every pair is counted twice (i, j) and (j, i), in the numerator and in both factors alike
    return (concordance / torch.sqrt(untied_a * untied_b)).float()


__all__ += ["kendall_tau"]
