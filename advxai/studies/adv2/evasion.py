"""ADV² beyond plain PGD: feature squeezing (Tables 4-5), the StAdv framework (Figs. 9-10) and
Grad-CAM (appendix A1, Table 10)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from ... import map_metrics as mm
from ...data.sampling import sample_correct
from ...defenses.feature_squeezing import FeatureSqueezing
from ...interpreters import get_interpreter
from .effectiveness import Effectiveness
from .setup import LABEL, Study, batched_maps, stage

__all__ = ["Squeezing", "feature_squeezing", "squeezing_maps", "StAdvStudy", "stadv_study", "GradCAMStudy",
           "gradcam_study"]


@dataclass
class Squeezing:
    """Per squeezer: detection flags per image and attack (``flags``), the adaptive attacks' results."""

    table: pd.DataFrame  # their Table 4: detection rate per squeezer and attack, A*'s success rate
    flags: dict  # (squeezer, "benign" | "PGD" | "RTS-A" | "RTS-A*") -> bool tensor [n]
    adaptive: dict  # squeezer -> the adaptive attack's result
    model: str
    fpr: float


def feature_squeezing(study: Study, eff: Effectiveness, squeezers, *, fpr: float, n_benign: int,
                      sqz_weight: float, name: str | None = None) -> Squeezing:
    """Their Table 4: feature squeezing (Xu et al.) against PGD, basic ADV² against RTS (A) and ADV²
    adapted to each squeezer (A*), on model ``name`` (default: the first). Each detector has one
    squeezer and a threshold at which ``fpr`` of ``n_benign`` benign test images are flagged; those and
    ``n_benign`` more, on which the benign detection rate is measured, are correctly classified test
    images drawn apart from the attacked ones (``flags`` holds one flag per image and attack)."""
    study.require("rts", "feature squeezing (their Table 4 attacks RTS)")
    name = name or study.models[0]
    model = study.classifiers[name]
    x, y, t = study.images[name]
    pgd, adv = eff.results[(name, "rts")]
    test = study.test
    drawn = sample_correct(test, model, 2 * n_benign, seed=study.seed + 4, exclude=study.index[name],
                           batch_size=study.batch_size)
    order = drawn[torch.randperm(len(drawn), generator=torch.Generator().manual_seed(study.seed + 4))]
    fs_x, held_out = test.batch(order[:n_benign]).x, test.batch(order[n_benign:]).x
    rows, flags, adaptive = [], {}, {}
    with stage(study.timings, "feature squeezing"):
        detectors = {sq: FeatureSqueezing(model, [sq], fpr=fpr) for sq in squeezers}
        for det in detectors.values():
            det.calibrate(fs_x)
        for sq, det in detectors.items():
            adaptive[sq] = study.adv2(name, "rts", x, y, t, attack="adaptive_adv2_fs", what=f"rts-{sq}",
                                      extra={"squeezer": sq, "sqz_weight": sqz_weight})
            for who, images in (("benign", held_out), ("PGD", pgd.x_adv), ("RTS-A", adv.x_adv),
                                ("RTS-A*", adaptive[sq].x_adv)):
                flags[(sq, who)] = det.detect(images).cpu()
            rows.append({"squeezer": sq, **{who: flags[(sq, who)].double().mean().item()
                                            for who in ("benign", "PGD", "RTS-A", "RTS-A*")},
                         "RTS-A* ASR": adaptive[sq].success_rate})
    return Squeezing(pd.DataFrame(rows), flags, adaptive, name, fpr)


def squeezing_maps(study: Study, eff: Effectiveness, sq: Squeezing, top_k: float) -> pd.DataFrame:
    """Their Table 5: L1 and IoU of the RTS maps of PGD, basic and adaptive ADV² inputs to the benign maps."""
    name = sq.model
    _, _, t = study.images[name]
    pgd, adv = eff.results[(name, "rts")]
    benign = eff.maps[(name, "rts")][0]
    rows = []
    for label, res in [("PGD (P)", pgd), ("basic ADV² (A)", adv)] + \
            [(f"adaptive ADV², {s} (A*)", r) for s, r in sq.adaptive.items()]:
        m = study.maps(name, "rts", res.x_adv, t)
        rows.append({"attack": label, "L1": mm.map_l1(m, benign).mean().item(),
                     "IoU": mm.map_iou(m, benign, top_k).mean().item()})
    return pd.DataFrame(rows)


@dataclass
class StAdvStudy:
    frame: pd.DataFrame  # one row per interpreter x attack x image
    table: pd.DataFrame  # means per interpreter x attack
    plain: object  # StAdv's result
    results: dict  # interpreter -> StAdv-based ADV²'s result
    maps: dict  # (interpreter, "StAdv" | "StAdv ADV²") -> maps
    model: str
    sources: dict  # interpreter -> where StAdv-based ADV²'s settings come from
    steps: dict  # interpreter -> Adam steps
    images: dict  # interpreter -> how many images it was run on


