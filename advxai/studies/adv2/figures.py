"""The chapter's figures, drawn from the studies' results (maps in [0, 1], so every overlay shares the
colour range 0-1 and maps can be compared across panels)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ... import plots
from .aid import AIDStudy
from .effectiveness import Effectiveness, iou_curves
from .evasion import StAdvStudy
from .gap import KINDS, RandomTargets
from .setup import LABEL, Study

__all__ = ["map_rows", "maps_figure", "l1_bars", "iou_sweep", "stadv_figure", "random_targets_figure",
           "transfer_figure", "proposition1_figure", "aid_noise_figure", "aid_adv_figure"]


def map_rows(rows: Sequence[Sequence[tuple]], suptitle: str, size: float = 2.0):
    """Rows of overlays, each panel ``(image, map, title)``; a shorter row leaves its last axes empty."""
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols, size * len(rows)), squeeze=False)
    for ax_row, panels in zip(axes, rows):
        for ax in ax_row[len(panels):]:
            ax.axis("off")
        for ax, (image, heat, title) in zip(ax_row, panels):
            plots.overlay(ax, image, heat, title=title, vmin=0, vmax=1, fontsize=7)
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def _cls(study: Study, c) -> str:
    return study.test.classes[int(c)]


def maps_figure(study: Study, eff: Effectiveness, name: str, k: int = 0):
    """Their Fig. 4: per interpreter, the benign input with its map (true class), then PGD's and ADV²'s
    input with their maps (target class)."""
    x, y, _ = study.images[name]
    rows = []
    for iname in study.interpreters:
        benign, m_pgd, m_adv = eff.maps[(name, iname)]
        pgd, adv = eff.results[(name, iname)]
        rows.append([(x[k], benign[k], f"{LABEL[iname]}: benign ({_cls(study, y[k])})"),
                     (pgd.x_adv[k].cpu(), m_pgd[k], f"PGD → {_cls(study, pgd.pred[k])}"),
                     (adv.x_adv[k].cpu(), m_adv[k], f"ADV² → {_cls(study, adv.pred[k])}")])
    return map_rows(rows, f"Maps of benign, PGD and ADV² inputs on {name}")


def l1_bars(study: Study, table13):
    """Their Fig. 5: mean L1 of PGD's and ADV²'s maps to the benign maps, per model and interpreter."""
    fig, axes = plt.subplots(1, len(study.models), figsize=(4.2 * len(study.models), 3.2), squeeze=False)
    for ax, name in zip(axes[0], study.models):
        sub = table13[table13.model == name].pivot(index="interpreter", columns="attack", values="L1")
        sub = sub.reindex([LABEL[i] for i in study.interpreters])[["PGD", "ADV²"]]
        sub.plot.bar(ax=ax, rot=0, color=["tab:red", "tab:blue"])
        ax.set_title(f"L1 to the benign map, {name}", fontsize=9)
        ax.set_ylabel("L1 (per pixel)")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def iou_sweep(study: Study, frame, top_ks):
    """Their Fig. 6 as a sweep of the binarisation: IoU with the benign map against the top-k fraction."""
    fig, axes = plt.subplots(1, len(study.interpreters), figsize=(3.2 * len(study.interpreters), 3.0), squeeze=False)
    for ax, iname in zip(axes[0], study.interpreters):
        plots.curves(top_ks, iou_curves(frame, iname, study.models, top_ks), "top-k fraction",
                     "IoU with the benign map", title=LABEL[iname], ax=ax, ylim=(0, 1))
    fig.tight_layout()
    return fig


def stadv_figure(study: Study, eff: Effectiveness, st: StAdvStudy, k: int = 0):
    """Their Fig. 9: benign, StAdv and StAdv-based ADV² inputs with their maps."""
    x = study.images[st.model][0]
    rows = [[(x[k], eff.maps[(st.model, i)][0][k], f"{LABEL[i]}: benign"),
             (st.plain.x_adv[k].cpu(), st.maps[(i, "StAdv")][k], "StAdv"),
             (st.results[i].x_adv[k].cpu(), st.maps[(i, "StAdv ADV²")][k], "StAdv ADV²")] for i in st.results]
    return map_rows(rows, f"Maps of benign, StAdv and StAdv-based ADV² inputs on {st.model}")


def random_targets_figure(study: Study, eff: Effectiveness, rt: RandomTargets, k: int = 0):
    """Their Figs. 11-12: the benign map, then per kind of target the target map and ADV²'s map."""
    x = study.images[rt.model][0]
    inames = list(dict.fromkeys(i for i, _ in rt.maps))
    rows = []
    for iname in inames:
        row = [(x[k], eff.maps[(rt.model, iname)][0][k], f"{LABEL[iname]}: benign")]
        for kind in KINDS:
            target_maps, res, m = rt.maps[(iname, kind)]
            source = x[k] if kind == KINDS[0] else study.test.batch(rt.donors[k:k + 1]).x[0]
            row += [(source, target_maps[k], f"{kind} target"),
                    (res.x_adv[k].cpu(), m[k], f"ADV² → {_cls(study, res.pred[k])}")]
        rows.append(row)
    return map_rows(rows, f"ADV² asked for a random patch (their Fig. 11) or another class's map (Fig. 12), "
                          f"{rt.model}")


