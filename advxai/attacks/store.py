"""Adversarial sets by name, computed once and cached.

``adversarial_set("pgd", "shapes_resnet", "shapes", index, eps=8/255, steps=20)`` builds the model,
the images and the attack from their names, runs it, and stores the result under
``$ADVXAI_CACHE/adversarial`` keyed by everything that determines it (attack, its parameters,
model and training budget, data set, split, image indices, targets, seed). A later chapter that
asks for the same set (the cross-examination chapter, or a re-execution of the same chapter)
loads it instead of attacking again.

Only names and numbers go into the key, so parameters must be plain values (an interpreter is
given by its name, as the attack factories accept).
"""
from __future__ import annotations

from typing import Any

import torch

from ..runtime import cached, resolve_device
from .base import AttackResult

__all__ = ["adversarial_set", "random_targets"]

_FIELDS = ("x_adv", "success", "pred", "confidence", "y", "target", "linf", "l2", "l0")


def random_targets(y: torch.Tensor, num_classes: int, seed: int = 0) -> torch.Tensor:
    """A target class different from the true one for every image, drawn uniformly and reproducibly."""
    g = torch.Generator().manual_seed(int(seed))
    shift = torch.randint(1, num_classes, (len(y),), generator=g)
    return (y.cpu() + shift) % num_classes


def _to_payload(result: AttackResult) -> dict:
    out = {k: getattr(result, k).detach().cpu() for k in _FIELDS if getattr(result, k) is not None}
    out["extras"] = {k: v.detach().cpu() for k, v in result.extras.items()
                     if isinstance(v, torch.Tensor) and v.dim() > 0 and len(v) == len(result)}
    return out


def _from_payload(payload: dict, device: torch.device) -> AttackResult:
    fields = {k: payload.get(k) for k in _FIELDS}
    fields = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in fields.items()}
    return AttackResult(**fields, extras={k: v.to(device) for k, v in payload.get("extras", {}).items()})


def adversarial_set(attack: str, model: str, dataset: str, index: torch.Tensor | list[int], *, split: str = "test",
                    targeted: bool = False, target_seed: int = 0, train_budget: str = "full", device: str = "auto",
                    dataset_kwargs: dict[str, Any] | None = None, **params) -> AttackResult:
    """Run (or load) ``attack`` on images ``index`` of ``dataset``/``split`` against ``model``.

    ``targeted=True`` draws a random target per image (:func:`random_targets` with ``target_seed``)
    and builds the attack with ``targeted=True``. ``params`` go to the attack's constructor.
    """
    from ..data import get_dataset
    from ..models import get_model
    from . import ATTACKS

    ATTACKS.check(attack)
    index = torch.as_tensor(index, dtype=torch.long).cpu()
    dataset_kwargs = dict(dataset_kwargs or {})
    dev = resolve_device(device)
    spec = {
        "name": f"{attack}-{model}-{dataset}", "attack": attack, "params": params, "model": model,
        "train_budget": train_budget, "dataset": dataset, "split": split, "dataset_kwargs": dataset_kwargs,
        "index": index, "targeted": targeted, "target_seed": target_seed, "device_type": dev.type,
    }

    def build() -> dict:
        net = get_model(model, device=str(dev), train_budget=train_budget)
        data = get_dataset(dataset, split=split, **dataset_kwargs)
        batch = data.batch(index)
        kwargs = dict(params)
        target = None
        if targeted:
            kwargs["targeted"] = True
            target = random_targets(batch.y, net.info.num_classes, target_seed)
        result = ATTACKS.get(attack, net, **kwargs)(batch.x, batch.y, target)
        return _to_payload(result)

    return _from_payload(cached("adversarial", spec, build), dev)
