"""Real data sets read from local folders (or downloaded when online): ``mnist``, ``imagenet``, ``cub``.

None of them is needed by the embedded profiles. Each looks for its data under an explicit
``root`` or the environment variable named below, and when the data is not there fails with a
message that shows the folder layout it expects. Images are loaded lazily, resized and centre-
cropped to ``image_size`` and returned as floats in [0, 1] like every other data set.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .base import ImageDataset, InMemoryImageDataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class DataNotFound(FileNotFoundError):
    """A real data set's folder is missing or does not have the expected layout."""


def _root(root: str | os.PathLike | None, env: str, name: str, layout: str) -> Path:
    path = root or os.environ.get(env)
    if not path:
        raise DataNotFound(f"{name}: no folder given. Pass root=... (or -p {name}_root=... to a chapter) "
                           f"or set ${env}. Expected layout:\n{layout}")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataNotFound(f"{name}: folder {path} does not exist. Expected layout:\n{layout}")
    return path


def _load_resized(path: Path, image_size: int, resize_to: int) -> torch.Tensor:
    """Resize the shorter side to ``resize_to``, centre-crop ``image_size``: uint8 [3, S, S]."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = resize_to / min(w, h)
        im = im.resize((max(image_size, round(w * scale)), max(image_size, round(h * scale))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - image_size) // 2, (h - image_size) // 2
        im = im.crop((left, top, left + image_size, top + image_size))
        arr = np.asarray(im).copy()
    return torch.from_numpy(arr).permute(2, 0, 1)


@dataclass(eq=False, repr=False)
class FileImageDataset(ImageDataset):
    """Images read from files on access (resize shorter side, centre crop)."""

    files: list[Path] = field(default_factory=list)
    image_size: int = 224
    resize_to: int = 256

    def load_images(self, index: torch.Tensor) -> torch.Tensor:
        batch = [_load_resized(self.files[int(i)], self.image_size, self.resize_to) for i in index]
        return torch.stack(batch).float().div_(255.0)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)


def _check_size(image_size: int) -> int:
    if not isinstance(image_size, int) or not 32 <= image_size <= 1024:
        raise ValueError(f"image_size must be an integer in [32, 1024], got {image_size!r}")
    return image_size


# --------------------------------------------------------------------------- MNIST

MNIST_LAYOUT = """  <root>/MNIST/raw/train-images-idx3-ubyte   (uncompressed, as torchvision leaves them)
  <root>/MNIST/raw/train-labels-idx1-ubyte
  <root>/MNIST/raw/t10k-images-idx3-ubyte
  <root>/MNIST/raw/t10k-labels-idx1-ubyte
  (download=True fetches them when the machine is online)"""


def load_mnist_dataset(split: str = "test", root: str | None = None, download: bool = False) -> InMemoryImageDataset:
    """torchvision's MNIST (28x28 grey), held in memory; ``root`` defaults to ``$ADVXAI_MNIST``."""
    from torchvision.datasets import MNIST

    if split not in ("train", "test"):
        raise ValueError(f"mnist has splits ['test', 'train'], not {split!r}")
    path = root or os.environ.get("ADVXAI_MNIST")
    if not path and not download:
        _root(None, "ADVXAI_MNIST", "mnist", MNIST_LAYOUT)
    path = Path(path or Path.home() / ".cache" / "advxai" / "mnist").expanduser()
    try:
        ds = MNIST(str(path), train=(split == "train"), download=download)
    except RuntimeError as exc:
        raise DataNotFound(f"mnist: {exc} (looked in {path}). Expected layout:\n{MNIST_LAYOUT}") from exc
    return InMemoryImageDataset(
        name="mnist", split=split, classes=[str(d) for d in range(10)],
        labels=ds.targets.clone().long(), images=ds.data.unsqueeze(1).clone(),
        info={"source": f"torchvision MNIST at {path}"},
    )


# --------------------------------------------------------------------------- ImageNet

