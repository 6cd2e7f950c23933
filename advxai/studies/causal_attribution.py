"""The experiments of chapter 1: Jha et al., *Attribution-driven Causal Analysis for Detection of
Adversarial Examples* (2019).

Each function runs one experiment of the paper and returns tidy tables plus what its figure needs:

* :func:`masking_study` -- their Fig. 3: benign inputs and the successful adversarial images of
  FGSM, DeepFool, C&W and PGD, the top Integrated-Gradients pixels masked step by step, the share
  of labels changed (left: MNIST, :func:`mnist_attacks`; right: ImageNet, :func:`photo_attacks`);
* :func:`image_rows` -- their Figs. 1, 5 and 6: an input, its positive IG map, and the input with its
  top 0.2 % and 2 % pixels masked, with the labels;
* :func:`patch_study` -- Section 4.3 and Fig. 4 (left): universal patches (Brown et al.'s adversarial
  patch, Karmon et al.'s LaVAN), how many images they fool, how many fooled images the masking
  detects, and how much of the masked evidence lies on the patch;
* :func:`patch_size_study` -- Fig. 4 (right): each patch pasted at several sizes;
* :func:`roc_study` -- beyond the paper: ROC, AUC, and the benign false-positive rate at the
  paper's operating points;
* :func:`paper_claims` -- every headline number of the paper beside ours (:data:`PAPER_CLAIMS`).

**Sampling.** Evaluated images are drawn by :func:`advxai.data.sample_correct`: ``n`` images at
random (by seed, stratified over classes) among those the model classifies correctly; a draw with
nothing to draw stops with :class:`~advxai.errors.EmptySelection`. Patches are never learned on
the images they are evaluated on: either on correctly classified images of another split
(``train_split``; the ImageNet path), or, when the evaluated images are all there is (the eight
embedded photographs), by **cross-fitting**: the images are dealt into ``folds`` folds at random,
each fold's patch is learned on (augmented copies of) the other folds' images and evaluated on its
own, so every image is evaluated by a patch that never saw it, at the cost of ``folds`` trainings
per patch and of patches learned on fewer images.

**Units of a claim.** A patched image is one image with the patch at one placement. Placements of
one image are not independent (an image that resists the patch resists it almost everywhere), so
the claims count images, as the paper does (it pastes each patch once): the fooling rate takes each
image's first placement, the detection analysis each fooled image's first fooled placement, and
both are rates over distinct images with Wilson intervals. The other placements serve the tables
and figures (the share fooled over every placement) and bring more fooled images to the detector.

**Tolerances**, chosen before any result was seen, the same for every claim of a kind:
rates and differences of rates 0.10 -- the paper gives no run-to-run spread, so one tenth of the
scale; the paper's counts of fooled images are compared as rates (347 of 1,000 is 0.347).
No-effect references: 0 for a difference (adversarial labels change as often as benign ones) and
for a fooling rate (correctly classified images of other classes are never the target without
the patch); for a detection rate the paper's own benign rate at 0.4 % (0.33: detection that is no
better than flagging benign images); none for the benign rates (a descriptive number).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import claims as C
from ..attacks import LaVAN, AdversarialPatch, adversarial_set
from ..attacks.base import AttackResult
from ..data import get_dataset
from ..data.augment import augment
from ..data.sampling import select_correct
from ..defenses.causal_masking import CausalMasking, MaskingResult, detection_roc, masked_counts
from ..errors import EmptySelection
from ..models import get_model
from ..runtime import resolve_device

__all__ = ["MaskingStudy", "PatchStudy", "SizeStudy", "mnist_attacks", "photo_attacks", "masking_study",
           "observation", "image_rows", "first_success", "patch_study", "patch_share", "patch_size_study",
           "roc_study", "changed_at", "changed_count", "curve_lines", "PAPER_CLAIMS", "paper_claims", "claims_summary",
           "data_deviations", "headline_metrics"]


def changed_at(res: MaskingResult, delta: float) -> float:
    """Share of the inputs whose label changed when masking up to ``delta`` (NaN for no inputs)."""
    return res.changed_fraction(float(delta))


def changed_count(res: MaskingResult, delta: float) -> int:
    """How many inputs' labels changed when masking up to ``delta``."""
    return int(_flags(res, delta).sum())


def _flags(res: MaskingResult, delta: float) -> np.ndarray:
    """Per input: its label changed when masking up to ``delta``."""
    return (res.rho <= float(delta) + 1e-12).numpy()


def _stage(timings, name: str):
    return timings(name) if timings is not None else nullcontext()


def _pct(d: float) -> str:
    return f"{100 * d:g} %"


# --------------------------------------------------------------------------- Fig. 3: attacks + masking


def mnist_attacks(fgsm_eps, pgd_eps: float, pgd_steps: int, cw_steps: int, cw_search: int, seed: int = 0,
                  deepfool_steps: int = 50, cw_c: float = 0.1, cw_lr: float = 0.01) -> dict[str, tuple[str, dict]]:
    """The MNIST attacks of Fig. 3 (left), untargeted, by display name: ``{name: (attack, settings)}``.

    FGSM at each ``fgsm_eps`` and PGD at ``pgd_eps`` (pixel units, [0, 1]); PGD steps of
    ``2.5 eps / steps`` from a random start; C&W L2 starting from the constant ``cw_c`` with
    ``cw_search`` binary-search steps of ``cw_steps`` Adam steps of size ``cw_lr``; DeepFool with an
    overshoot of 0.02. The paper gives none of these settings."""
    specs = {f"FGSM ε={e:g}": ("fgsm", {"eps": e}) for e in fgsm_eps}
    specs["DeepFool"] = ("deepfool", {"steps": deepfool_steps, "overshoot": 0.02})
    specs["C&W"] = ("cw", {"c": cw_c, "steps": cw_steps, "lr": cw_lr, "binary_search_steps": cw_search})
    specs[f"PGD ε={pgd_eps:g}"] = ("pgd", {"eps": pgd_eps, "steps": pgd_steps, "alpha": 2.5 * pgd_eps / pgd_steps,
                                           "seed": seed})
    return specs


