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


def masks_and_boxes(images: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, titles: Sequence[str],
                    part_names: Sequence[str] | None = None, suptitle: str | None = None, size: float = 1.7,
                    fontsize: float = 5.5):
    """Three rows per image column: the image with its title, its object mask, and the image with its
    part boxes (labelled with ``part_names`` in the first column). ``masks`` [B, 1, H, W], ``boxes``
    [B, P, 4] in pixels (NaN for an absent part)."""
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(n * size, 3 * size * 1.06), squeeze=False)
    for j in range(n):
        show_image(axes[0, j], images[j], titles[j], fontsize=fontsize)
        show_image(axes[1, j], masks[j].float(), "object mask" if j == 0 else None)
        show_image(axes[2, j], images[j])
        draw_boxes(axes[2, j], boxes[j], part_names if j == 0 else None)
    axes[2, 0].set_ylabel("part boxes", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def text_panels(images: torch.Tensor, titles: Sequence[str], texts: Sequence[str], ncols: int = 4,
                size: float = 3.5, fontsize: float = 7):
    """One panel per image, a block of text (a model's top classes, say) in its lower left corner."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.09), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        show_image(ax, images[i])
        ax.set_title(titles[i], fontsize=fontsize + 1)
        ax.text(0.02, 0.02, texts[i], transform=ax.transAxes, fontsize=fontsize, va="bottom",
                bbox=dict(facecolor="white", alpha=0.8, linewidth=0))
    fig.tight_layout()
    return fig


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


def overlay_rows(rows: Sequence[Sequence[tuple | None]], size: float = 1.85, fontsize: int = 7,
                 suptitle: str | None = None):
    """Rows of panels, each ``(image, heat or None, title)`` (an image with a heat map on top, or the image
    alone) or ``None`` for an empty panel; rows shorter than the longest leave their last axes empty."""
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols, size * 1.05 * len(rows)), squeeze=False)
    for ax_row, panels in zip(axes, rows):
        for ax in ax_row:
            ax.axis("off")
        for ax, panel in zip(ax_row, panels):
            if panel is None:
                continue
            image, heat, title = panel
            if heat is None:
                show_image(ax, image, title, fontsize=fontsize)
            else:
                overlay(ax, image, heat, title=title, fontsize=fontsize)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def cell_bars(table, value: str, rows: Sequence[str], cols: Sequence[str], groups: Sequence[str],
              bars: Sequence[str], ylabel: str, title: str | None = None, keys=("model", "framework", "interpreter",
                                                                                  "variant")):
    """Grouped bars of one value of a tidy table: a panel per (row, column) value of ``keys[0]`` and
    ``keys[1]``, a group per ``keys[2]`` value, a bar per ``keys[3]`` value. A missing value (NaN: nothing
    was measured in that cell) is drawn as a cross on the axis in the bar's colour, not as a bar of height 0."""
    rk, ck, gk, bk = keys
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols), 3.0 * len(rows)), squeeze=False)
    width = 0.8 / max(1, len(bars))
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            ax = axes[r, c]
            sub = table[(table[rk] == row) & (table[ck] == col)]
            names = [g for g in groups if g in set(sub[gk])]
            for k, b in enumerate(bars):
                vals = [sub[(sub[gk] == n) & (sub[bk] == b)][value].mean() for n in names]
                drawn = ax.bar(np.arange(len(names)) + k * width, np.nan_to_num(vals), width, label=b)
                for j, v in enumerate(vals):
                    if not np.isfinite(v):
                        ax.text(j + k * width, 0.0, "×", ha="center", va="bottom", fontsize=12, fontweight="bold",
                                color=drawn.patches[j].get_facecolor())
            ax.set_xticks(np.arange(len(names)) + width * (len(bars) - 1) / 2, names)
            ax.set_title(f"{row}, {col}", fontsize=9)
            ax.set_ylabel(ylabel)
    # one legend under the panels (inside a panel it covered bars)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    legend_rows = -(-len(bars) // 6)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(bars), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.25 * legend_rows / (3.0 * len(rows)), 1, 1))
    return fig


