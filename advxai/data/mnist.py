"""``mnist``: the real 60,000 / 10,000 MNIST digits, read from the original IDX files.

``advxai fetch mnist`` (run by ``make install``) places the four uncompressed IDX files in the cache,
in torchvision's layout, after checking their MD5 sums (:mod:`advxai.fetch`). This module
only reads them: the IDX header is checked (magic number, dimensions, file size) so a damaged or
truncated file fails with a message that says what is wrong and how to replace it, instead of
producing a silently short or shifted data set.

The folder is, in order: ``root=...``, ``$ADVXAI_MNIST``, else ``<cache>/data/mnist`` (``$ADVXAI_CACHE``).
The data set counts as *embedded* (usable offline, what the book runs) once the files are there, and
as *real* (to be supplied) before; :func:`mnist_tier` tells which for ``advxai list``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..fetch import FETCH_COMMAND, MNIST_FILES, MNIST_LAYOUT, default_mnist_root, mnist_present, mnist_raw_folder
from .base import InMemoryImageDataset
from .folders import DataNotFound

__all__ = [
    "FETCH_COMMAND", "MNIST_FILES", "MNIST_LAYOUT", "IdxFormatError", "default_mnist_root", "mnist_raw_folder",
    "mnist_present", "mnist_tier", "read_idx", "load_mnist_dataset",
]

SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}

_UBYTE = 0x08  # IDX type code of unsigned bytes, the only type MNIST uses


class IdxFormatError(DataNotFound):
    """An IDX file exists but is not what MNIST's files are (wrong magic number, shape or length)."""


def mnist_tier() -> str:
    """``"embedded"`` once the files are at the default location, ``"real"`` before."""
    return "embedded" if mnist_present() else "real"


def read_idx(path: str | os.PathLike, ndim: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """An unsigned-byte IDX file as an array of ``ndim`` dimensions.

    The header is big-endian: two zero bytes, the type code (0x08 for unsigned bytes), the number of
    dimensions, then one 32-bit size per dimension. ``shape`` pins sizes (``None`` entries are free).
    """
    path = Path(path)
    fix = f"Run '{FETCH_COMMAND}' to fetch and check the files again."
    data = path.read_bytes()
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise IdxFormatError(f"{path}: {len(data)} bytes, too short for an IDX header. {fix}")
    zeros, code, dims = data[:2], data[2], data[3]
    if zeros != b"\x00\x00" or code != _UBYTE or dims != ndim:
        magic = int.from_bytes(data[:4], "big")
        expected = (_UBYTE << 8) | ndim
        raise IdxFormatError(f"{path}: magic number {magic:#010x}, expected {expected:#010x} (unsigned bytes, "
                             f"{ndim} dimensions); not an MNIST IDX file of this kind. {fix}")
    if len(data) < header:
        raise IdxFormatError(f"{path}: {len(data)} bytes, shorter than its {header}-byte header (truncated). {fix}")
    sizes = tuple(int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    if shape is not None and any(want is not None and want != got for want, got in zip(shape, sizes)):
        raise IdxFormatError(f"{path}: dimensions {sizes}, expected {tuple(shape)}. {fix}")
    expected_len = header + int(np.prod(sizes, dtype=np.int64))
    if len(data) != expected_len:
        state = "truncated" if len(data) < expected_len else "has trailing bytes"
        raise IdxFormatError(f"{path}: {len(data):,} bytes, expected {expected_len:,} for dimensions {sizes} "
                             f"({state}). {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(sizes)


def _missing_message(folder: Path, root: str | os.PathLike | None) -> str:
    missing = [f for f in MNIST_FILES if not (folder / f).is_file()]
    where = "root=" if root else ("$ADVXAI_MNIST" if os.environ.get("ADVXAI_MNIST") else "the cache")
    return (f"mnist: {', '.join(missing)} not found in {folder} (from {where}). Run '{FETCH_COMMAND}' "
            f"(make install runs it), or point $ADVXAI_MNIST at a folder that has them. Expected layout:\n"
            f"{MNIST_LAYOUT}")


def load_mnist_dataset(split: str = "test", root: str | os.PathLike | None = None,
                       n: int | None = None) -> InMemoryImageDataset:
    """MNIST's ``train`` (60,000) or ``test`` (10,000) digits, 28x28 grey, held in memory.

    ``n``: only the first ``n`` images of the split (MNIST's own order), for short smoke-budget
    training; ``None`` keeps them all.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"mnist has splits {sorted(SPLIT_FILES)}, not {split!r}")
    if n is not None and (not isinstance(n, (int, np.integer)) or not 1 <= n <= SPLIT_SIZES[split]):
        raise ValueError(f"n must be an integer in [1, {SPLIT_SIZES[split]}] for mnist/{split}, got {n!r}")
    folder = mnist_raw_folder(root)
    if not mnist_present(root):
        raise DataNotFound(_missing_message(folder, root))
    image_file, label_file = SPLIT_FILES[split]
    images = read_idx(folder / image_file, 3, (None, 28, 28))
    labels = read_idx(folder / label_file, 1)
    if len(images) != len(labels):
        raise IdxFormatError(f"mnist/{split}: {len(images)} images but {len(labels)} labels in {folder}. "
                             f"Run '{FETCH_COMMAND}' to fetch and check the files again.")
    if labels.size and int(labels.max()) > 9:
        raise IdxFormatError(f"mnist/{split}: a label is {int(labels.max())}, expected 0-9 ({folder / label_file})")
    keep = slice(None) if n is None else slice(0, int(n))
    return InMemoryImageDataset(
        name="mnist", split=split, classes=[str(d) for d in range(10)],
        labels=torch.from_numpy(labels[keep].astype(np.int64)),
        images=torch.from_numpy(images[keep].copy()).unsqueeze(1),
        info={"source": "MNIST, the original IDX files (LeCun, Cortes & Burges)",
              "images": f"{len(labels[keep]):,} of {len(labels):,}" if n is not None else f"{len(labels):,}"},
    )