def stadv_study(study: Study, eff: Effectiveness, interpreters, *, steps: int | None, top_k: float,
                mask_images: int | None = None, name: str | None = None) -> StAdvStudy:
    """Their Figs. 9-10 (DenseNet: Figs. 19-20): StAdv (a smooth flow field, Adam, the cross-entropy) and
    StAdv-based ADV² with the paper's Table 12 settings, both targeted, on model ``name`` (default: the
    first), with ``steps`` Adam steps (None: Table 12's count per interpreter scaled by the study's
    budget, and plain StAdv as many as the longest). Against MASK, ADV² on StAdv is the bilevel
    look-ahead as a term of the flow's objective (:mod:`advxai.attacks.mask_lookahead`), run on the
    first ``mask_images`` images (None: all) because every step also moves MASK's own optimisation.
    Maps explain the target class and are compared with the benign maps (the true class)."""
    from ...attacks.mask_lookahead import adv2_mask_stadv_settings
    from ...attacks.stadv import adv2_stadv_settings
    from .setup import architecture

    interpreters = study.require(interpreters, "StAdv (Figs. 9-10)")
    name = name or study.models[0]
    x, y, t = study.images[name]
    arch = architecture(name)
    table12 = {i: adv2_mask_stadv_settings(study.attack_budget, "paper", arch) if i == "mask" else
               adv2_stadv_settings(i, study.attack_budget, "paper", arch) for i in interpreters}
    n_steps = {i: steps or table12[i]["steps"] for i in interpreters}
    with stage(study.timings, "StAdv"):
        plain = study.run("stadv", name, x, y, t, dict(targeted=True, loss="ce", steps=max(n_steps.values()),
                                                       seed=study.seed, batch_size=study.batch_size))
    records, rows, results, maps, counts = [], [], {}, {}, {}
    sources = {i: table12[i]["source"] for i in interpreters}
    for iname in interpreters:
        n = len(x) if iname != "mask" or mask_images is None else min(mask_images, len(x))
        params, objects = study.interpreter_spec(name, iname)
        params = {**params, "settings": "paper", "budget": study.attack_budget, "architecture": arch,
                  "steps": n_steps[iname], "seed": study.seed, "batch_size": study.batch_size}
        with stage(study.timings, f"StAdv ADV² {iname}"):
            results[iname] = study.run("adv2_stadv", name, x[:n], y[:n], t[:n], params, objects=objects, what=iname,
                                       index=study.index[name][:n])
        benign = eff.maps[(name, iname)][0][:n]
        counts[iname] = n
        for label, res in (("StAdv", plain), ("StAdv ADV²", results[iname])):
            m = study.maps(name, iname, res.x_adv[:n], t[:n])
            maps[(iname, label)] = m
            l1, iou, flow = mm.map_l1(m, benign), mm.map_iou(m, benign, top_k), res.extras["flow_loss"][:n]
            success = res.success[:n]
            rows.append({"interpreter": LABEL[iname], "attack": label, "images": n,
                         "ASR": success.float().mean().item(), "L1": l1.mean().item(), "IoU": iou.mean().item(),
                         "flow loss": flow.mean().item()})
            for i in range(n):
                records.append({"interpreter": LABEL[iname], "attack": label, "image": i,
                                "success": bool(success[i]), "L1": float(l1[i]), "IoU": float(iou[i]),
                                "flow loss": float(flow[i])})
    frame, table = pd.DataFrame(records), pd.DataFrame(rows)
    return StAdvStudy(frame, table, plain, results, maps, name, sources, n_steps, counts)


@dataclass
class GradCAMStudy:
    frame: pd.DataFrame  # one row per attack x image
    table: pd.DataFrame  # their Table 10
    model: str


def gradcam_study(study: Study, eff: Effectiveness, top_k: float, name: str | None = None) -> GradCAMStudy:
    """Their appendix A1, Table 10: PGD and ADV² (CAM's settings) against Grad-CAM on model ``name``."""
    name = name or study.models[0]
    model = study.classifiers[name]
    x, y, t = study.images[name]
    study.interp[name]["gradcam"] = get_interpreter("gradcam", model)
    pgd = eff.adversarial(name, "PGD")
    with stage(study.timings, "ADV² gradcam"):
        adv = study.adv2(name, "gradcam", x, y, t)
    benign = study.maps(name, "gradcam", x, y)
    records, rows = [], []
    for attack, res in (("PGD (P)", pgd), ("ADV² (A)", adv)):
        m = study.maps(name, "gradcam", res.x_adv, t)
        conf = mm.misclassification_confidence(model.predict(res.x_adv)[1].cpu(), t)
        l1, l2, iou = mm.map_l1(m, benign), mm.map_l2(m, benign), mm.map_iou(m, benign, top_k)
        rows.append({"attack": attack, "ASR": res.success_rate, "confidence": conf.mean().item(),
                     "L1": l1.mean().item(), "L2": l2.mean().item(), "IoU": iou.mean().item()})
        for i in range(len(x)):
            records.append({"attack": attack, "image": i, "success": bool(res.success[i]),
                            "confidence": float(conf[i]), "L1": float(l1[i]), "L2": float(l2[i]),
                            "IoU": float(iou[i])})
    frame, table = pd.DataFrame(records), pd.DataFrame(rows)
    return GradCAMStudy(frame, table, name)
