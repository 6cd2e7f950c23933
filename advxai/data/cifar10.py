"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder, held in memory as uint8 [N, 3, 32, 32].

The batches are Python pickles. They are read with an unpickler that builds nothing but plain
containers, numbers, bytes and numpy arrays (any other global in the file is refused), with
``encoding="bytes"`` as the files were written by Python 2, and only from the seven files named below.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from .base import InMemoryImageDataset
from .folders import DataNotFound, _root

ENV = "ADVXAI_CIFAR10"
TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)

CIFAR10_LAYOUT = """  <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5   (training split, 10,000 images each)
  <root>/cifar-10-batches-py/test_batch                      (test split, 10,000 images)
  <root>/cifar-10-batches-py/batches.meta                    (label_names)
  (root may also be the cifar-10-batches-py folder itself; the python version of
  https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted)"""

# The globals a CIFAR batch needs: numpy's array reconstruction (written as numpy.core by numpy 1,
# numpy._core by numpy 2) and the codec Python 3 uses for bytes in protocol 2.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: a CIFAR-10 batch holds only arrays")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # this numpy's own, whatever module the file names
        return super().find_class(module, name)


def _error(message: str) -> DataNotFound:
    return DataNotFound(f"cifar10: {message}. Expected layout:\n{CIFAR10_LAYOUT}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _BatchUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise _error(f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise _error(f"{path} holds a {type(obj).__name__}, not a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _folder(path: Path) -> Path:
    for candidate in (path / "cifar-10-batches-py", path):
        if (candidate / META_FILE).is_file() or (candidate / "test_batch").is_file():
            return candidate
    raise _error(f"{path} has no cifar-10-batches-py folder (nor batches.meta / test_batch in itself)")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise _error(f"{path} is missing")
    batch = _unpickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise _error(f"{path}: 'data' must be a uint8 array [N, 3072], got "
                     f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (data.shape[0],) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise _error(f"{path}: 'labels' must be {data.shape[0]} integers in 0..9")
    return data, labels


def load_cifar10_dataset(split: str = "test", root: str | None = None) -> InMemoryImageDataset:
    """CIFAR-10's ``split`` ('train': 50,000 images, 'test': 10,000) from ``root`` (default ``$ADVXAI_CIFAR10``)."""
    if split not in ("train", "test"):
        raise ValueError(f"cifar10 has splits ['test', 'train'], not {split!r}")
    folder = _folder(_root(root, ENV, "cifar10", CIFAR10_LAYOUT))
    names = TRAIN_FILES if split == "train" else TEST_FILES
    missing = [n for n in (*names, META_FILE) if not (folder / n).is_file()]
    if missing:  # every file checked before the first one is read
        raise _error(f"{folder} lacks {missing}")
    meta = _unpickle(folder / META_FILE)
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get("label_names", [])]
    if len(classes) != 10:
        raise _error(f"{folder / META_FILE}: 'label_names' must list the 10 class names, got {len(classes)}")
    parts = [_read_batch(folder / n) for n in names]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    return InMemoryImageDataset(
        name="cifar10", split=split, classes=classes, labels=torch.from_numpy(labels),
        images=torch.from_numpy(data.reshape(-1, *IMAGE_SHAPE).copy()),
        info={"source": str(folder), "files": ", ".join(names)},
    )
