"""Chapter 2, Brama & Grinshpoun, "Heat and Blur": every experiment of the paper, one function each.

The chapter runs each experiment on two *arms*: a digit arm (MNIST by default; the statistics) and
a photo arm (the embedded photographs by default, ImageNet at the ``paper`` profile). An
:class:`Arm` holds a data set and a model by name, the evaluated images and the attacks' results on
them. The functions take plain values and names, as papermill passes them, and return tidy
``pandas`` frames (one row per image x setting) plus what their figures need:

| paper | function |
| --- | --- |
| Sec. 5, the evaluated images and the four attack groups | :func:`load_arm`, :func:`attack_groups` |
| Figure 1, CLRP/SGLRP of adversarial examples | :func:`class_discriminative_rows` |
| Figure 2, binarised \\|DTD\\| maps across neurons and inputs | :func:`maps_across_neurons` |
| Figure 3, the defense step by step | :func:`defense_rows` |
| Figure 4, the blur's trade-off | :func:`sigma_sweep` |
| Figure 5, NDCG@1-5 of Adv, Cleaned and Control | :func:`ndcg_study` |
| Sec. 5.2 and Algorithm 2, the adaptive attack | :func:`adaptive_study` |
| the claims beside ours | :data:`CLAIMS`, :func:`paper_claims` |

**Sampling.** Evaluated images are drawn by :func:`advxai.data.sample_correct`: ``n`` correctly
classified images, stratified over classes, by seed (the paper: "only benign images which were
correctly classified"). Every attack group attacks the same images (Boundary the first
``n_boundary`` of them); only successful adversarial examples enter the figures and claims, as
in the paper. Nothing is trained on the evaluated images (the defense has no parameters).

**Binarisation.** The paper gives two rules for the heat-map's pixels: Eq. 2 keeps those above the
mean plus two standard deviations, the text says "the top 5 %". Every experiment where the choice
matters (the maps' overlap, the defense, the adaptive attack) runs with each rule in
``thresholds``, side by side, each with its own claims.

**Claims and their tolerances** (:data:`CLAIMS`; fixed before any result was looked at). The paper
reports figures only, no tables, so:

* NDCG values read off Figure 5 ("very close to 0", "~0.5"): tolerance 0.1, a tenth of the axis
  (the figure's reading error; the paper gives no run-to-run spread);
* "almost identical" maps (Figure 2): the IoU of two binarised maps, paper value 1 with tolerance
  0.2 (maps that share at least 80 % of their union read as the same map at the figure's size);
  the IoU of two *different* images' maps is reported beside it as the chance level;
* "all the AEs ... into a semantically related class": a rate of 1, tolerance 0.1 (rates: a tenth),
  read as "among the benign prediction's top 3"; its no-effect reference is the chance that a wrong
  class drawn at random is one of those, 2 / (C - 1) for C classes (2/9 on MNIST), so a handful of
  successful examples cannot reproduce it;
* the qualitative claims (the defense raises NDCG, regains labels, blur lowers benign accuracy,
  Control scores higher, the adaptive attack succeeds in under 1 %) are inequalities, which hold
  only when the whole 95 % interval lies on the claimed side.

Two statements of the paper hold by construction here and are shown as illustrations, not claims:
"the top-1 accuracy of both targeted and untargeted AEs is 0" (only successful examples are kept,
so their top-1 is 0 by definition), and every rate of the undefended model on those examples.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd
import torch

from .. import claims as cl
from ..attacks import AttackResult, adversarial_set
from ..data import get_dataset, select_correct
from ..data.sampling import FewerCorrect
from ..defenses.heat_and_blur import THRESHOLDS, HeatAndBlur, binarize, mask_iou
from ..engine import AttackFactory, map_attack
from ..interpreters import get_interpreter
from ..metrics import coverage_count, ndcg
from ..models import get_model

__all__ = ["K", "GROUPS", "MAPS", "THRESHOLD_NAMES", "VARIANTS", "CLAIMED_VARIANTS", "PLAIN", "CLAIMS", "Arm",
           "check_thresholds", "load_arm", "attack_groups", "attack_table", "class_discriminative_rows",
           "top5_other", "maps_across_neurons", "neuron_mask_rows", "defense_rows", "sweep_group", "sigma_sweep",
           "sweep_summary", "sweep_panels", "ndcg_study", "ndcg_summary", "ndcg_panels_data", "adaptive_study",
           "adaptive_summary", "setting", "paper_claims", "sweep_reading", "ndcg_reading", "adaptive_reading", "claims_reading",
           "headline_metrics"]

K = [1, 2, 3, 4, 5]  # the ranks of Figure 5's NDCG@k
GROUPS = ("C&W targeted", "C&W untargeted", "L-BFGS targeted", "Boundary")  # Sec. 5's four groups
THRESHOLD_NAMES = {"mean2std": "Eq. 2 (mean + 2σ)", "topk": "top 5 %"}
PAPER = "VGG19 / ImageNet"


def check_thresholds(thresholds: Sequence[str]) -> list[str]:
    """The binarisation rules to run, checked: a non-empty list of distinct names of :data:`THRESHOLDS`."""
    out = [thresholds] if isinstance(thresholds, str) else list(thresholds)
    bad = [t for t in out if t not in THRESHOLDS]
    if not out or bad or len(set(out)) != len(out):
        raise ValueError(f"thresholds must be distinct names among {', '.join(THRESHOLDS)}, got {thresholds!r}")
    return out


def _label(threshold: str, top: float) -> str:
    return f"top {top:.0%}" if threshold == "topk" else THRESHOLD_NAMES[threshold]


# --------------------------------------------------------------------------- the arms and the attacks


@dataclass
class Arm:
    """One data set and model of the chapter, the evaluated images and (once attacked) the groups."""

    data: str
    model_name: str
    model: torch.nn.Module
    dataset: object
    index: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    train_budget: str = "full"
    looked_at: int = 0  # images classified to find the evaluated ones
    accuracy: float = float("nan")  # the model's accuracy on those
    groups: dict[str, AttackResult] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    def describe(self) -> dict:
        """A row of the chapter's setup table."""
        return {"data": f"{self.data} ({self.dataset.split})", "model": self.model_name, "images": len(self.index),
                "classified to find them": self.looked_at, "accuracy on those": self.accuracy,
                "model test accuracy": getattr(self.model.info, "test_accuracy", None)}