def photo_attacks(fgsm_eps, pgd_eps: int, pgd_steps: int, cw_steps: int, cw_search: int, deepfool_steps: int,
                  seed: int = 0, cw_c: float = 0.1) -> dict[str, tuple[str, dict]]:
    """The ImageNet attacks of Fig. 3 (right): FGSM at ε = ``fgsm_eps`` and PGD at ``pgd_eps`` (in
    1/255, as the paper states them: 2, 5, 10 and 2), C&W L2 (from the constant ``cw_c``) and
    DeepFool, untargeted."""
    specs = {f"FGSM ε={e}/255": ("fgsm", {"eps": e / 255}) for e in fgsm_eps}
    specs[f"PGD ε={pgd_eps}/255"] = ("pgd", {"eps": pgd_eps / 255, "steps": pgd_steps,
                                             "alpha": 2.5 * pgd_eps / 255 / pgd_steps, "seed": seed})
    specs["C&W"] = ("cw", {"c": cw_c, "steps": cw_steps, "lr": 0.01, "binary_search_steps": cw_search,
                           "batch_size": 4})
    specs["DeepFool"] = ("deepfool", {"steps": deepfool_steps, "overshoot": 0.02, "batch_size": 4})
    return specs


@dataclass
class MaskingStudy:
    """What :func:`masking_study` returns."""

    setting: str  # "mnist" or "imagenet": the label used in tables and the ROC study
    data_name: str
    model_name: str
    model: Any  # the classifier
    data: Any  # the data set (test split)
    index: torch.Tensor  # the evaluated images' indices (correctly classified, benign and attacked)
    looked_at: int  # images classified to find them
    x: torch.Tensor  # the benign images
    attacks: dict  # display name -> AttackResult (every evaluated image)
    results: dict  # "benign" and each attack -> MaskingResult (successful adversarial images only)
    masking: CausalMasking
    points: tuple[float, float]  # the paper's two masked fractions (0.1 / 0.2, or 0.001 / 0.004)
    attack_table: pd.DataFrame  # one row per attack: images, fooled, success rate, mean distances
    summary: pd.DataFrame  # one row per kind of input: n, changed at the two points, median rho
    curves: pd.DataFrame  # one row per kind of input x delta: share of labels changed
    images: pd.DataFrame  # one row per image x kind of input: rho, label, changed at the two points

    @property
    def deltas(self) -> np.ndarray:
        return self.masking.deltas.numpy()

    @property
    def benign(self) -> MaskingResult:
        return self.results["benign"]

    @property
    def adversarial(self) -> dict:
        return {k: v for k, v in self.results.items() if k != "benign"}

    @property
    def y(self) -> torch.Tensor:
        return torch.as_tensor(self.data.labels)[self.index]


def _size_kwargs(image_size: int | None, net) -> dict:
    """The loader's keywords for ``image_size``: None, the data set's own size; 0, the model's input
    size (299 for Inception-v3, or ``$ADVXAI_IMAGE_SIZE``); else that size."""
    if image_size is None:
        return {}
    return {"image_size": int(net.info.input_size[-1]) if image_size == 0 else image_size}


def masking_study(setting: str, data: str, model: str, n: int, attacks: dict[str, tuple[str, dict]], *,
                  ig_steps: int, epsilon: float, max_delta: float, fraction_of: str, points: tuple[float, float],
                  seed: int = 0, device: str = "auto", train_budget: str = "full", image_size: int | None = None,
                  ig_batch: int = 512, batch_size: int = 64, linf_scale: float = 1.0, timings=None) -> MaskingStudy:
    """Fig. 3: benign inputs against the successful adversarial images of each attack in ``attacks``
    (:func:`mnist_attacks` or :func:`photo_attacks`), the top IG pixels masked on the grid
    ``epsilon, 2 epsilon, ... <= max_delta`` (Algorithm 1; ``fraction_of`` says what delta is a
    fraction of), the share of labels changed at every step and at the paper's two ``points``.

    The evaluated images are ``n`` test images the model classifies correctly, drawn by ``seed``
    (:func:`advxai.data.sample_correct`; fewer when fewer exist, :class:`~advxai.errors.EmptySelection`
    when none does). They are the benign inputs and the attacked ones; only adversarial images that
    changed the label are analysed (an unfooled one is a benign image). Adversarial sets are cached by
    name and settings (:func:`advxai.attacks.adversarial_set`) and run on the current engine."""
    dev = resolve_device(device)
    with _stage(timings, f"{setting}: attacks"):
        net = get_model(model, device=str(dev), train_budget=train_budget)
        kwargs = _size_kwargs(image_size, net)
        ds = get_dataset(data, "test", **kwargs)
        sample = select_correct(ds, net, n, seed)
        index = sample.indices
        x = ds.batch(index).x
        common = dict(model=model, dataset=data, index=index, device=str(dev), train_budget=train_budget)
        if kwargs:
            common["dataset_kwargs"] = kwargs
        results = {name: adversarial_set(attack, **params, **common) for name, (attack, params) in attacks.items()}
    with _stage(timings, f"{setting}: IG + masking"):
        cm = CausalMasking(net, epsilon=epsilon, max_delta=max_delta, fraction_of=fraction_of, steps=ig_steps,
                           internal_batch_size=ig_batch, batch_size=batch_size)
        analysed = {"benign": cm.analyse(x.to(dev))}
        for name, r in results.items():
            analysed[name] = cm.analyse(r.x_adv[r.success])
    return MaskingStudy(setting, data, model, net, ds, index, sample.looked_at, x, results, analysed, cm,
                        tuple(points), attack_table(results, linf_scale), masking_summary(analysed, points),
                        masking_curves(setting, analysed, cm.deltas.numpy()), masking_images(analysed, points))