def panel_rows(rows: Sequence[Sequence[tuple]], size: float = 2.25, fontsize: int = 7):
    """Rows of image panels: each row a list of ``(image, title)`` ([C, H, W] or [H, W] in [0, 1];
    one channel is drawn grey). Rows shorter than the longest leave their last axes empty."""
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols, size * 1.1 * len(rows)), squeeze=False)
    for ax_row, panels in zip(axes, rows):
        for ax, (image, title) in zip(ax_row, panels):
            show_image(ax, image, title, fontsize=fontsize)
        for ax in ax_row[len(panels):]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def roc_curves(panels: dict[str, Sequence[tuple]], size: float = 4.3):
    """ROC curves side by side: ``{panel title: [(label, fpr, tpr, auc), ...]}``, the chance diagonal
    dashed, the AUC in each legend entry."""
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size * 0.88), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, fpr, tpr, auc in lines:
            ax.plot(fpr, tpr, marker=".", label=f"{label} ({auc:.2f})")
        ax.plot([0, 1], [0, 1], color="0.7", linestyle="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("FPR (benign flagged)")
        ax.set_ylabel("TPR")
        if lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def accuracy_curves(table, epsilons: Sequence[float], title: str | None = None, size: tuple = (11, 3.8)):
    """Accuracy against ε as in Gulshad et al.'s Fig. 4: a row per ``dataset`` of ``table``, untargeted
    and targeted attacks side by side; softmax solid, SJE dashed; clean images (x) and adversarial
    ones (x̂), with and without adversarial training (AT). ``table``: the tidy rows of
    :func:`advxai.studies.attributes.accuracy_under_attack` (dataset, mode, eps, training,
    classifier, clean, adversarial)."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(size[0], size[1] * len(datasets)), sharey=True,
                             squeeze=False)
    colours = {("standard", "clean"): "tab:red", ("standard", "adversarial"): "tab:blue",
               ("adversarial", "clean"): "tab:green", ("adversarial", "adversarial"): "tab:purple"}
    for row, dataset in zip(axes, datasets):
        for ax, mode in zip(row, ("untargeted", "targeted")):
            for (training, images), colour in colours.items():
                for clf, style, marker in (("softmax", "-", "o"), ("sje", "--", "s")):
                    d = table[(table["dataset"] == dataset) & (table["mode"] == mode) & (table["training"] == training)
                              & (table["classifier"] == clf)]
                    if len(d):
                        label = (f"{'Softmax' if clf == 'softmax' else 'SJE'}: {'x' if images == 'clean' else 'x̂'}"
                                 + (" (AT)" if training == "adversarial" else ""))
                        ax.plot(d["eps"], d[images], style, color=colour, marker=marker, markersize=3.5, label=label)
            ax.set_xscale("log")
            ax.set_xticks(list(epsilons), [f"{e:g}" for e in epsilons])
            ax.minorticks_off()
            ax.set_xlabel("ε (L∞, images in [0, 1])")
            ax.set_title(f"{dataset}: I-FGSM, {mode}", fontsize=10)
            ax.grid(alpha=0.3)
        row[0].set_ylabel("accuracy")
    axes[0, 1].legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def distance_histograms(per_image, title: str | None = None, bins: Sequence[float] | None = None, size: float = 3.3):
    """Histograms of d1 and d2 per panel of Gulshad et al.'s Fig. 5, a row per data set. ``per_image``:
    rows of (dataset, panel, d1, d2); distances between unit vectors, so the bins span [0, 2]."""
    bins = np.linspace(0, 2, 21) if bins is None else bins
    datasets = list(dict.fromkeys(per_image["dataset"]))
    panels = list(dict.fromkeys(per_image["panel"]))
    fig, axes = plt.subplots(len(datasets), len(panels), figsize=(size * len(panels), 3.0 * len(datasets)),
                             squeeze=False)
    for row, dataset in zip(axes, datasets):
        for ax, p in zip(row, panels):
            d = per_image[(per_image["dataset"] == dataset) & (per_image["panel"] == p)]
            ax.hist(d["d1"].to_numpy(), bins=bins, alpha=0.6, label="d1", color="tab:blue")
            ax.hist(d["d2"].to_numpy(), bins=bins, alpha=0.6, label="d2", color="tab:orange")
            ax.set_title(f"{dataset} ({p}) {len(d)} images", fontsize=9)
            ax.set_xlabel("distance")
        row[0].set_ylabel("images")
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def ranked_attributes(rows: Sequence[tuple[str, Sequence[dict]]], k: int, n_show: int, title: str | None = None):
    """Images with their ranked attributes, as Gulshad et al.'s Figs. 6-7: ``rows`` of ``(row title,
    panels)``, each panel a dict with ``image`` [C, H, W], ``label`` (the class printed under it),
    ``attributes`` (k names, best first), ``grounded`` (k flags) and ``boxes`` [k, 4]. A grounded
    attribute's box and name are in colour, the others grey (box dashed)."""
    text_in = (k * 7.5 + 6) / 72  # inches the attribute lists need under each image
    fig, axes = plt.subplots(len(rows), n_show, squeeze=False, figsize=(2.4 * n_show, (2.2 + text_in + 0.35) * len(rows)),
                             gridspec_kw={"hspace": (text_in + 0.35) / 2.2})
    for ax_row, (name, panels) in zip(axes, rows):
        for i, (ax, p) in enumerate(zip(ax_row, panels)):
            show_image(ax, p["image"], f"{name}\n{p['label']}" if i == 0 else p["label"], fontsize=6)
            grounded = [bool(v) for v in p["grounded"]]
            draw_boxes(ax, p["boxes"], muted=[not v for v in grounded])
            for line, (attr, ok) in enumerate(zip(p["attributes"], grounded)):
                ax.annotate(attr, xy=(0, 0), xycoords="axes fraction", xytext=(0, -3 - 7.5 * line),
                            textcoords="offset points", va="top", fontsize=6,
                            color=PART_COLOURS[line % len(PART_COLOURS)] if ok else "0.6")
        for ax in ax_row[len(panels):]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(top=1 - 0.85 / fig.get_figheight(), bottom=text_in / fig.get_figheight(), left=0.03, right=0.97)
    return fig


