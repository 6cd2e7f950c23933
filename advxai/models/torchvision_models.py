"""torchvision ImageNet classifiers for the ``paper`` profile: resnet50, resnet152, densenet169, vgg16, vgg19,
inception_v3.

``weights`` picks where the parameters come from:

* ``"imagenet"`` (default): torchvision's weights, read from the torch hub cache
  (``$TORCH_HOME/hub/checkpoints``) when present, downloaded there when the machine is online;
* a path to a state-dict file (``.pth``), loaded with ``weights_only=True``;
* ``"random"``: untrained, for speed measurements (speed does not depend on the weights).

When the weights are neither cached nor downloadable, the error says where to put the file.

Each model takes images at its own size (224; 299 for Inception-v3) unless ``$ADVXAI_IMAGE_SIZE``
sets another (:func:`input_size`); the model's ``info.input_size`` says which, and every data set,
interpreter and decoder sizes itself from it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn as nn

from ..runtime import refuse_in_worker, resolve_device
from .base import Classifier, ModelInfo

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DenseNetGAP(nn.Module):
    """torchvision's DenseNet with its final functional ReLU made a module (``cam``), so the
    pre-pooling map can be hooked and the activation swapped like every other."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.features = net.features
        self.cam = nn.ReLU()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = net.classifier

    def forward(self, x):
        return self.classifier(self.pool(self.cam(self.features(x))))


# name -> (constructor name, weights enum name, input size, cam layer, feature layer, classifier, gap head, mean, std)
TORCHVISION = {
    "resnet50": ("resnet50", "ResNet50_Weights", 224, "layer4", "avgpool", "fc", True),
    "resnet152": ("resnet152", "ResNet152_Weights", 224, "layer4", "avgpool", "fc", True),
    "densenet169": ("densenet169", "DenseNet169_Weights", 224, "cam", "pool", "classifier", True),
    "vgg16": ("vgg16", "VGG16_Weights", 224, "features.29", "classifier.4", "classifier.6", False),
    "vgg19": ("vgg19", "VGG19_Weights", 224, "features.35", "classifier.4", "classifier.6", False),
    "inception_v3": ("inception_v3", "Inception_V3_Weights", 299, "Mixed_7c", "avgpool", "fc", True),
}


def _weights_error(name: str, file: Path, url: str, exc: Exception | None) -> RuntimeError:
    why = f" ({type(exc).__name__}: {exc})" if exc else ""
    return RuntimeError(
        f"{name}: torchvision's ImageNet weights are not on this machine and could not be downloaded{why}.\n"
        f"  Either run once on a machine with network access (they are saved to {file}),\n"
        f"  or download {url} elsewhere and copy it to {file},\n"
        f"  or pass weights=/path/to/state_dict.pth (a chapter parameter: -p weights=...),\n"
        f"  or weights='random' for untrained weights (speed measurements only).")


def _state_dict(name: str, enum_name: str, weights: str):
    import torchvision.models as tvm

    if weights == "random":
        return None, "random initialisation (untrained)"
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{name}: weights file {path} not found")
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        return sd, f"state dict from {path.name}"
    enum = getattr(tvm, enum_name).IMAGENET1K_V1
    file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if file.is_file():
        return torch.load(file, map_location="cpu", weights_only=True), f"torchvision {enum_name}.IMAGENET1K_V1"
    refuse_in_worker(f"download torchvision's {name} weights")  # workers get the model, never fetch it
    try:
        return enum.get_state_dict(progress=True), f"torchvision {enum_name}.IMAGENET1K_V1 (downloaded)"
    except Exception as exc:  # offline, blocked, or a partial download
        raise _weights_error(name, file, enum.url, exc) from exc


# A DenseNet layer's parts were once named "norm.1", "conv.2", ...; torchvision's published DenseNet
# checkpoints still use those names, and its own loader renames them ("norm1", "conv2") on the way in.
_OLD_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                               r"([12]\.(?:weight|bias|running_mean|running_var))$")


def modern_densenet_keys(sd: dict) -> dict:
    """``sd`` with the old DenseNet layer names of torchvision's checkpoint files renamed as the
    current modules name them (``...denselayer1.norm.1.weight`` -> ``...denselayer1.norm1.weight``)."""
    out = {}
    for key, value in sd.items():
        m = _OLD_DENSENET_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def _build_for_weights(ctor, kwargs: dict, sd: dict, name: str) -> torch.nn.Module:
    """The network with the weights ``sd``, built without its random initialisation.

    torchvision initialises every layer on construction (for VGG-16 that is 138 M random numbers),
    only for ``load_state_dict`` to overwrite them. Built on the meta device, the layers hold no
    storage; ``assign=True`` then makes the loaded tensors the parameters. Strict loading checks that
    every parameter and buffer came from ``sd``, so nothing is left on the meta device.
    """
    with torch.device("meta"):
        net = ctor(**kwargs)
    net.load_state_dict(sd, assign=True)
    left = [n for n, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left:  # a buffer that the state dict does not hold (none in torchvision's classifiers)
        raise RuntimeError(f"{name}: the weights leave {left[:5]} unset")
    return net


# The smallest input each network's strides and valid (unpadded) convolutions accept.
MIN_INPUT_SIZE = {"inception_v3": 75}


def input_size(name: str) -> int:
    """The side at which ``name`` takes images: ``$ADVXAI_IMAGE_SIZE`` when set (the networks pool
    globally, so any size from their minimum works; the weights were trained at the native size), else
    its own (224; 299 for Inception-v3)."""
    from ..runtime import IMAGE_SIZE_ENV, image_size_override

    size = image_size_override()
    if size is None:
        return TORCHVISION[name][2]
    low = MIN_INPUT_SIZE.get(name, 32)
    if size < low:
        raise ValueError(f"{name} takes images of at least {low} pixels; ${IMAGE_SIZE_ENV} is {size}")
    return size


def load_torchvision_model(name: str, device: str = "auto", weights: str = "imagenet") -> Classifier:
    import torchvision.models as tvm

    from ..data.imagenet_classes import imagenet_class_names

    ctor, enum_name, native, cam, feat, clf, gap = TORCHVISION[name]
    size = input_size(name)
    kwargs = {"weights": None}
    if name == "inception_v3":
        # transform_input=False: the wrapper normalises with mean = std = 0.5 itself, which is what
        # torchvision's transform_input=True converts ImageNet-normalised inputs back into.
        kwargs.update(aux_logits=True, transform_input=False, init_weights=False)
    sd, provenance = _state_dict(name, enum_name, weights)
    if sd is None:
        net = getattr(tvm, ctor)(**kwargs)
    else:
        if name.startswith("densenet"):
            sd = modern_densenet_keys(sd)
        net = _build_for_weights(getattr(tvm, ctor), kwargs, sd, name)
    if name == "inception_v3":
        net.aux_logits, net.AuxLogits = False, None  # eval-time outputs only
    if name == "densenet169":
        net = DenseNetGAP(net)
    mean, std = ((0.5,) * 3, (0.5,) * 3) if name == "inception_v3" else (IMAGENET_MEAN, IMAGENET_STD)
    info = ModelInfo(
        name=name, dataset="imagenet", input_size=(3, size, size), class_names=imagenet_class_names(),
        mean=mean, std=std, cam_layer=cam, feature_layer=feat, classifier_layer=clf,
        architecture=f"torchvision {ctor}", weights=provenance, gap_head=gap,
        notes={} if size == native else {"native_input_size": native},
    )
    return Classifier(net, info).to(resolve_device(device))