def attack_table(attacks: dict, linf_scale: float = 1.0) -> pd.DataFrame:
    """One row per attack: images attacked, fooled, success rate, mean L2 and L-inf of the fooling ones."""
    rows = []
    for name, r in attacks.items():
        ok = r.success
        rows.append({"attack": name, "images": len(r), "fooled": int(ok.sum()), "success rate": r.success_rate,
                     "mean L2": r.l2[ok].mean().item() if ok.any() else float("nan"),
                     "mean L-inf": linf_scale * r.linf[ok].mean().item() if ok.any() else float("nan")})
    return pd.DataFrame(rows, columns=["attack", "images", "fooled", "success rate", "mean L2", "mean L-inf"])


def masking_summary(results: dict, points) -> pd.DataFrame:
    """One row per kind of input: n, the share of labels changed at each of ``points``, the median rho."""
    rows = []
    for name, r in results.items():
        row = {"inputs": name, "n": len(r)}
        row.update({f"changed at {_pct(d)}": changed_at(r, d) for d in points})
        row["median ρ"] = float(r.rho.median()) if len(r) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def masking_curves(setting: str, results: dict, deltas) -> pd.DataFrame:
    """Tidy rows: the share of inputs whose label changed when masking up to each delta of the grid."""
    return pd.DataFrame([{"setting": setting, "inputs": name, "n": len(res), "delta": float(d),
                          "changed": changed_at(res, d)} for name, res in results.items() for d in deltas],
                        columns=["setting", "inputs", "n", "delta", "changed"])


def masking_images(results: dict, points) -> pd.DataFrame:
    """One row per image and kind of input: rho, the model's label, changed at each of ``points``."""
    frames = []
    for name, r in results.items():
        df = pd.DataFrame({"inputs": name, "image": range(len(r)), "rho": r.rho.double().numpy(),
                           "label": r.label.numpy(), "positive pixels": r.positives.numpy()})
        for d in points:
            df[f"changed at {_pct(d)}"] = _flags(r, d)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def curve_lines(curves: pd.DataFrame) -> dict[str, np.ndarray]:
    """``{inputs: % of labels changed per delta}`` from a tidy curves table (for :func:`advxai.plots.curves`);
    kinds of input with no images are left out (their curve is undefined)."""
    return {n: 100 * g["changed"].to_numpy() for n, g in curves.groupby("inputs", sort=False)
            if int(g["n"].iloc[0]) > 0}


def observation(benign: MaskingResult, results: dict, delta: float, unit: str) -> str:
    """One generated sentence: which inputs' labels change more often than benign ones at ``delta``."""
    b = changed_at(benign, delta)
    fmt = lambda n, r: f"{n} ({changed_at(r, delta):.0%}, n={len(r)})"  # noqa: E731
    more = [fmt(n, r) for n, r in results.items() if len(r) and changed_at(r, delta) > b]
    rest = [fmt(n, r) for n, r in results.items() if len(r) and changed_at(r, delta) <= b]
    empty = [n for n, r in results.items() if not len(r)]
    text = (f"**Measured here.** Masking {unit} changes {b:.0%} of the benign labels (n={len(benign)}). "
            f"More adversarial labels change for: {', '.join(more) or 'none'}. "
            f"As many or fewer for: {', '.join(rest) or 'none'}.")
    if empty:
        text += f" No successful adversarial images to analyse for: {', '.join(empty)}."
    return text


# --------------------------------------------------------------------------- Figs. 1, 5, 6: image rows


def image_rows(model, masking: CausalMasking, rows, class_names, fractions=(0.002, 0.02)) -> list[list[tuple]]:
    """Their Figs. 1, 5 and 6: per row, the input with its label, the positive part of its IG map (the
    saliency the masking ranks, scaled to [0, 1] at its 99th percentile) and the input with its top
    ``fractions`` of pixels masked, each titled with the model's label.

    ``rows``: ``(title, images, MaskingResult, position)``. Returns one list of ``(image, title)``
    panels per row, ready for :func:`advxai.plots.panel_rows`."""
    out = []
    dev = masking.interpreter.device
    for title, x, res, i in rows:
        xi = x[i:i + 1].to(dev)
        panels = [(x[i].cpu(), f"{title}\n'{class_names[int(res.label[i])][:18]}'")]
        sal = res.scores[i].clamp(min=0).view(x.shape[-2:])
        # scaled to the 99th percentile of the positive scores: a few extreme pixels would
        # otherwise leave the rest of the map black
        pos = sal[sal > 0]
        top = torch.quantile(pos, 0.99) if len(pos) else torch.tensor(1.0)
        panels.append(((sal / top.clamp_min(1e-12)).clamp(max=1)[None], "positive IG"))
        for d in fractions:
            xm = masking.neighbour(xi, res.rank[i:i + 1].to(dev), res.positives[i:i + 1].to(dev), d)
            with torch.no_grad():
                label = class_names[int(model(xm).argmax(1))][:18]
            panels.append((xm[0].cpu(), f"top {100 * d:g}% masked\n'{label}'"))
        out.append(panels)
    return out


