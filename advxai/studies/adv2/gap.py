"""Section 5 of the paper, the prediction-interpretation gap: random target maps (Tables 6-8, Figs.
11-13), transfer between interpreters (Table 9) and Proposition 1 with integrated gradients."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ... import map_metrics as mm
from ...attacks.target_maps import donor_indices, random_patch_maps
from ...interpreters.ig import prediction_interpretation_losses
from .effectiveness import Effectiveness
from .setup import LABEL, Study, stage

__all__ = ["RandomTargets", "random_targets_study", "Transfer", "transfer_study", "proposition1",
           "proposition1_table"]

KINDS = ("random patch", "random class")


@dataclass
class RandomTargets:
    table: pd.DataFrame  # one row per kind x interpreter (their Tables 6-8)
    frame: pd.DataFrame  # one row per kind x interpreter x image
    maps: dict  # (interpreter, kind) -> (target maps, ADV²'s result, ADV²'s maps)
    donors: object  # data-set indices of the random-class donors
    model: str


def random_targets_study(study: Study, eff: Effectiveness, interpreters, top_k: float,
                         name: str | None = None) -> RandomTargets:
    """Their Tables 6-8 and Figs. 11-13: ADV² asked for a target map the classifier does not imply, on
    model ``name`` (default: the first). *Random patch*: a binary map, 1 inside a rectangle or circle
    of random size, angle and position. *Random class*: the benign map (its true class) of a test image
    drawn at random among those whose class differs from the target class and from the image's own.
    ``Δ_b`` is the L1 distance of the ADV² map to the image's benign map, ``Δ_t`` to the target map."""
    interpreters = study.require(interpreters, "random target maps (Tables 6-8)")
    name = name or study.models[0]
    model = study.classifiers[name]
    x, y, t = study.images[name]
    patch_targets = random_patch_maps(len(x), tuple(x.shape[-2:]), seed=study.seed + 1)
    donors = donor_indices(study.test.labels, t, y, seed=study.seed + 2)
    donor = study.test.batch(donors)
    rows, records, out = [], [], {}
    for iname in interpreters:
        benign = eff.maps[(name, iname)][0]
        donor_maps = study.maps(name, iname, donor.x, donor.y)
        for kind, target_maps in ((KINDS[0], patch_targets), (KINDS[1], donor_maps)):
            with stage(study.timings, f"ADV² {iname}, {kind} targets"):
                res = study.adv2(name, iname, x, y, t, target_map=target_maps,
                                 what=f"{iname}-{kind.replace(' ', '-')}")
            m = study.maps(name, iname, res.x_adv, t)
            out[(iname, kind)] = (target_maps, res, m)
            conf = mm.misclassification_confidence(model.predict(res.x_adv)[1].cpu(), t)
            d_b, d_t = mm.map_l1(m, benign), mm.map_l1(m, target_maps)
            iou_b, iou_t = mm.map_iou(m, benign, top_k), mm.map_iou(m, target_maps, top_k)
            gap = mm.map_l1(target_maps, benign)
            rows.append({"targets": kind, "interpreter": LABEL[iname], "ASR": res.success_rate,
                         "confidence": conf.mean().item(), "Δ_b L1": d_b.mean().item(), "Δ_t L1": d_t.mean().item(),
                         "IoU benign": iou_b.mean().item(), "IoU target": iou_t.mean().item(),
                         "target vs benign L1": gap.mean().item()})
            for i in range(len(x)):
                records.append({"targets": kind, "interpreter": LABEL[iname], "image": i,
                                "success": bool(res.success[i]), "confidence": float(conf[i]),
                                "Δ_b L1": float(d_b[i]), "Δ_t L1": float(d_t[i])})
    return RandomTargets(pd.DataFrame(rows), pd.DataFrame(records), out, donors, name)


@dataclass
class Transfer:
    table: pd.DataFrame  # their Table 9: mean L1 to the benign map, source (row) x explaining interpreter
    per_image: dict  # (source, explaining interpreter) -> per-image L1 [n]
    model: str


def transfer_study(study: Study, eff: Effectiveness, name: str | None = None) -> Transfer:
    """Their Table 9: the ADV² inputs crafted against each interpreter (PGD's: none), explained by every
    interpreter (the target class); each cell is the L1 distance to that interpreter's benign map."""
    name = name or study.models[0]
    _, _, t = study.images[name]
    rows, per_image = [], {}
    with stage(study.timings, "transfer maps"):
        for source in ["PGD"] + list(study.interpreters):
            res = eff.adversarial(name, source)
            row = {"crafted against": LABEL.get(source, source)}
            for target_i in study.interpreters:
                benign, m_pgd, m_adv = eff.maps[(name, target_i)]
                m = m_adv if source == target_i else m_pgd if source == "PGD" else \
                    study.maps(name, target_i, res.x_adv, t)
                d = mm.map_l1(m, benign)
                per_image[(source, target_i)] = d
                row[LABEL[target_i]] = d.mean().item()
            rows.append(row)
    return Transfer(pd.DataFrame(rows), per_image, name)


def proposition1(study: Study, eff: Effectiveness, ig_steps: int, name: str | None = None) -> pd.DataFrame:
    """Their Proposition 1 with integrated gradients, on the PGD and ADV² inputs of model ``name``: per
    image and attack, ``l_prd`` (the rise of the target probability), ``l_int = ||Δm||_1`` (IG of the
    adversarial input with the benign image as baseline, ``ig_steps`` Gauss-Legendre points), the
    quadrature gap ``sum(Δm) - l_prd`` and ``ratio = l_prd / l_int``."""
    name = name or study.models[0]
    model = study.classifiers[name]
    x, _, t = study.images[name]
    dev = study.device
    rows = []
    with stage(study.timings, "Proposition 1 (IG)"):
        for source in ["PGD"] + list(study.interpreters):
            res = eff.adversarial(name, source)
            out = prediction_interpretation_losses(model, x.to(dev), res.x_adv.to(dev), t.to(dev), steps=ig_steps)
            for i in range(len(x)):
                rows.append({"attack": source if source == "PGD" else f"ADV² ({LABEL[source]})", "image": i,
                             "l_prd": out["l_prd"][i].item(), "l_int": out["l_int"][i].item(),
                             "quadrature gap": out["gap"][i].item(), "ratio": out["ratio"][i].item()})
    frame = pd.DataFrame(rows)
    frame["holds"] = frame["l_prd"] <= frame["l_int"] + frame["quadrature gap"].abs() + 1e-6
    return frame


def proposition1_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Means per attack, and the largest quadrature gap."""
    return (frame.groupby("attack", sort=False)
            .agg(l_prd=("l_prd", "mean"), l_int=("l_int", "mean"), ratio=("ratio", "mean"), holds=("holds", "mean"),
                 max_gap=("quadrature gap", lambda v: np.abs(v).max())).reset_index())