def load_arm(data: str, model: str, n: int, seed: int, device, train_budget: str = "full") -> Arm:
    """``n`` correctly classified test images of ``data`` for ``model``, drawn by ``seed`` and stratified
    over classes (:func:`advxai.data.select_correct`); fewer, with a :class:`~advxai.data.FewerCorrect`
    warning, when fewer exist; :class:`~advxai.errors.EmptySelection` when none does."""
    net = get_model(model, device=str(device), train_budget=train_budget)
    ds = get_dataset(data, "test")
    sample = select_correct(ds, net, n, seed)
    if sample.short:
        warnings.warn(f"{model} classifies only {len(sample.indices)} {data} test images correctly (of "
                      f"{sample.looked_at}); asked for {n}, using those", FewerCorrect, stacklevel=2)
    b = ds.batch(sample.indices)
    return Arm(data, model, net, ds, sample.indices, b.x.to(device), b.y.to(device), train_budget, sample.looked_at,
               sample.accuracy)


def _direct(arm: Arm, attack: str, params: dict, index: torch.Tensor, target: torch.Tensor | None,
            group: str) -> AttackResult:
    """An attack on some of the arm's images with given targets, through the engine (cached per shard)."""
    factory = AttackFactory(attack, {**params, **({"targeted": True} if target is not None else {})})
    return map_attack(factory, arm.model, arm.x[index], arm.y[index], target,
                      key={"name": f"{attack}-{arm.model_name}-{arm.data}", "images": arm.index[index].tolist(),
                           "train_budget": arm.train_budget, "group": group,
                           "targets": None if target is None else target.tolist()},
                      desc=f"{group} on {arm.model_name}/{arm.data}")


def attack_groups(arm: Arm, *, seed: int, cw_steps: int, cw_search: int, cw_c: float, cw_lr: float,
                  lbfgs_iter: int, lbfgs_search: int, boundary_steps: int, n_boundary: int,
                  targets: str = "random", device="auto") -> dict[str, AttackResult]:
    """Sec. 5's four groups on the arm's images: C&W L2 targeted and untargeted, L-BFGS targeted and the
    (untargeted, decision-based) Boundary attack on the first ``n_boundary`` images.

    ``targets="random"``: a random target class per image, as the paper (through
    :func:`~advxai.attacks.adversarial_set`, cached by name and settings); ``"next"``: each image's
    target is the next image's label, so an image of the adversarial class is at hand for Figure 1
    (the eight photographs). ``lbfgs_iter=0`` leaves the L-BFGS group out. Every result keeps all
    its images, successful or not; the groups are set on ``arm.groups`` and returned.
    """
    if targets not in ("random", "next"):
        raise ValueError(f"unknown targets {targets!r}; valid: random, next")
    if isinstance(n_boundary, bool) or not isinstance(n_boundary, int) or n_boundary < 0:
        raise ValueError(f"n_boundary must be an integer >= 0 (0 leaves the Boundary group out), got {n_boundary!r}")
    cw = dict(steps=cw_steps, binary_search_steps=cw_search, c=cw_c, lr=cw_lr)
    lbfgs = dict(max_iter=lbfgs_iter, search_steps=lbfgs_search)
    boundary = dict(steps=boundary_steps, seed=seed)
    n_b = min(n_boundary, len(arm.index))
    groups: dict[str, AttackResult] = {}
    if targets == "random":
        common = dict(model=arm.model_name, dataset=arm.data, index=arm.index, train_budget=arm.train_budget,
                      device=str(device), target_seed=seed)
        groups["C&W targeted"] = adversarial_set("cw", targeted=True, **cw, **common)
        groups["C&W untargeted"] = adversarial_set("cw", **cw, **common)
        if lbfgs_iter:
            groups["L-BFGS targeted"] = adversarial_set("lbfgs", targeted=True, **lbfgs, **common)
        if n_b:
            groups["Boundary"] = adversarial_set("boundary", **boundary, **{**common, "index": arm.index[:n_b]})
    else:
        every = torch.arange(len(arm.index))
        target = arm.y.roll(1)
        target = torch.where(target == arm.y, (arm.y + 1) % arm.model.info.num_classes, target)
        groups["C&W targeted"] = _direct(arm, "cw", cw, every, target, "C&W targeted")
        groups["C&W untargeted"] = _direct(arm, "cw", cw, every, None, "C&W untargeted")
        if lbfgs_iter:
            groups["L-BFGS targeted"] = _direct(arm, "lbfgs", lbfgs, every, target, "L-BFGS targeted")
        if n_b:
            groups["Boundary"] = _direct(arm, "boundary", boundary, every[:n_b], None, "Boundary")
    arm.groups = groups
    return groups


def attack_table(arm: Arm) -> pd.DataFrame:
    """One row per group: images attacked, successful ones, success rate, median L2 and L-inf of the
    successful ones, and (an illustration: 0 by construction) the top-1 accuracy on them."""
    rows = []
    for name, r in arm.groups.items():
        ok = r.success
        rows.append({"data": arm.data, "attack": name, "images": len(r), "successful": int(ok.sum()),
                     "success rate": r.success_rate,
                     "median L2": r.l2[ok].median().item() if ok.any() else float("nan"),
                     "median L-inf": r.linf[ok].median().item() if ok.any() else float("nan"),
                     "top-1 on successful": (r.pred[ok] == r.y[ok]).float().mean().item() if ok.any()
                     else float("nan")})
    return pd.DataFrame(rows)


def _successful(arm: Arm, group: str) -> torch.Tensor:
    """Positions (in the arm's images) of the group's successful examples."""
    return arm.groups[group].success.nonzero().flatten()


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, start + size)