def first_success(result, j: int = 0):
    """Position of image ``j`` among an attack's successful images (for the rows): ``j``'s own when it
    was fooled, else the first fooled image's, or None when none was."""
    s = torch.nonzero(result.success).flatten().tolist()
    return s.index(j) if j in s else (0 if s else None)


# --------------------------------------------------------------------------- Section 4.3: patches


def _take(r: AttackResult, idx: torch.Tensor) -> AttackResult:
    """The images ``idx`` of an attack result (fields and per-image extras)."""
    idx = torch.as_tensor(idx, dtype=torch.long)
    pick = lambda t: None if t is None else t[idx.to(t.device)]  # noqa: E731
    extras = {k: pick(v) for k, v in r.extras.items() if isinstance(v, torch.Tensor) and v.dim() and len(v) == len(r)}
    return AttackResult(pick(r.x_adv), pick(r.success), pick(r.pred), pick(r.confidence), pick(r.y), pick(r.target),
                        pick(r.linf), pick(r.l2), pick(r.l0), extras)


@dataclass
class Patched:
    """One patch at one size over every evaluated image: the patched images (image x placement) and
    the fooled ones analysed (one per image)."""

    result: AttackResult  # every patched image, placement-major within each fold
    clean: torch.Tensor  # the images before the patch
    image: torch.Tensor  # [P] position of each patched image's source among the evaluated images
    placement: torch.Tensor  # [P] which of the image's placements (0, 1, ...) it is
    analysed: torch.Tensor  # positions (into ``result``) of the analysed images: each image's first fooled placement
    masking: MaskingResult  # the analysis of those


@dataclass
class PatchStudy:
    """What :func:`patch_study` returns."""

    attacks: dict  # display name -> one fitted patch attack per fold
    folds: torch.Tensor  # [N] fold of each evaluated image (all 0 with a separate training split)
    train_images: dict  # fold -> the images its patches were learned on
    train_source: str  # how the training images were chosen, in words
    evaluated: dict  # display name -> Patched at the trained size
    placements: int
    detect_delta: float
    eval_seed: int
    fooling: pd.DataFrame  # one row per patch: area, patched images, fooled, rate, final training target rate
    detection: pd.DataFrame  # one row per patch: fooled images analysed, detected at the operating point
    inside: pd.DataFrame  # one row per patch: share of the top masked pixels that lie on the patch
    curves: pd.DataFrame  # tidy: benign and each patch x delta

    @property
    def results(self) -> dict:
        return {k: v.masking for k, v in self.evaluated.items()}


def _folds(n: int, folds: int, seed: int) -> torch.Tensor:
    """Images dealt into ``folds`` folds at random, as evenly as possible."""
    g = torch.Generator().manual_seed(int(seed))
    out = torch.empty(n, dtype=torch.long)
    out[torch.randperm(n, generator=g)] = torch.arange(n) % folds
    return out


def _training_sets(study: MaskingStudy, train_split: str | None, n_train: int, folds: int, n_augmented: int,
                   seed: int, image_size: int | None) -> tuple[torch.Tensor, dict, str]:
    """``(fold of each evaluated image, {fold: training images}, description)``: see the module doc."""
    n = len(study.index)

    def expand(images: torch.Tensor, k: int) -> torch.Tensor:
        return augment(images, n_augmented, seed=seed + 1 + k) if n_augmented else images

    if train_split is None:
        if not isinstance(folds, int) or folds < 2:
            raise ValueError(f"patch_folds must be an integer >= 2 when patches are cross-fitted on the evaluated "
                             f"images (no patch_train_split), got {folds!r}")
        if n < folds:
            raise EmptySelection(f"cross-fitting patches in {folds} folds needs at least {folds} evaluated images, "
                                 f"got {n} (correctly classified among {study.looked_at} looked at)",
                                 reason="too few evaluated images to cross-fit the patches")
        fold = _folds(n, folds, seed)
        sets = {k: expand(study.x[fold != k], k) for k in range(folds)}
        what = (f"the evaluated images themselves, by cross-fitting: the {n} images dealt into {folds} folds at "
                f"random, each fold's patches learned on "
                f"{f'{n_augmented} augmented copies of ' if n_augmented else ''}the other folds' images and "
                f"evaluated on their own fold")
        return fold, sets, what
    if not isinstance(n_train, int) or n_train < 1:
        raise ValueError(f"n_patch_train must be a positive integer with a patch_train_split, got {n_train!r}")
    ds = get_dataset(study.data_name, train_split, **_size_kwargs(image_size, study.model))
    same = ds.split == study.data.split or (train_split in ("test", "val") and study.data.split in ("test", "val"))
    sample = select_correct(ds, study.model, n_train, seed + 1, exclude=study.index if same else None)
    images = ds.batch(sample.indices).x
    what = (f"{len(sample.indices)} correctly classified images of the {study.data_name} '{train_split}' split"
            f"{', none of them evaluated' if same else ''}"
            f"{f', {n_augmented} augmented copies of them' if n_augmented else ''}")
    return torch.zeros(n, dtype=torch.long), {0: expand(images, 0)}, what


