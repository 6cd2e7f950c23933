"""Data sets by name: ``get_dataset("shapes", split="test")``.

Embedded (offline, shipped in pip packages or generated): ``digits``, ``photos``, ``shapes``, and
``mnist`` once ``advxai fetch mnist`` has put its files in the cache.
Real (local folders, or a download when online): ``mnist`` before that, ``imagenet``, ``cub``, ``cifar10``, ``awa2``.

:func:`sample_correct` draws the papers' evaluation images: at random by seed, stratified over
classes, among those a model classifies correctly.
"""
from __future__ import annotations

from ..registry import Registry
from .awa2 import load_awa2_dataset
from .base import Batch, ImageDataset, InMemoryImageDataset
from .cifar10 import load_cifar10_dataset
from .cub import load_cub_dataset
from .digits import load_digits_dataset
from .folders import DataNotFound
from .imagenet import load_imagenet_dataset
from .imagenet_classes import imagenet_class_index, imagenet_class_names
from .mnist import load_mnist_dataset, mnist_tier
from .photos import load_photos_dataset
from .sampling import (
    CorrectSample, FewerCorrect, empty_classes, require_class_images, sample_correct, sample_correct_pair,
    select_correct,
)
from .shapes import load_shapes_dataset

DATASETS = Registry("data set")
DATASETS.register("digits", "scikit-learn's 1,797 real handwritten digits at 28x28 (MNIST stand-in)",
                  tier="embedded")(load_digits_dataset)
DATASETS.register("photos", "real photographs from scikit-image/scikit-learn/matplotlib with ImageNet labels",
                  tier="embedded")(load_photos_dataset)
DATASETS.register("shapes", "synthetic birds made of parts: classes, 28 attributes, masks, part boxes",
                  tier="embedded")(load_shapes_dataset)
# mnist is embedded once `advxai fetch mnist` (make install) has put its files in the cache: the tier is
# computed whenever it is read.
DATASETS.register("mnist", "the real MNIST digits, 60,000 train / 10,000 test (fetched by 'advxai fetch mnist')",
                  tier=mnist_tier)(load_mnist_dataset)
DATASETS.register("imagenet", "a local ImageNet folder (ILSVRC train/val with boxes, Kaggle, or ImageNetV2)",
                  tier="real")(load_imagenet_dataset)
DATASETS.register("cub", "a local CUB-200-2011 folder with attributes and parts", tier="real")(load_cub_dataset)
DATASETS.register("cifar10", "a local CIFAR-10 folder (cifar-10-batches-py), held in memory",
                  tier="real")(load_cifar10_dataset)
DATASETS.register("awa2", "a local Animals with Attributes 2 folder: 50 classes, 85 attributes",
                  tier="real")(load_awa2_dataset)


def get_dataset(name: str, split: str = "test", **kwargs) -> ImageDataset:
    """The data set ``name`` (see :func:`list_datasets`), split ``split``; extra keywords go to its loader."""
    return DATASETS.get(name, split=split, **kwargs)


def list_datasets() -> list[str]:
    return DATASETS.names()


__all__ = [
    "Batch", "ImageDataset", "InMemoryImageDataset", "DataNotFound", "DATASETS", "get_dataset", "list_datasets",
    "imagenet_class_names", "imagenet_class_index", "CorrectSample", "FewerCorrect", "empty_classes",
    "require_class_images", "sample_correct", "sample_correct_pair", "select_correct",
]
