"""The cross-examination as experiments: one model and one set of images, every attack of the study
against every detector and defense (chapter 6). Each function does one step of the chapter and
returns what its table or figure needs:

* :func:`prepare` -- the attacked model, the attacked images (correctly classified) and the benign
  calibration images that set every detector's threshold; :func:`setting_frame` shows them;
  :func:`available_members` leaves out the members the data cannot support, with the reason;
* :func:`run_attacks` -- every attack row (:func:`~advxai.arena.attacks.study_attacks`) crafted or
  loaded from the cache, with its success rate and perturbation sizes (:class:`Attacks`);
* :func:`member_settings` and :func:`build_arena` -- every member built, the supervised one fitted on
  its own training images, every detector calibrated (:class:`Members`);
* :func:`evaluate` -- the attack x member matrix as tidy records, the table and the AUCs (:class:`Matrix`).

What the matrix shows (families, observations, the generated paragraphs) is
:mod:`~advxai.arena.reading`; the claims are :mod:`~advxai.arena.claims`.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..attacks.base import AttackResult
from .attacks import ArenaAttack, adaptive_rows, craft
from .matrix import Arena, matrix
from .members import LABELS, build_members

__all__ = ["Setup", "prepare", "available_members", "setting_frame", "Attacks", "run_attacks", "member_settings",
           "Members",
           "build_arena", "Matrix", "evaluate"]


def _stage(timings, name: str):
    return timings(name) if timings is not None else nullcontext()


# --------------------------------------------------------------------------- the setting


@dataclass
class Setup:
    """The attacked model and the images of the arena: ``attacked`` (data-set indices of the attacked
    images, all classified correctly) and ``calibration`` (other images of the same split, never
    attacked), with their batches ``benign`` and ``calib``."""

    net: object
    model: str
    dataset: str
    attacked: torch.Tensor
    calibration: torch.Tensor
    benign: object
    calib: object
    device: torch.device
    train_budget: str = "full"
    seed: int = 0
    split: str = "test"

    def common(self) -> dict:
        """What :func:`~advxai.arena.attacks.craft` needs besides the attack and the images."""
        return dict(model=self.model, dataset=self.dataset, train_budget=self.train_budget, device=str(self.device),
                    seed=self.seed)


def prepare(dataset: str, model: str, *, n_images: int, n_calibration: int, seed: int = 0, device: str = "auto",
            train_budget: str = "full", split: str = "test") -> Setup:
    """The model and the arena's images of ``split``: ``n_calibration`` images drawn at random by
    ``seed`` (correct or not, as benign inputs come) calibrate the detectors; the attacked images are
    ``n_images`` others, drawn among those the model classifies correctly, stratified over classes
    (:func:`advxai.data.sample_correct`; none correct: :class:`~advxai.errors.EmptySelection`)."""
    from ..data import get_dataset, sample_correct
    from ..models import get_model
    from ..runtime import resolve_device

    for name, v in (("n_images", n_images), ("n_calibration", n_calibration)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} must be an integer of at least 2, got {v!r}")
    dev = resolve_device(device)
    net = get_model(model, device=str(dev), train_budget=train_budget)
    data = get_dataset(dataset, split=split)
    if n_images + n_calibration > len(data):
        raise ValueError(f"{dataset}/{split} has {len(data)} images: fewer than n_images + n_calibration "
                         f"({n_images} + {n_calibration})")
    calib_idx = data.sample_indices(n_calibration, seed=seed)
    attacked = sample_correct(data, net, n_images, seed, exclude=calib_idx)
    return Setup(net, model, dataset, attacked, calib_idx, data.batch(attacked), data.batch(calib_idx), dev,
                 train_budget, seed, split)


def available_members(setup: Setup, names, rows=()) -> tuple[list[str], list[str], dict[str, str]]:
    """``(members, rows, {left out: why})``: the members of ``names`` and the attack rows of ``rows``
    that can run on the setup's data and model. The SJE detector needs class attribute vectors, which
    only attribute data sets have (ImageNet has none); adversarial training fine-tunes an embedded
    model (:func:`~advxai.defenses.adversarial_training.robust_model`), so a torchvision model has no
    adversarially trained copy, and the white-box row against it (``pgd_at``) goes with the column."""
    from ..data import get_dataset
    from ..models.embedded import TRAINED

    dropped = {}
    # the split the arena already reads (a data set's splits share their class attribute vectors)
    split = getattr(setup, "split", "test")
    if "sje_disagreement" in names and not get_dataset(setup.dataset, split=split).has_attributes:
        dropped["sje_disagreement"] = (f"{setup.dataset} has no class attribute vectors, which SJE learns to "
                                       "predict: its column is left out")
    if "adversarial_training" in names and setup.model not in TRAINED:
        dropped["adversarial_training"] = (f"adversarial training fine-tunes the embedded models only; {setup.model} "
                                           "has no adversarially trained copy here: its column and the white-box "
                                           "row against it are left out")
    rows = [r for r in rows if not (r == "pgd_at" and "adversarial_training" in dropped)]
    return [n for n in names if n not in dropped], list(rows), dropped


def setting_frame(setup: Setup, fpr: float, eps: float) -> pd.DataFrame:
    """The arena's setting as a two-column table."""
    net = setup.net
    return pd.DataFrame([
        {"what": "attacked model",
         "value": f"{setup.model} ({net.info.num_classes} classes, test accuracy {net.info.test_accuracy})"},
        {"what": "attacked images", "value": f"{len(setup.attacked)} correctly classified {setup.dataset} "
                                             f"{setup.split} images (stratified over classes, seed {setup.seed})"},
        {"what": "calibration images", "value": f"{len(setup.calibration)} other {setup.dataset} {setup.split} images"},
        {"what": "benign false-positive rate", "value": f"{fpr:.0%}"},
        {"what": "L-inf budget", "value": f"{eps:.3f} ({eps * 255:.1f}/255)"},
    ])


