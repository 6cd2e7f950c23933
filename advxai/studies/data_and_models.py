"""The measurements of chapter 0: the data sets and models every other chapter shares.

This chapter reproduces no paper; it states what the later chapters stand on, each as one function
returning a tidy table (plus the images its figure needs):

* :func:`embedded_data` and :func:`data_table` -- the embedded data sets and their sizes;
* :func:`sample_batch` -- a seeded, class-balanced batch to show as a grid;
* :func:`image_attributes` and :func:`class_table` -- the ``shapes`` attributes of one image and the
  attribute values that define each class;
* :func:`generation_rate` -- how fast the ``shapes`` generator runs on one core;
* :func:`photo_labels` -- the photographs' human labels and the photographs left out;
* :func:`real_data` -- the real data sets (ImageNet, CUB, CIFAR-10, AwA2) whose folders are set, and
  for the others the message naming the folder layout they need;
* :class:`TestSets` and :func:`model_accuracy` -- every model's accuracy on its held-out split (or a
  seeded, class-stratified sample of it);
* :func:`fragility` -- how fragile each model is: targeted PGD on correctly classified test images
  (:func:`advxai.models.fragility.targeted_pgd_success`), with a Wilson interval;
* :func:`photo_predictions` -- the top-k classes of each photograph through an ImageNet model.

**The one claim.** The study's design rule: a model that stands in for a natural-image classifier
must be as fragile as one, or the attacks the papers compare (ADV², AdvEdge ...) have no meaningful
baseline. The natural-image figure is ADV²'s Table 3: targeted PGD (eps = 0.031, steps of 1/255,
random targets) succeeds on 100 % of the ImageNet images of ResNet-50 and DenseNet-169. Each
natural-image model and each stand-in (``shapes``, the photographs) is held to it as a rate claim
(:data:`FRAGILITY_CLAIM`): paper value 1.0, tolerance 0.01 (the rule's ">= 99 %", fixed with the
rule before any model was measured), no-effect reference 0 (an image the model classifies correctly
reaches a random other class with rate 0 when nothing is done to it). Digit models (``mnist``,
``digits``) are not held to it: they stand in for no natural-image model, and PGD at 8/255 barely
moves them; they are measured at 8/255 and at MNIST's customary budget eps = 0.3 and shown as
measurements.
"""
from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .. import claims
from ..data import DataNotFound, FewerCorrect, get_dataset
from ..data.base import Batch, ImageDataset
from ..data.photos import LEFT_OUT, PHOTOS
from ..errors import EmptySelection
from ..models import get_model

__all__ = ["embedded_data", "data_table", "sample_batch", "image_attributes", "class_table", "generation_rate",
           "photo_labels", "real_data", "REAL_SPLITS", "TestSets", "model_accuracy", "photo_predictions",
           "PhotoPredictions", "FRAGILITY_CLAIM", "DIGIT_DATASETS", "fragility", "Fragility", "fragility_text"]


# --------------------------------------------------------------------------- data sets


def embedded_data(shapes_train_n: int) -> dict[tuple[str, str], ImageDataset]:
    """The embedded data sets by ``(name, split)``; ``shapes_train_n`` sizes the shapes training split
    (the split the shapes models are trained on). MNIST is read from the files ``advxai fetch mnist``
    placed in the cache (or ``$ADVXAI_MNIST``); without them its loader says how to fetch them."""
    return {
        ("mnist", "train"): get_dataset("mnist", "train"),
        ("mnist", "test"): get_dataset("mnist", "test"),
        ("digits", "train"): get_dataset("digits", "train"),
        ("digits", "test"): get_dataset("digits", "test"),
        ("shapes", "train"): get_dataset("shapes", "train", n=shapes_train_n),
        ("shapes", "test"): get_dataset("shapes", "test"),
        ("photos", "test"): get_dataset("photos", "test"),
    }


def data_table(data: dict[tuple[str, str], ImageDataset]) -> pd.DataFrame:
    """One row per data set and split: images, classes, image size, attributes, annotations."""
    return pd.DataFrame([ds.describe() for ds in data.values()])


