"""Adversarial sets by name, computed once and cached.

``adversarial_set("pgd", "shapes_resnet", "shapes", index, eps=8/255, steps=20)`` builds the model,
the images and the attack from their names, runs it over shards of the images on the current
engine (:mod:`advxai.engine`), and stores each shard under ``$ADVXAI_CACHE/adversarial`` keyed by
everything that determines it (attack, its parameters and a digest of its code, model name,
training budget and a digest of its weights, data set, split, the shard's image indices, targets,
seed). A later chapter that asks for the same set (the cross-examination chapter, or a
re-execution of the same chapter) loads it instead of attacking again.

Only names and numbers go into the key, so parameters must be plain values (an interpreter is
given by its name, as the attack factories accept).
"""
from __future__ import annotations

from typing import Any

import torch

from ..runtime import resolve_device
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


def _per_image(value: Any, n: int) -> bool:
    """A setting with one entry per image (a step mask per image, [N, C, H, W]) is cut into shards
    with the images; any other setting is the same for every shard."""
    return isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[0] == n and n > 1


def adversarial_set(attack: str, model: str, dataset: str, index: torch.Tensor | list[int], *, split: str = "test",
                    targeted: bool = False, target_seed: int = 0, train_budget: str = "full", device: str = "auto",
                    dataset_kwargs: dict[str, Any] | None = None, shard_size: int | None = None, engine=None,
                    **params) -> AttackResult:
    """Run (or load) ``attack`` on images ``index`` of ``dataset``/``split`` against ``model``.

    ``targeted=True`` draws a random target per image (:func:`random_targets` with ``target_seed``)
    and builds the attack with ``targeted=True``. ``params`` go to the attack's constructor; a tensor
    with one row per image (a per-image step mask) is cut into shards with the images.

    The images are attacked in shards of ``shard_size`` on the current engine (or ``engine``; see
    :mod:`advxai.engine`), each shard cached on its own, so an interrupted run resumes where it
    stopped. With the default local engine and no shard size the whole set is one shard, computed
    as a single call of the attack. The key holds the model's weights' digest and the attack code's,
    so a retrained model or a fixed attack never reuses stale images.
    """
    from ..data import get_dataset
    from ..engine import AttackFactory, map_attack  # the engine sits above attacks: imported on use
    from ..models import get_model
    from . import ATTACKS

    ATTACKS.check(attack)
    index = torch.as_tensor(index, dtype=torch.long).reshape(-1).cpu()
    dataset_kwargs = dict(dataset_kwargs or {})
    dev = resolve_device(device)
    net = get_model(model, device=str(dev), train_budget=train_budget)
    data = get_dataset(dataset, split=split, **dataset_kwargs)
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(data)):
        raise IndexError(f"image indices out of range for {dataset}/{split} of size {len(data)}")
    y = data.labels[index]
    target = random_targets(y, net.info.num_classes, target_seed) if targeted else None
    per_image = {k: v for k, v in params.items() if _per_image(v, len(index))}
    fixed = {k: v for k, v in params.items() if k not in per_image}
    factory = AttackFactory(attack, {**fixed, **({"targeted": True} if targeted else {})})
    key = {
        "name": f"{attack}-{model}-{dataset}", "attack": attack, "params": fixed, "model": model,
        "train_budget": train_budget, "dataset": dataset, "split": split, "dataset_kwargs": dataset_kwargs,
        "targeted": targeted, "target_seed": target_seed,
    }
    return map_attack(factory, net, None, y, target, key=key, params=per_image, index=index,
                      load=lambda idx: {"x": data.batch(idx).x}, engine=engine, shard_size=shard_size,
                      kind="adversarial", desc=f"{attack} on {model}/{dataset}")
