"""Data sets by name: ``get_dataset("shapes", split="test")``.

Embedded (offline, shipped in pip packages or generated): ``digits``, ``photos``, ``shapes``.
Real (local folders, or a download when online): ``mnist``, ``imagenet``, ``cub``.
"""
from __future__ import annotations

from ..registry import Registry
from .base import Batch, ImageDataset, InMemoryImageDataset
from .digits import load_digits_dataset
from .folders import DataNotFound, load_cub_dataset, load_imagenet_dataset, load_mnist_dataset
from .imagenet_classes import imagenet_class_index, imagenet_class_names
from .photos import load_photos_dataset
from .shapes import load_shapes_dataset

DATASETS = Registry("data set")
DATASETS.register("digits", "scikit-learn's 1,797 real handwritten digits at 28x28 (MNIST stand-in)",
                  tier="embedded")(load_digits_dataset)
DATASETS.register("photos", "real photographs from scikit-image/scikit-learn/matplotlib with ImageNet labels",
                  tier="embedded")(load_photos_dataset)
DATASETS.register("shapes", "synthetic birds made of parts: classes, 28 attributes, masks, part boxes",
                  tier="embedded")(load_shapes_dataset)
DATASETS.register("mnist", "MNIST via torchvision (local folder, or download=True when online)",
                  tier="real")(load_mnist_dataset)
DATASETS.register("imagenet", "a local ImageNet / ImageNetV2 validation folder", tier="real")(load_imagenet_dataset)
DATASETS.register("cub", "a local CUB-200-2011 folder with attributes and parts", tier="real")(load_cub_dataset)


def get_dataset(name: str, split: str = "test", **kwargs) -> ImageDataset:
    """The data set ``name`` (see :func:`list_datasets`), split ``split``; extra keywords go to its loader."""
    return DATASETS.get(name, split=split, **kwargs)


def list_datasets() -> list[str]:
    return DATASETS.names()


__all__ = [
    "Batch", "ImageDataset", "InMemoryImageDataset", "DataNotFound", "DATASETS", "get_dataset", "list_datasets",
    "imagenet_class_names", "imagenet_class_index",
]
