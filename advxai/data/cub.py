"""CUB-200-2011 from a local folder: 200 birds, 312 attributes, a box per bird and 15 part locations.

Splits are the data set's own ``train_test_split.txt`` (5,994 / 5,794 images).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .folders import DataNotFound, FileImageDataset, _check_size, _resize_to, _root, _table

ENV = "ADVXAI_CUB"

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


def _rows(path: Path, min_columns: int = 2) -> list[list[str]]:
    return _table(path, "cub", CUB_LAYOUT, min_columns)


def _number(text: str, path: Path, kind=int):
    try:
        return kind(text)
    except ValueError:
        raise DataNotFound(f"cub: {path} has {text!r} where a number belongs. Expected layout:\n{CUB_LAYOUT}") from None


def load_cub_dataset(split: str = "test", root: str | None = None, image_size: int | None = None,
                     resize_to: int | None = None) -> FileImageDataset:
    """CUB-200-2011 with its 312 attributes, bird boxes and 15 part locations (``root``: ``$ADVXAI_CUB``).

    Annotations per image: ``attributes`` [N, 312] (binary, as annotated), ``bird_box`` [N, 4] and
    ``part_locs`` [N, 15, 3] (x, y, visible) in the original image's pixels. Class attribute
    vectors are the continuous percentages, L2-normalised per class later by SJE.
    """
    if split not in ("train", "test"):
        raise ValueError(f"cub has splits ['test', 'train'], not {split!r}")
    image_size = _check_size(image_size)  # None: $ADVXAI_IMAGE_SIZE, else 224
    resize = _resize_to(image_size, resize_to)
    path = _root(root, ENV, "cub", CUB_LAYOUT)
    f_images, f_labels, f_split, f_classes = (path / n for n in ("images.txt", "image_class_labels.txt",
                                                                  "train_test_split.txt", "classes.txt"))
    images = {_number(r[0], f_images): r[1] for r in _rows(f_images)}
    labels = {_number(r[0], f_labels): _number(r[1], f_labels) - 1 for r in _rows(f_labels)}
    is_train = {_number(r[0], f_split): r[1] == "1" for r in _rows(f_split)}
    classes = [r[1] for r in sorted(_rows(f_classes), key=lambda r: _number(r[0], f_classes))]
    missing = [i for i in images if i not in labels or i not in is_train][:3]
    if missing:
        raise DataNotFound(f"cub: images {missing} of images.txt have no line in image_class_labels.txt or "
                           f"train_test_split.txt. Expected layout:\n{CUB_LAYOUT}")
    attr_file = path / "attributes.txt"
    if not attr_file.exists():
        attr_file = path.parent / "attributes.txt"
    attribute_names = [r[1] for r in sorted(_rows(attr_file), key=lambda r: _number(r[0], attr_file))]
    table = path / "attributes" / "class_attribute_labels_continuous.txt"
    rows = _rows(table, 1)
    if len({len(r) for r in rows}) > 1:
        raise DataNotFound(f"cub: {table} has rows of different lengths. Expected layout:\n{CUB_LAYOUT}")
    class_attr = torch.tensor([[_number(v, table, float) for v in r] for r in rows])
    if class_attr.shape != (len(classes), len(attribute_names)):
        raise DataNotFound(f"cub: class attribute table is {tuple(class_attr.shape)}, expected "
                           f"({len(classes)}, {len(attribute_names)})")
    ids = sorted(i for i in images if is_train[i] == (split == "train"))
    pos = {img_id: k for k, img_id in enumerate(ids)}
    attrs = torch.zeros(len(ids), len(attribute_names))
    for r in _rows(path / "attributes" / "image_attribute_labels.txt", 3):
        img_id = int(r[0])
        if img_id in pos:
            attrs[pos[img_id], int(r[1]) - 1] = float(r[2])
    boxes = torch.full((len(ids), 4), float("nan"))
    for r in _rows(path / "bounding_boxes.txt", 5):
        img_id = int(r[0])
        if img_id in pos:
            x, y, w, h = map(float, r[1:5])
            boxes[pos[img_id]] = torch.tensor([x, y, x + w, y + h])
    part_names = [" ".join(r[1:]) for r in sorted(_rows(path / "parts" / "parts.txt"), key=lambda r: int(r[0]))]
    parts = torch.zeros(len(ids), len(part_names), 3)
    for r in _rows(path / "parts" / "part_locs.txt", 5):
        img_id = int(r[0])
        if img_id in pos:
            parts[pos[img_id], int(r[1]) - 1] = torch.tensor([float(r[2]), float(r[3]), float(r[4])])
    files = [path / "images" / images[i] for i in ids]
    return FileImageDataset(
        name="cub", split=split, classes=classes, labels=torch.tensor([labels[i] for i in ids], dtype=torch.long),
        annotations={"attributes": attrs, "bird_box": boxes, "part_locs": parts},
        attribute_names=attribute_names, class_attributes=class_attr, part_names=part_names,
        files=files, image_size=image_size, resize_to=resize,
        info={"source": str(path), "note": "boxes and part locations are in original-image pixels"},
    )