# --------------------------------------------------------------------------- the attacks


@dataclass
class Attacks:
    """The arena's rows: ``results[label]`` (an :class:`~advxai.attacks.AttackResult`), the row labels
    by attack name (``labels``), the adaptive rows (``adaptive_to[label] = (member name, label of the
    attack it extends)``) and the table of success rates and perturbation sizes."""

    specs: dict[str, ArenaAttack]
    results: dict[str, AttackResult]
    labels: dict[str, str]
    adaptive_to: dict[str, tuple[str, str]]
    table: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    def label(self, key: str) -> str:
        """The row label of attack ``key`` (whether or not it ran)."""
        return self.labels[key]

    def fooled(self, label: str) -> str:
        """``k/n``: successful images of the row (``0/0`` when it did not run)."""
        r = self.results.get(label)
        return f"{int(r.success.sum())}/{len(r)}" if r is not None else "0/0"


def run_attacks(setup: Setup, specs: dict[str, ArenaAttack], rows, timings=None) -> Attacks:
    """Every row of ``rows`` (names of ``specs``) crafted on the attacked images, or loaded from the cache.
    Unknown names fail before anything runs, with the valid ones."""
    unknown = sorted(set(rows) - set(specs))
    if unknown:
        raise ValueError(f"unknown arena rows {unknown}; valid: {', '.join(specs)}")
    results, seconds = {}, {}
    for key in rows:
        spec = specs[key]
        with _stage(timings, f"attack: {spec.label}"):
            results[spec.label] = craft(spec, index=setup.attacked, **setup.common())
        if timings is not None:
            seconds[spec.label] = timings.seconds[f"attack: {spec.label}"]
    adaptive_to = {k: v for k, v in adaptive_rows(specs).items() if k in results}
    labels = {key: spec.label for key, spec in specs.items()}
    table = pd.DataFrame([{
        "attack": name, "targeted": r.target is not None, "images": len(r), "success rate": r.success_rate,
        "mean L-inf (x255)": 255 * r.linf[r.success].mean().item() if r.success.any() else float("nan"),
        "mean L2": r.l2[r.success].mean().item() if r.success.any() else float("nan"),
        "seconds": round(seconds.get(name, float("nan")), 1)} for name, r in results.items()])
    return Attacks(specs, results, labels, adaptive_to, table, seconds)


# --------------------------------------------------------------------------- the members


def member_settings(setup: Setup, names, *, fs_squeezer: str, hb_sigma: float, ig_epsilon: float, ig_max_delta: float,
                    ig_steps: int, mi_interpreters, extractor_model: str, sje_n_train: int, sje_epochs: int,
                    rts_steps: int | None, rts_batch: int | None, aid_budget: str, at_eps: float, at_steps: int,
                    at_epochs: int, at_n_train: int, aid_batch: int | None = None,
                    aid_rounds: int | None = None) -> dict[str, dict]:
    """Every member's settings (:func:`~advxai.arena.members.build_members`) from the chapter's
    parameters. The multi-interpreter detector's feature extractor, a second network, is built only
    when that member is in ``names``."""
    from ..models import get_model

    seed, budget = setup.seed, setup.train_budget
    extractor = (get_model(extractor_model, device=str(setup.device), train_budget=budget)
                 if "multi_interpreter" in names else None)
    return {
        "ig_masking": dict(epsilon=ig_epsilon, max_delta=ig_max_delta, ig_steps=ig_steps),
        "feature_squeezing": dict(squeezers=[fs_squeezer]),
        "heat_and_blur_change": dict(sigma=hb_sigma),
        "multi_interpreter": dict(interpreters=list(mi_interpreters), seed=seed, extractor=extractor),
        "sje_disagreement": dict(dataset=setup.dataset, n_train=sje_n_train, epochs=sje_epochs, seed=seed),
        "aid": dict(rts_steps=rts_steps, rts_batch=rts_batch, aid_budget=aid_budget, train_budget=budget,
                    aid_batch=aid_batch, aid_rounds=aid_rounds),
        "heat_and_blur": dict(sigma=hb_sigma),
        "adversarial_training": dict(eps=at_eps, train_budget=budget, steps=at_steps, epochs=at_epochs,
                                     n_train=at_n_train, seed=seed),
    }


