"""Chapter 5: Gulshad et al., *Interpreting Adversarial Examples with Attributes* -- the experiments.

A classifier (the paper: ResNet-152 fine-tuned on CUB, AwA2 and LAD; the book: the embedded
``shapes`` ResNet) is attacked with I-FGSM; a structured joint embedding (SJE) on its penultimate
features predicts attributes and a class; adversarially trained copies get their own SJE. One
function per part of the paper, each run for every (data set, model) pair of the chapter:

* :func:`prepare` -- §4's setup: the classifier, SJE, the adversarially trained copies and the images;
* :func:`accuracy_under_attack` -- Fig. 4: softmax and SJE accuracy, clean and under I-FGSM, with and
  without adversarial training;
* :func:`distances` -- Fig. 5 a-d: how far predicted attributes move;
* :func:`grounding` -- Figs. 6-7: attributes selected by Eqs. 16-17, grounded, and localised by Grad-CAM;
* :func:`paper_claims` -- every claim of the paper beside ours (:data:`PAPER_CLAIMS`);
  :func:`accuracy_observations`, :func:`distance_observations`, :func:`grounding_observations` -- the
  sentences of the chapter that depend on the run.

The algorithms live in :mod:`advxai.attributes`.

**Images.** Two draws from the test split, by seed. Clean accuracy (Fig. 4's red and green curves,
SJE against softmax on clean images, the clean cost of adversarial training) is measured on
``n_clean`` images drawn at random, stratified over classes (the whole split with 0, as the paper
measures): images the model gets wrong must count there. Everything that attacks is measured on
``n_eval`` images drawn by :func:`advxai.data.sample_correct` among those the standard classifier
labels correctly, so that an adversarial accuracy is the share of correct labels an attack leaves
(the paper's Fig. 4 counts over the whole split; on images the model already gets wrong the two
differ by the clean error). The distance and grounding analyses then keep, as the paper does,
the images SJE classifies correctly when clean and wrongly when attacked. SJE learns from
``n_sje_train`` training images drawn the same stratified way; training and test splits are disjoint.

**Claims** (:data:`PAPER_CLAIMS`), all decided by :mod:`advxai.claims`. Most of the paper's findings
are read off its figures or stated in words, so they are inequalities with the paper's sign (``> 0``
for "SJE is more accurate", ``> 0.5`` for "for most images"). Values where the paper gives one:
tolerances were chosen before any result was seen, from the kind of number: accuracies and
differences of accuracies read off a figure, 0.10 (the paper gives no run-to-run spread, so one
tenth of the scale); a claim that two accuracies are *on par* ("SJE and softmax accuracies are on
par"), 0.05 (the paper calls the differences it sees at most "slight"). No-effect reference: 0 for
a difference (no change). Per-image estimators: the same images under two settings are a paired
bootstrap over images (:func:`advxai.claims.paired_difference`), a share of images a Wilson
interval, two independent groups Newcombe's interval. Claims the paper makes for one data set
only are measured on that data set; ``shapes`` stands in for AwA2 (:data:`STANDS_FOR`: 20 classes
that differ in at least 3 of 7 attribute groups are a coarse data set in the paper's sense), so a
claim about CUB alone is *not measured* in a run without CUB.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import claims as C
from ..attacks import check_budget
from ..attacks.store import random_targets
from ..attributes import PANELS, SJEConfig, attribute_distances
from ..attributes.pipeline import Embedded, default_detector, embed, fit_sje, select_and_ground
from ..errors import EmptySelection

__all__ = ["ATTRIBUTE_DATASETS", "STANDS_FOR", "CONDITIONS", "SWEEP", "PAPER_CLAIMS", "SECTIONS", "Robust", "Setup",
           "Attacks", "Distances", "Grounding", "check_parameters", "prepare", "setup_tables",
           "accuracy_under_attack", "distances", "grounding", "example_rows", "paper_claims", "claims_summary",
           "accuracy_observations", "distance_observations", "grounding_observations"]

# The data sets with class attribute vectors SJE can learn, and whether they are read from a folder.
ATTRIBUTE_DATASETS = {"shapes": "embedded", "cub": "folder", "awa2": "folder"}
# The paper's data set a stand-in is compared with, where the paper's claims differ by data set.
STANDS_FOR = {"shapes": "awa2"}
PAPER_SETTINGS = {"cub": "CUB-200-2011, ResNet-152", "awa2": "AwA2, ResNet-152"}
PAPER_TEST_IMAGES = {"cub": 5794, "awa2": 9517}  # the paper's test splits (its §4, "Datasets")
MODES = ("untargeted", "targeted")
CLASSIFIERS = ("softmax", "sje")
# Grounding conditions (their Fig. 6 rows), in the order the figure shows them.
CONDITIONS = ("clean (untargeted pairs)", "adversarial, untargeted", "clean (targeted pairs)", "adversarial, targeted",
              "adversarial with AT, untargeted")
SWEEP = (0.3, 0.5, 0.7, 0.9)  # Grad-CAM box thresholds of the sweep table
# The chapter's section headings (the summary links each claim to the section that measured it).
SECTIONS = {"fig4": "Softmax vs SJE under attack (their Fig. 4)",
            "fig5": "How far predicted attributes move (their Fig. 5 a–d)",
            "fig67": "Attributes ranked and grounded (their Figs. 6–7)"}


def _stage(timings, name: str):
    return timings(name) if timings is not None else contextlib.nullcontext()


def check_parameters(datasets: Sequence[str], models: Sequence[str], epsilons: Sequence[float],
                     at_epsilons: Sequence[float], analysis_eps: float, dataset_roots: Sequence[str] = ()) -> None:
    """Fail before any work: data sets with attributes, one model per data set, budgets in (0, 1],
    ``analysis_eps`` among the attacked (and adversarially trained) budgets."""
    if not datasets:
        raise ValueError("datasets is empty: give at least one data set with attributes "
                         f"({', '.join(ATTRIBUTE_DATASETS)})")
    unknown = [d for d in datasets if d not in ATTRIBUTE_DATASETS]
    if unknown:
        raise ValueError(f"data sets {unknown} have no class attribute vectors; valid: {', '.join(ATTRIBUTE_DATASETS)}")
    if len(set(datasets)) != len(datasets):
        raise ValueError(f"datasets lists a data set twice: {list(datasets)}")
    if len(models) != len(datasets):
        raise ValueError(f"models must name one classifier per data set: {len(datasets)} data sets {list(datasets)}, "
                         f"{len(models)} models {list(models)}")
    if dataset_roots and len(dataset_roots) != len(datasets):
        raise ValueError(f"dataset_roots must be empty or hold one folder per data set ('' for the adapter's "
                         f"environment variable): {len(datasets)} data sets, {len(dataset_roots)} folders")
    from ..models.embedded import TRAINED

    for d, m in zip(datasets, models):
        if m in TRAINED and TRAINED[m].dataset != d:
            raise ValueError(f"{m} is trained here on {TRAINED[m].dataset}, not {d}")
    if not epsilons:
        raise ValueError("epsilons is empty: give the I-FGSM budgets to attack with")
    for e in [*epsilons, *at_epsilons]:
        check_budget("every ε in epsilons and at_epsilons", e)  # fails when out of (0, 1]
    if at_epsilons and analysis_eps not in at_epsilons:
        raise ValueError(f"analysis_eps={analysis_eps} must be one of at_epsilons={list(at_epsilons)} "
                         f"(it needs that model)")
    if analysis_eps not in epsilons:
        raise ValueError(f"analysis_eps={analysis_eps} must be one of epsilons={list(epsilons)}")


# --------------------------------------------------------------------------- setup (their §4)


@dataclass
class Robust:
    """An adversarially trained copy of the classifier and its own SJE, on the attacked images
    (``clean``) and on the clean-accuracy images (``clean_all``)."""

    model: object
    sje: object
    sje_history: list[dict]
    clean: Embedded
    clean_all: Embedded


@dataclass
class Setup:
    """One (data set, model) pair: the splits, the classifier and its SJE, the two image draws.

    ``clean_index``/``clean_all``: the clean-accuracy images and both classifiers on them;
    ``eval_index``, ``x``, ``y``, ``clean``: the images the attacks start from (labelled correctly
    by the softmax classifier). ``empty`` says why there are none, when there are none."""

    dataset: str
    model_name: str
    train: object
    test: object
    net: object
    sje: object
    sje_history: list[dict]
    clean_index: torch.Tensor
    clean_all: Embedded
    eval_index: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    clean: Embedded
    robust: dict[float, Robust] = field(default_factory=dict)
    empty: str = ""

    @property
    def clean_y(self) -> torch.Tensor:
        return self.test.labels[self.clean_index]


def _data_kwargs(dataset: str, root: str, image_size: int) -> dict:
    """The folder loader's keywords; ``image_size`` 0 is the loader's own (``$ADVXAI_IMAGE_SIZE``, else 224)."""
    if ATTRIBUTE_DATASETS[dataset] != "folder":
        return {}
    return {"image_size": image_size or None, **({"root": root} if root else {})}


def _classifier(dataset, model, test, *, device, train_budget, model_weights, data_kwargs, finetune_epochs,
                finetune_lr, batch_size, seed, timings):
    """The embedded model as trained here, or a pretrained network with a new head fine-tuned on the data set."""
    from ..defenses.adversarial_training import fine_tuned_model
    from ..models import get_model
    from ..models.embedded import TRAINED

    if model in TRAINED:
        return get_model(model, device=device, train_budget=train_budget)
    net = get_model(model, device=device, weights=model_weights)
    if net.info.num_classes != test.num_classes:
        with _stage(timings, "fine-tuning the pretrained model"):
            net = fine_tuned_model(model, dataset, device=device, weights=model_weights, dataset_kwargs=data_kwargs,
                                   clean_epochs=finetune_epochs, clean_lr=finetune_lr, batch_size=batch_size,
                                   seed=seed)
    return net


def _robust(dataset, model, eps, *, device, train_budget, model_weights, data_kwargs, finetune_epochs, finetune_lr,
            at_steps, at_epochs, at_n_train, batch_size, seed):
    """The classifier adversarially trained at ``eps`` (PGD, (clean + adversarial) / 2; cached)."""
    from ..defenses.adversarial_training import fine_tuned_model, robust_model
    from ..models.embedded import TRAINED

    if model in TRAINED:
        return robust_model(model, eps, train_budget=train_budget, device=device, steps=at_steps, epochs=at_epochs,
                            n_train=at_n_train or None, seed=seed)
    return fine_tuned_model(model, dataset, eps=eps, device=device, weights=model_weights, dataset_kwargs=data_kwargs,
                            clean_epochs=finetune_epochs, clean_lr=finetune_lr, steps=at_steps, epochs=at_epochs,
                            n_train=at_n_train or None, batch_size=batch_size, seed=seed)


def _embed_index(model, sje, dataset, index: torch.Tensor, batch_size: int = 256) -> Embedded:
    """Both classifiers on images ``index`` of ``dataset``, loaded a batch at a time (images not kept)."""
    parts = [embed(model, sje, dataset.load_images(index[s:s + batch_size]), batch_size, keep_images=False)
             for s in range(0, len(index), batch_size)]
    if not parts:
        return Embedded(None, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                        torch.zeros(0, sje.num_attributes))
    return Embedded(None, torch.cat([p.softmax_pred for p in parts]), torch.cat([p.sje_pred for p in parts]),
                    torch.cat([p.z for p in parts]))


def prepare(datasets: Sequence[str], models: Sequence[str], *, device: str = "cpu", train_budget: str = "full",
            dataset_roots: Sequence[str] = (), image_size: int = 224, model_weights: str = "imagenet",
            finetune_epochs: int = 10, finetune_lr: float = 1e-3, n_sje_train: int = 2000, n_clean: int = 0,
            n_eval: int = 200, sje_epochs: int = 10, sje_lr: float = 0.01, sje_margin: float = 1.0,
            at_epsilons: Sequence[float] = (), at_steps: int = 5, at_epochs: int = 3, at_n_train: int = 2000,
            batch_size: int = 100, seed: int = 0, timings=None) -> list[Setup]:
    """The paper's setup (§4 "Image features and adversarial examples", "Attribute prediction") per data set.

    The classifier (an embedded model, or a pretrained one fine-tuned on the data set's training
    split at ``image_size``), SJE trained on ``n_sje_train`` training images' penultimate features
    (the paper's per-sample update, batch 1, margin ``sje_margin``), and for every budget in
    ``at_epsilons`` an adversarially trained copy with its own SJE (their "features extracted from
    this model are used for training SJE"). Images: see the module's docstring. A data set whose
    classifier labels no test image correctly gets no attacked images (``Setup.empty`` says why);
    every claim resting on them is then *not measured*.
    """
    from ..data import get_dataset, sample_correct

    roots = list(dataset_roots) or [""] * len(datasets)
    sje_config = SJEConfig(epochs=sje_epochs, lr=sje_lr, margin=sje_margin, batch_size=1, seed=seed)
    setups = []
    for dataset, model, root in zip(datasets, models, roots):
        data_kwargs = _data_kwargs(dataset, root, image_size)
        common = dict(device=device, train_budget=train_budget, model_weights=model_weights, data_kwargs=data_kwargs,
                      finetune_epochs=finetune_epochs, finetune_lr=finetune_lr, batch_size=batch_size, seed=seed)
        with _stage(timings, "data and models"):
            train = get_dataset(dataset, "train", **({"n": n_sje_train} if dataset == "shapes" else data_kwargs))
            test = get_dataset(dataset, "test", **data_kwargs)
            net = _classifier(dataset, model, test, timings=timings, **common)
            clean_index = test.sample_indices(n_clean or None, seed=seed)
            empty = ""
            try:
                eval_index = sample_correct(test, net, n_eval, seed, batch_size=batch_size)
            except EmptySelection as exc:
                eval_index, empty = torch.zeros(0, dtype=torch.long), str(exc)
            batch = test.batch(eval_index) if len(eval_index) else None
        x = batch.x if batch is not None else torch.zeros(0, *test.image_shape)
        y = batch.y if batch is not None else torch.zeros(0, dtype=torch.long)
        with _stage(timings, "SJE (standard model)"):
            sje, history = fit_sje(net, train, train.sample_indices(n_sje_train, seed=seed), sje_config)
        with _stage(timings, "clean images"):
            setup = Setup(dataset, model, train, test, net, sje, history, clean_index,
                          _embed_index(net, sje, test, clean_index, batch_size), eval_index, x, y,
                          embed(net, sje, x), empty=empty)
        for eps in at_epsilons:
            with _stage(timings, "adversarial training"):
                m_at = _robust(dataset, model, eps, at_steps=at_steps, at_epochs=at_epochs, at_n_train=at_n_train,
                               **common)
            with _stage(timings, "SJE (adversarially trained models)"):
                s_at, h_at = fit_sje(m_at, train, train.sample_indices(n_sje_train, seed=seed), sje_config)
            with _stage(timings, "clean images"):
                setup.robust[eps] = Robust(m_at, s_at, h_at, embed(m_at, s_at, x),
                                           _embed_index(m_at, s_at, test, clean_index, batch_size))
        setups.append(setup)
    return setups


def setup_tables(setups: Sequence[Setup]) -> dict[str, pd.DataFrame]:
    """The data sets, each classifier with its SJE on the clean-accuracy images, and the adversarial
    fine-tuning's loss and accuracy per epoch."""
    data = pd.DataFrame([s.train.describe() for s in setups] + [s.test.describe() for s in setups])
    rows = []
    for s in setups:
        for training, eps, emb, hist in [("standard", None, s.clean_all, s.sje_history)] + [
                ("adversarial", e, r.clean_all, r.sje_history) for e, r in s.robust.items()]:
            rows.append({"data set": s.dataset, "model": s.model_name, "training": training, "AT ε": eps,
                         "clean images": len(s.clean_index), "softmax accuracy": emb.accuracy(s.clean_y, "softmax"),
                         "SJE accuracy": emb.accuracy(s.clean_y, "sje"),
                         "SJE training accuracy": hist[-1]["train_accuracy"],
                         "attacked images (softmax correct)": len(s.eval_index)})
    history = pd.DataFrame([{"data set": s.dataset, "trained at eps": e, **h} for s in setups
                            for e, r in s.robust.items() for h in r.model.info.notes["at_history"]])
    return {"data": data, "models": pd.DataFrame(rows), "adversarial training": history}


# --------------------------------------------------------------------------- Fig. 4


@dataclass
class Attacks:
    """Fig. 4: ``table`` has one row per data set x mode x ε x training x classifier (accuracy on the
    clean-accuracy images and on the attacked ones); ``per_image`` one row per attacked image of
    each of those settings (correct or not); ``embedded`` holds both classifiers' view of every
    attacked set, keyed ``(data set, training, mode, ε)``, the images only at the budget kept."""

    table: pd.DataFrame
    per_image: pd.DataFrame
    embedded: dict[tuple, Embedded]

    def get(self, dataset: str, mode: str, eps: float, training: str = "standard") -> Embedded:
        return self.embedded[(dataset, training, mode, eps)]

    def correct(self, dataset: str, mode: str, eps: float, training: str, classifier: str) -> np.ndarray:
        """Per attacked image (in ``eval_index`` order): is it labelled correctly after the attack?"""
        d = self.per_image
        d = d[(d["dataset"] == dataset) & (d["mode"] == mode) & (d["eps"] == eps) & (d["training"] == training)
              & (d["classifier"] == classifier)]
        return d["adversarial"].to_numpy(bool)


def _ifgsm(model, sje, x, y, eps, targeted, *, steps, seed, batch_size, key, keep_images, cache):
    """I-FGSM on the engine (cached per shard unless ``cache`` is off), then both classifiers on the result."""
    from ..engine import AttackFactory, map_attack

    target = random_targets(y, model.info.num_classes, seed) if targeted else None
    factory = AttackFactory("bim", {"eps": eps, "steps": steps, "targeted": targeted, "batch_size": batch_size})
    result = map_attack(factory, model, x, y, target, key=key, cache=cache, desc=f"I-FGSM ε={eps:g} on {key['name']}")
    return embed(model, sje, result.x_adv.cpu(), target=target, keep_images=keep_images)


def accuracy_under_attack(setups: Sequence[Setup], epsilons: Sequence[float], *, steps: int = 10,
                          batch_size: int | None = None, seed: int = 0, keep_images_at: float | None = None,
                          cache: bool = True, timings=None) -> Attacks:
    """Fig. 4: softmax and SJE accuracy on clean and I-FGSM images, with and without adversarial training.

    I-FGSM (``steps`` steps of ε/``steps``, untargeted, or targeted at a random class drawn with
    ``seed``) attacks the softmax classifier (white box); SJE reads the features of the same
    adversarial images (attacked only through them). An adversarially trained model is attacked
    at the budget it was trained for. Attacks run on the current engine (:mod:`advxai.engine`);
    ``cache`` keeps their images in the cache (a rerun loads them), ``keep_images_at`` the budget
    whose images stay in memory for the grounding analysis.
    """
    rows, per_image, embedded = [], [], {}

    def record(s, training, mode, eps, clean_all, adv):
        for clf in CLASSIFIERS:
            rows.append({"dataset": s.dataset, "model": s.model_name, "mode": mode, "eps": eps, "training": training,
                         "classifier": clf, "clean": clean_all.accuracy(s.clean_y, clf),
                         "adversarial": adv.accuracy(s.y, clf) if adv is not None and len(s.y) else np.nan,
                         "clean images": len(s.clean_index), "attacked images": len(s.eval_index)})
            if adv is not None:
                per_image.append(pd.DataFrame({
                    "dataset": s.dataset, "mode": mode, "eps": eps, "training": training, "classifier": clf,
                    "image": s.eval_index.numpy(), "adversarial": adv.correct(s.y, clf).numpy()}))

    for s in setups:
        for mode in MODES:
            for eps in epsilons:
                targeted, keep = mode == "targeted", eps == keep_images_at
                key = {"name": f"ifgsm-{s.model_name}-{s.dataset}", "images": f"{s.dataset}/test", "mode": mode,
                       "eps": eps, "steps": steps, "target_seed": seed}
                a = None
                if len(s.eval_index):
                    with _stage(timings, "I-FGSM (standard model)"):
                        a = _ifgsm(s.net, s.sje, s.x, s.y, eps, targeted, steps=steps, seed=seed,
                                   batch_size=batch_size, key=key, keep_images=keep, cache=cache)
                    embedded[(s.dataset, "standard", mode, eps)] = a
                record(s, "standard", mode, eps, s.clean_all, a)
                if eps in s.robust:
                    r, a_at = s.robust[eps], None
                    if len(s.eval_index):
                        with _stage(timings, "I-FGSM (adversarially trained models)"):
                            a_at = _ifgsm(r.model, r.sje, s.x, s.y, eps, targeted, steps=steps, seed=seed,
                                          batch_size=batch_size, key={**key, "name": key["name"] + "-at"},
                                          keep_images=keep, cache=cache)
                        embedded[(s.dataset, "adversarial", mode, eps)] = a_at
                    record(s, "adversarial", mode, eps, r.clean_all, a_at)
    columns = ["dataset", "mode", "eps", "training", "classifier", "image", "adversarial"]
    per = pd.concat(per_image, ignore_index=True) if per_image else pd.DataFrame(columns=columns)
    return Attacks(pd.DataFrame(rows), per, embedded)


# --------------------------------------------------------------------------- Fig. 5


@dataclass
class Distances:
    """Fig. 5: ``per_image`` one row per (data set, panel, image) with d1 and d2; ``table`` per panel."""

    per_image: pd.DataFrame
    table: pd.DataFrame


def distances(setups: Sequence[Setup], attacks: Attacks, analysis_eps: float, top_fraction: float = 0.2,
              timings=None) -> Distances:
    """Fig. 5 a-d at ε = ``analysis_eps``, untargeted: d1 against d2 per image (see
    :mod:`advxai.attributes.analysis` for the four panels), over the ``top_fraction`` of attributes
    whose predicted value changes most per image; (b) and (d) need the adversarially trained model."""
    per_image, rows = [], []
    with _stage(timings, "distances"):
        for s in setups:
            if not len(s.eval_index):
                continue
            a_std = attacks.get(s.dataset, "untargeted", analysis_eps)
            common = dict(z_clean=s.clean.z, z_adv=a_std.z, pred_adv=a_std.sje_pred, pred_clean=s.clean.sje_pred,
                          fraction=top_fraction)
            if analysis_eps in s.robust:
                r = s.robust[analysis_eps]
                a_at = attacks.get(s.dataset, "untargeted", analysis_eps, "adversarial")
                common.update(z_adv_at=a_at.z, pred_adv_at=a_at.sje_pred, z_clean_at=r.clean.z)
            phi = s.sje.phi.cpu()
            for p in PANELS:
                if p in ("b", "d") and analysis_eps not in s.robust:
                    continue
                d = attribute_distances(p, phi, s.y, **common)
                n = len(d["d1"])
                rows.append({"dataset": s.dataset, "panel": p, "images": n,
                             "mean d1": d["d1"].mean().item() if n else np.nan,
                             "mean d2": d["d2"].mean().item() if n else np.nan,
                             "share d1 < d2": (d["d1"] < d["d2"]).float().mean().item() if n else np.nan,
                             "what": PANELS[p]})
                per_image.append(pd.DataFrame({"dataset": s.dataset, "panel": p,
                                               "image": s.eval_index[d["index"]].numpy(),
                                               "d1": d["d1"].numpy(), "d2": d["d2"].numpy()}))
    columns = ["dataset", "panel", "image", "d1", "d2"]
    per = pd.concat(per_image, ignore_index=True) if per_image else pd.DataFrame(columns=columns)
    return Distances(per, pd.DataFrame(rows))


# --------------------------------------------------------------------------- Figs. 6-7


@dataclass
class Grounding:
    """Figs. 6-7: ``table`` one row per (data set, condition): images, grounded share, Grad-CAM
    scores; ``parts`` and ``sweep`` break Grad-CAM's precision down by part and box threshold (the
    first clean condition of each data set); ``results`` the arrays of each condition (with
    ``index``, the data set indices of its images); ``shown`` the images, labels and selected
    attributes of its first ``n_show`` images; ``skipped`` why a data set was not grounded."""

    table: pd.DataFrame
    parts: pd.DataFrame
    sweep: pd.DataFrame
    results: dict[tuple[str, str], dict]
    shown: dict[tuple[str, str], dict]
    skipped: dict[str, str] = field(default_factory=dict)

    def grounded_share(self, dataset: str, condition: str) -> pd.Series:
        """Per image (indexed by its data set index): the share of its selected attributes grounded."""
        g = self.results[(dataset, condition)]
        return pd.Series(g["grounded"].float().mean(1).numpy(), index=g["index"].numpy())


def _conditions(s: Setup, attacks: Attacks, eps: float) -> dict[str, tuple]:
    """Images correctly classified by SJE when clean and wrongly when attacked; per condition the
    model, its SJE, the positions kept, the images, their Z, the class attribute vector compared
    against (Eqs. 16-17) and the label to print under each image."""
    phi = s.sje.phi.cpu()
    out = {}
    for mode in MODES:
        a = attacks.get(s.dataset, mode, eps)
        keep = ((s.clean.sje_pred == s.y) & (a.sje_pred != s.y)).nonzero().flatten()
        if not len(keep):
            continue
        y_wrong = a.sje_pred[keep]
        out[f"clean ({mode} pairs)"] = (s.net, s.sje, keep, s.x, s.clean.z, phi[y_wrong], s.y[keep])
        out[f"adversarial, {mode}"] = (s.net, s.sje, keep, a.x, a.z, phi[s.y[keep]], y_wrong)
    if eps in s.robust:
        r, a = s.robust[eps], attacks.get(s.dataset, "untargeted", eps)
        a_at = attacks.get(s.dataset, "untargeted", eps, "adversarial")
        keep = ((s.clean.sje_pred == s.y) & (a.sje_pred != s.y) & (a_at.sje_pred == s.y)).nonzero().flatten()
        if len(keep):
            out["adversarial with AT, untargeted"] = (r.model, r.sje, keep, a_at.x, a_at.z, phi[a.sje_pred[keep]],
                                                      s.y[keep])
    return out


def _subsample(keep: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """At most ``n`` of the positions ``keep`` (all with 0), drawn at random by ``seed``, in order."""
    if not n or len(keep) <= n:
        return keep
    g = torch.Generator().manual_seed(int(seed))
    return keep[torch.randperm(len(keep), generator=g)[:n].sort().values]


def grounding(setups: Sequence[Setup], attacks: Attacks, analysis_eps: float, k_ground: int = 5,
              cam_threshold: float = 0.5, n_show: int = 3, n_ground: int = 0, seed: int = 0,
              timings=None) -> Grounding:
    """Figs. 6-7 and grounding precision at ε = ``analysis_eps``.

    Images correctly classified by SJE when clean and wrongly when attacked (at most ``n_ground`` of
    them per condition, drawn at random by ``seed``; all with 0). For a clean image the top
    ``k_ground`` attributes of Z - φ(y) are selected (Eq. 16, y the class its adversarial image goes
    to); for its adversarial image those of Ẑ - φ(y_n) (Eq. 17); for the adversarial image of the
    adversarially trained model (classified correctly) Eq. 16 again. An attribute is grounded when
    the data set's annotations show it (:func:`~advxai.attributes.pipeline.default_detector`; a data
    set without part annotations, AwA2, is skipped with the reason); every selected attribute is also
    localised by Grad-CAM of its SJE score and, where the data set has part boxes, scored against its
    part's box (IoU >= 0.5 counts as a hit).
    """
    rows, part_rows, sweep_rows, results, shown, skipped = [], [], [], {}, {}, {}
    with _stage(timings, "grounding"):
        for s in setups:
            if default_detector(s.test) is None:
                skipped[s.dataset] = (f"{s.dataset} has no per-image attribute or part annotations to ground with "
                                      f"(the paper used a Faster R-CNN trained on Visual Genome)")
                continue
            if not len(s.eval_index):
                skipped[s.dataset] = s.empty
                continue
            conds = _conditions(s, attacks, analysis_eps)
            for name, (m, sje, keep, images, z, other, labels) in conds.items():
                pick = _subsample(keep, n_ground, seed)  # the two conditions of a pair share keep: the same images
                at = torch.searchsorted(keep, pick)
                sub = s.test.batch(s.eval_index[pick])
                g = select_and_ground(m, sje, s.test, sub, images[pick], z[pick], other[at], k_ground,
                                      threshold=cam_threshold, keep_maps=n_show, sweep=SWEEP)
                g["index"] = s.eval_index[pick]
                results[(s.dataset, name)] = g
                shown[(s.dataset, name)] = {"images": images[pick][:n_show], "labels": labels[at][:n_show],
                                            "selected": g["selected"][:n_show], "grounded": g["grounded"][:n_show],
                                            "cam_boxes": g["cam_boxes"][:n_show]}
                row = {"dataset": s.dataset, "images": name, "n images": len(g["selected"]),
                       "grounded (detector)": g["grounded"].float().mean().item()}
                if "iou" in g:
                    row.update({"Grad-CAM peak in part box": g["pointing"].float().mean().item(),
                                "Grad-CAM precision (IoU ≥ 0.5)": g["hit"].float().mean().item(),
                                "mean IoU": g["iou"].mean().item(),
                                "precision on grounded": g["hit"][g["grounded"]].float().mean().item()
                                if g["grounded"].any() else np.nan})
                rows.append(row)
            first = next((n for n in conds if n.startswith("clean")), None)
            if first is None or "iou" not in results[(s.dataset, first)]:
                continue
            g = results[(s.dataset, first)]
            parts = torch.as_tensor(s.test.attribute_parts)[g["selected"]]
            part_rows += [{"dataset": s.dataset, "images": first, "part": s.test.part_names[p],
                           "selected attributes": int((parts == p).sum()),
                           "peak in part box": g["pointing"][parts == p].float().mean().item(),
                           "precision (IoU ≥ 0.5)": g["hit"][parts == p].float().mean().item(),
                           "mean IoU": g["iou"][parts == p].mean().item()}
                          for p in range(len(s.test.part_names)) if (parts == p).any()]
            sweep_rows += [{"dataset": s.dataset, "images": first, "threshold": t,
                            "precision (IoU ≥ 0.5)": iou.ge(0.5).float().mean().item(), "mean IoU": iou.mean().item()}
                           for t, iou in zip(SWEEP, g["sweep_iou"])]
    return Grounding(pd.DataFrame(rows), pd.DataFrame(part_rows), pd.DataFrame(sweep_rows), results, shown, skipped)


def example_rows(setups: Sequence[Setup], ground: Grounding) -> list[tuple[str, list[dict]]]:
    """The rows of the qualitative figure (:func:`advxai.plots.ranked_attributes`): per data set, each
    condition of :data:`CONDITIONS` that has images, its first images with the class each gets
    (an arrow before the wrong class of an adversarial image), the ranked attribute names and whether
    each is grounded."""
    rows = []
    for s in setups:
        for name in CONDITIONS:
            if (s.dataset, name) not in ground.shown:
                continue
            sh = ground.shown[(s.dataset, name)]
            arrow = "→ " if name.startswith("adversarial,") else ""
            title = f"{s.dataset}: {name}" if len(setups) > 1 else name
            rows.append((title, [{"image": sh["images"][i], "label": arrow + s.test.classes[int(sh["labels"][i])],
                                  "attributes": [s.test.attribute_names[j].removeprefix("has_")
                                                 for j in sh["selected"][i].tolist()],
                                  "grounded": sh["grounded"][i].tolist(), "boxes": sh["cam_boxes"][i]}
                                 for i in range(len(sh["images"]))]))
    return rows


# --------------------------------------------------------------------------- the paper's claims

# The paper's claims, as data. ``paper`` per paper data set: "cub", "awa2", "awa2@0.12" (at one
# budget), "cub+awa2" (a comparison of the two), "*" (every data set); a number (with ``tolerance``
# and ``no_effect``) or an inequality. ``kind`` says what is measured (see paper_claims), ``param``
# its panel, budget or attack mode. Tolerances and references: the module's docstring.
PAPER_CLAIMS = pd.DataFrame([
    ("clean-on-par", "fig4", "clean-gap", None, {"*": 0.0}, 0.05, None,
     "SJE is about as accurate as softmax on clean images (SJE − softmax)",
     "§4.1, Fig. 4 (red): on par on AwA, slightly lower on CUB"),
    ("sje-robust-cub", "fig4", "robust-gap", 0.025, {"cub": 0.30}, 0.10, 0.0,
     "SJE is far more accurate than softmax under untargeted I-FGSM at ε = 0.025 (SJE − softmax)",
     "§4.1, Fig. 4 (blue): ≈ 30 points on CUB"),
    ("sje-robust", "fig4", "robust-gap-mean", None, {"awa2": "> 0"}, None, None,
     "SJE is slightly more accurate than softmax under untargeted I-FGSM (SJE − softmax, mean over ε)",
     "§4.1, Fig. 4 (blue): AwA and LAD"),
    ("targeted-milder", "fig4", "targeted-milder", None, {"*": "> 0"}, None, None,
     "targeted attacks lower accuracy less than untargeted ones (softmax; targeted − untargeted, mean over ε)",
     "§4.1: all three data sets"),
    ("at-gain", "fig4", "at-gain", None, {"awa2@0.12": 0.78, "*": "> 0"}, 0.10, 0.0,
     "adversarial training raises accuracy under untargeted I-FGSM at its budget (softmax; AT − standard)",
     "§4.1, Fig. 4 (purple vs blue): AwA at ε = 0.12, ≈ 5 % → 83 %"),
    ("at-cost", "fig4", "at-cost", None, {"awa2@0.12": 0.04, "*": "> 0"}, 0.10, 0.0,
     "adversarial training costs clean accuracy (softmax; standard − AT)",
     "§4.1, Fig. 4 (green vs red): AwA at ε = 0.12, ≈ 93 % → 89 %"),
    ("at-sje", "fig4", "at-sje", None, {"*": "> 0"}, None, None,
     "with adversarial training SJE is more accurate than softmax under untargeted I-FGSM (SJE − softmax)",
     "§4.1, Fig. 4 (dotted purple)"),
    ("fig5a", "fig5", "share", "a", {"awa2": "> 0.5"}, None, None,
     "the clean→adversarial change of the attributes is smaller than the distance between the two classes "
     "(share of images with d1 < d2)", "§4.2, Fig. 5a: AwA and LAD"),
    ("fig5a-fine", "fig5", "share-fine", "a", {"cub+awa2": "> 0"}, None, None,
     "on fine-grained CUB the change reaches the class distance more often than on AwA "
     "(share with d1 < d2, AwA − CUB)", "§4.2, Fig. 5a: CUB's distributions overlap"),
    ("fig5b", "fig5", "share", "b", {"awa2": "> 0.5"}, None, None,
     "adversarial images with vs without adversarial training: d1 < d2 as in (a) (share of images)",
     "§4.2, Fig. 5b: like (a)"),
    ("fig5c", "fig5", "share", "c", {"*": "> 0.5"}, None, None,
     "a misclassified adversarial image's attributes are closer to the wrong class than to the true one "
     "(share with d1 < d2)", "§4.2, Fig. 5c: most images"),
    ("fig5d", "fig5", "share", "d", {"*": "> 0.5"}, None, None,
     "the same for adversarial images the adversarially trained model misclassifies (share with d1 < d2)",
     "§4.2, Fig. 5d: like (c)"),
    ("ground-untargeted", "fig67", "ground", "untargeted", {"*": "> 0"}, None, None,
     "attributes selected for clean images are grounded more often than those selected for their adversarial "
     "images (share grounded per image, clean − adversarial; untargeted)", "§4.3, Figs. 6-7 (examples)"),
    ("ground-targeted", "fig67", "ground", "targeted", {"*": "> 0"}, None, None,
     "the same under targeted attacks (clean − adversarial)", "§4.3, Fig. 6 (middle row, CUB; examples)"),
    ("ground-at", "fig67", "ground-at", None, {"*": 0.0}, 0.10, None,
     "attributes selected for adversarial images classified correctly thanks to adversarial training are "
     "grounded as often as those of the clean images (clean − AT)", "§4.3, Fig. 6 (bottom row, CUB; examples)"),
], columns=["id", "section", "kind", "param", "paper", "tolerance", "no_effect", "claim", "source"])

NOTES = {
    "fig5c": "over all attributes d1 < d2 holds by construction (SJE's class is the nearest class vector); "
             "over the 20 % that change most it need not",
    "fig5d": "over all attributes d1 < d2 holds by construction (SJE's class is the nearest class vector)",
}


def _paper_value(paper: dict, paper_data: str, eps: float | None = None):
    if eps is not None and f"{paper_data}@{eps:g}" in paper:
        return paper[f"{paper_data}@{eps:g}"]
    return paper.get(paper_data, paper.get("*"))


def _paper_data(dataset: str) -> str | None:
    return dataset if dataset in PAPER_SETTINGS else STANDS_FOR.get(dataset)


def _setting(s: Setup, paper_data: str, paper_n: int | None = None) -> C.Setting:
    paper = PAPER_SETTINGS[paper_data]
    if s.dataset not in PAPER_SETTINGS:
        paper += " (stand-in)"
    return C.Setting(paper, data=s.dataset, model=s.model_name, paper_data=tuple(PAPER_SETTINGS),
                     paper_model="resnet152", paper_n=paper_n)


def _clean_correct(s: Setup, training: str, eps, classifier: str) -> np.ndarray:
    emb = s.clean_all if training == "standard" else s.robust[eps].clean_all
    return emb.correct(s.clean_y, classifier).numpy().astype(float)


def paper_claims(setups: Sequence[Setup], attacks: Attacks, dist: Distances, ground: Grounding, *,
                 epsilons: Sequence[float], analysis_eps: float, table: pd.DataFrame = PAPER_CLAIMS) -> list[C.Claim]:
    """Every row of ``table`` (:data:`PAPER_CLAIMS`) measured on every data set it applies to, as
    :class:`advxai.claims.Claim` records (the verdict is :mod:`advxai.claims`' rule). A claim whose
    data set this run does not include, or that has nothing to rest on (no attacked image, no
    misclassified one, no adversarially trained model), is *not measured*, with the reason."""
    out = []
    for row in table.to_dict("records"):
        kind, param, section = row["kind"], row["param"], SECTIONS[row["section"]]
        base = dict(tolerance=_number(row["tolerance"]), no_effect=_number(row["no_effect"]), section=section,
                    note=_join(row["source"], NOTES.get(row["id"], "")))
        measured = False
        if kind == "share-fine":
            by_paper = {_paper_data(s.dataset): s for s in setups}
            if "cub" in by_paper and "awa2" in by_paper:
                measured = True
                cub, awa = by_paper["cub"], by_paper["awa2"]
                hits = {}
                for s in (cub, awa):
                    d = dist.per_image[(dist.per_image["dataset"] == s.dataset) & (dist.per_image["panel"] == param)]
                    hits[s.dataset] = (d["d1"] < d["d2"]).to_numpy()
                out.append(C.difference_of_rates(
                    row["claim"], _setting(cub, "cub").but(f"against {awa.dataset}, ε = {analysis_eps:g}"),
                    hits[awa.dataset], hits[cub.dataset], paper=row["paper"]["cub+awa2"], **base,
                    empty="no misclassified adversarial image on one of the two data sets"))
        for s in setups if kind != "share-fine" else ():
            paper_data = _paper_data(s.dataset)
            at_eps = sorted(s.robust) if kind in ("at-gain", "at-cost", "at-sje") else [None]
            for e in at_eps:
                paper = _paper_value(row["paper"], paper_data, e)
                if paper is None:
                    continue
                measured = True
                kw = {**base, "paper": paper}
                if isinstance(paper, str):  # an inequality: no tolerance, its bound is the reference
                    kw.update(tolerance=None, no_effect=None)
                out.append(_measure(row, s, paper_data, e, attacks, dist, ground, epsilons, analysis_eps, kw))
            if kind in ("at-gain", "at-cost", "at-sje") and not s.robust and _paper_value(row["paper"], paper_data):
                measured = True
                out.append(C.not_measured(row["claim"], _setting(s, paper_data), "no adversarially trained model "
                                          "(at_epsilons is empty)", paper=_paper_value(row["paper"], paper_data),
                                          section=section, note=base["note"]))
        if not measured:
            wanted = sorted({k.split("@")[0] for k in row["paper"]} - {"*"})
            parts = [p for w in wanted for p in w.split("+")]
            names = " and ".join(PAPER_SETTINGS[p].split(",")[0] for p in dict.fromkeys(parts))
            first = parts[0]
            out.append(C.not_measured(
                row["claim"], C.Setting(PAPER_SETTINGS[first], paper_data=tuple(PAPER_SETTINGS)),
                f"the paper makes this claim for {names}, which this run does not include (the paper profile "
                f"runs cub and awa2)", paper=row["paper"][next(k for k in row["paper"] if k.startswith(wanted[0]))],
                section=section, note=base["note"]))
    return out


def _number(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _measure(row, s: Setup, paper_data, e, attacks: Attacks, dist: Distances, ground: Grounding, epsilons,
             analysis_eps, kw) -> C.Claim:
    """One claim of :data:`PAPER_CLAIMS` on one data set (and adversarial-training budget ``e``)."""
    kind, param, text = row["kind"], row["param"], row["claim"]
    attacked = len(s.eval_index)
    fig4_n = PAPER_TEST_IMAGES[paper_data] if s.dataset == paper_data else None
    setting = _setting(s, paper_data)
    if kind == "clean-gap":
        return C.paired_difference(text, _setting(s, paper_data, fig4_n),
                                   _clean_correct(s, "standard", None, "sje"),
                                   _clean_correct(s, "standard", None, "softmax"), **kw)
    if kind == "at-cost":
        return C.paired_difference(text, _setting(s, paper_data, fig4_n).but(f"AT at ε = {e:g}"),
                                   _clean_correct(s, "standard", None, "softmax"),
                                   _clean_correct(s, "adversarial", e, "softmax"), **kw)
    if kind in ("robust-gap", "robust-gap-mean", "targeted-milder", "at-gain", "at-sje"):
        if not attacked:
            return C.not_measured(text, setting, s.empty, **kw)
        if kind == "robust-gap":
            if param not in epsilons:
                return C.not_measured(text, setting, f"ε = {param:g} is not among the budgets attacked (epsilons)",
                                      **kw)
            return C.paired_difference(text, setting.but(f"ε = {param:g}, untargeted"),
                                       attacks.correct(s.dataset, "untargeted", param, "standard", "sje"),
                                       attacks.correct(s.dataset, "untargeted", param, "standard", "softmax"), **kw)
        if kind in ("robust-gap-mean", "targeted-milder"):
            a = lambda mode, clf: np.mean([attacks.correct(s.dataset, mode, x, "standard", clf) for x in epsilons], 0)
            first, second = ((a("untargeted", "sje"), a("untargeted", "softmax")) if kind == "robust-gap-mean"
                             else (a("targeted", "softmax"), a("untargeted", "softmax")))
            return C.paired_difference(text, setting.but(f"ε in {', '.join(f'{x:g}' for x in epsilons)}"),
                                       first, second, **kw)
        if kind == "at-gain":
            return C.paired_difference(text, setting.but(f"ε = {e:g}, untargeted"),
                                       attacks.correct(s.dataset, "untargeted", e, "adversarial", "softmax"),
                                       attacks.correct(s.dataset, "untargeted", e, "standard", "softmax"), **kw)
        return C.paired_difference(text, setting.but(f"AT at ε = {e:g}, untargeted"),
                                   attacks.correct(s.dataset, "untargeted", e, "adversarial", "sje"),
                                   attacks.correct(s.dataset, "untargeted", e, "adversarial", "softmax"), **kw)
    if kind == "share":
        where = setting.but(f"ε = {analysis_eps:g}, untargeted")
        if not attacked:
            return C.not_measured(text, where, s.empty, **kw)
        if param in ("b", "d") and analysis_eps not in s.robust:
            return C.not_measured(text, where, f"no adversarially trained model at ε = {analysis_eps:g}", **kw)
        d = dist.per_image[(dist.per_image["dataset"] == s.dataset) & (dist.per_image["panel"] == param)]
        return C.rate(text, where, (d["d1"] < d["d2"]).to_numpy(), **kw,
                      empty=f"no attacked image fits panel ({param}) (see the panel's definition)")
    where = setting.but(f"ε = {analysis_eps:g}")
    if s.dataset in ground.skipped:
        return C.not_measured(text, where, ground.skipped[s.dataset], **kw)
    if kind == "ground":
        pair = (f"clean ({param} pairs)", f"adversarial, {param}")
        if pair[0] not in {c for d, c in ground.results if d == s.dataset}:
            return C.not_measured(text, where.but(param), f"no image SJE classifies correctly when clean and wrongly "
                                  f"under the {param} attack", **kw)
        clean, adv = (ground.grounded_share(s.dataset, c) for c in pair)
        return C.paired_difference(text, where.but(param), clean.to_numpy(), adv.loc[clean.index].to_numpy(), **kw)
    at = "adversarial with AT, untargeted"
    if (s.dataset, at) not in ground.results:
        reason = (f"no adversarially trained model at ε = {analysis_eps:g}" if analysis_eps not in s.robust else
                  "no image that adversarial training keeps correct while the standard model's attack succeeds")
        return C.not_measured(text, where, reason, **kw)
    adv_at = ground.grounded_share(s.dataset, at)
    clean = ground.grounded_share(s.dataset, "clean (untargeted pairs)")
    common = adv_at.index.intersection(clean.index)
    return C.paired_difference(text, where.but("untargeted"), clean.loc[common].to_numpy(),
                               adv_at.loc[common].to_numpy(), **kw)


def claims_summary(records: Sequence[C.Claim]) -> str:
    """One generated sentence on the verdicts (counts per verdict, in the book's order)."""
    counts = pd.Series([c.verdict for c in records]).value_counts()
    parts = [f"{int(counts[v])} {v}" for v in C.VERDICTS if v in counts]
    return f"Of the {len(records)} claims of the paper checked here: " + ", ".join(parts) + "."


def _pct(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.0f} %"


def _compare(a: float, b: float, more: str, less: str, same: str) -> str:
    return same if abs(a - b) < 0.005 else (more if a > b else less)


def accuracy_observations(setups: Sequence[Setup], attacks: Attacks, *, epsilons: Sequence[float],
                          analysis_eps: float) -> str:
    """What Fig. 4 shows in this run, per data set (Markdown)."""
    t = attacks.table
    out = []
    for s in setups:
        d = t[(t["dataset"] == s.dataset) & (t["training"] == "standard")]
        soft_clean, sje_clean = (s.clean_all.accuracy(s.clean_y, c) for c in CLASSIFIERS)
        text = (f"**{s.dataset}, {s.model_name}.** On {len(s.clean_index)} clean test images SJE is "
                f"{_compare(sje_clean, soft_clean, 'more accurate than', 'less accurate than', 'as accurate as')} "
                f"softmax ({_pct(sje_clean)} against {_pct(soft_clean)}).")
        if not len(s.eval_index):
            out.append(text + f" Nothing was attacked: {s.empty}")
            continue

        def adv(mode, eps, clf, frame=d):
            r = frame[(frame["mode"] == mode) & (frame["eps"] == eps) & (frame["classifier"] == clf)]
            return float(r["adversarial"].iloc[0])

        # averaged over the budgets, as the claim is measured: at a single large budget both may be at 0
        soft, sje = (np.mean([adv("untargeted", e, c) for e in epsilons]) for c in CLASSIFIERS)
        text += (f" Averaged over the budgets, untargeted I-FGSM leaves {_pct(soft)} of the {len(s.eval_index)} "
                 f"attacked images correctly labelled by softmax and {_pct(sje)} by SJE: SJE "
                 f"{_compare(sje, soft, 'keeps more of them', 'keeps fewer of them', 'keeps as many')}"
                 f" (at ε = {analysis_eps:g}, the budget of the analyses below, softmax keeps "
                 f"{_pct(adv('untargeted', analysis_eps, 'softmax'))} and SJE "
                 f"{_pct(adv('untargeted', analysis_eps, 'sje'))}).")
        untargeted = np.mean([adv("untargeted", e, "softmax") for e in epsilons])
        targeted = np.mean([adv("targeted", e, "softmax") for e in epsilons])
        text += (f" Averaged over the budgets, targeted attacks leave {_pct(targeted)} of the labels correct and "
                 f"untargeted ones {_pct(untargeted)}: targeted attacks are "
                 f"{_compare(targeted, untargeted, 'milder', 'stronger', 'as strong')}.")
        for e, r in s.robust.items():
            da = t[(t["dataset"] == s.dataset) & (t["training"] == "adversarial") & (t["eps"] == e)]
            at_adv, at_clean = adv("untargeted", e, "softmax", da), r.clean_all.accuracy(s.clean_y, "softmax")
            before = adv("untargeted", e, "softmax")
            text += (f" Adversarial training at ε = {e:g} takes softmax accuracy under that attack from "
                     f"{_pct(before)} to {_pct(at_adv)}{' (no gain)' if abs(at_adv - before) < 0.005 else ''}, "
                     f"and clean accuracy from {_pct(soft_clean)} to {_pct(at_clean)}.")
        out.append(text)
    return "\n\n".join(out)


def distance_observations(dist: Distances) -> str:
    """What Fig. 5 shows in this run, per data set (Markdown)."""
    out = []
    for dataset in dict.fromkeys(dist.table["dataset"]) if len(dist.table) else ():
        rows = dist.table[dist.table["dataset"] == dataset]
        out.append(f"**{dataset}.** " + "; ".join(
            f"({r['panel']}) d1 < d2 for {_pct(r['share d1 < d2'])} of {r['images']} images" if r["images"]
            else f"({r['panel']}) no image fits the panel" for r in rows.to_dict("records")) + ".")
    return "\n\n".join(out) or "No panel has images in this run."


def grounding_observations(setups: Sequence[Setup], ground: Grounding, analysis_eps: float) -> str:
    """What Figs. 6-7 and the grounding tables show in this run, per data set (Markdown)."""
    out = []
    for s in setups:
        if s.dataset in ground.skipped:
            out.append(f"**{s.dataset}.** Not grounded: {ground.skipped[s.dataset]}.")
            continue
        g = ground.table[ground.table["dataset"] == s.dataset].set_index("images") if len(ground.table) else None
        if g is None or not len(g):
            out.append(f"**{s.dataset}.** No image is classified correctly by SJE when clean and wrongly when "
                       f"attacked at ε = {analysis_eps:g}: nothing to ground.")
            continue
        share = g["grounded (detector)"]
        parts = [f"{_pct(share[f'clean ({m} pairs)'])} of the attributes selected for the clean images and "
                 f"{_pct(share[f'adversarial, {m}'])} of those selected for their adversarial images are grounded "
                 f"({m}, {int(g.loc[f'adversarial, {m}', 'n images'])} images)" for m in MODES
                 if f"adversarial, {m}" in share]
        text = f"**{s.dataset}.** " + "; ".join(parts) + "."
        if "adversarial with AT, untargeted" in share:
            text += (f" For adversarial images that adversarial training keeps correct, "
                     f"{_pct(share['adversarial with AT, untargeted'])} are grounded.")
        p = ground.parts[ground.parts["dataset"] == s.dataset] if len(ground.parts) else ground.parts
        if len(p):
            first = p["images"].iloc[0]
            best = p.sort_values("peak in part box", ascending=False)
            text += (f" Grad-CAM of an attribute's SJE score boxes its part (IoU ≥ 0.5) for "
                     f"{_pct(g.loc[first, 'Grad-CAM precision (IoU ≥ 0.5)'])} of the clean images' attributes, and "
                     f"its peak falls inside the part's box for {_pct(g.loc[first, 'Grad-CAM peak in part box'])}: "
                     f"most often for the {best['part'].iloc[0]} ({_pct(best['peak in part box'].iloc[0])}), least "
                     f"often for the {best['part'].iloc[-1]} ({_pct(best['peak in part box'].iloc[-1])}).")
        out.append(text)
    return "\n\n".join(out)
