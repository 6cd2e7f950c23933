"""What every folder adapter shares: the error for missing data, the root lookup, image loading
and the geometry of the resize-and-crop that puts annotations into the returned image's frame.

The adapters themselves live one per data set (``mnist``, ``imagenet``, ``cub``, ``cifar10``,
``awa2``). Each looks for its data under an explicit ``root`` or an environment variable, and when the
data is not there fails with :class:`DataNotFound`, whose message shows the folder layout it expects,
before any image is read. File-backed images are loaded lazily, their shorter side resized to
``resize_to`` and centre-cropped to ``image_size``, and returned as RGB floats in [0, 1] like every
other data set.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .base import ImageDataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class DataNotFound(FileNotFoundError):
    """A real data set's folder is missing or does not have the expected layout."""


def _root(root: str | os.PathLike | None, env: str, name: str, layout: str) -> Path:
    path = root or os.environ.get(env)
    if not path:
        raise DataNotFound(f"{name}: no folder given. Set ${env} to the data set's folder, or pass root=... to "
                           f"get_dataset({name!r}, ...). Expected layout:\n{layout}")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataNotFound(f"{name}: folder {path} does not exist (from {'root=' if root else '$' + env}). "
                           f"Expected layout:\n{layout}")
    return path


def _table(path: Path, name: str, layout: str, min_columns: int = 2) -> list[list[str]]:
    """Whitespace-separated rows of a text table; a missing file or a short row names the layout."""
    if not path.is_file():
        raise DataNotFound(f"{name}: {path} is missing. Expected layout:\n{layout}")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    for k, row in enumerate(rows):
        if len(row) < min_columns:
            raise DataNotFound(f"{name}: {path} line {k + 1} has {len(row)} column(s), expected at least "
                               f"{min_columns}: {' '.join(row)!r}. Expected layout:\n{layout}")
    return rows


# --------------------------------------------------------------------------- geometry of the crop

def crop_frame(width: int, height: int, image_size: int, resize_to: int) -> tuple[int, int, int, int]:
    """``(resized width, resized height, left, top)`` of the resize-shorter-side-then-centre-crop.

    The shorter side becomes ``resize_to`` (neither side below ``image_size``), and the crop of
    ``image_size`` pixels starts at ``(left, top)`` in the resized image. One function for the images
    and their annotations, so a box lands where the pixels it covers land.
    """
    scale = resize_to / min(width, height)
    new_w, new_h = max(image_size, round(width * scale)), max(image_size, round(height * scale))
    return new_w, new_h, (new_w - image_size) // 2, (new_h - image_size) // 2


def boxes_to_frame(boxes: torch.Tensor, sizes: torch.Tensor, image_size: int, resize_to: int) -> torch.Tensor:
    """Boxes (x0, y0, x1, y1) in original pixels [B, M, 4] → the returned image's pixels, clipped to it.

    ``sizes`` [B, 2] holds each original image's (width, height). Coordinates are treated as edges
    (a box [x0, x1] spans x0 ≤ x ≤ x1), so a box keeps its place to within one original pixel whatever
    the annotation's convention. A box that the crop leaves with no area, and every NaN (absent) box,
    comes back as NaN.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    out = torch.full_like(boxes, float("nan"))
    for b, (w, h) in enumerate(torch.as_tensor(sizes).tolist()):
        new_w, new_h, left, top = crop_frame(int(w), int(h), image_size, resize_to)
        scale = torch.tensor([new_w / w, new_h / h, new_w / w, new_h / h])
        shift = torch.tensor([left, top, left, top], dtype=torch.float32)
        out[b] = (boxes[b] * scale - shift).clamp(0, image_size)
    empty = (out[..., 2] <= out[..., 0]) | (out[..., 3] <= out[..., 1]) | out.isnan().any(-1)
    return out.masked_fill(empty[..., None], float("nan"))


def box_masks(boxes: torch.Tensor, image_size: int) -> torch.Tensor:
    """Union of each image's boxes [B, M, 4] (pixels of the frame, NaN = absent) as a mask [B, 1, S, S].

    A pixel belongs to a box when its centre lies inside it; an image with no box has an empty mask.
    """
    centre = torch.arange(image_size, dtype=torch.float32, device=boxes.device) + 0.5
    x0, y0, x1, y1 = (boxes[..., k, None] for k in range(4))  # [B, M, 1]; NaN compares False
    cols = (centre >= x0) & (centre <= x1)  # [B, M, S]
    rows = (centre >= y0) & (centre <= y1)
    return (rows[..., :, None] & cols[..., None, :]).any(1, keepdim=True)


# --------------------------------------------------------------------------- images from files

def _as_rgb(im):
    """An opened PIL image as RGB whatever its mode (greyscale, CMYK, palette, with alpha)."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # PIL's advice for palette transparency; the alpha is then dropped
    return im if im.mode == "RGB" else im.convert("RGB")


def _load_resized(path: Path, image_size: int, resize_to: int) -> torch.Tensor:
    """Resize the shorter side to ``resize_to``, centre-crop ``image_size``: uint8 [3, S, S]."""
    from PIL import Image

    with Image.open(path) as raw:
        im = _as_rgb(raw)
        new_w, new_h, left, top = crop_frame(*im.size, image_size, resize_to)
        im = im.resize((new_w, new_h), Image.BILINEAR).crop((left, top, left + image_size, top + image_size))
        arr = np.asarray(im).copy()
    return torch.from_numpy(arr).permute(2, 0, 1)


@dataclass(eq=False, repr=False)
class FileImageDataset(ImageDataset):
    """Images read from files on access (resize shorter side, centre crop).

    ``files`` is any sequence of paths (a list, or a compact listing of a million files).
    """

    files: Sequence[Path] = field(default_factory=list)
    image_size: int = 224
    resize_to: int = 256

    def load_images(self, index: torch.Tensor) -> torch.Tensor:
        batch = [_load_resized(self.files[int(i)], self.image_size, self.resize_to) for i in index]
        if not batch:
            return torch.zeros(0, *self.image_shape)
        return torch.stack(batch).float().div_(255.0)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)


DEFAULT_IMAGE_SIZE = 224  # the torchvision models' input size


def _check_size(image_size: int | None) -> int:
    """``image_size``, checked; ``None``: ``$ADVXAI_IMAGE_SIZE`` when set, else 224."""
    if image_size is None:
        from ..runtime import image_size_override

        return image_size_override() or DEFAULT_IMAGE_SIZE
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 32 <= image_size <= 1024:
        raise ValueError(f"image_size must be an integer in [32, 1024], got {image_size!r}")
    return image_size


def _resize_to(image_size: int, resize_to: int | None) -> int:
    """The shorter side before the crop: ``image_size * 256 / 224`` (the standard ratio) unless given."""
    if resize_to is None:
        return round(image_size * 256 / 224)
    if not isinstance(resize_to, int) or resize_to < image_size:
        raise ValueError(f"resize_to must be an integer >= image_size ({image_size}), got {resize_to!r}")
    return resize_to
