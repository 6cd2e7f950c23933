"""The chapter's common ground: classifiers, their interpreters, the attacked images, and attacks as jobs.

:func:`prepare` builds a :class:`Study` from plain names and numbers; every experiment of the chapter
takes it. The study runs each attack through :func:`advxai.engine.map_attack` (so attacks shard,
cache and resume on the chapter's engine) and computes maps in batches.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...attacks import random_targets
from ...attacks.adv2 import SETTINGS_NAMES, adv2_settings
from ...data import get_dataset
from ...data.sampling import select_correct
from ...engine import AttackFactory, map_attack
from ...interpreters import RTS, get_interpreter
from ...interpreters.mask import mask_maps
from ...interpreters.rts import BUDGETS as RTS_BUDGETS
from ...models import get_model
from ...runtime import resolve_device

__all__ = ["INTERPRETER_NAMES", "LABEL", "Study", "prepare", "batched_maps", "check_names", "stage", "architecture"]

INTERPRETER_NAMES = ("grad", "cam", "mask", "rts")  # the paper's four; Grad-CAM has its own section
LABEL = {"grad": "GRAD", "cam": "CAM", "mask": "MASK", "rts": "RTS", "gradcam": "Grad-CAM"}


def architecture(model: str) -> str:
    """The column of the paper's settings tables a model takes: DenseNet-169's for a DenseNet, else ResNet-50's."""
    return "densenet" if "densenet" in model else "resnet"


def stage(timings, name: str):
    """``timings(name)`` when the chapter keeps timings, else nothing."""
    return timings(name) if timings is not None else nullcontext()


def check_names(kind: str, given, valid) -> list[str]:
    """``given`` as a list, every name in ``valid``; an unknown one fails with the valid names."""
    given = [given] if isinstance(given, str) else list(given)
    bad = [g for g in given if g not in valid]
    if bad:
        raise ValueError(f"unknown {kind} {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")
    if not given:
        raise ValueError(f"at least one {kind} is needed; valid: {', '.join(valid)}")
    return given


