"""Section 4 of the paper: the interpreters' localisation (Table 2), and PGD against ADV² on every
model and interpreter (Table 3, Fig. 4, Figs. 5-6 and Table 13)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from ... import map_metrics as mm
from .setup import LABEL, Study, stage

__all__ = ["localisation", "Effectiveness", "attack_effectiveness", "table3", "table13", "iou_curves"]


def localisation(study: Study, n_localize: int) -> pd.DataFrame:
    """Their Table 2: weakly supervised localisation (Dabkowski & Gal's benchmark) of every interpreter,
    per model, on ``n_localize`` test images drawn by the study's seed (stratified over classes), each
    explained for its true class. A map is thresholded at its mean, its largest connected region kept,
    and the image counts as localised when that region's bounding box overlaps the object's with IoU
    >= 0.5. Needs object masks (``shapes``'s, or ImageNet's boxes as masks); an image whose object the
    crop left out of the frame is left out, not counted as a miss. One row per model x interpreter x
    image (``correct``, ``box IoU``, ``mask IoU``); empty when the data set has no masks."""
    cols = ["model", "interpreter", "image", "correct", "box IoU", "mask IoU"]
    if not isinstance(n_localize, int) or isinstance(n_localize, bool) or n_localize < 0:
        raise ValueError(f"n_localize must be a non-negative integer, got {n_localize!r}")
    if n_localize == 0:
        return pd.DataFrame(columns=cols)
    b = study.test.batch(study.test.sample_indices(min(n_localize, len(study.test)), seed=study.seed))
    if "masks" not in b:
        return pd.DataFrame(columns=cols)
    framed = b.masks.flatten(1).any(1)
    lx, ly, lm, idx = b.x[framed], b.y[framed], b.masks[framed], b.index[framed]
    rows = []
    for name in study.models:
        for iname in study.interpreters:
            with stage(study.timings, f"localisation {iname}"):
                maps = study.maps(name, iname, lx, ly)
            loc = mm.localization(maps, lm)
            for i in range(len(lx)):
                rows.append({"model": name, "interpreter": LABEL[iname], "image": int(idx[i]),
                             "correct": bool(loc["correct"][i]), "box IoU": float(loc["box_iou"][i]),
                             "mask IoU": float(loc["mask_iou"][i])})
    return pd.DataFrame(rows, columns=cols)


def localisation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Table 2's layout: localisation error (1 - share localised), mean box IoU and mask IoU."""
    cols = ["model", "interpreter", "localisation error", "box IoU", "mask IoU"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    out = (rows.groupby(["model", "interpreter"], sort=False)
           .agg(correct=("correct", "mean"), box=("box IoU", "mean"), mask=("mask IoU", "mean")).reset_index())
    out["localisation error"] = 1 - out["correct"]
    return out.rename(columns={"box": "box IoU", "mask": "mask IoU"})[cols]


__all__ += ["localisation_table"]


@dataclass
class Effectiveness:
    """Per-image records (``frame``) and, per ``(model, interpreter)``, the attacks' results and the maps."""

    frame: pd.DataFrame
    results: dict  # (model, interpreter) -> (PGD result, ADV² result)
    maps: dict  # (model, interpreter) -> (benign maps, PGD's maps, ADV²'s maps), on the CPU
    step_counts: dict
    pgd_steps: int

    def adversarial(self, name: str, source: str):
        """PGD's result (``source="PGD"``) or ADV²'s against interpreter ``source``, on model ``name``."""
        first = next(k[1] for k in self.results if k[0] == name)
        return self.results[(name, first)][0] if source == "PGD" else self.results[(name, source)][1]


def attack_effectiveness(study: Study, top_ks) -> Effectiveness:
    """Their Table 3, Fig. 4, Figs. 5-6 and Table 13: targeted PGD and ADV² on every model and interpreter.

    PGD takes as many steps as ADV²'s longest warm start and main phase together; ADV² the settings of
    :meth:`Study.attack_settings`. One row per model x interpreter x attack x image: ``success`` (the
    target class with ADV²'s confidence rule), ``confidence`` (probability of the target), ``linf``,
    and the map distances to the benign map (explaining the true class; adversarial maps explain the
    target): per-pixel ``L1``, ``L2`` and ``IoU@k`` for every top-k fraction in ``top_ks``."""
    pgd_steps = study.pgd_steps()
    records, results, all_maps = [], {}, {}
    for name, model in study.classifiers.items():
        x, y, t = study.images[name]
        with stage(study.timings, "PGD"):
            pgd = study.run("pgd", name, x, y, t, dict(targeted=True, eps=study.eps, alpha=study.alpha,
                                                       steps=pgd_steps, random_start=False, seed=study.seed,
                                                       batch_size=study.batch_size))
        for iname in study.interpreters:
            with stage(study.timings, f"ADV² {iname}"):
                adv = study.adv2(name, iname, x, y, t)
            with stage(study.timings, f"maps {iname}"):
                benign = study.maps(name, iname, x, y)
                m_pgd, m_adv = study.maps(name, iname, pgd.x_adv, t), study.maps(name, iname, adv.x_adv, t)
            results[(name, iname)] = (pgd, adv)
            all_maps[(name, iname)] = (benign, m_pgd, m_adv)
            for attack, res, m in (("PGD", pgd, m_pgd), ("ADV²", adv, m_adv)):
                conf = mm.misclassification_confidence(model.predict(res.x_adv)[1].cpu(), t)
                l1, l2 = mm.map_l1(m, benign), mm.map_l2(m, benign)
                ious = {k: mm.map_iou(m, benign, k) for k in top_ks}
                for i in range(len(x)):
                    row = {"model": name, "interpreter": LABEL[iname], "attack": attack, "image": i,
                           "success": bool(res.success[i]), "confidence": float(conf[i]),
                           "linf": float(res.linf[i]), "L1": float(l1[i]), "L2": float(l2[i])}
                    for k in top_ks:
                        row[f"IoU@{k:g}"] = float(ious[k][i])
                    records.append(row)
    frame = pd.DataFrame(records)
    if not frame.empty and not (frame["linf"] <= study.eps + 1e-5).all():
        raise AssertionError("a perturbation left its L-inf budget")
    return Effectiveness(frame, results, all_maps, study.step_counts(list(study.interpreters) + ["gradcam"]),
                         pgd_steps)


def table3(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 3: attack success rate and misclassification confidence per model x interpreter x attack."""
    return (frame.groupby(["model", "interpreter", "attack"], sort=False)
            .agg(ASR=("success", "mean"), confidence=("confidence", "mean")).reset_index())


def table13(frame: pd.DataFrame, top_k: float) -> pd.DataFrame:
    """Table 13 (and Figs. 5-6): mean L1, L2 and IoU (top ``top_k``) of adversarial to benign maps."""
    return (frame.groupby(["model", "interpreter", "attack"], sort=False)
            .agg(L1=("L1", "mean"), L2=("L2", "mean"), IoU=(f"IoU@{top_k:g}", "mean")).reset_index())


def iou_curves(frame: pd.DataFrame, iname: str, models, top_ks) -> dict[str, list[float]]:
    """Fig. 6 as a sweep: mean IoU with the benign map against the top-k fraction, per model x attack."""
    sub = frame[frame.interpreter == LABEL.get(iname, iname)]
    return {f"{m} {a}": [sub[(sub.model == m) & (sub.attack == a)][f"IoU@{k:g}"].mean() for k in top_ks]
            for m in models for a in ("PGD", "ADV²")}


def describe_attacks(study: Study, eff: Effectiveness) -> str:
    """Where each ADV² attack's settings come from, and its step counts beside PGD's."""
    steps = ", ".join(f"{i} {w}+{n}" for i, (w, n) in eff.step_counts.items())
    return "\n".join([*(f"{i}: {study.source(i)}" for i in study.interpreters),
                      f"warm-start + ADV² steps: {steps} (MASK: bilevel iterations); PGD {eff.pgd_steps} steps"])


__all__ += ["describe_attacks"]