def _evaluate(attacks: list, study: MaskingStudy, fold: torch.Tensor, placements: int, area: float | None,
              seed: int, masking: CausalMasking, n_detect: int | None, batch: int = 64) -> Patched:
    """Every evaluated image (except those of the target class) with its fold's patch at ``placements``
    random placements (drawn from ``seed``: the same draws at every area), then each image's first
    fooled placement analysed (images in their sampled order, at most ``n_detect``)."""
    dev = study.model.device
    y = study.y
    parts, cleans, images, placed = [], [], [], []
    target = attacks[0].target_class
    for k, attack in enumerate(attacks):
        pos = torch.nonzero((fold == k) & (y != target)).flatten()
        if not len(pos):
            continue
        rep = pos.repeat(placements)  # placement-major: every image once, then again ...
        cx, cy = study.x[rep], y[rep]
        xa = attack.apply(cx, area=area, seed=seed)
        tc = torch.full_like(cy, target)
        for s in range(0, len(rep), batch):  # in batches: a thousand images at 299 px would not fit at once
            sl = slice(s, s + batch)
            parts.append(attack.result(cx[sl].to(dev), xa[sl].to(dev), cy[sl].to(dev), tc[sl].to(dev)))
        cleans.append(cx)
        images.append(rep)
        placed.append(torch.arange(placements).repeat_interleave(len(pos)))
    if not parts:  # every evaluated image is of the target class
        c, h, w = study.x.shape[1:]
        empty = torch.zeros(0, c, h, w)
        none = torch.zeros(0, dtype=torch.long)
        r = AttackResult(empty, none.bool(), none, empty.new_zeros(0), none, none, empty.new_zeros(0),
                         empty.new_zeros(0), empty.new_zeros(0))
        return Patched(r, empty, none, none, none, masking.analyse(empty))
    result = AttackResult.concat(parts)
    clean, image, placement = torch.cat(cleans), torch.cat(images), torch.cat(placed)
    chosen, seen = [], set()
    for p in torch.nonzero(result.success.cpu()).flatten().tolist():  # placement-major: first fooled per image
        if int(image[p]) not in seen:
            seen.add(int(image[p]))
            chosen.append(p)
    chosen = sorted(chosen, key=lambda p: int(image[p]))[:n_detect]
    analysed = torch.tensor(chosen, dtype=torch.long)
    return Patched(result, clean, image, placement, analysed,
                   masking.analyse(result.x_adv[analysed.to(result.x_adv.device)]))


def patch_study(study: MaskingStudy, *, patch_targets, lavan_target: int, patch_size: float, patch_scale,
                lavan_size: float, steps: int, lr: float, train_batch: int, n_augmented: int, placements: int,
                n_detect: int | None, detect_delta: float, train_split: str | None = None, n_train: int = 0,
                folds: int = 2, seed: int = 0, image_size: int | None = None, timings=None) -> PatchStudy:
    """Section 4.3 and Fig. 4 (left): two adversarial patches (circles learned over random location,
    area ``patch_scale`` x ``patch_size`` and rotation up to 22.5 degrees) for ``patch_targets`` and
    a LaVAN square of ``lavan_size`` for ``lavan_target``. Each is pasted at ``placements`` random
    places on every evaluated image of ``study`` (images of the target class left out); an image is
    fooled at a placement when the model then predicts the target. Each fooled image's first fooled
    placement is analysed (at most ``n_detect`` images) and counts as detected when its label changes
    with ``detect_delta`` of the pixels masked. Also: the share of the masked pixels on the patch.

    Training images (see the module doc): ``train_split=None`` cross-fits in ``folds`` folds over the
    evaluated images; a split name draws ``n_train`` correctly classified images from it. With
    ``n_augmented > 0`` the patches learn on that many augmented copies (random crops, flips, colour
    jitter) instead. Learned patches are cached (:meth:`~advxai.attacks.patch.PatchAttack.fit_cached`)."""
    if not isinstance(placements, int) or placements < 1:
        raise ValueError(f"patch_placements must be a positive integer, got {placements!r}")
    if n_detect is not None and (not isinstance(n_detect, int) or n_detect < 1):
        raise ValueError(f"n_detect must be a positive integer or None (every fooled image), got {n_detect!r}")
    model, cm, names = study.model, study.masking, study.data.classes
    fold, train_sets, source = _training_sets(study, train_split, n_train, folds, n_augmented, seed, image_size)
    common = dict(steps=steps, lr=lr, train_batch=train_batch, seed=seed)
    kinds = [(f"patch '{names[t]}'", AdversarialPatch, t, patch_size, {"scale": tuple(patch_scale)})
             for t in patch_targets]
    kinds.append((f"LaVAN '{names[lavan_target]}'", LaVAN, lavan_target, lavan_size, {}))
    attacks = {}
    with _stage(timings, "patches: training"):
        for name, kind, target, size, kw in kinds:
            attacks[name] = [kind(model, target, size=size, **kw, **common).fit_cached(train_sets[k])
                             for k in sorted(train_sets)]
    eval_seed = seed * 1_000_003 + 7  # one stream of placements for every patch and size
    with _stage(timings, "patches: evaluation + IG masking"):
        evaluated = {name: _evaluate(a, study, fold, placements, None, eval_seed, cm, n_detect)
                     for name, a in attacks.items()}
    fooling = pd.DataFrame([{"patch": name, "area": a[0].size, "patched images": len(e.result),
                             "fooled (predicted the target)": int(e.result.success.sum()),
                             "rate": e.result.success_rate,
                             "final training target rate": float(np.mean([np.mean(x.history["target_rate"][-5:])
                                                                          for x in a]))}
                            for (name, a), e in zip(attacks.items(), evaluated.values())])
    detection = pd.DataFrame([{"patch": n, "fooled images analysed": len(e.masking),
                               f"detected at {_pct(detect_delta)}": changed_at(e.masking, detect_delta)}
                              for n, e in evaluated.items()])
    inside = patch_share(evaluated, detect_delta, cm.fraction_of)
    curves = masking_curves("patches", {"benign": study.benign, **{k: e.masking for k, e in evaluated.items()}},
                            study.deltas)
    return PatchStudy(attacks, fold, train_sets, source, evaluated, placements, detect_delta, eval_seed, fooling,
                      detection, inside, curves)