IMAGENET_LAYOUT = """  either ImageNet's validation set in class folders named by WordNet id (all 1,000 of them; their
  sorted order is the standard class index):
    <root>/n01440764/ILSVRC2012_val_00000293.JPEG ...
    <root>/n15075141/...
  or ImageNetV2 (matched-frequency / top-images) with folders named by class index:
    <root>/0/<image>.jpeg ... <root>/999/<image>.jpeg
  (a subset of the 1,000 folders is accepted when LOC_synset_mapping.txt sits in <root>)"""


def _imagenet_folder_classes(root: Path) -> dict[str, int]:
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DataNotFound(f"imagenet: {root} has no class folders. Expected layout:\n{IMAGENET_LAYOUT}")
    if all(f.isdigit() for f in folders):
        index = {f: int(f) for f in folders}
        if max(index.values()) > 999:
            raise DataNotFound(f"imagenet: numbered folders must be 0..999. Expected layout:\n{IMAGENET_LAYOUT}")
        return index
    if all(f.startswith("n") and f[1:].isdigit() for f in folders):
        mapping = root / "LOC_synset_mapping.txt"
        if mapping.exists():
            wnids = [line.split()[0] for line in mapping.read_text().splitlines() if line.strip()]
            order = {w: i for i, w in enumerate(wnids)}
            missing = [f for f in folders if f not in order]
            if missing:
                raise DataNotFound(f"imagenet: folders {missing[:3]} not in LOC_synset_mapping.txt")
            return {f: order[f] for f in folders}
        if len(folders) != 1000:
            raise DataNotFound(f"imagenet: found {len(folders)} WordNet-id folders; with fewer than 1,000 the class "
                               f"index needs LOC_synset_mapping.txt in {root}. Expected layout:\n{IMAGENET_LAYOUT}")
        return {f: i for i, f in enumerate(folders)}
    raise DataNotFound(f"imagenet: folder names in {root} are neither WordNet ids nor class indices. "
                       f"Expected layout:\n{IMAGENET_LAYOUT}")


