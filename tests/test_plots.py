"""Figures: what the reader needs stays visible."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from advxai import plots


def test_cell_bars_legend_covers_no_panel_and_missing_cells_are_marked():
    rows, cols, groups, bars = ["m1", "m2"], ["pgd", "cw"], ["grad", "cam"], ["benign", "adv2", "pgd", "advedge"]
    records = [{"model": r, "framework": c, "interpreter": g, "variant": b, "iou": 0.9}
               for r in rows for c in cols for g in groups for b in bars]
    table = pd.DataFrame(records)
    table.loc[0, "iou"] = np.nan  # one cell not measured
    fig = plots.cell_bars(table, "iou", rows, cols, groups, bars, ylabel="IoU")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert [t.get_text() for t in legend.get_texts()] == bars
    for ax in fig.axes:  # bars reach the top of the panels: a legend inside one hides some
        assert not box.overlaps(ax.get_window_extent(renderer)), "the legend covers a panel"
    crosses = [t for ax in fig.axes for t in ax.texts if t.get_text() == "×"]
    assert len(crosses) == 1
