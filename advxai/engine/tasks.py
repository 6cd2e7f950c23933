"""Attacks as sharded jobs: :func:`map_attack` and the picklable pieces it sends to workers."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from ..runtime import code_digest, model_digest, module_device

__all__ = ["AttackFactory", "AttackTask", "map_attack", "object_digest"]


class AttackFactory:
    """Builds a registered attack by name on the model a shard gets: ``AttackFactory("pgd", {"eps": 8/255})``.

    Picklable and describable (its name and settings go into the cache key), unlike a lambda or a
    ``functools.partial`` whose text holds a memory address. Keywords given at the call (objects
    such as an RTS interpreter, or one shard's step masks) are added to the settings.
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None):
        from ..attacks import ATTACKS

        ATTACKS.check(name)
        self.name, self.params = name, dict(params or {})

    def __call__(self, model, **more):
        from ..attacks import ATTACKS

        return ATTACKS.get(self.name, model, **self.params, **more)

    def describe(self) -> dict:
        return {"attack": self.name, "params": self.params}

    def __repr__(self) -> str:
        return f"AttackFactory({self.name!r}, {self.params!r})"


class AttackTask:
    """One shard of an attack: ``attack = factory(model, **objects, **per-image settings)``, then
    ``attack(x, y, target[, target_map=...])``; returns the attack store's per-image payload."""

    def __init__(self, factory: Callable):
        self.factory = factory

    def __call__(self, shard: dict, model, **objects) -> dict:
        from ..attacks.store import _to_payload

        attack = self.factory(model, **objects, **shard.get("params", {}))
        call = {"target_map": shard["target_map"]} if "target_map" in shard else {}
        return _to_payload(attack(shard["x"], shard["y"], shard.get("target"), **call))


def object_digest(value: Any) -> str:
    """What stands for an object in a cache key: a torch module's weights; for anything else its
    code and the weights of the modules it holds (an RTS interpreter: its decoder and encoder)."""
    if isinstance(value, nn.Module):
        return model_digest(value)
    held = sorted((k, model_digest(v)) for k, v in vars(value).items() if isinstance(v, nn.Module)) \
        if hasattr(value, "__dict__") else []
    return f"{code_digest(value)}:{held}"


def map_attack(attack_factory: Callable, model: nn.Module, x: torch.Tensor | None, y: torch.Tensor,
               target: torch.Tensor | None = None, *, key: Mapping, target_map: torch.Tensor | None = None,
               params: Mapping[str, torch.Tensor] | None = None, objects: Mapping[str, Any] | None = None,
               index=None, load: Callable[[torch.Tensor], Mapping] | None = None, engine=None,
               shard_size: int | None = None, kind: str = "adversarial", desc: str | None = None,
               cache: bool = True):
    """Run an attack over shards of images on the current engine (or ``engine``); cached per shard.

    ``attack_factory(model, **objects, **params)`` builds the attack, on the driver once (for the
    code digest) and in each shard: an :class:`AttackFactory`, or any picklable callable (a
    module-level function, a class). ``model`` and ``objects`` (an RTS interpreter, a second model)
    travel through the object store; ``params`` are per-image constructor settings (one step mask
    per image) cut into shards with the images, like ``target`` and ``target_map`` (ADV²'s target
    maps, passed as ``attack(x, y, target, target_map=...)``). Images are ``x``, or what
    ``load(index)`` returns under ``"x"`` for the shards that have to be computed.

    ``key`` describes the attack (name, settings, where the images come from); the model's weights'
    digest, the attack code's digest, the objects' digests and the device type are added to it, and
    each shard's key adds its image indices and a digest of its inputs. Returns an
    :class:`~advxai.attacks.AttackResult` on the model's device, in the order of the images.

    Chapter loops and arena cells call this instead of ``attack(x, y, target)``::

        factory = AttackFactory("adv2", {"interpreter": "cam", "budget": "quick", "targeted": True})
        result = map_attack(factory, model, x, y, target, target_map=maps,
                            key={"name": "adv2-cam-shapes_resnet", "images": "shapes/test", "seed": 0})
    """
    from ..attacks.store import _from_payload
    from . import current

    objects = dict(objects or {})
    params = dict(params or {})
    if "model" in objects:
        raise ValueError("objects must not hold 'model': the model is map_attack's own argument")
    probe = attack_factory(model, **objects, **params)  # cheap: constructors do no attacking
    describe = getattr(attack_factory, "describe", None)
    job_key = {
        "name": f"{getattr(probe, 'name', 'attack')}-{getattr(getattr(model, 'info', None), 'name', 'model')}",
        **dict(key),
        "factory": describe() if callable(describe) else f"{type(attack_factory).__module__}."
                                                          f"{getattr(attack_factory, '__qualname__', type(attack_factory).__qualname__)}",
        "model_digest": model_digest(model), "code": code_digest(probe),
        "objects": {k: object_digest(v) for k, v in sorted(objects.items())},
        "device_type": module_device(model).type,
    }
    inputs = {"x": x, "y": torch.as_tensor(y, dtype=torch.long), "target": None if target is None else
              torch.as_tensor(target, dtype=torch.long), "target_map": target_map, "params": params}
    eng = engine if engine is not None else current()
    out = eng.map(AttackTask(attack_factory), inputs, key=job_key, index=index, objects={"model": model, **objects},
                  load=load, shard_size=shard_size, kind=kind, desc=desc or job_key["name"], cache=cache)
    return _from_payload(out, module_device(model))