def patch_share(evaluated: dict, delta: float, fraction_of: str = "all") -> pd.DataFrame:
    """Their Figs. 5 and 6 in numbers: of the top ``delta`` pixels the masking removes from each analysed
    patched image (as the detector counts them, ``fraction_of``), the share that lies on the patch,
    beside the patch's share of the image."""
    rows = []
    for name, e in evaluated.items():
        res = e.masking
        if not len(res):
            continue
        xs = e.result.x_adv[e.analysed.to(e.result.x_adv.device)].cpu()
        under = (xs != e.clean[e.analysed]).any(1).flatten(1)  # pixels the patch covers
        counts = masked_counts(delta, res.positives, under.shape[1], fraction_of)
        top = res.rank < counts[:, None]
        share = ((top & under).sum(1).float() / top.sum(1).clamp_min(1)).mean().item()
        rows.append({"patch": name, f"share of the top {_pct(delta)} pixels on the patch": share,
                     "patch's share of the image": under.float().mean().item()})
    return pd.DataFrame(rows)


@dataclass
class SizeStudy:
    """What :func:`patch_size_study` returns."""

    name: str  # the patch swept
    table: pd.DataFrame  # one row per size: fooled, patched, analysed, detected at the operating point
    by_size: dict = field(default_factory=dict)  # area -> Patched

    @property
    def results(self) -> dict:
        return {a: p.masking for a, p in self.by_size.items()}


def patch_size_study(study: MaskingStudy, patches: PatchStudy, name: str, sizes, n_detect: int | None,
                     timings=None) -> SizeStudy:
    """Fig. 4 (right): the patch ``name`` pasted at each area of ``sizes`` with the same random
    placements and images as at its trained size, each image's first fooled placement analysed."""
    if name not in patches.attacks:
        raise ValueError(f"unknown patch {name!r}; valid: {', '.join(patches.attacks)}")
    attacks, delta = patches.attacks[name], patches.detect_delta
    by_size, rows = {}, []
    with _stage(timings, "patches: size sweep"):
        for a in sizes:
            if abs(a - attacks[0].size) < 1e-9:  # the trained size: evaluated already, with the same draws
                p = patches.evaluated[name]
            else:
                p = _evaluate(attacks, study, patches.folds, patches.placements, float(a), patches.eval_seed,
                              study.masking, n_detect)
            by_size[float(a)] = p
            rows.append({"patch area": float(a), "patched images": len(p.result),
                         "fooled": int(p.result.success.sum()), "analysed": len(p.masking),
                         f"detected at {_pct(delta)}": changed_at(p.masking, delta),
                         "detected at 0.1 %": changed_at(p.masking, 0.001)})
    return SizeStudy(name, pd.DataFrame(rows), by_size)


# --------------------------------------------------------------------------- beyond the paper: ROC


def roc_study(groups) -> pd.DataFrame:
    """ROC of the detector (benign inputs the negatives, threshold on rho) for every kind of
    adversarial input, with the true- and false-positive rates at the paper's operating point.

    ``groups``: ``(setting, benign MaskingResult, {name: MaskingResult}, max_delta, point)``. One row
    per setting x attack with images; the ``_roc`` column holds the curve (fpr, tpr) for the figure."""
    rows = []
    for setting, benign, adv, md, point in groups:
        for name, res in adv.items():
            if len(res) == 0 or len(benign) == 0:
                continue
            roc = detection_roc(benign.rho, res.rho, md)
            rows.append({"setting": setting, "attack": name, "adversarial n": len(res), "benign n": len(benign),
                         "AUC": roc["auc"], "operating point δ": point, "TPR": changed_at(res, point),
                         "FPR (benign)": changed_at(benign, point), "_roc": roc})
    return pd.DataFrame(rows, columns=["setting", "attack", "adversarial n", "benign n", "AUC", "operating point δ",
                                       "TPR", "FPR (benign)", "_roc"])


# --------------------------------------------------------------------------- the paper's claims