def sample_batch(dataset: ImageDataset, n: int, seed: int = 0) -> Batch:
    """``n`` images of ``dataset`` drawn by ``seed``, balanced over classes (for a grid)."""
    return dataset.batch(dataset.sample_indices(n, seed=seed))


# --------------------------------------------------------------------------- shapes


def image_attributes(shapes: ImageDataset, batch: Batch, k: int = 0) -> pd.DataFrame:
    """The attributes image ``k`` of ``batch`` has, beside the value its class prescribes per group."""
    from ..data.shapes import GROUPS, class_codes

    present = [name for name, v in zip(shapes.attribute_names, batch.attributes[k]) if v > 0]
    code = class_codes(shapes.num_classes)[int(batch.y[k])]
    class_values = [f"has_{g}::{values[int(code[i])]}" for i, (g, _, values) in enumerate(GROUPS)]
    return pd.DataFrame({"image attribute": present, "class attribute": class_values,
                         "same": [a == c for a, c in zip(present, class_values)]})


def class_table(shapes: ImageDataset) -> pd.DataFrame:
    """One row per shapes class: its value in each attribute group."""
    from ..data.shapes import GROUPS, class_codes

    codes = class_codes(shapes.num_classes)
    return pd.DataFrame(
        [[values[int(codes[c, i])] for i, (_, _, values) in enumerate(GROUPS)] for c in range(shapes.num_classes)],
        columns=[g for g, _, _ in GROUPS], index=shapes.classes).reset_index(names="class")


def generation_rate(n_images: int, seed: int = 0) -> dict:
    """Seconds to generate ``n_images`` shapes images on one thread, and the images per minute.

    The rate is stated per core, so the generator runs on one thread whatever the process uses
    (restored afterwards)."""
    from ..data.shapes import generate

    if not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        generate(n_images, "val", seed=seed)
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return {"images": n_images, "seconds": seconds, "per_minute": n_images / seconds * 60}


# --------------------------------------------------------------------------- photographs


