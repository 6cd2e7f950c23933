"""Figures shared by the chapters: image grids, heat-map overlays, boxes, curves.

Every function takes tensors in the package's conventions (images [B, C, H, W] in [0, 1], maps
[B, 1, H, W]) and returns the matplotlib figure, so a chapter can add to it or save it.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

PART_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628")


def to_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """[C, H, W] tensor (or [H, W]) in [0, 1] -> an array imshow can take."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = np.transpose(x, (1, 2, 0))
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    return np.clip(x, 0, 1)


def show_image(ax, x, title: str | None = None, fontsize: int = 8) -> None:
    img = to_image(x)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def grid_axes(n: int, ncols: int = 8, size: float = 1.6, row_titles: Sequence[str] | None = None):
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.12), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    if row_titles:
        for r, t in enumerate(row_titles[:nrows]):
            axes[r, 0].set_ylabel(t, fontsize=9)
    return fig, axes


def image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6,
               suptitle: str | None = None, fontsize: int = 7):
    """A grid of images with optional titles."""
    n = len(images)
    fig, axes = grid_axes(n, ncols=min(ncols, n), size=size)
    for i, ax in enumerate(axes.flat[:n]):
        show_image(ax, images[i], titles[i] if titles else None, fontsize=fontsize)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def overlay(ax, image, heat, alpha: float = 0.5, cmap: str = "jet", title: str | None = None,
            vmin: float | None = None, vmax: float | None = None, fontsize: int = 8) -> None:
    """An image with a heat map on top (heat [H, W] or [1, H, W]; normalised per map if no range)."""
    show_image(ax, image)
    h = heat.detach().float().cpu().numpy() if isinstance(heat, torch.Tensor) else np.asarray(heat)
    h = h.reshape(h.shape[-2:])
    ax.imshow(h, cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, interpolation="bilinear")
    if title:
        ax.set_title(title, fontsize=fontsize)


def draw_boxes(ax, boxes, labels: Sequence[str] | None = None, colours: Sequence[str] = PART_COLOURS,
               linewidth: float = 1.2, fontsize: int = 6, muted: Sequence[bool] | None = None) -> None:
    """Boxes (x0, y0, x1, y1) in pixels; NaN boxes are skipped; ``muted`` ones are drawn grey, dashed."""
    from matplotlib.patches import Rectangle

    boxes = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        if np.isnan([x0, y0, x1, y1]).any():
            continue
        grey = bool(muted[k]) if muted is not None else False
        colour = "0.6" if grey else colours[k % len(colours)]
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                               linewidth=linewidth, linestyle="--" if grey else "-"))
        if labels is not None:
            ax.text(x0 - 0.5, y0 - 1.0, labels[k], color=colour, fontsize=fontsize, va="bottom",
                    bbox=dict(facecolor="white", alpha=0.6, pad=0.5, linewidth=0))


def curves(x, ys: dict[str, Sequence[float]], xlabel: str, ylabel: str, title: str | None = None, ax=None,
           marker: str = "o", ylim: tuple[float, float] | None = None):
    """Several named curves over a shared x axis."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
    else:
        fig = ax.figure
    for name, y in ys.items():
        ax.plot(x, y, marker=marker, markersize=3.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