@dataclass
class Members:
    """The arena's columns: ``members[label]`` (each a detector or a defense), the calibrated
    :class:`~advxai.arena.matrix.Arena`, and the table of their thresholds."""

    members: dict
    arena: Arena
    names: list[str]
    table: pd.DataFrame

    def kind(self, label: str) -> str:
        return self.members[label].kind

    def labels_of(self, kind: str) -> list[str]:
        return [k for k, m in self.members.items() if m.kind == kind]


def build_arena(setup: Setup, specs: dict[str, ArenaAttack], names, *, fpr: float, settings: dict[str, dict],
                mi_training_set: str = "pgd", mi_n_train: int = 96, timings=None) -> Members:
    """Every member of ``names`` built on the attacked model; the multi-interpreter detector (the one
    supervised member) fitted on ``mi_n_train`` training images and their ``mi_training_set`` versions;
    every detector's threshold set on the calibration images at ``fpr``."""
    from ..data import get_dataset

    names = list(names)
    if "multi_interpreter" in names and mi_training_set not in specs:
        raise ValueError(f"mi_training_set {mi_training_set!r} is not an arena attack; valid: {', '.join(specs)}")
    members = build_members(names, setup.net, fpr=fpr, settings=settings,
                            on_build=lambda name: _stage(timings, f"member: {LABELS[name]}"))
    with _stage(timings, "members: fit"):
        if "multi_interpreter" in names:
            # trained on training images and their mi_training_set versions; thresholded on the calibration images
            train = get_dataset(setup.dataset, split="train")
            mi_idx = train.sample_indices(mi_n_train, seed=setup.seed)
            mi_set = craft(specs[mi_training_set], index=mi_idx, split="train", **setup.common())
            members[LABELS["multi_interpreter"]].fit(train.batch(mi_idx).x, mi_set.x_adv[mi_set.success].cpu())
        contest = Arena(members, setup.net).calibrate(setup.calib.x)
    table = pd.DataFrame([{"member": k, "kind": m.kind, "threshold": m.threshold if m.kind == "detector" else None,
                           "benign flagged (calibration)": getattr(m, "benign_calibration_rate", None)}
                          for k, m in members.items()])
    return Members(members, contest, names, table)


# --------------------------------------------------------------------------- the matrix


@dataclass
class Matrix:
    """The arena's results: tidy ``records`` (one per attack x member, plus a ``benign`` row per member),
    the attack x member ``table`` of their values and the detectors' ROC ``auc`` table."""

    records: pd.DataFrame
    table: pd.DataFrame
    auc: pd.DataFrame

    def cell(self, attack: str | None, member: str) -> float:
        """One cell, NaN when its row or column is absent."""
        t = self.table
        return float(t.loc[attack, member]) if attack in t.index and member in t.columns else float("nan")

    def to_dict(self, which: str = "table") -> dict:
        """``{attack: {member: value}}`` with None for a missing value (for the metrics file)."""
        t = getattr(self, which)
        return {a: {m: (None if v != v else float(v)) for m, v in row.items()} for a, row in t.iterrows()}


def evaluate(members: Members, attacks: Attacks, setup: Setup, timings=None) -> Matrix:
    """Every attack row against every member (:meth:`~advxai.arena.matrix.Arena.evaluate`), adaptive
    rows marked with the member they were built to evade."""
    with _stage(timings, "arena: evaluation"):
        records = members.arena.evaluate(attacks.results, setup.benign.x, setup.benign.y, adaptive={
            k: LABELS[m] for k, (m, _) in attacks.adaptive_to.items() if m in members.names},
            benign_index=setup.attacked)
    table = matrix(records)
    auc = matrix(records[records.kind == "detector"], "auc").drop(index="benign")
    return Matrix(records, table, auc)