def sigma_tradeoff(sweeps: dict, attack_names: dict[str, str], band: float = 0.031, size: float = 5.0,
                   ncols: int = 2):
    """Heat and Blur's Figure 4, a panel per entry of ``sweeps`` (``ncols`` to a row): defended accuracy
    against the blur σ on cleaned benign images (solid blue), on cleaned adversarial examples for the
    true (dotted red) and the target label (dashed black), and the median L-inf of a cleaned benign
    image to its original (dash-dotted green); the σ range whose L-inf stays within ``band`` is
    shaded. ``sweeps``: ``{panel title: frame with the columns of
    advxai.studies.heat_and_blur.sweep_summary}``; ``attack_names``: the attack per panel title."""
    n = len(sweeps)
    cols = max(1, min(ncols, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (title, df) in zip(axes.flat, sweeps.items()):
        name = attack_names.get(title, "adversarial")
        linf = df["L-inf to the input (benign, median)"]
        ax.plot(df["sigma"], df["benign accuracy"], "-", color="tab:blue", label="benign (cleaned)")
        ax.plot(df["sigma"], df["adversarial, true label"], ":", color="tab:red", label=f"{name}: true label")
        ax.plot(df["sigma"], df["adversarial, target label"], "--", color="black", label=f"{name}: target label")
        ax.plot(df["sigma"], linf, "-.", color="tab:green", label="L∞ to the input")
        below = df["sigma"][linf <= band]
        if len(below):
            ax.axvspan(df["sigma"].min(), below.max(), color="tab:green", alpha=0.15, label=f"L∞ ≤ {band:g}")
        ax.set_xlabel("σ (pixels)")
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ndcg_panels(rows: dict[str, dict], ks: Sequence[int], title: str | None = None, size: float = 3.2):
    """Heat and Blur's Figure 5: a row of panels per entry of ``rows`` (a binarisation rule, say), a panel
    per attack group: mean NDCG@k of ``Adv``, ``Cleaned`` and ``Control`` against k, each series' top-1
    accuracy in the legend. ``rows``: ``{row label: {group: {series: {"ndcg": [...], "top1": float,
    "n": int}}}}``; a group whose record is ``None`` (nothing to score) is left out."""
    rows = {label: {g: r for g, r in groups.items() if r} for label, groups in rows.items()}
    rows = {label: groups for label, groups in rows.items() if groups}
    ncols = max([len(g) for g in rows.values()] + [1])
    fig, axes = plt.subplots(max(1, len(rows)), ncols, figsize=(size * ncols, 3.1 * max(1, len(rows))),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax_row, (label, groups) in zip(axes, rows.items()):
        for ax, (group, res) in zip(ax_row, groups.items()):
            ax.axis("on")
            for series, style in (("Adv", "o-"), ("Cleaned", "s--"), ("Control", "^:")):
                ax.plot(ks, res[series]["ndcg"], style, markersize=4,
                        label=f"{series} (top-1 {res[series]['top1']:.2f})")
            ax.set_title(f"{label}: {group} (n={res['Adv']['n']})" if label else f"{group} (n={res['Adv']['n']})",
                         fontsize=8)
            ax.set_xlabel("k")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xticks(list(ks))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        ax_row[0].set_ylabel("mean NDCG@k")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