def transfer_figure(transfer, inames):
    """Their Table 9 as a matrix: L1 to the benign map, source (row) x explaining interpreter (column)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    table = transfer.table
    values = table.set_index("crafted against").to_numpy()
    im = ax.imshow(values, cmap="viridis_r", vmin=0)
    ax.set_xticks(range(len(inames)), [LABEL[i] for i in inames])
    ax.set_yticks(range(len(table)), table["crafted against"])
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="w" if v > values.max() / 2 else "k")
    ax.set_xlabel("explained by")
    ax.set_ylabel("crafted against")
    fig.colorbar(im, ax=ax, label="L1 to the benign map")
    ax.set_title(f"Transfer of ADV² between interpreters, {transfer.model}", fontsize=9)
    fig.tight_layout()
    return fig


def proposition1_figure(frame, name: str):
    """Proposition 1: the rise of the target probability against the IG interpretation change, per input."""
    fig, ax = plt.subplots(figsize=(4.4, 3.6))
    for attack, sub in frame.groupby("attack", sort=False):
        ax.scatter(sub["l_int"], sub["l_prd"], s=16, label=attack)
    top = float(max(frame["l_int"].max(), frame["l_prd"].max(), 1e-3)) * 1.05
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="l_prd = l_int")
    ax.set_xlabel("l_int = ||Δm||₁ (IG, benign baseline)")
    ax.set_ylabel("l_prd = rise of the target probability")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(f"Proposition 1 on {name}", fontsize=9)
    fig.tight_layout()
    return fig


def aid_noise_figure(study: Study, aid: AIDStudy, kind: str | None = None, rate: float | None = None, n: int = 3):
    """Their Fig. 15: inputs whose label the noise changed, with the maps of RTS and RTS^A, clean and noisy
    (by default the first kind of noise at its strongest level)."""
    kind = kind or next(iter(aid.noise_examples))[0]
    rate = rate if rate is not None else max(r for k, r in aid.noise_examples if k == kind)
    noisy, pred, noisy_maps, flipped = aid.noise_examples[(kind, rate)]
    nx, clean_pred, clean_maps = aid.clean
    show = [int(i) for i in np.flatnonzero(flipped.numpy())[:n]] or [0]
    rows = [[(nx[i], clean_maps["RTS"][i], f"RTS, clean\n({_cls(study, clean_pred[i])})"),
             (noisy[i], noisy_maps["RTS"][i], f"RTS, noisy\n({_cls(study, pred[i])})"),
             (nx[i], clean_maps["RTS^A"][i], "RTS^A, clean"),
             (noisy[i], noisy_maps["RTS^A"][i], "RTS^A, noisy")] for i in show]
    return map_rows(rows, f"Inputs whose label {kind} noise changed ({rate:.0%} error level), {aid.model} "
                          f"(their Fig. 15)")


def aid_adv_figure(study: Study, aid: AIDStudy, k: int = 0):
    """Their Fig. 16: benign and ADV² maps of RTS, its control RTS^0 and RTS^A."""
    x = study.images[aid.model][0]
    rows = [[(x[k], aid.benign_maps[who][k], f"{who}, benign"),
             (aid.adv[who].x_adv[k].cpu(), aid.adv_maps[who][k], f"{who}, ADV²")] for who in aid.adv]
    return map_rows(rows, f"Benign and ADV² maps, {aid.model}", size=2.1)
