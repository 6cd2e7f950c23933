"""ImageNet (ILSVRC-2012) from a local folder: train and validation splits, class index, bounding boxes.

Accepted layouts (see :data:`IMAGENET_LAYOUT`): the ILSVRC folders ``train/`` and ``val/`` (``val``
in class folders, or flat with ``LOC_val_solution.csv`` or one XML annotation per image), Kaggle's
``ILSVRC/Data/CLS-LOC`` tree, a validation folder of class folders given directly, and ImageNetV2.

Boxes, wherever the folder has them (``LOC_{train,val}_solution.csv`` or the Pascal-VOC XML files of
the devkit / Kaggle), come with each :meth:`ImageNetDataset.batch` in the returned image's frame:

* ``boxes`` [B, M, 4]: (x0, y0, x1, y1) in pixels of the returned image, the boxes of the image's own
  class, resized and cropped like the image and clipped to it; NaN rows pad to the batch's largest
  count M, and a box the crop leaves with no area is NaN too;
* ``masks`` [B, 1, S, S]: the union of those boxes (the object mask ``shapes`` gives), empty for an
  image without a box in the frame. Localisation scores must leave such images out, not count them
  as misses: keep ``masks.flatten(1).any(1)``.

``raw_boxes`` gives the same boxes in the original image's pixels.

Listing a split reads directory entries only (no image, no per-file ``stat``), and keeps the paths in
one compact array: the 1.28 M training files list in about a second (from the page cache) into 35 MB.
A flat validation folder labelled by XML files (no ``LOC_val_solution.csv``) has its XML files read
once when listed, for the labels.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from xml.etree import ElementTree

import numpy as np
import torch

from .base import Batch
from .folders import (
    IMAGE_EXTENSIONS, DataNotFound, FileImageDataset, _check_size, _resize_to, _root, box_masks, boxes_to_frame,
)

ENV = "ADVXAI_IMAGENET"
NUM_CLASSES = 1000
SPLITS = ("train", "val", "test")  # "test" reads the validation set: ILSVRC's test labels are not public

IMAGENET_LAYOUT = """  ILSVRC-2012 (root = the folder holding train/ and val/):
    <root>/train/n01440764/n01440764_10026.JPEG ...        one folder per WordNet id (1,000)
    <root>/val/n01440764/ILSVRC2012_val_00000293.JPEG ...  val in class folders, or flat:
    <root>/val/ILSVRC2012_val_00000001.JPEG ...  with <root>/LOC_val_solution.csv or <root>/Annotations/val/*.xml
    optional: <root>/LOC_synset_mapping.txt (class index when not all 1,000 class folders exist),
              <root>/LOC_{train,val}_solution.csv  'ImageId,PredictionString' (wnid x0 y0 x1 y1 ...): boxes
              <root>/Annotations/{train,val}/[<wnid>/]<image>.xml  (devkit Pascal-VOC boxes; also
              <root>/Annotations/CLS-LOC/{train,val}/)
  Kaggle's ILSVRC download (root = the folder holding ILSVRC/ and the LOC_* files):
    <root>/ILSVRC/Data/CLS-LOC/{train,val}/...   <root>/ILSVRC/Annotations/CLS-LOC/{train,val}/...
    <root>/LOC_synset_mapping.txt   <root>/LOC_train_solution.csv   <root>/LOC_val_solution.csv
  a validation folder given directly (split 'val' only):
    <root>/n01440764/ILSVRC2012_val_00000293.JPEG ... <root>/n15075141/...
    (all 1,000 folders, whose sorted order is the class index, or fewer with <root>/LOC_synset_mapping.txt;
    <root>/LOC_val_solution.csv adds boxes)
  ImageNetV2 (matched-frequency / top-images; split 'val' only), folders named by class index:
    <root>/0/<image>.jpeg ... <root>/999/<image>.jpeg"""

_WNID = re.compile(r"^n\d{8}$")


def _layout_error(message: str) -> DataNotFound:
    return DataNotFound(f"imagenet: {message}. Expected layout:\n{IMAGENET_LAYOUT}")


# --------------------------------------------------------------------------- listing


class FileList(Sequence):
    """Paths ``base / name`` kept as one bytes array: a million paths in tens of MB, not a list of Paths."""

    def __init__(self, base: Path, names: Sequence[str] | np.ndarray):
        self.base = Path(base)
        if isinstance(names, np.ndarray) and names.dtype.kind == "S":
            self._names = names
        else:
            self._names = np.array([os.fsencode(n) for n in names], dtype=bytes) if len(names) else np.array([], "S1")

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self.base / os.fsdecode(self._names[i])

    def names(self) -> list[str]:
        return [os.fsdecode(n) for n in self._names]


def _subdirs(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:  # d_type from the directory itself: no stat per entry
        return sorted(e.name for e in entries if e.is_dir())


def _images_in(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file())


def _stem(name: str) -> str:
    return os.path.splitext(os.path.basename(name))[0]


@dataclass
class _Layout:
    kind: str  # "ilsvrc" | "kaggle" | "folder" | "v2"
    root: Path
    data: Path  # holds train/ and val/ (or, for "folder" and "v2", the class folders themselves)
    meta: Path  # holds LOC_synset_mapping.txt and LOC_*_solution.csv
    annotations: dict[str, list[Path]] = field(default_factory=dict)  # split -> candidate XML folders


def _detect(root: Path) -> _Layout:
    kaggle = root / "ILSVRC" / "Data" / "CLS-LOC"
    if kaggle.is_dir():
        ann = root / "ILSVRC" / "Annotations" / "CLS-LOC"
        return _Layout("kaggle", root, kaggle, root, {s: [ann / s] for s in ("train", "val")})
    if (root / "train").is_dir() or (root / "val").is_dir():
        ann = {s: [root / "Annotations" / "CLS-LOC" / s, root / "Annotations" / s] for s in ("train", "val")}
        return _Layout("ilsvrc", root, root, root, ann)
    folders = _subdirs(root)
    if folders and all(f.isdigit() for f in folders):
        return _Layout("v2", root, root, root)
    if folders and all(_WNID.match(f) for f in folders):
        return _Layout("folder", root, root, root)
    if not folders:
        raise _layout_error(f"{root} has neither train/ nor val/ nor class folders")
    odd = [f for f in folders if not (_WNID.match(f) or f.isdigit())][:3]
    raise _layout_error(f"folders in {root} such as {odd} are neither WordNet ids (n01440764) nor class indices "
                        f"(0..999), and there is no train/ or val/")


def _mapping(meta: Path) -> list[str] | None:
    path = meta / "LOC_synset_mapping.txt"
    if not path.is_file():
        return None
    wnids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    bad = [w for w in wnids if not _WNID.match(w)][:3]
    if bad or len(set(wnids)) != len(wnids) or len(wnids) > NUM_CLASSES:
        raise _layout_error(f"{path} must list at most 1,000 distinct WordNet ids, one per line first "
                            f"('n01440764 tench, Tinca tinca'); found {len(wnids)} lines" +
                            (f", odd ids {bad}" if bad else ""))
    return wnids


def _class_index(layout: _Layout) -> list[str]:
    """WordNet ids in class-index order: sorted when all 1,000 folders exist, else LOC_synset_mapping.txt."""
    split_dirs = [layout.data] if layout.kind == "folder" else [layout.data / s for s in ("train", "val")]
    for d in split_dirs:
        if d.is_dir():
            wnids = [f for f in _subdirs(d) if _WNID.match(f)]
            if len(wnids) == NUM_CLASSES:
                return wnids
    wnids = _mapping(layout.meta)
    if wnids is None:
        raise _layout_error(f"no folder under {layout.root} holds all 1,000 WordNet-id class folders, so the class "
                            f"index needs LOC_synset_mapping.txt in {layout.meta}")
    return wnids


def _list_class_folders(folder: Path, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``<class>/<file>`` names (bytes, one array: a million of them take tens of MB) and labels."""
    names, labels = [], []
    for sub in _subdirs(folder):
        if sub not in index:
            raise _layout_error(f"class folder {folder / sub} is not a WordNet id of the class index "
                                f"({'LOC_synset_mapping.txt' if len(index) < NUM_CLASSES else 'the 1,000 folders'})")
        files = _images_in(folder / sub)
        names.append(np.array([os.fsencode(f"{sub}/{f}") for f in files], dtype=bytes))
        labels.append(np.full(len(files), index[sub], dtype=np.int64))
    if not names:
        return np.array([], "S1"), np.zeros(0, np.int64)
    return np.concatenate(names), np.concatenate(labels)


# --------------------------------------------------------------------------- boxes


def _read_solution(path: Path) -> dict[str, str]:
    """``LOC_*_solution.csv`` as {image id: prediction string}; checked for shape, numbers parsed on use."""
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip().replace(" ", "") != "ImageId,PredictionString":
        raise _layout_error(f"{path} must start with the header 'ImageId,PredictionString'")
    table = {}
    for k, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        image_id, sep, prediction = line.partition(",")
        tokens = prediction.split()
        if not sep or not tokens or len(tokens) % 5 or not _WNID.match(tokens[0]):
            raise _layout_error(f"{path} line {k} is not 'ImageId,wnid x0 y0 x1 y1 [wnid x0 y0 x1 y1 ...]': {line!r}")
        table[image_id.strip()] = prediction
    return table


def _parse_prediction(prediction: str, wnid: str, source: str) -> np.ndarray:
    tokens = prediction.split()
    try:
        boxes = [[float(v) for v in tokens[k + 1:k + 5]] for k in range(0, len(tokens), 5) if tokens[k] == wnid]
    except ValueError:
        raise _layout_error(f"{source}: a box coordinate is not a number in {prediction!r}") from None
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def _parse_xml(path: Path) -> list[tuple[str, list[float]]]:
    """``[(wnid, [xmin, ymin, xmax, ymax]), ...]`` of a Pascal-VOC annotation file."""
    try:
        tree = ElementTree.parse(path)
        out = []
        for obj in tree.getroot().iter("object"):
            box = obj.find("bndbox")
            out.append((obj.findtext("name", "").strip(),
                        [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]))
        return out
    except (ElementTree.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise _layout_error(f"annotation {path} is not a Pascal-VOC file with <object><name> and "
                            f"<bndbox><xmin>...</bndbox> ({type(exc).__name__}: {exc})") from None


class _Boxes:
    """Where a split's boxes come from: a solution table (read once) or XML files (read per batch)."""

    def __init__(self, table: dict[str, str] | None = None, xml_dir: Path | None = None, source: str = ""):
        self.table, self.xml_dir, self.source = table, xml_dir, source

    def xml_file(self, stem: str, wnid: str) -> Path | None:
        for candidate in (self.xml_dir / f"{stem}.xml", self.xml_dir / wnid / f"{stem}.xml"):
            if candidate.is_file():
                return candidate
        return None

    def of(self, stem: str, wnid: str) -> np.ndarray:
        """Boxes [k, 4] of class ``wnid`` on image ``stem`` in original pixels; k = 0 when none."""
        if self.table is not None:
            prediction = self.table.get(stem)
            return _parse_prediction(prediction, wnid, self.source) if prediction else np.zeros((0, 4), np.float32)
        path = self.xml_file(stem, wnid)
        if path is None:
            return np.zeros((0, 4), np.float32)
        return np.asarray([b for name, b in _parse_xml(path) if name == wnid], np.float32).reshape(-1, 4)


def _box_source(layout: _Layout, split: str) -> _Boxes | None:
    csv = layout.meta / f"LOC_{split}_solution.csv"
    if csv.is_file():
        return _Boxes(table=_read_solution(csv), source=str(csv))
    for folder in layout.annotations.get(split, []):
        if folder.is_dir():
            return _Boxes(xml_dir=folder, source=str(folder))
    return None


# --------------------------------------------------------------------------- the data set


@dataclass(eq=False, repr=False)
class ImageNetDataset(FileImageDataset):
    """ImageNet images from files; with a box source, batches carry ``boxes`` and ``masks`` (see module doc)."""

    wnids: list[str] = field(default_factory=list)  # WordNet id of each class index (empty for ImageNetV2)
    box_source: _Boxes | None = None

    @property
    def has_boxes(self) -> bool:
        return self.box_source is not None

    def raw_boxes(self, index: Sequence[int]) -> list[np.ndarray]:
        """Each image's boxes of its own class [k, 4] in original pixels (k = 0 without boxes)."""
        if self.box_source is None:
            return [np.zeros((0, 4), np.float32) for _ in index]
        return [self.box_source.of(_stem(self.files[int(i)].name), self.wnids[int(self.labels[int(i)])])
                for i in index]

    def batch(self, index) -> Batch:
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if self.box_source is None:
            return super().batch(index)
        raw = self.raw_boxes(index.tolist())  # before any image: a malformed table fails first
        out = super().batch(index)
        from PIL import Image

        sizes = []
        for i in index.tolist():
            with Image.open(self.files[i]) as im:  # the header only
                sizes.append(im.size)
        most = max([len(r) for r in raw] + [1])
        padded = torch.full((len(raw), most, 4), float("nan"))
        for b, r in enumerate(raw):
            padded[b, :len(r)] = torch.from_numpy(r)
        out["boxes"] = boxes_to_frame(padded, torch.tensor(sizes).reshape(-1, 2), self.image_size, self.resize_to)
        out["masks"] = box_masks(out["boxes"], self.image_size)
        return out

    def describe(self) -> dict:
        d = super().describe()
        if self.has_boxes:
            d["annotations"] = "boxes, masks (per batch)"
        return d


def load_imagenet_dataset(split: str = "val", root: str | None = None, image_size: int | None = None,
                          resize_to: int | None = None) -> ImageNetDataset:
    """ImageNet's ``split`` ('train', or 'val' alias 'test') from ``root`` (default ``$ADVXAI_IMAGENET``).

    Images are resized (shorter side ``resize_to``, default ``image_size * 256 / 224``) and centre-
    cropped to ``image_size`` (default ``$ADVXAI_IMAGE_SIZE`` when set, else 224). Boxes come with each batch when the folder has them (module doc).
    """
    from .imagenet_classes import imagenet_class_names

    if split not in SPLITS:
        raise ValueError(f"imagenet has splits {list(SPLITS)} ('test' reads the validation set), not {split!r}")
    part = "val" if split == "test" else split
    image_size = _check_size(image_size)  # None: $ADVXAI_IMAGE_SIZE, else 224
    resize = _resize_to(image_size, resize_to)
    path = _root(root, ENV, "imagenet", IMAGENET_LAYOUT)
    layout = _detect(path)
    wnids: list[str] = []
    if layout.kind == "v2":
        if part == "train":
            raise _layout_error(f"{path} is ImageNetV2 (numbered class folders), a test set: it has no split 'train'")
        folders = _subdirs(path)
        if max(int(f) for f in folders) >= NUM_CLASSES:
            raise _layout_error(f"numbered folders in {path} must be 0..999")
        names, labels = _list_class_folders(path, {f: int(f) for f in folders})
        files, boxes = FileList(path, names), None
    else:
        wnids = _class_index(layout)
        index = {w: i for i, w in enumerate(wnids)}
        if layout.kind == "folder":
            if part == "train":
                raise _layout_error(f"{path} is a validation folder (class folders at its top level); split "
                                    f"'train' needs the ILSVRC layout with train/ and val/")
            folder = path
        else:
            folder = layout.data / part
            if not folder.is_dir():
                raise _layout_error(f"split {split!r} needs {folder}, which does not exist")
        boxes = _box_source(layout, part)
        if _subdirs(folder):
            names, labels = _list_class_folders(folder, index)
        else:
            names, labels = _label_flat_files(folder, index, boxes)
        files = FileList(folder, names)
    if not len(files):
        raise _layout_error(f"no images under {path} for split {split!r}")
    return ImageNetDataset(
        name="imagenet", split=split, classes=imagenet_class_names(), labels=torch.as_tensor(np.asarray(labels, dtype=np.int64)),
        files=files, image_size=image_size, resize_to=resize, wnids=wnids, box_source=boxes,
        info={"source": str(path), "layout": layout.kind, "folder": str(files.base),
              "boxes": boxes.source if boxes else "none",
              "note": "boxes and masks are in the returned image's pixels (resized, centre-cropped, clipped)"},
    )


def _label_flat_files(folder: Path, index: dict[str, int], boxes: _Boxes | None) -> tuple[list[str], list[int]]:
    """Labels of a flat validation folder from its solution table, else from its XML files."""
    if boxes is None:
        raise _layout_error(f"{folder} holds images without class folders, so their labels need "
                            f"LOC_val_solution.csv or an Annotations/val/ folder of XML files")
    names, labels, unlabelled = [], [], 0
    for name in _images_in(folder):
        stem = _stem(name)
        if boxes.table is not None:
            prediction = boxes.table.get(stem)
            wnid = prediction.split()[0] if prediction else None
        else:
            xml = boxes.xml_file(stem, "")
            objects = _parse_xml(xml) if xml is not None else []
            wnid = objects[0][0] if objects else None
        if wnid is None:
            unlabelled += 1
            continue
        if wnid not in index:
            raise _layout_error(f"{boxes.source} labels {name} with {wnid}, which is not in the class index")
        names.append(name)
        labels.append(index[wnid])
    if unlabelled:
        warnings.warn(f"imagenet: {unlabelled} image(s) in {folder} have no label in {boxes.source}; left out",
                      stacklevel=3)
    return names, labels