def photo_labels(photos: ImageDataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The photographs with their human ImageNet labels and why, and the photographs left out and why."""
    labels = pd.DataFrame({"photo": [p.name for p in PHOTOS], "from": [p.package for p in PHOTOS],
                           "ImageNet label": [f"{p.label} {photos.classes[p.label]}" for p in PHOTOS],
                           "why": [p.note for p in PHOTOS]})
    left_out = pd.DataFrame({"left out": list(LEFT_OUT), "why": list(LEFT_OUT.values())})
    return labels, left_out


# --------------------------------------------------------------------------- real data sets

# The splits each real data set is described by (the ones its loader offers).
REAL_SPLITS = {"imagenet": ("train", "val"), "cub": ("train", "test"), "cifar10": ("train", "test"),
               "awa2": ("train", "val", "test"), "mnist": ("train", "test")}


def real_data(names: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The real data sets ``names`` (see :data:`REAL_SPLITS`), one row per split whose folder is set.

    A data set whose folder is missing (or not in the expected layout) gets one row saying so, and
    its loader's message, which names the environment variable and the layout, is returned by name
    (``{name: message}``) for the chapter to print: a missing folder is reported, not raised."""
    unknown = sorted(set(names) - set(REAL_SPLITS))
    if unknown:
        raise ValueError(f"no real data set {unknown}; valid: {sorted(REAL_SPLITS)}")
    rows, missing = [], {}
    for name in names:
        try:
            described = [get_dataset(name, split).describe() for split in REAL_SPLITS[name]]
        except DataNotFound as err:
            missing[name] = str(err)
            # the message's first sentences say what is missing; the layout after them is printed apart
            why = str(err).split("Expected layout")[0].strip()
            rows.append({"data set": name, "split": "-", "folder": f"missing: {why}"})
            continue
        rows += [{**d, "folder": "found"} for d in described]
    columns = ["data set", "split", "images", "classes", "size", "attributes", "annotations", "folder"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["images"] = table["images"].astype("Int64")
    table["classes"] = table["classes"].astype("Int64")
    table["attributes"] = table["attributes"].astype("Int64")
    return table, missing


# --------------------------------------------------------------------------- models


class TestSets:
    """The held-out split each model is measured on, chosen by the model's data set.

    ``fixed`` maps a data set name (``model.info.dataset``: ``mnist``, ``digits``, ``shapes``) to its
    split. ImageNet models are measured on ``imagenet``: ``"photos"`` (the embedded photographs) or
    ``"imagenet"`` (a local validation split, ``$ADVXAI_IMAGENET``), loaded at each model's own input
    size (Inception-v3 at 299 px, the others at 224) and kept per size."""

    IMAGENET_SOURCES = ("photos", "imagenet")

    def __init__(self, fixed: dict[str, ImageDataset], imagenet: str = "photos"):
        if imagenet not in self.IMAGENET_SOURCES:
            raise ValueError(f"imagenet must be one of {self.IMAGENET_SOURCES}, got {imagenet!r}")
        self.fixed, self.imagenet = dict(fixed), imagenet
        self._by_size: dict[int, ImageDataset] = {}

    def for_model(self, model) -> ImageDataset:
        dataset = model.info.dataset
        if dataset == "imagenet":
            size = int(model.info.input_size[-1])
            if size not in self._by_size:
                split = "test" if self.imagenet == "photos" else "val"
                self._by_size[size] = get_dataset(self.imagenet, split, image_size=size)
            return self._by_size[size]
        if dataset not in self.fixed:
            raise ValueError(f"no test set for {model.info.name}, a model of {dataset!r}; "
                             f"test sets given for {sorted([*self.fixed, 'imagenet'])}")
        return self.fixed[dataset]


def _accuracy(model, ds: ImageDataset, index: torch.Tensor, chunk: int = 256) -> float:
    """Top-1 accuracy on ``index``, loading ``chunk`` images at a time (a file-backed split does not fit
    in memory at once)."""
    correct = 0
    for s in range(0, len(index), chunk):
        b = ds.batch(index[s:s + chunk])
        pred, _ = model.predict(b.x)
        correct += int((pred.cpu() == b.y).sum())
    return correct / len(index)


def model_accuracy(models: list[str], test_sets: TestSets | dict[str, ImageDataset], train_budget: str = "full",
                   device: str = "cpu", timings=None, n: int | None = None,
                   seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Each model's accuracy on the held-out split of the data set it was trained for.

    ``test_sets``: a :class:`TestSets` (a plain ``{data set: split}`` dict is wrapped in one).
    ``n``: measure on a seeded sample of that many images, stratified over classes (for ImageNet's
    50,000 validation images); ``None`` or at least the split's size: the whole split. Returns one
    row per model and the loaded models by name. Models trained here are trained on first use
    (``train_budget``)."""
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if not isinstance(test_sets, TestSets):
        test_sets = TestSets(test_sets)
    rows, loaded = [], {}
    for name in models:
        with (timings(f"model {name}") if timings is not None else nullcontext()):
            model = get_model(name, device=device, train_budget=train_budget)
            loaded[name] = model
            ds = test_sets.for_model(model)
            index = ds.sample_indices(n, seed=seed)
            whole = len(index) == len(ds)
            rows.append({"model": name, "test set": f"{ds.name} {ds.split}", "images": len(index),
                         "of": len(ds), "test accuracy": _accuracy(model, ds, index),
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "input": "x".join(map(str, model.info.input_size)), "CAM layer": model.info.cam_layer,
                         "weights": model.info.weights + ("" if whole else f"; a stratified sample, seed {seed}")})
    return pd.DataFrame(rows), loaded


# --------------------------------------------------------------------------- fragility

# Data sets of handwritten digits: their models stand in for no natural-image model and are not held
# to the natural-image rule; MNIST's customary budget is measured beside 8/255 for them.
DIGIT_DATASETS = ("mnist", "digits")

FRAGILITY_CLAIM = {
    "claim": "targeted PGD at eps = 8/255 fools the model on every correctly classified image",
    "paper": 1.0,  # ADV² Table 3: PGD's ASR is 100 % on ResNet-50 and on DenseNet-169
    "tolerance": 0.01,  # the design rule's ">= 99 %", fixed before any model was measured
    "no_effect": 0.0,  # an unattacked, correctly classified image never shows a random other class
    "section": "ADV² Sec. 4 Table 3 (PGD, ASR 100 %); Appendix B1 (eps = 0.031, steps of 1/255)",
    "setting": "ImageNet, ResNet-50 and DenseNet-169, targeted PGD",
    "paper_n": 1000,  # ADV² Sec. 4: 1,000 correctly classified validation images per classifier
}


@dataclass
class Fragility:
    """The fragility of each model: ``table`` (one row per model and budget: rate, its Wilson
    interval, n, eps, steps), the ``claims`` of the models held to the natural-image rule, and the
    raw results (:class:`~advxai.models.fragility.FragilityResult`, one per row that was measured)."""

    table: pd.DataFrame
    claims: list
    results: list = field(repr=False, default_factory=list)


def _role(dataset: str) -> str:
    if dataset in DIGIT_DATASETS:
        return "digits (no natural-image stand-in)"
    if dataset == "imagenet":
        return "natural images"
    return "stands in for natural images"


def fragility(models: dict, test_sets: TestSets, n: int, *, eps: float = 8 / 255, digit_eps: float | None = 0.3,
              alpha: float = 1 / 255, steps: int = 160, seed: int = 0, accuracy: dict[str, float] | None = None,
              batch_size: int = 64, timings=None) -> Fragility:
    """Targeted PGD (L-inf, no random start, ``steps`` steps of ``alpha``, a random target per image)
    on ``n`` correctly classified test images of each model in ``models`` (name -> classifier).

    Every model is attacked at ``eps``; digit models (:data:`DIGIT_DATASETS`) also at ``digit_eps``
    (MNIST's customary 0.3; ``None``: not). Images: :func:`advxai.data.sample_correct` on the model's
    test split (fewer when fewer are correct, as the photographs are: the table's ``asked`` column
    says so). A model with no correctly classified image gets an empty row and a claim *not measured*.
    ``accuracy`` (model -> test accuracy) is shown beside each rate. Models not of a digit data set are
    held to :data:`FRAGILITY_CLAIM` at ``eps``. ``batch_size``: images per forward pass, both while
    looking for correctly classified images and while attacking (the draw does not depend on it)."""
    from ..models.fragility import targeted_pgd_success

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if digit_eps is not None and not 0 < digit_eps <= 1:
        raise ValueError(f"digit_eps must be in (0, 1] or None, got {digit_eps!r}")
    accuracy = accuracy or {}
    rows, records, results = [], [], []
    for name, model in models.items():
        ds = test_sets.for_model(model)
        dataset = model.info.dataset
        budgets = [eps] + ([digit_eps] if dataset in DIGIT_DATASETS and digit_eps is not None else [])
        for e in budgets:
            row = {"model": name, "role": _role(dataset), "test set": f"{ds.name} {ds.split}",
                   "test accuracy": accuracy.get(name, float("nan")), "eps": float(e),
                   "eps (x255)": round(float(e) * 255, 2), "steps": steps, "alpha": float(alpha), "asked": n}
            try:
                with (timings(f"PGD {name} eps {e:.3g}") if timings is not None else nullcontext()), \
                        warnings.catch_warnings():
                    # fewer correct images than asked (the photographs): the table's n says it
                    warnings.simplefilter("ignore", FewerCorrect)
                    res = targeted_pgd_success(model, ds, n, eps=e, alpha=alpha, steps=steps, seed=seed,
                                               batch_size=batch_size)
            except EmptySelection as err:
                rows.append({**row, "n": 0, "reached target": 0, "success rate": float("nan"),
                             "low": float("nan"), "high": float("nan")})
                if dataset not in DIGIT_DATASETS and e == eps:
                    records.append(_fragility_claim(name, ds, dataset, None, reason=err.reason))
                continue
            results.append(res)
            rows.append({**row, "n": res.n, "reached target": res.count, "success rate": res.rate,
                         "low": res.interval[0], "high": res.interval[1]})
            if dataset not in DIGIT_DATASETS and e == eps:
                records.append(_fragility_claim(name, ds, dataset, res))
    return Fragility(pd.DataFrame(rows), records, results)


def _fragility_claim(name: str, ds: ImageDataset, dataset: str, res, reason: str = ""):
    c = FRAGILITY_CLAIM
    setting = claims.Setting(c["setting"], data=ds.name, model=name, paper_data="imagenet",
                             paper_model=("resnet50", "densenet169"), paper_n=c["paper_n"])
    kw = dict(paper=c["paper"], tolerance=c["tolerance"], no_effect=c["no_effect"], section=c["section"])
    if res is None:
        return claims.not_measured(c["claim"], setting, reason, **kw)
    return claims.rate(c["claim"], setting, res.count, res.n, **kw)


def fragility_text(table: pd.DataFrame, eps: float = 8 / 255) -> str:
    """A paragraph saying, from the measured table, how fragile each kind of model is at ``eps``."""
    def part(rows: pd.DataFrame) -> str:
        return ", ".join(f"{r.model} {r['reached target']}/{r.n}" for _, r in rows.iterrows())

    measured = table[table["n"] > 0]
    at = measured[np.isclose(measured["eps"], eps)]
    natural = at[~at["role"].str.startswith("digits")]
    digits = at[at["role"].str.startswith("digits")]
    wide = measured[measured["role"].str.startswith("digits") & ~np.isclose(measured["eps"], eps)]
    out = []
    if len(natural):
        weakest = natural.loc[natural["low"].idxmin()]
        out.append(f"At eps = {eps * 255:.0f}/255 targeted PGD reached its target on {part(natural)} "
                   f"correctly classified images of the natural-image models and their stand-ins: "
                   f"{natural['success rate'].min():.1%} at the lowest; the lowest end of a 95 % interval is "
                   f"{weakest.model}'s {weakest['low']:.1%} (n = {weakest.n}).")
    if len(digits):
        fragile = digits[digits["success rate"] >= 0.99]
        verdict = ("none of them is as fragile as a natural-image model at this budget" if not len(fragile) else
                   "they are as fragile as a natural-image model at this budget" if len(fragile) == len(digits)
                   else f"only {', '.join(fragile['model'])} is as fragile as a natural-image model at this budget")
        out.append(f"The same attack reached its target on {part(digits)} images of the digit models: {verdict}.")
    if len(wide):
        e = wide["eps"].iloc[0]
        out.append(f"At MNIST's customary eps = {e:g} it reached {part(wide)}.")
    return " ".join(out)


@dataclass
class PhotoPredictions:
    """The top-k classes of each photograph: ``table`` (one row per photograph and rank), the counts
    ``top1`` and ``topk`` of photographs whose human label is first / among the k, and per photograph
    the ``titles`` and ``lines`` (its classes and probabilities) of its panel."""

    table: pd.DataFrame
    top1: int
    topk: int
    n: int
    k: int
    lines: list[str]
    titles: list[str]


def photo_predictions(model, photos: ImageDataset, k: int = 5) -> PhotoPredictions:
    """Every photograph through ``model``: its top ``k`` classes and probabilities, the human label
    marked with an asterisk when it is among them."""
    if not isinstance(k, int) or not 1 <= k <= photos.num_classes:
        raise ValueError(f"k must be an integer in [1, {photos.num_classes}], got {k!r}")
    px = photos.batch(torch.arange(len(photos)))
    _, probs = model.predict(px.x)
    top = probs.cpu().topk(k, dim=1)
    rows, lines, titles = [], [], []
    top1 = topk = 0
    for i in range(len(photos)):
        label = int(px.y[i])
        text = []
        for rank, (p, c) in enumerate(zip(top.values[i].tolist(), top.indices[i].tolist()), start=1):
            mark = "* " if c == label else "   "
            text.append(f"{mark}{photos.classes[c][:22]} {p:.2f}")
            rows.append({"photo": PHOTOS[i].name, "rank": rank, "class": photos.classes[c], "probability": p,
                         "is label": c == label})
        top1 += int(top.indices[i, 0] == px.y[i])
        topk += int((top.indices[i] == px.y[i]).any())
        lines.append("\n".join(text))
        titles.append(f"{PHOTOS[i].name} (label: {photos.classes[label]})")
    return PhotoPredictions(pd.DataFrame(rows), top1, topk, len(photos), k, lines, titles)
