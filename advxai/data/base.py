"""The data-set container every adapter returns.

Images are float tensors in [0, 1], shape [C, H, W] per item and [B, C, H, W] per batch. Embedded
data sets keep their images in memory as uint8 (exact, four times smaller than float); folder
adapters read files on access. Per-image annotations (attribute vectors, object masks, part boxes)
travel with a batch under their own names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["Batch", "ImageDataset", "InMemoryImageDataset"]


class Batch(dict):
    """A dict of batched tensors with attribute access: ``b.x``, ``b.y``, ``b.index``, ``b.masks``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"batch has no field {name!r}; fields: {sorted(self)}") from None

    def to(self, device) -> "Batch":
        return Batch({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.items()})


@dataclass(eq=False)
class ImageDataset(Dataset):
    """Base class: a labelled image set with optional attribute and localisation annotations.

    Subclasses implement :meth:`load_images`. ``annotations`` maps a name to a tensor whose first
    dimension is the image index (for example ``attributes`` [N, A], ``masks`` [N, 1, H, W],
    ``part_boxes`` [N, P, 4] as (x0, y0, x1, y1) in pixels, NaN where a part is absent).
    """

    name: str
    split: str
    classes: list[str]
    labels: torch.Tensor
    annotations: dict[str, torch.Tensor] = field(default_factory=dict)
    attribute_names: list[str] | None = None
    class_attributes: torch.Tensor | None = None  # [K, A], one row per class
    part_names: list[str] | None = None
    attribute_parts: list[int] | None = None  # part index of each attribute
    info: dict = field(default_factory=dict)  # provenance: source, notes, generation settings

    # -- to implement -------------------------------------------------------------------------
    def load_images(self, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.load_images(torch.tensor([0])).shape[1:])

    # -- common API --------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_attributes(self) -> bool:
        return self.class_attributes is not None and self.attribute_names is not None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int):
        x = self.load_images(torch.tensor([int(i)]))[0]
        return x, int(self.labels[i])

    def batch(self, index: Sequence[int] | torch.Tensor) -> Batch:
        """Images, labels and every annotation for the given indices, as one :class:`Batch`."""
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise IndexError(f"index out of range for {self.name}/{self.split} of size {len(self)}")
        out = Batch(x=self.load_images(index), y=self.labels[index], index=index)
        for key, value in self.annotations.items():
            out[key] = value[index]
        return out

    def sample_indices(self, n: int | None, seed: int = 0, stratified: bool = True) -> torch.Tensor:
        """``n`` indices drawn without replacement, reproducibly; balanced over classes if asked.

        ``n=None`` (or ``n >= len``) returns every index in order.
        """
        if n is None or n >= len(self):
            return torch.arange(len(self))
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        g = torch.Generator().manual_seed(int(seed))
        if not stratified:
            return torch.randperm(len(self), generator=g)[:n].sort().values
        # Round-robin over classes in a seeded order: every class gets floor(n/K) or one more.
        per_class = [torch.nonzero(self.labels == c).flatten() for c in range(self.num_classes)]
        per_class = [idx[torch.randperm(len(idx), generator=g)] for idx in per_class if len(idx)]
        order = torch.randperm(len(per_class), generator=g).tolist()
        chosen, depth = [], 0
        while len(chosen) < n:
            added = False
            for c in order:
                if depth < len(per_class[c]):
                    chosen.append(int(per_class[c][depth]))
                    added = True
                    if len(chosen) == n:
                        break
            if not added:
                break
            depth += 1
        return torch.tensor(sorted(chosen), dtype=torch.long)

    def loader(self, batch_size: int = 64, shuffle: bool = False, seed: int = 0, num_workers: int = 0) -> DataLoader:
        """A DataLoader over ``(image, label)`` pairs; the shuffle order is fixed by ``seed``."""
        g = torch.Generator().manual_seed(int(seed))
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=num_workers)

    def iter_batches(self, batch_size: int = 64, index: torch.Tensor | None = None):
        """Yield :class:`Batch` objects over ``index`` (default: all images) in order."""
        index = torch.arange(len(self)) if index is None else torch.as_tensor(index)
        for start in range(0, len(index), batch_size):
            yield self.batch(index[start:start + batch_size])

    def describe(self) -> dict:
        c, h, w = self.image_shape
        return {
            "data set": self.name,
            "split": self.split,
            "images": len(self),
            "classes": self.num_classes,
            "size": f"{c}x{h}x{w}",
            "attributes": len(self.attribute_names) if self.attribute_names else 0,
            "annotations": ", ".join(sorted(self.annotations)) or "-",
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, split={self.split!r}, n={len(self)}, classes={self.num_classes})"


@dataclass(eq=False, repr=False)
class InMemoryImageDataset(ImageDataset):
    """Images held as a uint8 tensor [N, C, H, W]; converted to float in [0, 1] on access."""

    images: torch.Tensor | None = None

    def __post_init__(self):
        if self.images is None or self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise TypeError("InMemoryImageDataset needs images as a uint8 tensor [N, C, H, W]")
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError("images and labels differ in length")

    def load_images(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[index].float().div_(255.0)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])