# The paper's headline numbers, as data. kind: "benign" (share of benign labels unchanged at
# ``point``), "attack" (share of an attack's labels changed at ``point`` minus the benign share),
# "fooled", "detected" (a patch's fooling and detection rates), "size" (detection at the smallest
# size minus at the largest). ``what``: the attack (by the paper's name) or the patch (1st, 2nd
# adversarial patch, LaVAN). Differences: the paper's adversarial rate minus its benign rate at the
# same point (MNIST 20 %: 1 - 0.81 = 0.19; ImageNet 0.4 %: 1 - 0.67 = 0.33).
PAPER_CLAIMS = pd.DataFrame([
    # id, section, kind, what, point, paper, tolerance, no_effect, source in the paper
    ("mnist-benign-10", "1-mnist", "benign", None, 0.10, 0.94, 0.10, None, "Sec. 4.1, Fig. 3 left"),
    ("mnist-benign-20", "1-mnist", "benign", None, 0.20, 0.81, 0.10, None, "Sec. 4.1, Fig. 3 left"),
    ("mnist-fgsm", "1-mnist", "attack", "FGSM", 0.20, 0.72 - 0.19, 0.10, 0.0, "Sec. 4.1, Fig. 3 left"),
    ("mnist-deepfool", "1-mnist", "attack", "DeepFool", 0.20, 0.67 - 0.19, 0.10, 0.0, "Sec. 4.1, Fig. 3 left"),
    ("mnist-cw", "1-mnist", "attack", "C&W", 0.20, 0.53 - 0.19, 0.10, 0.0, "Sec. 4.1, Fig. 3 left"),
    ("mnist-pgd", "1-mnist", "attack", "PGD", 0.20, 0.68 - 0.19, 0.10, 0.0, "Sec. 4.1, Fig. 3 left"),
    ("imagenet-benign-0.1", "2-imagenet", "benign", None, 0.001, 0.82, 0.10, None, "Sec. 4.2, Fig. 3 right"),
    ("imagenet-benign-0.4", "2-imagenet", "benign", None, 0.004, 0.67, 0.10, None, "Sec. 4.2, Fig. 3 right"),
    ("imagenet-fgsm-2", "2-imagenet", "attack", "FGSM ε=2/255", 0.004, 0.76 - 0.33, 0.10, 0.0, "Sec. 4.2"),
    ("imagenet-fgsm-5", "2-imagenet", "attack", "FGSM ε=5/255", 0.004, 0.71 - 0.33, 0.10, 0.0, "Sec. 4.2"),
    ("imagenet-fgsm-10", "2-imagenet", "attack", "FGSM ε=10/255", 0.004, 0.75 - 0.33, 0.10, 0.0, "Sec. 4.2"),
    ("imagenet-pgd", "2-imagenet", "attack", "PGD ε=2/255", 0.004, 0.71 - 0.33, 0.10, 0.0, "Sec. 4.2"),
    ("imagenet-cw", "2-imagenet", "attack", "C&W", 0.004, 0.97 - 0.33, 0.10, 0.0, "Sec. 4.2"),
    ("imagenet-deepfool", "2-imagenet", "attack", "DeepFool", 0.004, 0.95 - 0.33, 0.10, 0.0, "Sec. 4.2"),
    ("patch-1-fooled", "3-patches", "fooled", 0, None, 0.347, 0.10, 0.0, "Sec. 4.3: banana, 347 of 1,000"),
    ("patch-1-detected", "3-patches", "detected", 0, 0.004, 0.9971, 0.10, 0.33, "Sec. 4.3, Fig. 4 left"),
    ("patch-2-fooled", "3-patches", "fooled", 1, None, 0.376, 0.10, 0.0, "Sec. 4.3: toaster, 376 of 1,000"),
    ("patch-2-detected", "3-patches", "detected", 1, 0.004, 0.9814, 0.10, 0.33, "Sec. 4.3, Fig. 4 left"),
    ("lavan-fooled", "3-patches", "fooled", "lavan", None, 0.747, 0.10, 0.0, "Sec. 4.3: baseball, 747 of 1,000"),
    ("lavan-detected", "3-patches", "detected", "lavan", 0.004, 0.992, 0.10, 0.33, "Sec. 4.3, Fig. 4 left"),
    ("patch-size", "3-patches", "size", 0, 0.004, "> 0", None, None, "Sec. 4.3, Fig. 4 right"),
], columns=["id", "section", "kind", "what", "point", "paper", "tolerance", "no_effect", "source"])


def _attack_name(study: MaskingStudy, paper_name: str) -> str | None:
    """Our display name for the paper's attack (MNIST's FGSM: the largest ε of the sweep, as the paper
    gives none), or None when this run did not run it."""
    names = list(study.attacks)
    if paper_name in names:
        return paper_name
    if paper_name in ("FGSM", "PGD"):
        found = [n for n in names if n.startswith(paper_name + " ")]
        if paper_name == "FGSM" and found:
            return max(found, key=lambda n: float(n.split("=")[1].split("/")[0]))
        return found[0] if found else None
    return None


