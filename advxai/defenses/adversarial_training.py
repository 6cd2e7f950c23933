"""Adversarial training (Madry et al.) as Gulshad et al. use it: PGD with a random start, mixed loss.

Each mini-batch is attacked with L-inf PGD from a random point in the eps-ball (``advxai.attacks.PGD``,
the model in eval mode so BatchNorm statistics are not moved by the attack), then the network is
updated on

    J_adv = α CE(f(x), y) + (1 - α) CE(f(x̂), y)          (their Eq. 2; α = 1/2 by default)

in train mode. Training starts from a classifier trained on clean images (the "clean epochs" of the
authors' code: the cached embedded model) and fine-tunes it for ``epochs`` adversarial epochs. Like
the embedded models' own training, it runs in bfloat16 mixed precision where the hardware computes
it natively, the attack of each batch included (:func:`advxai.models.training.training_precision`).

:func:`robust_model` builds, caches and returns such a model by name: the cache key holds the base
model's own key (architecture, data, budget), the whole :class:`AdvTrainConfig` and a digest of this
module's source, so changing anything that determines the weights retrains. Progress is kept per
epoch beside the cache entry, so a killed run resumes.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..attacks.base import check_budget
from ..attacks.gradient import PGD
from ..models.base import Classifier
from ..models.training import autocast, check_precision, fast_layout, training_precision
from ..runtime import (CacheCorrupted, atomic_save, cache_path, cached, load_checkpoint, model_digest, module_device,
                       remove_entry, resolve_device)
from .base import Defense

__all__ = ["AdvTrainConfig", "adversarial_train", "robust_model", "robust_model_spec", "SMOKE_OVERRIDES",
           "replace_head", "fine_tuned_model", "AdversarialTraining"]


@dataclass(frozen=True)
class AdvTrainConfig:
    """Settings of the adversarial fine-tuning; ``alpha=None`` means 2.5 eps / steps (Madry et al.)."""

    eps: float | None  # None only for clean fine-tuning (clean_weight = 1)
    steps: int = 5
    alpha: float | None = None
    epochs: int = 3
    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 64
    clean_weight: float = 0.5  # α of Eq. 2: (clean + adversarial) / 2; 1 = clean fine-tuning, no attack
    n_train: int | None = None  # images of the training split used (None: the whole split)
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.clean_weight <= 1:
            raise ValueError(f"clean_weight must be in [0, 1] (1: clean training), got {self.clean_weight!r}")
        if self.eps is None and self.clean_weight < 1:
            raise ValueError("eps must be in (0, 1] for adversarial training (only clean training, clean_weight=1, "
                             "goes without a budget)")
        if self.eps is not None:
            check_budget("eps", self.eps)
        if self.alpha is not None:
            check_budget("alpha", self.alpha)
        for name in ("steps", "epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.n_train is not None and (not isinstance(self.n_train, int) or self.n_train < 1):
            raise ValueError(f"n_train must be a positive integer or None, got {self.n_train!r}")

    @property
    def step_size(self) -> float | None:
        if self.eps is None:
            return None
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps


# A smoke budget shortens the fine-tuning as the embedded models' smoke budget shortens training.
SMOKE_OVERRIDES = {"epochs": 1, "steps": 2, "n_train": 256}


def adversarial_train(model: Classifier, x_train: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
                      y_train: torch.Tensor, cfg: AdvTrainConfig, partial_path: Path | None = None,
                      desc: str = "adversarial training", precision: str = "fp32") -> dict:
    """Fine-tune ``model`` in place with PGD adversarial training; returns its state dict and history.

    ``model`` is a :class:`~advxai.models.Classifier` (inputs in [0, 1], normalisation inside, so the
    attack and the training see the same pixels). Its parameters are unfrozen while training and frozen
    again at the end; it is left in eval mode. ``x_train`` is a tensor [N, C, H, W], or a function
    ``index -> images`` for data sets read from files (CUB). ``cfg.clean_weight = 1`` trains on clean
    images only (no attack). ``precision="bf16"``: each batch's attack and update run under bfloat16
    autocast (the weights and the optimiser stay fp32).
    """
    check_precision(precision)
    if callable(x_train):
        load = x_train
    else:
        if x_train.dim() != 4 or len(x_train) != len(y_train):
            raise ValueError(f"training images [N, C, H, W] and labels [N] must match, got {tuple(x_train.shape)} "
                             f"and {tuple(y_train.shape)}")
        if x_train.numel() and (x_train.min() < 0 or x_train.max() > 1):
            raise ValueError("training images must be in [0, 1]")
        load = x_train.__getitem__
    device = model.device
    net = model.net
    net.requires_grad_(True)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = (len(y_train) + cfg.batch_size - 1) // cfg.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    attack = PGD(model, eps=cfg.eps, alpha=cfg.step_size, steps=cfg.steps, random_start=True) \
        if cfg.clean_weight < 1 else None
    history, start_epoch = [], 0
    if partial_path is not None and Path(partial_path).exists():
        try:
            state = load_checkpoint(partial_path)
            if state.get("config") == asdict(cfg):
                net.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                history, start_epoch = state["history"], state["epoch"] + 1
        except CacheCorrupted:
            remove_entry(partial_path)
    with fast_layout(net):
        for epoch in tqdm(range(start_epoch, cfg.epochs), desc=desc, initial=start_epoch, total=cfg.epochs,
                          leave=False):
            g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            order = torch.randperm(len(y_train), generator=g)
            t0, sums = time.time(), {"loss": 0.0, "clean": 0, "adv": 0}
            for b, s in enumerate(range(0, len(order), cfg.batch_size)):
                idx = order[s:s + cfg.batch_size]
                xb, yb = load(idx).to(device), y_train[idx].to(device)
                with autocast(precision, device):
                    if attack is None:  # clean fine-tuning
                        net.train()
                        clean = model(xb)
                        loss = F.cross_entropy(clean, yb)
                        adv = clean.detach()
                    else:
                        model.eval()
                        attack.seed = (cfg.seed * 1_000_003 + epoch) * 10_007 + b  # a fresh random start per batch
                        with torch.enable_grad():
                            x_adv = attack.perturb(xb, yb, None).detach().to(xb.dtype)
                        net.train()
                        logits = model(torch.cat([xb, x_adv]))
                        clean, adv = logits[:len(xb)], logits[len(xb):]
                        loss = (cfg.clean_weight * F.cross_entropy(clean, yb)
                                + (1 - cfg.clean_weight) * F.cross_entropy(adv, yb))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                sums["loss"] += loss.item() * len(idx)
                sums["clean"] += (clean.argmax(1) == yb).sum().item()
                sums["adv"] += (adv.argmax(1) == yb).sum().item()
            n = len(order)
            history.append({"epoch": epoch, "loss": sums["loss"] / n, "train_clean_accuracy": sums["clean"] / n,
                            "train_adv_accuracy": sums["adv"] / n, "seconds": time.time() - t0})
            if partial_path is not None and epoch < cfg.epochs - 1:
                atomic_save({"config": asdict(cfg), "epoch": epoch, "model": net.state_dict(),
                             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "history": history},
                            partial_path)
    model.eval()
    net.requires_grad_(False)
    if partial_path is not None:
        remove_entry(partial_path)
    return {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "history": history}


def _source_digest() -> str:
    text = inspect.getsource(adversarial_train) + inspect.getsource(PGD)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def robust_model_spec(name: str, cfg: AdvTrainConfig, train_budget: str = "full", device: str = "auto") -> dict:
    """Everything that determines the weights of :func:`robust_model` (its cache key)."""
    from ..models.embedded import TRAINED, trained_model_spec

    if name not in TRAINED:
        raise ValueError(f"adversarial training starts from a model trained here; valid: {sorted(TRAINED)} "
                         f"(got {name!r})")
    return {"name": f"{name}-at", "base": trained_model_spec(name, train_budget, device), "config": asdict(cfg),
            "source": _source_digest(), "precision": training_precision(resolve_device(device))}


def robust_model(name: str, eps: float, *, train_budget: str = "full", device: str = "auto",
                 **config) -> Classifier:
    """The embedded model ``name`` fine-tuned with PGD adversarial training at ``eps``; cached.

    ``config``: further :class:`AdvTrainConfig` fields (steps, alpha, epochs, lr, n_train, ...). The
    ``smoke`` budget starts from the smoke model and applies :data:`SMOKE_OVERRIDES` unless given.
    """
    from ..data import get_dataset
    from ..models import get_model
    from ..models.embedded import TRAINED

    cfg = AdvTrainConfig(eps=eps, **config)
    if train_budget == "smoke":
        cfg = replace(cfg, **{k: v for k, v in SMOKE_OVERRIDES.items() if k not in config})
    key = robust_model_spec(name, cfg, train_budget, device)  # first: an unknown name fails before any loading
    base = get_model(name, device=device, train_budget=train_budget)
    # the weights it starts from: a retrained base model never reuses a copy fine-tuned from the old one
    key["base_digest"] = model_digest(base)

    def build() -> dict:
        n_train = cfg.n_train if cfg.n_train is not None else key["base"]["n_train"]
        kwargs = {"n": n_train} if (n_train is not None and TRAINED[name].dataset == "shapes") else {}
        train = get_dataset(TRAINED[name].dataset, split="train", **kwargs)
        index = torch.arange(min(len(train), n_train or len(train)))
        model = copy.deepcopy(base)
        torch.manual_seed(cfg.seed)
        result = adversarial_train(model, train.load_images(index), train.labels[index], cfg,
                                   partial_path=cache_path("models", key, suffix=".partial"),
                                   desc=f"adversarial training {name} eps={eps:.3f}", precision=key["precision"])
        return {"state_dict": result["state_dict"], "history": result["history"]}

    payload = cached("models", key, build)
    model = copy.deepcopy(base)
    model.net.load_state_dict(payload["state_dict"])
    model.info = replace(base.info, name=f"{name}_at", test_accuracy=None,
                         weights=f"{base.info.weights}; PGD adversarial training eps={eps:.4f} (cached)",
                         notes={**base.info.notes, "adversarial_training": asdict(cfg),
                                "at_history": payload["history"]})
    model.eval().requires_grad_(False)
    return model.to(resolve_device(device))


# --------------------------------------------------------------------------- pretrained models on a new data set


def replace_head(model: Classifier, class_names: list[str], dataset: str = "", seed: int = 0) -> Classifier:
    """A copy of ``model`` whose final linear layer (``info.classifier_layer``) predicts ``class_names``,
    freshly initialised from ``seed``; the features are kept (the first step of fine-tuning)."""
    out = copy.deepcopy(model)
    old = out.classifier
    if not isinstance(old, nn.Linear):
        raise ValueError(f"{model.info.name}: the classifier layer {model.info.classifier_layer!r} is not nn.Linear")
    torch.manual_seed(seed)
    new = nn.Linear(old.in_features, len(class_names)).to(old.weight.device)
    out.net.set_submodule(model.info.classifier_layer, new)
    out.info = replace(model.info, class_names=list(class_names), dataset=dataset or model.info.dataset,
                       test_accuracy=None, notes={**model.info.notes, "head": f"replaced for {len(class_names)} classes"})
    out.requires_grad_(False)
    return out


def fine_tuned_model(name: str, dataset: str, *, eps: float | None = None, device: str = "auto",
                     weights: str = "imagenet", dataset_kwargs: dict | None = None, clean_epochs: int = 10,
                     clean_lr: float = 1e-3, **config) -> Classifier:
    """A pretrained registry model (a torchvision network) fine-tuned on ``dataset``'s training split; cached.

    The classifier layer is replaced to predict the data set's classes and the network trained on clean
    images of the whole split (``n_train`` of them, a stratified draw by ``seed``) for ``clean_epochs`` (the authors
    fine-tune ResNet-152 on CUB this way). With ``eps``, that
    model is then adversarially trained (PGD, (clean + adversarial) / 2; ``config``: further
    :class:`AdvTrainConfig` fields), the authors' "clean epochs, then adversarial ones". Images are read
    from the data set batch by batch, so folder data sets need not fit in memory.
    """
    from ..data import get_dataset
    from ..models import get_model

    dataset_kwargs = dict(dataset_kwargs or {})
    clean_cfg = AdvTrainConfig(eps=None, clean_weight=1.0, epochs=clean_epochs, lr=clean_lr,
                               **{k: v for k, v in config.items() if k in ("batch_size", "seed")})
    adv_cfg = AdvTrainConfig(eps=eps, **config) if eps is not None else None
    key = {"name": f"{name}-{dataset}-{'at' if eps is not None else 'ft'}", "model": name, "weights": weights,
           "dataset": dataset, "dataset_kwargs": dataset_kwargs, "clean": asdict(clean_cfg),
           "adversarial": asdict(adv_cfg) if adv_cfg else None, "source": _source_digest(),
           "trained_on": resolve_device(device).type, "subset": "stratified",
           "precision": training_precision(resolve_device(device))}
    train = get_dataset(dataset, split="train", **dataset_kwargs)
    start = (fine_tuned_model(name, dataset, device=device, weights=weights, dataset_kwargs=dataset_kwargs,
                              clean_epochs=clean_epochs, clean_lr=clean_lr, **config) if adv_cfg is not None
             else replace_head(get_model(name, device=device, weights=weights), train.classes, dataset))
    key["start_digest"] = model_digest(start)  # the weights fine-tuning starts from (other weights, another entry)
    cfg = adv_cfg or clean_cfg

    def build() -> dict:
        # a folder data set lists its images class by class: a subset is a stratified draw, not the first n
        index = train.sample_indices(cfg.n_train, seed=cfg.seed)
        model = copy.deepcopy(start)
        torch.manual_seed(cfg.seed)
        result = adversarial_train(model, lambda i: train.load_images(index[i]), train.labels[index], cfg,
                                   partial_path=cache_path("models", key, suffix=".partial"),
                                   desc=f"{'adversarial' if adv_cfg else 'clean'} fine-tuning {name} on {dataset}",
                                   precision=key["precision"])
        return {"state_dict": result["state_dict"], "history": result["history"]}

    payload = cached("models", key, build)
    model = copy.deepcopy(start)
    model.net.load_state_dict(payload["state_dict"])
    how = f"PGD adversarial training eps={eps:.4f}" if adv_cfg else f"clean fine-tuning, {clean_epochs} epochs"
    model.info = replace(start.info, name=f"{name}_{dataset}" + ("_at" if adv_cfg else ""),
                         weights=f"{start.info.weights}; {how} on {dataset} (cached)",
                         notes={**start.info.notes, "at_history" if adv_cfg else "history": payload["history"],
                                "adversarial_training" if adv_cfg else "fine_tuning": asdict(cfg)})
    model.eval().requires_grad_(False)
    return model


# --------------------------------------------------------------------------- as a defense


class AdversarialTraining(Defense):
    """Adversarial training as a defense: the PGD adversarially trained copy of ``model``
    (:func:`robust_model`, trained on first use and cached) labels the inputs.

    ``robust``: that copy when already built; otherwise it is built from ``model``'s name with ``eps``,
    ``train_budget`` and ``config`` (further :class:`AdvTrainConfig` fields). ``self.model`` is the
    robust copy, so an attack built on it is the white-box attack on this defense."""

    name = "adversarial_training"

    def __init__(self, model: Classifier, eps: float = 0.025, robust: Classifier | None = None,
                 train_budget: str = "full", batch_size: int = 64, **config):
        if robust is None:
            robust = robust_model(model.info.name, eps, train_budget=train_budget, device=str(module_device(model)),
                                  **config)
        super().__init__(robust, batch_size)
        self.eps = eps

    @torch.no_grad()
    def _predict(self, x):
        return self.model(x).argmax(1)

    def __repr__(self) -> str:
        return f"AdversarialTraining(eps={self.eps})"