def load_imagenet_dataset(split: str = "val", root: str | None = None, image_size: int = 224,
                          resize_to: int | None = None) -> FileImageDataset:
    """A local ImageNet / ImageNetV2 validation folder; ``root`` defaults to ``$ADVXAI_IMAGENET``."""
    from .imagenet_classes import imagenet_class_names

    if split not in ("val", "test"):
        raise ValueError(f"imagenet reads a validation folder: split 'val' (alias 'test'), not {split!r}")
    _check_size(image_size)
    path = _root(root, "ADVXAI_IMAGENET", "imagenet", IMAGENET_LAYOUT)
    classes = _imagenet_folder_classes(path)
    files, labels = [], []
    for folder, label in sorted(classes.items(), key=lambda kv: kv[1]):
        for f in sorted((path / folder).iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(f)
                labels.append(label)
    if not files:
        raise DataNotFound(f"imagenet: no images under {path}. Expected layout:\n{IMAGENET_LAYOUT}")
    return FileImageDataset(
        name="imagenet", split=split, classes=imagenet_class_names(), labels=torch.tensor(labels),
        files=files, image_size=image_size, resize_to=resize_to or round(image_size * 256 / 224),
        info={"source": str(path), "class folders": len(classes)},
    )


# --------------------------------------------------------------------------- CUB-200-2011

CUB_LAYOUT = """  <root>/images.txt                     '<image id> <relative path>'
  <root>/image_class_labels.txt         '<image id> <class id 1..200>'
  <root>/train_test_split.txt           '<image id> <1 = train, 0 = test>'
  <root>/classes.txt                    '<class id> <name>'
  <root>/bounding_boxes.txt             '<image id> <x> <y> <width> <height>'
  <root>/attributes/class_attribute_labels_continuous.txt   200 rows x 312 percentages
  <root>/attributes/image_attribute_labels.txt              '<image id> <attr id> <present> <certainty> <time>'
  <root>/attributes.txt (or <root>/../attributes.txt)       '<attr id> <name>'
  <root>/parts/parts.txt                '<part id> <name>'
  <root>/parts/part_locs.txt            '<image id> <part id> <x> <y> <visible>'
  <root>/images/<class folder>/<file>.jpg"""


def _table(path: Path) -> list[list[str]]:
    if not path.exists():
        raise DataNotFound(f"cub: {path} is missing. Expected layout:\n{CUB_LAYOUT}")
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def load_cub_dataset(split: str = "test", root: str | None = None, image_size: int = 224,
                     resize_to: int | None = None) -> FileImageDataset:
    """CUB-200-2011 with its 312 attributes, bird boxes and 15 part locations.

    Annotations per image: ``attributes`` [N, 312] (binary, as annotated), ``bird_box`` [N, 4] and
    ``part_locs`` [N, 15, 3] (x, y, visible) in the original image's pixels. Class attribute
    vectors are the continuous percentages, L2-normalised per class later by SJE.
    """
    if split not in ("train", "test"):
        raise ValueError(f"cub has splits ['test', 'train'], not {split!r}")
    _check_size(image_size)
    path = _root(root, "ADVXAI_CUB", "cub", CUB_LAYOUT)
    images = {int(r[0]): r[1] for r in _table(path / "images.txt")}
    labels = {int(r[0]): int(r[1]) - 1 for r in _table(path / "image_class_labels.txt")}
    is_train = {int(r[0]): r[1] == "1" for r in _table(path / "train_test_split.txt")}
    classes = [r[1] for r in sorted(_table(path / "classes.txt"), key=lambda r: int(r[0]))]
    attr_file = path / "attributes.txt"
    if not attr_file.exists():
        attr_file = path.parent / "attributes.txt"
    attribute_names = [r[1] for r in sorted(_table(attr_file), key=lambda r: int(r[0]))]
    class_attr = torch.tensor([[float(v) for v in r] for r in _table(path / "attributes" / "class_attribute_labels_continuous.txt")])
    if class_attr.shape != (len(classes), len(attribute_names)):
        raise DataNotFound(f"cub: class attribute table is {tuple(class_attr.shape)}, expected "
                           f"({len(classes)}, {len(attribute_names)})")
    ids = sorted(i for i in images if is_train[i] == (split == "train"))
    pos = {img_id: k for k, img_id in enumerate(ids)}
    attrs = torch.zeros(len(ids), len(attribute_names))
    for r in _table(path / "attributes" / "image_attribute_labels.txt"):
        img_id = int(r[0])
        if img_id in pos:
            attrs[pos[img_id], int(r[1]) - 1] = float(r[2])
    boxes = torch.full((len(ids), 4), float("nan"))
    for r in _table(path / "bounding_boxes.txt"):
        img_id = int(r[0])
        if img_id in pos:
            x, y, w, h = map(float, r[1:5])
            boxes[pos[img_id]] = torch.tensor([x, y, x + w, y + h])
    part_names = [" ".join(r[1:]) for r in sorted(_table(path / "parts" / "parts.txt"), key=lambda r: int(r[0]))]
    parts = torch.zeros(len(ids), len(part_names), 3)
    for r in _table(path / "parts" / "part_locs.txt"):
        img_id = int(r[0])
        if img_id in pos:
            parts[pos[img_id], int(r[1]) - 1] = torch.tensor([float(r[2]), float(r[3]), float(r[4])])
    files = [path / "images" / images[i] for i in ids]
    return FileImageDataset(
        name="cub", split=split, classes=classes, labels=torch.tensor([labels[i] for i in ids]),
        annotations={"attributes": attrs, "bird_box": boxes, "part_locs": parts},
        attribute_names=attribute_names, class_attributes=class_attr, part_names=part_names,
        files=files, image_size=image_size, resize_to=resize_to or round(image_size * 256 / 224),
        info={"source": str(path), "note": "boxes and part locations are in original-image pixels"},
    )