def _clean(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def paper_claims(mnist: MaskingStudy, imagenet: MaskingStudy, patches: PatchStudy | None = None,
                 sizes: SizeStudy | None = None, *, mnist_setting: C.Setting, imagenet_setting: C.Setting,
                 patch_setting: C.Setting, table: pd.DataFrame = PAPER_CLAIMS) -> list[C.Claim]:
    """Every row of ``table`` (:data:`PAPER_CLAIMS`) measured on this run, as :class:`advxai.claims.Claim`
    records (the verdict is :mod:`advxai.claims`' rule). What could not be measured (an attack not in
    the sweep, no fooled image) is a claim *not measured*, with the reason."""
    out = []
    for row in table.to_dict("records"):
        paper, tol, ref = row["paper"], _clean(row["tolerance"]), _clean(row["no_effect"])
        kw = dict(paper=paper, tolerance=tol, no_effect=ref, section=row["section"], note=row["source"])
        kind, what, point = row["kind"], row["what"], _clean(row["point"])
        if kind in ("benign", "attack"):
            st = mnist if row["id"].startswith("mnist") else imagenet
            setting = mnist_setting if st is mnist else imagenet_setting
            benign_changed = _flags(st.benign, point)
            if kind == "benign":
                out.append(C.rate(f"benign labels unchanged, top {_pct(point)} masked", setting, ~benign_changed,
                                  **kw))
                continue
            ours = _attack_name(st, what)
            text = f"{what}: labels changed at {_pct(point)} masked, minus benign"
            if ours is None:
                out.append(C.not_measured(text, setting, f"{what} is not among the attacks run "
                                          f"({', '.join(st.attacks)})", **kw))
                continue
            out.append(C.difference_of_rates(
                f"{ours}: labels changed at {_pct(point)} masked, minus benign", setting.but(ours),
                _flags(st.results[ours], point), benign_changed,
                empty=f"{ours} fooled none of the {len(st.attacks[ours])} images: no adversarial image to mask", **kw))
            continue
        if patches is None:
            continue
        names = list(patches.attacks)
        name = names[-1] if what == "lavan" else (names[int(what)] if int(what) < len(names) - 1 else None)
        if name is None:
            out.append(C.not_measured(f"adversarial patch {int(what) + 1}", patch_setting,
                                      "fewer adversarial patches were run (patch_targets)", **kw))
            continue
        e = patches.evaluated[name]
        if kind == "fooled":
            # the paper pastes a patch once per image: the claim takes each image's first placement
            first = e.placement.cpu() == 0
            out.append(C.rate(f"{name} (area {patches.attacks[name][0].size:.1%}): share of images fooled",
                              patch_setting, e.result.success.cpu()[first].numpy(),
                              empty="every evaluated image is of the target class", **kw))
        elif kind == "detected":
            out.append(C.rate(f"{name}: fooled images detected at {_pct(point)} masked", patch_setting,
                              _flags(e.masking, point), empty=f"{name} fooled no image: nothing to detect", **kw))
        elif kind == "size":
            text = "smaller patches are easier to detect: detected at the smallest size minus at the largest"
            if sizes is None or sizes.name != name:
                out.append(C.not_measured(text, patch_setting.but(name), f"{name} was not swept over sizes", **kw))
                continue
            small, large = min(sizes.by_size), max(sizes.by_size)
            setting = patch_setting.but(f"{name}, {small:.0%} vs {large:.0%}")
            if small == large:
                out.append(C.not_measured(text, setting, "only one patch size was swept (patch_sizes)", **kw))
                continue
            out.append(C.difference_of_rates(text, setting, _flags(sizes.by_size[small].masking, point),
                                             _flags(sizes.by_size[large].masking, point),
                                             empty="no fooled image at one of the two sizes", **kw))
    return out


def claims_summary(records: list[C.Claim]) -> str:
    """One generated sentence on the verdicts (counts per verdict, in the book's order)."""
    counts = pd.Series([c.verdict for c in records]).value_counts()
    parts = [f"{int(counts[v])} {v}" for v in C.VERDICTS if v in counts]
    return f"Of the paper's {len(records)} headline claims measured here: " + ", ".join(parts) + "."


def data_deviations(mnist: MaskingStudy, imagenet: MaskingStudy, patches: PatchStudy | None = None) -> str:
    """The chapter's first deviations from the paper, generated from what this run used (Markdown bullets)."""
    lines = []
    m = (f"**MNIST.** {len(mnist.index)} correctly classified test digits of `{mnist.data_name}` "
         f"(of {mnist.looked_at} looked at), model `{mnist.model_name}`.")
    if mnist.data_name == "mnist":
        m += (" The paper does not describe its MNIST network or say how many test digits it used; "
              "the model is Carlini & Wagner's MNIST CNN, trained here.")
    else:
        m += " Not MNIST: a stand-in for it, so no MNIST number is measured on MNIST here."
    lines.append(m)
    i = (f"**ImageNet.** {len(imagenet.index)} correctly classified images of `{imagenet.data_name}` "
         f"(of {imagenet.looked_at} looked at), model `{imagenet.model_name}`.")
    if imagenet.data_name != "imagenet":
        i += (" The embedded photographs stand in for ImageNet (nothing else can be loaded offline), so the "
              "rates move in steps of one image and the intervals are wide.")
    if imagenet.model_name != "inception_v3":
        i += " The paper's patches attack Inception-v3; this run attacks another ImageNet model."
    lines.append(i)
    if patches is not None:
        lines.append(f"**Patch training.** The paper does not say what its patches were learned on. Here: "
                     f"{patches.train_source}; no patch is evaluated on an image it was learned from.")
        if patches.placements > 1:
            lines.append(f"**Placements.** Each image carries each patch at {patches.placements} random places "
                         f"(the paper: once). The tables count image x placement; the claims count images: the "
                         f"fooling rate at each image's first placement, the detector each fooled image once.")
    return "\n".join(f"* {line}" for line in lines)


def headline_metrics(mnist: MaskingStudy, imagenet: MaskingStudy, patches: PatchStudy, sizes: SizeStudy,
                     roc: pd.DataFrame) -> dict:
    """The chapter's numbers for its metrics file: labels changed at the paper's points per kind of
    input, the patches' fooling and detection, the size sweep, AUCs and the benign false-positive rates."""
    return {
        "mnist_changed": {n: {"10%": changed_at(r, 0.1), "20%": changed_at(r, 0.2), "n": len(r)}
                          for n, r in mnist.results.items()},
        "imagenet_changed": {n: {"0.1%": changed_at(r, 0.001), "0.4%": changed_at(r, 0.004), "n": len(r)}
                             for n, r in imagenet.results.items()},
        "patches": {n: {"fooled": int(e.result.success.sum()), "patched": len(e.result),
                        "detected_0.4%": changed_at(e.masking, 0.004) if len(e.masking) else None,
                        "analysed": len(e.masking)} for n, e in patches.evaluated.items()},
        "size_sweep": sizes.table.to_dict("records"),
        "auc": {f"{row['setting']}/{row['attack']}": row["AUC"] for row in roc.to_dict("records")},
        "benign_fpr": {"mnist@20%": changed_at(mnist.benign, 0.2), "imagenet@0.4%": changed_at(imagenet.benign, 0.004)},
    }
