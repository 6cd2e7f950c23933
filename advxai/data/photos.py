"""``photos``: real photographs that ship inside pip packages, each with a human-checked ImageNet label.

No photograph data set can be downloaded here, so the ImageNet stand-in is the handful of real
photographs scikit-image, scikit-learn and matplotlib carry. Each label below was chosen by looking
at the photograph, not by asking a model; where ImageNet has no class for the main subject the
nearest class is used and the note says so. Photographs whose subject has no ImageNet class at
all are left out (see ``LEFT_OUT``).

Preprocessing: the central square crop, resized (bilinear, antialiased) to ``image_size`` (224 by
default; 299 for Inception-v3). Grey-scale photographs are repeated over three channels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .base import InMemoryImageDataset


@dataclass(frozen=True)
class Photo:
    name: str
    package: str
    file: str
    label: int  # ImageNet class index
    note: str


PHOTOS: tuple[Photo, ...] = (
    Photo("chelsea", "skimage", "chelsea.png", 281, "a striped orange tabby cat: 'tabby'"),
    Photo("coffee", "skimage", "coffee.png", 967, "a cup of espresso on a saucer: 'espresso'"),
    Photo("rocket", "skimage", "rocket.jpg", 657, "a Falcon 9 rocket on its launch pad: 'missile' (ImageNet's rocket class)"),
    Photo("motorcycle_left", "skimage", "motorcycle_left.png", 665,
          "a motorcycle (Middlebury stereo scene); ImageNet has no motorcycle class, nearest is 'moped'"),
    Photo("camera", "skimage", "camera.png", 872, "the cameraman: a camera on a tripod, the tripod in full view: 'tripod'"),
    Photo("china", "sklearn", "china.jpg", 698, "the Tower of Buddhist Incense, Summer Palace, Beijing: 'palace'"),
    Photo("flower", "sklearn", "flower.jpg", 985,
          "a dahlia; ImageNet's only composite-flower class is 'daisy' (same family, Asteraceae)"),
    Photo("grace_hopper", "matplotlib", "grace_hopper.jpg", 652, "Grace Hopper in US Navy uniform: 'military uniform'"),
)

LEFT_OUT = {
    "astronaut": "the subject is a person; ImageNet has no person class (the shuttle model and helmet are minor)",
    "motorcycle_right": "the other view of the same stereo pair as motorcycle_left",
    "horse": "a binary silhouette, not a photograph",
    "coins, clock_motion, moon, hubble_deep_field, retina": "no ImageNet class, or not a natural photograph",
}


def _package_folder(package: str) -> str:
    if package == "skimage":
        import skimage.data

        return os.path.dirname(skimage.data.__file__)
    if package == "sklearn":
        import sklearn.datasets

        return os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    if package == "matplotlib":
        import matplotlib

        return os.path.join(matplotlib.get_data_path(), "sample_data")
    raise ValueError(package)


def photo_path(photo: Photo) -> str:
    return os.path.join(_package_folder(photo.package), photo.file)


def center_square_resize(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 HxW(x3) array -> uint8 tensor [3, size, size]: central square crop, antialiased resize."""
    from PIL import Image

    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(np.ascontiguousarray(image[top:top + s, left:left + s]))
    crop = crop.resize((size, size), Image.BILINEAR, reducing_gap=None)
    return torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1).contiguous()


@lru_cache(maxsize=8)
def _load(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    images, labels = [], []
    for p in PHOTOS:
        with Image.open(photo_path(p)) as im:
            arr = np.asarray(im.convert("RGB"))
        images.append(center_square_resize(arr, image_size))
        labels.append(p.label)
    return torch.stack(images), torch.tensor(labels)


def load_photos_dataset(split: str = "test", image_size: int = 224) -> InMemoryImageDataset:
    from .imagenet_classes import imagenet_class_names

    if split not in ("test", "all"):
        raise ValueError(f"photos has only the split 'test' (alias 'all'), not {split!r}")
    if not isinstance(image_size, int) or not 32 <= image_size <= 1024:
        raise ValueError(f"image_size must be an integer in [32, 1024], got {image_size!r}")
    images, labels = _load(image_size)
    return InMemoryImageDataset(
        name="photos",
        split=split,
        classes=imagenet_class_names(),
        labels=labels.clone(),
        images=images.clone(),
        info={
            "source": "photographs shipped by scikit-image, scikit-learn and matplotlib",
            "photos": [p.name for p in PHOTOS],
            "label notes": {p.name: p.note for p in PHOTOS},
            "left out": LEFT_OUT,
            "preprocessing": f"central square crop, bilinear antialiased resize to {image_size}x{image_size}",
        },
    )