def batched_maps(interpreter, x: torch.Tensor, cls: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The maps of ``interpreter`` for classes ``cls``, ``batch_size`` images at a time, on the CPU."""
    dev = interpreter.device
    return torch.cat([interpreter(x[i:i + batch_size].to(dev), target=cls[i:i + batch_size].to(dev)).maps.detach().cpu()
                      for i in range(0, len(x), batch_size)])


@dataclass
class Study:
    """What every experiment of the chapter shares (built by :func:`prepare`).

    ``images[name]`` holds ``(x, y, target)`` for model ``name``: its correctly classified test images,
    their labels and one random target class each; ``index[name]`` their data-set indices."""

    dataset: str
    models: list[str]
    interpreters: list[str]
    test: Any
    classifiers: dict
    interp: dict
    images: dict
    index: dict
    eps: float
    alpha: float
    seed: int
    batch_size: int
    attack_budget: str
    settings: str
    warm_steps: int | None
    steps: int | None
    mask_iterations: int
    mask_steps: int
    mask_reset_every: int
    mask_reset_iterations: int
    device: torch.device
    timings: Any = None
    setup_rows: list = field(default_factory=list)
    selection: list = field(default_factory=list)

    def require(self, inames, what: str) -> list[str]:
        """``inames`` as a list, each among the study's interpreters (whose benign maps and attacks the
        experiment ``what`` reuses); otherwise a clear error."""
        inames = [inames] if isinstance(inames, str) else list(inames)
        missing = [i for i in inames if i not in self.interpreters]
        if missing:
            raise ValueError(f"{what} uses interpreter(s) {', '.join(missing)}, which the study does not run; "
                             f"its interpreters: {', '.join(self.interpreters)}")
        return inames

    # -- settings --------------------------------------------------------------------------------
    def attack_settings(self, iname: str, name: str | None = None) -> dict:
        """ADV²'s settings against ``iname`` on model ``name`` (its architecture's column of the paper's
        Table 11): the named settings, step counts scaled by the budget, then the chapter's overrides (eps,
        step size, warm-start and ADV² steps, the bilevel MASK attack's sizes)."""
        s = adv2_settings(iname, self.attack_budget, self.settings, architecture(name or self.models[0]))
        s.update(eps=self.eps, alpha=self.alpha, seed=self.seed, batch_size=self.batch_size)
        if self.warm_steps is not None:
            s["warm_steps"] = self.warm_steps
        if iname == "mask":
            s.update(steps=self.mask_steps, reset_every=self.mask_reset_every,
                     reset_iterations=self.mask_reset_iterations)
        elif self.steps is not None:
            s["steps"] = self.steps
        return s

    def step_counts(self, inames) -> dict[str, tuple[int, int]]:
        return {i: (self.attack_settings(i)["warm_steps"], self.attack_settings(i)["steps"]) for i in inames}

    def source(self, iname: str, name: str | None = None) -> str:
        """Where ADV²'s settings against ``iname`` come from (one line)."""
        return self.attack_settings(iname, name)["source"]

    def pgd_steps(self) -> int:
        """PGD takes as many steps as the longest warm start and ADV² together (MASK's iterations aside)."""
        return max(w + s for i, (w, s) in self.step_counts(list(self.interpreters) + ["gradcam"]).items()
                   if i != "mask")

    # -- maps and attacks ------------------------------------------------------------------------
    def maps(self, name: str, iname: str, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        """Maps of ``x`` for classes ``cls`` (on the CPU); MASK's, an optimisation per image, as a job on the
        chapter's engine (sharded, cached)."""
        if iname == "mask":
            return mask_maps(self.classifiers[name], x, cls, key={"images": self.dataset},
                             iterations=self.mask_iterations, seed=self.seed).maps.cpu()
        return batched_maps(self.interp[name][iname], x, cls, self.batch_size)

    def run(self, attack: str, name: str, x, y, target, params: dict, *, objects: dict | None = None,
            target_map=None, what: str = "", index=None):
        """Attack ``attack`` (a registered name) with ``params`` on model ``name``'s images ``x``, as a
        job on the chapter's engine (cached per shard under the images' data-set indices: ``index``, by
        default all of the model's attacked images)."""
        key = {"name": f"{attack}{'-' + what if what else ''}-{name}", "images": f"{self.dataset}/test",
               "seed": self.seed}
        return map_attack(AttackFactory(attack, params), self.classifiers[name], x, y, target, key=key,
                          objects=objects, target_map=target_map,
                          index=self.index[name] if index is None else index,
                          desc=f"{attack} {what} on {name}".replace("  ", " "))

    def interpreter_spec(self, name: str, iname: str) -> tuple[dict, dict]:
        """How an attack job names interpreter ``iname`` of model ``name``: ``(params, objects)`` --
        by name (with MASK's settings), or as an object for a trained RTS decoder."""
        if iname == "rts" or not isinstance(iname, str):
            return {}, {"interpreter": self.interp[name][iname] if isinstance(iname, str) else iname}
        if iname == "mask":
            return {"interpreter": "mask", "interpreter_settings": {"iterations": self.mask_iterations,
                                                                    "seed": self.seed}}, {}
        return {"interpreter": iname}, {}

    def adv2(self, name: str, iname: str, x, y, target, *, interpreter=None, target_map=None, what: str = "",
             extra: dict | None = None, attack: str = "adv2"):
        """ADV² (or ``attack``, an ADV²-based attack) against ``iname`` of model ``name`` (or against the
        given ``interpreter`` object, e.g. a retrained RTS), with :meth:`attack_settings`."""
        params, objects = ({}, {"interpreter": interpreter}) if interpreter is not None else \
            self.interpreter_spec(name, iname)
        params = {**params, **self.attack_settings(iname, name), **(extra or {})}
        return self.run(attack, name, x, y, target, params, objects=objects, target_map=target_map,
                        what=what or iname)


def prepare(dataset: str, models, interpreters, *, train_budget: str = "full", seed: int = 0, n_images: int = 16,
            eps: float = 0.031, alpha: float = 1 / 255, batch_size: int = 8, attack_budget: str = "quick",
            settings: str = "paper", warm_steps: int | None = None, steps: int | None = None,
            mask_iterations: int = 60, mask_steps: int = 16, mask_reset_every: int = 4, mask_reset_iterations: int = 20,
            rts_steps: int | None = None, rts_batch: int | None = None, device: str = "auto", timings=None) -> Study:
    """Load the classifiers, build their interpreters (GRAD, CAM, MASK with ``mask_iterations`` Adam
    steps, RTS trained on the classifier's training split with the ``train_budget``'s decoder budget or
    ``rts_steps`` x ``rts_batch``), and draw each model's attacked images the paper's way: ``n_images``
    test images the model classifies correctly, drawn at random by ``seed`` and stratified over classes
    (:func:`advxai.data.sampling.select_correct`), each with a random target class other than its own.
    ``settings`` names ADV²'s settings (``"paper"``: Table 11; ``"code"``: the authors' scripts).
    ``study.setup_rows`` describes the classifiers, ``study.selection`` the draw."""
    interpreters = check_names("interpreter", interpreters, INTERPRETER_NAMES)
    check_names("ADV² settings", [settings], SETTINGS_NAMES)
    models = [models] if isinstance(models, str) else list(models)
    for name, v in (("n_images", n_images), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    dev = resolve_device(device)
    test = get_dataset(dataset, split="test")
    classifiers, interp, rows = {}, {}, []
    for name in models:
        with stage(timings, f"load {name}"):
            model = get_model(name, device=str(dev), train_budget=train_budget)
        classifiers[name] = model
        with stage(timings, f"RTS training {name}"):
            config = RTS_BUDGETS[train_budget]
            if rts_steps is not None or rts_batch is not None:
                config = replace(config, steps=rts_steps or config.steps, batch_size=rts_batch or config.batch_size)
            rts = RTS(model, config=config, progress=False)
        interp[name] = {"grad": get_interpreter("grad", model), "cam": get_interpreter("cam", model),
                        "mask": get_interpreter("mask", model, iterations=mask_iterations, seed=seed), "rts": rts}
        rows.append({"model": name, "classes": model.info.num_classes,
                     "input": "x".join(map(str, model.info.input_size)), "CAM layer": model.info.cam_layer,
                     "RTS encoder layers": ", ".join(rts.layers),
                     "RTS final training loss": float(np.mean(rts.history[-5:]))})
    images, index, selection = {}, {}, []
    for name, model in classifiers.items():
        with stage(timings, f"sampling {name}"):
            draw = select_correct(test, model, n_images, seed=seed, batch_size=batch_size)
        b = test.batch(draw.indices)
        images[name] = (b.x, b.y, random_targets(b.y, model.info.num_classes, seed=seed))
        index[name] = draw.indices
        selection.append(f"{name}: {len(draw.indices)} correctly classified test images drawn ({draw.correct_seen} "
                         f"of the {draw.looked_at} classified on the way, accuracy {draw.accuracy:.1%})")
    return Study(dataset=dataset, models=models, interpreters=interpreters, test=test, classifiers=classifiers,
                 interp=interp, images=images, index=index, eps=eps, alpha=alpha, seed=seed,
                 batch_size=batch_size, attack_budget=attack_budget, settings=settings, warm_steps=warm_steps,
                 steps=steps, mask_iterations=mask_iterations, mask_steps=mask_steps,
                 mask_reset_every=mask_reset_every, mask_reset_iterations=mask_reset_iterations, device=dev,
                 timings=timings, setup_rows=rows, selection=selection)


def concat_tables(tables: dict) -> pd.DataFrame:
    """Per-model tables ``{model: table}`` as one, the model in a first column."""
    return pd.concat([t.assign(model=m)[["model", *t.columns]] for m, t in tables.items()], ignore_index=True)


def setup_table(study: Study) -> pd.DataFrame:
    """The classifiers and their RTS decoders, one row per model."""
    return pd.DataFrame(study.setup_rows)


__all__ += ["setup_table", "concat_tables"]