def _maps(interpreter, x: torch.Tensor, cls: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The interpreter's maps for ``x`` explaining ``cls``, computed ``batch_size`` images at a time
    (ImageNet-sized models do not hold hundreds of relevance passes at once)."""
    parts = [interpreter(x[s], cls[s]).maps for s in _chunks(len(x), batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, 1, *x.shape[2:], device=x.device)


def _logits(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        parts = [model(x[s]) for s in _chunks(len(x), batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, model.info.num_classes, device=x.device)


# --------------------------------------------------------------------------- Figure 1


def _example_of(arm: Arm, label: int, exclude: int) -> torch.Tensor | None:
    """An image of class ``label``: one of the arm's own first, else the data set's first one."""
    hit = [i for i in (arm.y == label).nonzero().flatten().tolist() if i != exclude]
    if hit:
        return arm.x[hit[0]]
    found = (torch.as_tensor(arm.dataset.labels) == label).nonzero().flatten()
    return arm.dataset.batch(found[:1]).x[0] if len(found) else None


def _shown(maps: torch.Tensor, q: float = 0.99) -> torch.Tensor:
    """The positive part of relevance maps scaled to [0, 1] per map for display: relevance values are
    tiny and differ by orders of magnitude between CLRP and SGLRP, so each map is divided by its own
    ``q``-quantile (a few very hot pixels would otherwise leave the rest black) and clipped."""
    pos = maps.clamp(min=0)
    scale = pos.flatten(1).quantile(q, dim=1).clamp(min=torch.finfo(pos.dtype).tiny)
    return (pos / scale.view(-1, *[1] * (pos.dim() - 1))).clamp(max=1)


def class_discriminative_rows(arm: Arm, group: str = "C&W targeted", n_show: int = 4,
                              batch_size: int = 16) -> list[list[tuple]]:
    """Figure 1: per successful example of ``group`` (the first ``n_show``), the adversarial image, the
    CLRP and SGLRP maps (positive part) of its adversarial class, and an image of that class. Rows of
    ``(image, None, title)`` for :func:`advxai.plots.overlay_rows` (empty when nothing succeeded)."""
    if group not in arm.groups:
        return []
    r = arm.groups[group]
    ok = _successful(arm, group)[:n_show]
    if len(ok) == 0:
        return []
    xa, pred = r.x_adv[ok], r.pred[ok]
    clrp = _maps(get_interpreter("clrp", arm.model), xa, pred, batch_size)
    sglrp = _maps(get_interpreter("sglrp", arm.model), xa, pred, batch_size)
    clrp, sglrp = _shown(clrp), _shown(sglrp)
    names = arm.classes
    rows = []
    for j, i in enumerate(ok.tolist()):
        t = int(r.pred[i])
        row = [(xa[j], None, f"adversarial: '{names[t][:18]}'\n(true '{names[int(r.y[i])][:18]}')"),
               (clrp[j, 0], None, "CLRP, adversarial class"),
               (sglrp[j, 0], None, "SGLRP, adversarial class")]
        example = _example_of(arm, t, exclude=i)
        if example is not None:
            row.append((example, None, f"an image of '{names[t][:18]}'"))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- Figure 2


def top5_other(logits: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random class among ranks 2-5 per image (drawn from ``g``)."""
    top5 = logits.topk(5, dim=1).indices.cpu()
    pick = torch.randint(1, 5, (len(logits),), generator=g)
    return top5[torch.arange(len(logits)), pick].to(logits.device)


MAPS = ("benign, top-1", "benign, other top-5", "adversarial, top-1", "adversarial, other top-5")


def maps_across_neurons(arms: Sequence[Arm], groups: Sequence[str] = ("C&W untargeted", "L-BFGS targeted"), *,
                        thresholds: Sequence[str] = ("mean2std", "topk"), top: float = 0.05, seed: int = 0,
                        batch_size: int = 64):
    """Figure 2 measured. For every successful pair of ``groups`` (the paper's two): |DTD| of the top-1
    class and of a random other top-5 class, on the benign and on the adversarial input, binarised with
    each rule of ``thresholds``; the IoU of the benign top-1 map with the other three, and, as the chance
    level, with the benign top-1 map of *another* image (the next one). One heat-map pass serves every
    rule; one generator (``seed``) draws the other classes of every arm in turn.

    Returns ``(frame, figure)``: one row per image x map x rule (``data``, ``attack``, ``threshold``,
    ``image``, ``map``, ``IoU``), and ``{(data, group): (x_adv, {rule: {map: mask}})}`` for the figure.
    """
    thresholds = check_thresholds(thresholds)
    g = torch.Generator().manual_seed(seed)
    rows, figure = [], {}
    for arm in arms:
        dtd = get_interpreter("lrp", arm.model)
        for name in groups:
            if name not in arm.groups:
                continue
            r = arm.groups[name]
            ok = _successful(arm, name)
            if len(ok) == 0:
                continue
            xb, xa = arm.x[ok], r.x_adv[ok]
            heat = {}
            for key, xin in (("benign", xb), ("adversarial", xa)):
                logits = _logits(arm.model, xin, batch_size)
                for which, cls in (("top-1", logits.argmax(1)), ("other top-5", top5_other(logits, g))):
                    heat[f"{key}, {which}"] = _maps(dtd, xin, cls, batch_size).abs()
            figure[(arm.data, name)] = (xa, {})
            for t in thresholds:
                masks = {key: binarize(h, t, top=top) for key, h in heat.items()}
                figure[(arm.data, name)][1][t] = masks
                ref = masks["benign, top-1"]
                compare = {key: m for key, m in masks.items() if key != "benign, top-1"}
                if len(ok) > 1:
                    compare["another image, benign top-1 (chance)"] = ref.roll(1, 0)
                for key, m in compare.items():
                    rows.extend({"data": arm.data, "attack": name, "threshold": t, "image": int(arm.index[i]),
                                 "map": key, "IoU": v} for i, v in zip(ok.tolist(), mask_iou(ref, m).tolist()))
    return pd.DataFrame(rows, columns=["data", "attack", "threshold", "image", "map", "IoU"]), figure


def neuron_mask_rows(x_adv: torch.Tensor, masks: dict[str, dict[str, torch.Tensor]], top: float = 0.05,
                     n_show: int = 3) -> list[list[tuple]]:
    """Figure 2's rows: the adversarial image, then its four binarised maps under each rule."""
    rows = []
    for i in range(min(n_show, len(x_adv))):
        row = [(x_adv[i], None, "adversarial" if i == 0 else None)]
        for t, by_map in masks.items():
            row += [(m[i].float(), None, f"{_label(t, top)}:\n{key}" if i == 0 else None)
                    for key, m in by_map.items()]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- Figure 3


def defense_rows(arm: Arm, defense: HeatAndBlur, group: str = "C&W targeted", n_show: int = 3) -> list[list[tuple]]:
    """Figure 3: a) adversarial example, b) blurred, c) the pixels put back, d) the cleaned image, each
    titled with the model's prediction (empty when the group has no successful example)."""
    if group not in arm.groups:
        return []
    r = arm.groups[group]
    ok = _successful(arm, group)[:n_show]
    if len(ok) == 0:
        return []
    xa = r.x_adv[ok]
    res = defense.clean(xa)
    with torch.no_grad():
        p_adv, p_blur = arm.model(xa).argmax(1), arm.model(res.blurred).argmax(1)
    names = arm.classes
    rows = []
    for i in range(len(xa)):
        true = names[int(arm.y[ok[i]])]
        rows.append([
            (xa[i], None, f"a) adversarial: '{names[int(p_adv[i])][:16]}'\n(true '{true[:16]}')"),
            (res.blurred[i], None, f"b) blurred σ={defense.sigma:g}: '{names[int(p_blur[i])][:16]}'"),
            (torch.where(res.mask[i], xa[i], torch.zeros_like(xa[i])), None,
             f"c) restored pixels ({res.mask[i].float().mean():.1%})"),
            (res.x_clean[i], None, f"d) cleaned: '{names[int(res.pred[i])][:16]}'")])
    return rows


# --------------------------------------------------------------------------- Figure 4


def sigma_sweep(arm: Arm, group: str, sigmas: Sequence[float], *, thresholds: Sequence[str] = ("mean2std", "topk"),
                top: float = 0.05, batch_size: int = 64) -> pd.DataFrame:
    """Figure 4 per image: for each rule and each σ, whether the defended classifier labels the cleaned
    benign image correctly, and the cleaned adversarial example (successful ones of ``group``) with the
    true and with the target label, and the L-inf between a cleaned image and its input. The rows with
    σ = 0 are the *undefended* classifier on the same images (no cleaning), the reference every
    defended value is compared with. One heat-map pass serves every σ; an adversarial input gets its
    own map (the defender cannot tell it from a benign one).

    Columns: ``data``, ``attack``, ``threshold``, ``sigma``, ``input`` (benign | adversarial),
    ``image``, ``true label``, ``target label``, ``L-inf``.
    """
    thresholds = check_thresholds(thresholds)
    sigmas = [float(s) for s in sigmas]
    if not sigmas or any(not s > 0 for s in sigmas):
        raise ValueError(f"sigmas must be a non-empty list of positive blurs (pixels), got {sigmas!r}")
    r = arm.groups[group]
    ok = _successful(arm, group)
    xa, ya = r.x_adv[ok], r.y[ok]
    ta = r.target[ok] if r.target is not None else torch.full_like(ya, -1)
    inputs = {"benign": (arm.x, arm.y, torch.full_like(arm.y, -1), torch.arange(len(arm.x))), "adversarial": (xa, ya, ta, ok)}
    rows = []
    for kind, (x, y, t, pos) in inputs.items():
        if len(x) == 0:
            continue
        plain = _logits(arm.model, x, batch_size).argmax(1)
        for th in thresholds:
            rows += _sweep_rows(arm, group, th, 0.0, kind, pos, plain, y, t, torch.zeros(len(x)))
            cleaned = HeatAndBlur(arm.model, sigma=sigmas[0], threshold=th, top=top,
                                  batch_size=batch_size).clean(x, sigmas=sigmas)
            for s, c in zip(sigmas, cleaned):
                linf = (c.x_clean - x.to(c.x_clean.device)).flatten(1).abs().amax(1)
                rows += _sweep_rows(arm, group, th, s, kind, pos, c.pred, y, t, linf)
    return pd.DataFrame(rows, columns=["data", "attack", "threshold", "sigma", "input", "image", "true label",
                                       "target label", "L-inf"])


def _sweep_rows(arm, group, th, s, kind, pos, pred, y, t, linf) -> list[dict]:
    pred, y, t, linf = pred.cpu(), y.cpu(), t.cpu(), linf.cpu()
    return [{"data": arm.data, "attack": group, "threshold": th, "sigma": s, "input": kind,
             "image": int(arm.index[int(p)]), "true label": bool(pred[j] == y[j]),
             "target label": bool(pred[j] == t[j]), "L-inf": float(linf[j])} for j, p in enumerate(pos.tolist())]


def sweep_panels(summary: pd.DataFrame, arms: Sequence[Arm]) -> tuple[dict, dict]:
    """Figure 4's panels for :func:`advxai.plots.sigma_tradeoff`: ``({"<data>, <rule>": curve frame},
    {"<data>, <rule>": the attack's name})``, the undefended rows (σ = 0) left out."""
    group = {arm.data: sweep_group(arm) for arm in arms}
    curves, names = {}, {}
    for (data, t), g in summary.groupby(["data", "threshold"], sort=False):
        title = f"{data}, {THRESHOLD_NAMES[t]}"
        curves[title], names[title] = g[g["sigma"] > 0], group.get(data, "adversarial")
    return curves, names


def sweep_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Figure 4's curves: per rule and σ, the benign accuracy, the adversarial examples' accuracy for the
    true and the target label, and the median L-inf of a cleaned benign image to its original."""
    rows = []
    for (data, th, s), d in per_image.groupby(["data", "threshold", "sigma"], sort=False):
        b, a = d[d["input"] == "benign"], d[d["input"] == "adversarial"]
        rows.append({"data": data, "threshold": th, "sigma": s, "benign accuracy": b["true label"].mean(),
                     "adversarial, true label": a["true label"].mean() if len(a) else float("nan"),
                     "adversarial, target label": a["target label"].mean() if len(a) else float("nan"),
                     "L-inf to the input (benign, median)": b["L-inf"].median(), "benign images": len(b),
                     "adversarial images": len(a)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- Figure 5


def ndcg_study(arm: Arm, *, sigma: float = 1.0, thresholds: Sequence[str] = ("mean2std", "topk"), top: float = 0.05,
               coverage: float = 0.99, batch_size: int = 64) -> pd.DataFrame:
    """Figure 5 per image: NDCG@1-5 and top-1 of the successful examples of every group, graded by the
    benign prediction (Eqs. 3-7, coverage C_b = C_a = ``coverage``), for three series: ``Adv`` (the
    adversarial prediction; threshold ``"none"``), ``Cleaned`` (the defended prediction on the
    adversarial example) and ``Control`` (the defended prediction on the benign image), per rule.

    Columns: ``data``, ``attack``, ``threshold``, ``series``, ``image``, ``top-1``, ``NDCG@1`` ...
    ``NDCG@5``, ``K1`` (the benign prediction's graded classes).
    """
    thresholds = check_thresholds(thresholds)
    lb_all = _logits(arm.model, arm.x, batch_size)
    control = {t: HeatAndBlur(arm.model, sigma=sigma, threshold=t, top=top, batch_size=batch_size).clean(arm.x).logits
               for t in thresholds}  # the cleaned benign images, once per rule for every group
    rows = []
    for name, r in arm.groups.items():
        ok = _successful(arm, name)
        if len(ok) == 0:
            continue
        lb, y = lb_all[ok], arm.y[ok]
        k1 = coverage_count(lb.softmax(1), coverage)
        series = [("none", "Adv", _logits(arm.model, r.x_adv[ok], batch_size))]
        for t in thresholds:
            cleaned = HeatAndBlur(arm.model, sigma=sigma, threshold=t, top=top, batch_size=batch_size).clean(r.x_adv[ok])
            series += [(t, "Cleaned", cleaned.logits), (t, "Control", control[t][ok])]
        for t, s, logits in series:
            scores = ndcg(lb, logits, K, coverage, coverage).cpu()
            top1 = (logits.argmax(1) == y).cpu()
            for j, i in enumerate(ok.tolist()):
                rows.append({"data": arm.data, "attack": name, "threshold": t, "series": s,
                             "image": int(arm.index[i]), "top-1": bool(top1[j]),
                             **{f"NDCG@{k}": float(scores[j, c]) for c, k in enumerate(K)}, "K1": int(k1[j])})
    return pd.DataFrame(rows, columns=["data", "attack", "threshold", "series", "image", "top-1",
                                       *[f"NDCG@{k}" for k in K], "K1"])


def ndcg_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Figure 5's points: per group, rule and series, n, top-1 accuracy, mean NDCG@1-5 and mean K1."""
    cols = ["top-1", *[f"NDCG@{k}" for k in K], "K1"]
    out = per_image.groupby(["data", "attack", "threshold", "series"], sort=False)[cols].mean().reset_index()
    out.insert(4, "n", per_image.groupby(["data", "attack", "threshold", "series"], sort=False).size().to_numpy())
    return out.rename(columns={"K1": "mean K1"})


def ndcg_panels_data(summary: pd.DataFrame, data: str, threshold: str) -> dict:
    """``{group: {series: {"ndcg": [...], "top1": ..., "n": ...}}}`` of one arm and rule, for
    :func:`advxai.plots.ndcg_panels` (Adv is the same under every rule)."""
    out = {}
    d = summary[summary["data"] == data]
    for group in dict.fromkeys(d["attack"]):
        g = d[d["attack"] == group]
        rec = {}
        for series in ("Adv", "Cleaned", "Control"):
            row = g[(g["series"] == series) & (g["threshold"] == ("none" if series == "Adv" else threshold))]
            if len(row):
                row = row.iloc[0]
                rec[series] = {"ndcg": [float(row[f"NDCG@{k}"]) for k in K], "top1": float(row["top-1"]),
                               "n": int(row["n"])}
        if len(rec) == 3:
            out[group] = rec
    return out


# --------------------------------------------------------------------------- Algorithm 2


PLAIN = "PGD, whole image (not adaptive)"
# Algorithm 2's variants (settings of the attack "adaptive_hb"). "as written": the inner attack
# perturbs the whole image against the undefended model and only the heat-map pixels are kept.
# "restricted, defense-aware": the inner attack may change only those pixels (its step mask) and
# aims at the defended classifier (the map held for the iteration, the blur differentiated), which
# Sec. 5.2's "perturbations to the top-5% pixels alone" also describes. Both are the paper's kind of
# attack and carry its claim. "whole image, defense-aware" keeps the whole perturbation: not the
# paper's attack, but what an attacker who knows the defense would run (no claim: a check on it).
VARIANTS = {"as written": {"restrict": "after", "through_defense": False},
            "restricted, defense-aware": {"restrict": "during", "through_defense": True},
            "whole image, defense-aware": {"restrict": "none", "through_defense": True}}
CLAIMED_VARIANTS = ("as written", "restricted, defense-aware")


def adaptive_study(arm: Arm, *, eps: float, steps: int, iterations: int, n: int | None = None, seed: int = 0,
                   sigma: float = 1.0, thresholds: Sequence[str] = ("mean2std", "topk"), top: float = 0.05,
                   coverage: float = 0.99, variants: Sequence[str] = tuple(VARIANTS),
                   batch_size: int = 64) -> pd.DataFrame:
    """Sec. 5.2: Algorithm 2 with PGD as its attack (L-inf ``eps`` around the original image, ``steps``
    per iteration, at most ``iterations``) against the defense under each rule, for each of
    ``variants`` (:data:`VARIANTS`), beside the same PGD on the whole image without adaptation
    (:data:`PLAIN`). ``n`` of the arm's images (a seeded random subset; all by default).

    One row per image x rule x attack: ``defended fooled`` (what Algorithm 2 calls adversarial),
    ``undefended fooled``, ``confidence`` (the defended classifier's probability of its label),
    ``in benign top-3`` (that label is among the benign prediction's top 3: "a semantically related
    class"), ``NDCG@1`` of the defended prediction, ``pixels changed`` (fraction), ``L-inf``.
    """
    thresholds = check_thresholds(thresholds)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown Algorithm 2 variants {unknown}; valid: {', '.join(VARIANTS)}")
    pos = torch.arange(len(arm.index))
    if n is not None and n < len(pos):
        pos = torch.randperm(len(pos), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    x, y = arm.x[pos], arm.y[pos]
    pgd = {"eps": eps, "alpha": eps / 4, "steps": steps}
    key = {"images": arm.index[pos].tolist(), "data": arm.data, "train_budget": arm.train_budget}
    lb = _logits(arm.model, x, batch_size)
    runs = [(None, PLAIN, map_attack(AttackFactory("pgd", pgd), arm.model, x, y,
                                     key={"name": f"pgd-{arm.model_name}-{arm.data}", **key},
                                     desc=f"PGD on {arm.model_name}/{arm.data}"))]
    for t in thresholds:
        for v in variants:
            params = {"attack": "pgd", "attack_params": pgd, "iterations": iterations, "eps": eps, "sigma": sigma,
                      "threshold": t, "top": top, **VARIANTS[v]}
            runs.append((t, v, map_attack(AttackFactory("adaptive_hb", params), arm.model, x, y,
                                          key={"name": f"adaptive_hb-pgd-{arm.model_name}-{arm.data}", **key},
                                          desc=f"Algorithm 2 ({v}, {t}) on {arm.model_name}/{arm.data}")))
    rows = []
    for t in thresholds:
        defense = HeatAndBlur(arm.model, sigma=sigma, threshold=t, top=top, batch_size=batch_size)
        for rt, v, r in runs:
            if rt not in (None, t):
                continue
            final = defense.clean(r.x_adv)
            fooled = (final.pred != y).cpu()
            conf = final.probs.gather(1, final.pred[:, None]).squeeze(1).cpu()
            related = (lb.topk(min(3, lb.shape[1]), dim=1).indices == final.pred[:, None]).any(1).cpu()
            score = ndcg(lb, final.logits, 1, coverage, coverage).cpu()
            changed = (r.x_adv != x).any(1).flatten(1).float().mean(1).cpu()
            for j, p in enumerate(pos.tolist()):
                rows.append({"data": arm.data, "threshold": t, "variant": v, "image": int(arm.index[p]),
                             "defended fooled": bool(fooled[j]), "undefended fooled": bool(r.success[j]),
                             "confidence": float(conf[j]), "in benign top-3": bool(related[j]),
                             "NDCG@1": float(score[j]), "pixels changed": float(changed[j]),
                             "L-inf": float(r.linf[j])})
    return pd.DataFrame(rows, columns=["data", "threshold", "variant", "image", "defended fooled",
                                       "undefended fooled", "confidence", "in benign top-3", "NDCG@1",
                                       "pixels changed", "L-inf"])


def adaptive_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Sec. 5.2's numbers per rule and attack: images, the rates at which the defended and the undefended
    classifier are fooled, and, over the successful ones, mean confidence, share in the benign top 3 and
    mean NDCG@1; the mean fraction of pixels changed and the largest L-inf."""
    rows = []
    for (data, t, v), d in per_image.groupby(["data", "threshold", "variant"], sort=False):
        ok = d[d["defended fooled"]]
        rows.append({"data": data, "threshold": t, "attack": v, "images": len(d),
                     "fools the defended model": d["defended fooled"].mean(),
                     "fools the undefended model": d["undefended fooled"].mean(),
                     "confidence (successful)": ok["confidence"].mean() if len(ok) else float("nan"),
                     "in benign top-3 (successful)": ok["in benign top-3"].mean() if len(ok) else float("nan"),
                     "NDCG@1 (successful)": ok["NDCG@1"].mean() if len(ok) else float("nan"),
                     "pixels changed": d["pixels changed"].mean(), "L-inf (max)": d["L-inf"].max()})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the claims


# The no-effect reference of "a semantically related class": a wrong label drawn at random among the
# C - 1 wrong classes is one of the benign prediction's two other top-3 classes with chance 2 / (C - 1).
TOP3_CHANCE = "2 / (classes - 1)"

# The paper's claims (figures only: see the module docstring for how each tolerance was chosen).
# ``per_rule``: measured once per binarisation rule; ``how``: the claims constructor.
CLAIMS = pd.DataFrame([
    dict(id="ndcg1-cw-targeted", claim="C&W targeted: NDCG@1 of Adv near 0", paper=0.0, tolerance=0.1,
         no_effect=None, section="5-ndcg", per_rule=False, how="mean"),
    dict(id="ndcg1-lbfgs-targeted", claim="L-BFGS targeted: NDCG@1 of Adv near 0", paper=0.0, tolerance=0.1,
         no_effect=None, section="5-ndcg", per_rule=False, how="mean"),
    dict(id="ndcg1-cw-untargeted", claim="C&W untargeted: NDCG@1 of Adv near 0.5", paper=0.5, tolerance=0.1,
         no_effect=None, section="5-ndcg", per_rule=False, how="mean"),
    dict(id="ndcg1-boundary", claim="Boundary: NDCG@1 of Adv near 0.5", paper=0.5, tolerance=0.1,
         no_effect=None, section="5-ndcg", per_rule=False, how="mean"),
    dict(id="ndcg1-untargeted-vs-targeted",
         claim="C&W untargeted examples stay nearer the benign ranking than targeted ones (NDCG@1, untargeted - "
               "targeted)", paper=0.5, tolerance=0.1, no_effect=0.0, section="5-ndcg", per_rule=False,
         how="difference"),
    dict(id="iou-neurons", claim="binarised |DTD| maps of two classes nearly identical (IoU, benign image)",
         paper=1.0, tolerance=0.2, no_effect=None, section="2-maps", per_rule=True, how="mean"),
    dict(id="iou-adversarial",
         claim="... and the adversarial example's top-1 map the same as the benign top-1 map (IoU)", paper=1.0,
         tolerance=0.2, no_effect=None, section="2-maps", per_rule=True, how="mean"),
    dict(id="blur-regains", claim="the defense gives back the true label of {group} examples (defended - "
                                  "undefended accuracy, σ = {sigma:g})",
         paper="> 0", tolerance=None, no_effect=0.0, section="4-sigma", per_rule=True, how="paired_difference"),
    dict(id="blur-costs", claim="more blur costs benign accuracy (accuracy at σ = {low:g} - at σ = {high:g})",
         paper="> 0", tolerance=None, no_effect=0.0, section="4-sigma", per_rule=True, how="paired_difference"),
    dict(id="restores", claim="{group}: the defense raises NDCG@5 (Cleaned - Adv)", paper="> 0", tolerance=None,
         no_effect=0.0, section="5-ndcg", per_rule=True, how="paired_difference"),
    dict(id="control-above-cleaned",
         claim="cleaned benign images keep a higher NDCG@5 than cleaned adversarial ones (Control - Cleaned, "
               "per image over the groups)", paper="> 0", tolerance=None, no_effect=0.0, section="5-ndcg",
         per_rule=True, how="paired_difference"),
    dict(id="adaptive-rate", claim="Algorithm 2 ({variant}) fools the defended classifier in under 1 % of attempts",
         paper="< 0.01", tolerance=None, no_effect=None, section="6-adaptive", per_rule=True, how="rate"),
    dict(id="adaptive-related", claim="... and lands in a class the benign prediction ranks in its top 3",
         paper=1.0, tolerance=0.1, no_effect=TOP3_CHANCE, section="6-adaptive", per_rule=True, how="rate"),
])


def setting(arm: Arm, detail: str = "", paper_n: int = 500) -> cl.Setting:
    """Where an arm's claims are measured: the paper's VGG19 on ImageNet (500-800 pairs per group)."""
    return cl.Setting(PAPER, data=arm.data, model=arm.model_name, paper_data="imagenet", paper_model="vgg19",
                      paper_n=paper_n, detail=detail)


def _spec(claim_id: str) -> dict:
    row = CLAIMS[CLAIMS["id"] == claim_id]
    if len(row) != 1:
        raise KeyError(f"no claim {claim_id!r}; valid: {', '.join(CLAIMS['id'])}")
    spec = row.iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in spec.items()}


def _claim(claim_id: str, where: cl.Setting, *values, reason: str | None = None, **fmt) -> cl.Claim:
    """One claim of :data:`CLAIMS` from per-image values (or not measured, with ``reason``)."""
    spec = _spec(claim_id)
    text = spec["claim"].format(**fmt)
    no_effect = spec["no_effect"]
    if no_effect == TOP3_CHANCE:
        no_effect = 2 / (fmt["classes"] - 1)
    kw = dict(paper=spec["paper"], tolerance=spec["tolerance"], no_effect=no_effect, section=spec["section"])
    if reason is not None:
        return cl.not_measured(text, where, reason, **kw)
    how = spec["how"]
    if how == "rate":
        return cl.rate(text, where, values[0], **kw, empty=fmt.get("empty", "no images to measure"))
    if how == "mean":
        return cl.mean(text, where, values[0], **kw, empty=fmt.get("empty", "no successful adversarial example"))
    if how == "difference":
        return cl.difference(text, where, values[0], values[1], **kw)
    return cl.paired_difference(text, where, values[0], values[1], **kw)


def _group_missing(arm: Arm, group: str) -> str | None:
    if group not in arm.groups:
        return f"the {group} group was not run on {arm.data}"
    if not bool(arm.groups[group].success.any()):
        return f"no successful {group} example on {arm.data}"
    return None


def paper_claims(arm: Arm, *, ndcg_frame: pd.DataFrame, iou: pd.DataFrame, sweep: pd.DataFrame,
                 adaptive: pd.DataFrame | None, sigma: float, thresholds: Sequence[str], top: float = 0.05,
                 sweep_group: str = "L-BFGS targeted") -> list[cl.Claim]:
    """Every claim of :data:`CLAIMS` measured on one arm (per rule where the rule matters), from the per-image
    frames of :func:`ndcg_study`, :func:`maps_across_neurons`, :func:`sigma_sweep` and :func:`adaptive_study`."""
    thresholds = check_thresholds(thresholds)
    base = setting(arm)
    out: list[cl.Claim] = []
    nd = ndcg_frame[ndcg_frame["data"] == arm.data]
    adv = nd[nd["series"] == "Adv"]

    # Figure 5, the attacks: NDCG@1 of the adversarial predictions
    for claim_id, group in (("ndcg1-cw-targeted", "C&W targeted"), ("ndcg1-lbfgs-targeted", "L-BFGS targeted"),
                            ("ndcg1-cw-untargeted", "C&W untargeted"), ("ndcg1-boundary", "Boundary")):
        where = setting(arm, paper_n=175) if group == "Boundary" else base
        out.append(_claim(claim_id, where, adv[adv["attack"] == group]["NDCG@1"],
                          reason=_group_missing(arm, group)))
    missing = _group_missing(arm, "C&W untargeted") or _group_missing(arm, "C&W targeted")
    out.append(_claim("ndcg1-untargeted-vs-targeted", base, adv[adv["attack"] == "C&W untargeted"]["NDCG@1"],
                      adv[adv["attack"] == "C&W targeted"]["NDCG@1"], reason=missing))

    for t in thresholds:
        rule = base.but(_label(t, top))
        # Figure 2: the maps' overlap
        m = iou[(iou["data"] == arm.data) & (iou["threshold"] == t) & (iou["attack"] == "C&W untargeted")]
        chance = m[m["map"].str.startswith("another")]["IoU"]
        note = f"IoU of two different images' maps (chance): {chance.mean():.2f}" if len(chance) else ""
        reason = _group_missing(arm, "C&W untargeted")
        for claim_id, key in (("iou-neurons", "benign, other top-5"), ("iou-adversarial", "adversarial, top-1")):
            c = _claim(claim_id, rule, m[m["map"] == key]["IoU"], reason=reason)
            out.append(dataclasses.replace(c, note=note) if note else c)
        # Figure 4: the blur's trade-off, against the undefended classifier on the same images
        s = sweep[(sweep["data"] == arm.data) & (sweep["threshold"] == t)]
        a = s[s["input"] == "adversarial"]
        defended = a[a["sigma"] == float(sigma)].sort_values("image")["true label"].astype(float)
        undefended = a[a["sigma"] == 0.0].sort_values("image")["true label"].astype(float)
        out.append(_claim("blur-regains", rule, defended.to_numpy(), undefended.to_numpy(),
                          reason=_group_missing(arm, sweep_group), group=sweep_group, sigma=sigma))
        b = s[(s["input"] == "benign") & (s["sigma"] > 0)]
        low, high = b["sigma"].min(), b["sigma"].max()
        out.append(_claim("blur-costs", rule,
                          b[b["sigma"] == low].sort_values("image")["true label"].astype(float).to_numpy(),
                          b[b["sigma"] == high].sort_values("image")["true label"].astype(float).to_numpy(),
                          reason=None if high > low else "the sweep has a single σ", low=low, high=high))
        # Figure 5: the defense against each group, and the cleaned benign images
        cleaned = nd[(nd["series"] == "Cleaned") & (nd["threshold"] == t)]
        for group in GROUPS:
            where = rule if group != "Boundary" else setting(arm, _label(t, top), paper_n=175)
            c = cleaned[cleaned["attack"] == group].sort_values("image")["NDCG@5"].to_numpy()
            a_ = adv[adv["attack"] == group].sort_values("image")["NDCG@5"].to_numpy()
            out.append(_claim("restores", where, c, a_, reason=_group_missing(arm, group), group=group))
        control = nd[(nd["series"] == "Control") & (nd["threshold"] == t)]
        per_image = pd.DataFrame({"control": control.groupby("image")["NDCG@5"].first(),
                                  "cleaned": cleaned.groupby("image")["NDCG@5"].mean()}).dropna()
        out.append(_claim("control-above-cleaned", rule, per_image["control"].to_numpy(),
                          per_image["cleaned"].to_numpy(),
                          reason=None if len(per_image) else f"no successful adversarial example on {arm.data}"))
        # Algorithm 2
        if adaptive is None:
            continue
        ad = adaptive[(adaptive["data"] == arm.data) & (adaptive["threshold"] == t)]
        for variant in dict.fromkeys(ad["variant"]):
            if variant not in CLAIMED_VARIANTS:
                continue
            v = ad[ad["variant"] == variant]
            out.append(_claim("adaptive-rate", rule, v["defended fooled"].to_numpy(dtype=bool), variant=variant))
            hits = v[v["defended fooled"]]["in benign top-3"].to_numpy(dtype=bool)
            out.append(_claim("adaptive-related", rule, hits, classes=arm.model.info.num_classes,
                              reason=None if len(hits) else "no successful adaptive example to look at"))
    return out


# --------------------------------------------------------------------------- what the chapter reads out


def sweep_group(arm: Arm) -> str:
    """The group of Figure 4: L-BFGS as in the paper, targeted C&W on an arm without L-BFGS."""
    return "L-BFGS targeted" if "L-BFGS targeted" in arm.groups else "C&W targeted"


def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def ndcg_reading(summary: pd.DataFrame, data: str) -> str:
    """A paragraph on Figure 5 for one arm, written from its numbers: where each attack's NDCG@1 lands,
    and how much the defense gives back under each rule."""
    d = summary[summary["data"] == data]
    adv = d[d["series"] == "Adv"].set_index("attack")["NDCG@1"]
    if adv.empty:
        return f"No attack succeeded on {data}: there is nothing to score."
    parts = [f"On {data}, NDCG@1 of the adversarial predictions is "
             + ", ".join(f"{_fmt(v)} for {a}" for a, v in adv.items()) + "."]
    high, low = adv.idxmax(), adv.idxmin()
    if adv[high] - adv[low] > 0.1:
        parts.append(f"{high} lands nearest the benign ranking, {low} farthest from it.")
    else:
        parts.append("The groups land about equally far from the benign ranking (within 0.1 of each other).")
    for t in dict.fromkeys(d[d["threshold"] != "none"]["threshold"]):
        c = d[(d["series"] == "Cleaned") & (d["threshold"] == t)].set_index("attack")
        k = d[(d["series"] == "Control") & (d["threshold"] == t)].set_index("attack")
        gain = (c["NDCG@5"] - d[d["series"] == "Adv"].set_index("attack")["NDCG@5"]).dropna()
        parts.append(f"Under {THRESHOLD_NAMES[t]} the defense raises NDCG@5 by {_fmt(gain.min())} to "
                     f"{_fmt(gain.max())} across the groups, and gives back the true label of "
                     f"{_fmt(c['top-1'].min())} to {_fmt(c['top-1'].max())} of the examples; the cleaned "
                     f"benign images (Control) keep NDCG@5 {_fmt(k['NDCG@5'].min())}-{_fmt(k['NDCG@5'].max())}.")
    return " ".join(parts)


def sweep_reading(summary: pd.DataFrame, arm: Arm, sigma: float, band: float = 0.031) -> str:
    """A paragraph on Figure 4 for one arm, written from :func:`sweep_summary`: what the defense at
    ``sigma`` gives back against the undefended classifier, what the sweep's ends cost the benign
    images, and how far the blur moves a benign image (against the paper's band of ``band``)."""
    d = summary[summary["data"] == arm.data]
    if d.empty:
        return f"The σ sweep was not run on {arm.data}."
    group = sweep_group(arm)
    parts = []
    for t in dict.fromkeys(d["threshold"]):
        g = d[d["threshold"] == t].set_index("sigma")
        if float(sigma) not in g.index or 0.0 not in g.index:
            continue
        at, ref = g.loc[float(sigma)], g.loc[0.0]
        swept = g[g.index > 0]
        lo, hi = swept.index.min(), swept.index.max()
        parts.append(f"Under {THRESHOLD_NAMES[t]} on {arm.data}, the defended classifier at σ = {sigma:g} gives the "
                     f"true label to {_fmt(at['adversarial, true label'])} of the {group} examples (the undefended "
                     f"one to {_fmt(ref['adversarial, true label'])}), and keeps {_fmt(at['benign accuracy'])} of the "
                     f"benign images; from σ = {lo:g} to {hi:g} benign accuracy goes from "
                     f"{_fmt(swept.loc[lo, 'benign accuracy'])} to {_fmt(swept.loc[hi, 'benign accuracy'])}.")
    linf = d[d["sigma"] == float(sigma)]["L-inf to the input (benign, median)"]
    if len(linf):
        v = float(linf.iloc[0])
        parts.append(f"At σ = {sigma:g} the cleaned benign image lies {v:.2f} from its original in L∞ (median), "
                     + (f"within the paper's {band:g}." if v <= band else
                        f"{v / band:.0f} times the band of {band:g} marked in the paper's Figure 4."))
    return " ".join(parts)


def adaptive_reading(summary: pd.DataFrame, data: str) -> str:
    """A paragraph on Sec. 5.2 for one arm: how often each attack fools the defended classifier, and
    whether the paper's bound of 1 % holds for Algorithm 2 as written."""
    d = summary[summary["data"] == data]
    if d.empty:
        return f"Algorithm 2 was not run on {data}."
    parts = []
    for t in dict.fromkeys(d["threshold"]):
        r = d[d["threshold"] == t].set_index("attack")["fools the defended model"]
        ordered = sorted(r.items(), key=lambda kv: -kv[1])
        parts.append(f"Under {THRESHOLD_NAMES[t]}, the defended classifier is fooled by "
                     + "; ".join(f"{a}: {_fmt(v)}" for a, v in ordered) + ".")
        written = r.get("as written")
        if written is not None:
            n = int(d[(d["threshold"] == t) & (d["attack"] == "as written")]["images"].iloc[0])
            parts.append(f"Algorithm 2 as written succeeds in {written:.0%} of {n} attempts (the paper: under "
                         f"1 %; whether the difference exceeds what {n} attempts can tell is the claims' verdict "
                         f"below).")
        restricted = r.get("restricted, defense-aware")
        if written is not None and restricted is not None:
            small = restricted - written < 0.1
            parts.append(f"Restricting PGD to the heat-map pixels from the start and aiming it at the defended "
                         f"classifier moves that rate from {written:.0%} to {restricted:.0%}"
                         + (": the few pixels, more than the attacker's ignorance of the defense, stop the attack."
                            if small else "."))
        whole = r.get("whole image, defense-aware")
        if whole is not None and PLAIN in r:
            parts.append(f"Allowed the whole image, PGD through the defense fools it {whole:.0%} of the time, "
                         f"{'more than' if whole > r[PLAIN] else 'no more than'} PGD aimed at the undefended "
                         f"classifier ({r[PLAIN]:.0%}); "
                         + ("against an attacker who knows it, the defense stops fewer than half of the images."
                            if whole >= 0.5 else "the defense still stops most of them."))
    return " ".join(parts)


def claims_reading(claims: Sequence[cl.Claim]) -> str:
    """One sentence counting the verdicts, per arm."""
    by: dict[str, dict[str, int]] = {}
    for c in claims:
        arm = c.setting.split("|")[-1].split(",")[0].strip()
        by.setdefault(arm, {}).setdefault(c.verdict, 0)
        by[arm][c.verdict] += 1
    return " ".join(f"On {arm}: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "."
                    for arm, counts in by.items())


def headline_metrics(arms: Sequence[Arm], iou_table: pd.DataFrame, sweep_table: pd.DataFrame,
                     ndcg_table: pd.DataFrame, adaptive_table: pd.DataFrame) -> dict:
    """The chapter's headline numbers for its metrics file, per arm."""
    out = {}
    for arm in arms:
        out[arm.data] = {
            "model": arm.model_name, "images": len(arm.index),
            "attack_success": {k: r.success_rate for k, r in arm.groups.items()},
            "iou": iou_table[iou_table["data"] == arm.data].to_dict(orient="records"),
            "sigma_sweep": sweep_table[sweep_table["data"] == arm.data].to_dict(orient="list"),
            "ndcg": ndcg_table[ndcg_table["data"] == arm.data].to_dict(orient="records"),
            "adaptive": adaptive_table[adaptive_table["data"] == arm.data].to_dict(orient="records"),
        }
    return out
