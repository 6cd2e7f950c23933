"""Animals with Attributes 2 from a local folder: 50 animals, 85 attributes (predicates) per class.

AwA2 ships no per-image annotation and no split for plain classification (``trainclasses.txt`` /
``testclasses.txt`` split the classes for zero-shot learning, which a classifier cannot use). The
attribute paper classifies all 50 classes with 22,206 train / 5,599 val / 9,517 test images out of
37,322 without saying how they were drawn; here every class is split in those proportions (59.5 /
15.0 / 25.5 %, rounded per class by largest remainder) by a seeded permutation, so a split is the
same on every machine for a given ``seed`` and the three splits are disjoint.

Fields, as the ``cub`` adapter gives them: ``class_attributes`` [50, 85], the continuous predicate
matrix as in the file; ``attribute_names``, the predicates; per-image ``attributes`` [N, 85], the
image's class row of the binary predicate matrix (``predicate-matrix-binary.txt`` when present, else
the continuous matrix thresholded at its overall mean).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .folders import IMAGE_EXTENSIONS, DataNotFound, FileImageDataset, _check_size, _resize_to, _root, _table

ENV = "ADVXAI_AWA2"
SPLIT_COUNTS = {"train": 22206, "val": 5599, "test": 9517}  # the attribute paper's AwA split sizes
FOLDER = "Animals_with_Attributes2"

AWA2_LAYOUT = """  <root>/classes.txt                        '<class id 1..50> <name>'
  <root>/predicates.txt                     '<attribute id 1..85> <name>'
  <root>/predicate-matrix-continuous.txt    50 rows x 85 numbers
  <root>/predicate-matrix-binary.txt        50 rows x 85 of 0/1 (optional)
  <root>/JPEGImages/<class name>/<class name>_10001.jpg ...
  (root may also be the folder holding Animals_with_Attributes2/, as AwA2-data.zip extracts)"""


def _error(message: str) -> DataNotFound:
    return DataNotFound(f"awa2: {message}. Expected layout:\n{AWA2_LAYOUT}")


def _names(path: Path) -> list[str]:
    rows = _table(path, "awa2", AWA2_LAYOUT)
    try:
        rows = sorted(rows, key=lambda r: int(r[0]))
    except ValueError:
        raise _error(f"{path}: every line must start with a number") from None
    if [int(r[0]) for r in rows] != list(range(1, len(rows) + 1)):
        raise _error(f"{path}: ids must run 1..{len(rows)}")
    return [r[1] for r in rows]


def _matrix(path: Path, shape: tuple[int, int]) -> torch.Tensor:
    rows = _table(path, "awa2", AWA2_LAYOUT, min_columns=1)
    try:
        values = np.asarray([[float(v) for v in r] for r in rows], dtype=np.float32) if len({len(r) for r in rows}) == 1 else None
    except ValueError:
        raise _error(f"{path} has an entry that is not a number") from None
    if values is None or values.shape != shape:
        got = values.shape if values is not None else "rows of different lengths"
        raise _error(f"{path} must be {shape[0]} classes x {shape[1]} attributes, got {got}")
    return torch.from_numpy(values)


def split_counts(n: int) -> dict[str, int]:
    """Images of a class of ``n`` in each split: the paper's proportions, rounded by largest remainder."""
    total = sum(SPLIT_COUNTS.values())
    ideal = {s: n * c / total for s, c in SPLIT_COUNTS.items()}
    counts = {s: int(v) for s, v in ideal.items()}
    by_remainder = sorted(SPLIT_COUNTS, key=lambda s: -(ideal[s] - counts[s]))  # stable: train, val, test on ties
    for s in by_remainder[:n - sum(counts.values())]:
        counts[s] += 1
    return counts


def _data_root(path: Path) -> Path:
    for candidate in (path, path / FOLDER):
        if (candidate / "classes.txt").is_file() or (candidate / "JPEGImages").is_dir():
            return candidate
    raise _error(f"{path} has neither classes.txt nor JPEGImages/ (nor a {FOLDER}/ folder holding them)")


def load_awa2_dataset(split: str = "test", root: str | None = None, image_size: int | None = None,
                      resize_to: int | None = None, seed: int = 0) -> FileImageDataset:
    """AwA2's ``split`` ('train', 'val', 'test'; see the module doc) from ``root`` (default ``$ADVXAI_AWA2``)."""
    if split not in SPLIT_COUNTS:
        raise ValueError(f"awa2 has splits {sorted(SPLIT_COUNTS)}, not {split!r}")
    image_size = _check_size(image_size)  # None: $ADVXAI_IMAGE_SIZE, else 224
    resize = _resize_to(image_size, resize_to)
    path = _data_root(_root(root, ENV, "awa2", AWA2_LAYOUT))
    classes = _names(path / "classes.txt")
    predicates = _names(path / "predicates.txt")
    continuous = _matrix(path / "predicate-matrix-continuous.txt", (len(classes), len(predicates)))
    binary_file = path / "predicate-matrix-binary.txt"
    if binary_file.is_file():
        binary = _matrix(binary_file, (len(classes), len(predicates)))
        if not ((binary == 0) | (binary == 1)).all():
            raise _error(f"{binary_file} must hold only 0 and 1")
    else:
        binary = (continuous > continuous.mean()).float()
    images = path / "JPEGImages"
    if not images.is_dir():
        raise _error(f"{images} is missing")
    known = set(classes)
    stray = sorted(p.name for p in images.iterdir() if p.is_dir() and p.name not in known)[:3]
    if stray:
        raise _error(f"folders {stray} in {images} are not classes of classes.txt")
    g = torch.Generator().manual_seed(int(seed))
    order = list(SPLIT_COUNTS)
    files, labels = [], []
    for k, name in enumerate(classes):
        folder = images / name
        if not folder.is_dir():
            raise _error(f"class {name!r} of classes.txt has no folder {folder}")
        class_files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        perm = torch.randperm(len(class_files), generator=g).tolist()  # drawn for every class, whatever the split
        counts = split_counts(len(class_files))
        start = sum(counts[s] for s in order[:order.index(split)])
        chosen = sorted(perm[start:start + counts[split]])
        files += [class_files[i] for i in chosen]
        labels += [k] * len(chosen)
    if not files:
        raise _error(f"split {split!r} has no images under {images}")
    y = torch.tensor(labels, dtype=torch.long)
    return FileImageDataset(
        name="awa2", split=split, classes=classes, labels=y, annotations={"attributes": binary[y]},
        attribute_names=predicates, class_attributes=continuous,
        files=files, image_size=image_size, resize_to=resize,
        info={"source": str(path), "seed": int(seed),
              "split": "per class 59.5/15.0/25.5 % train/val/test (the paper's 22,206/5,599/9,517), seeded",
              "image attributes": "the class's binary predicates (" +
                                  ("predicate-matrix-binary.txt" if binary_file.is_file() else
                                   "continuous matrix above its mean") + ")"},
    )
