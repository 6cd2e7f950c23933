"""Small fake data sets in their real folder layouts, and random-weight torchvision checkpoints.

Each builder writes a few dozen images (JPEGs of mixed sizes, one of them greyscale) and every
label and annotation file its adapter reads, in the real format, into a folder of your choice, and
returns a record of what it wrote (labels, original sizes, boxes) for tests to check against.

* ImageNet: :func:`fake_imagenet` with ``layout`` "ilsvrc" (``train/`` + ``val/``), "kaggle"
  (``ILSVRC/Data/CLS-LOC``), "valdir" (a validation folder of class folders) or "v2" (ImageNetV2's
  numbered folders); ``val`` in class folders or flat; boxes as ``LOC_*_solution.csv``, Pascal-VOC
  XML, both or none. Fake WordNet ids ``n00000000`` ... ``n00000999``; all 1,000 class folders
  exist (most empty) where the layout has class folders.
* :func:`fake_cub`, :func:`fake_cifar10` (the real pickle format), :func:`fake_awa2`.
* :func:`write_checkpoints`: random torchvision weights under ``$TORCH_HOME/hub/checkpoints`` with
  the file names torchvision expects, so ``get_model(name)`` loads them as if downloaded.
* ``relabel`` (on a fake ImageNet) and :func:`relabel_cifar10` / :func:`relabel_cub` /
  :func:`relabel_awa2`: the labels rewritten to a model's predictions, computed on the images as
  the adapter loads them, so every image counts as correctly classified.
* :func:`build_fake_world`: all of it in one folder, returning the environment variables that
  point the adapters and torchvision at it.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence
from xml.sax.saxutils import escape

import numpy as np
import torch
from PIL import Image

WNIDS = [f"n{k:08d}" for k in range(1000)]
# (width, height): landscape, portrait, square and odd sizes, so the resize-and-crop is exercised
SIZES = [(64, 48), (48, 72), (80, 80), (90, 50), (45, 61), (72, 40)]


def write_image(path: Path, size: tuple[int, int], seed: int, mode: str = "RGB") -> Path:
    """A smooth random image (a 4x4 colour grid upsampled, plus noise): distinct, cheap to write."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    arr = np.clip(np.asarray(low, dtype=np.int16) + rng.integers(-20, 21, (size[1], size[0], 3)), 0, 255)
    im = Image.fromarray(arr.astype(np.uint8))
    im = im.convert(mode) if mode != "RGB" else im
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else im.save(path)
    return path


# --------------------------------------------------------------------------- ImageNet


@dataclass
class FakeImage:
    split: str  # "train" | "val"
    name: str  # file name
    wnid: str  # its class (for "v2", the class index as a string)
    size: tuple[int, int]  # original (width, height)
    boxes: list[tuple[str, list[float]]] = field(default_factory=list)  # (wnid, [x0, y0, x1, y1]) in pixels
    path: Path | None = None  # where the file is now

    @property
    def stem(self) -> str:
        return os.path.splitext(self.name)[0]

    def own_boxes(self) -> list[list[float]]:
        return [b for w, b in self.boxes if w == self.wnid]


@dataclass
class FakeImageNet:
    root: Path
    layout: str  # "ilsvrc" | "kaggle" | "valdir" | "v2"
    val: str  # "folders" | "flat"
    boxes: str | None  # "csv" | "xml" | "both" | None
    images: list[FakeImage]
    mapping: bool = True  # LOC_synset_mapping.txt written

    # -- where things go ------------------------------------------------------------------------
    def split_dir(self, split: str) -> Path:
        if self.layout in ("valdir", "v2"):
            return self.root
        return (self.root / "ILSVRC" / "Data" / "CLS-LOC" if self.layout == "kaggle" else self.root) / split

    def xml_dir(self, split: str) -> Path:
        base = self.root / "ILSVRC" / "Annotations" / "CLS-LOC" if self.layout == "kaggle" else self.root / "Annotations"
        return base / split

    def flat(self, split: str) -> bool:
        return split == "val" and self.val == "flat" and self.layout in ("ilsvrc", "kaggle")

    def place(self, img: FakeImage) -> Path:
        base = self.split_dir(img.split)
        return base / img.name if self.flat(img.split) else base / img.wnid / img.name

    # -- writing every label artefact from the records -------------------------------------------
    def write_labels(self) -> None:
        """Files moved to their class folders; solution tables, XML files and the mapping rewritten."""
        if self.layout == "v2":
            for img in self.images:
                self._move(img, self.root / img.wnid / img.name)
            return
        for img in self.images:
            self._move(img, self.place(img))
        class_dirs = [self.split_dir("train")] if self.layout in ("ilsvrc", "kaggle") else [self.root]
        if self.layout in ("ilsvrc", "kaggle") and self.val == "folders":
            class_dirs.append(self.split_dir("val"))
        for d in class_dirs:  # all 1,000 class folders, most empty: the standard class index
            for w in WNIDS:
                (d / w).mkdir(parents=True, exist_ok=True)
        meta = self.root
        if self.mapping:
            (meta / "LOC_synset_mapping.txt").write_text("".join(f"{w} fake class {k}\n" for k, w in enumerate(WNIDS)))
        for split in ("train", "val"):
            imgs = [i for i in self.images if i.split == split]
            csv = meta / f"LOC_{split}_solution.csv"
            if self.boxes in ("csv", "both") and imgs:
                rows = [f"{i.stem}," + " ".join(f"{w} {' '.join(str(int(v)) for v in b)}" for w, b in i.boxes)
                        for i in imgs if i.boxes]
                csv.write_text("ImageId,PredictionString\n" + "".join(r + "\n" for r in rows))
            elif csv.exists():
                csv.unlink()
            xml_root = self.xml_dir(split)
            if xml_root.exists():
                shutil.rmtree(xml_root)
            if self.boxes in ("xml", "both"):
                for i in imgs:
                    if i.boxes:
                        sub = xml_root / i.wnid if split == "train" else xml_root  # the devkit's layout
                        sub.mkdir(parents=True, exist_ok=True)
                        (sub / f"{i.stem}.xml").write_text(_voc_xml(i))

    def _move(self, img: FakeImage, target: Path) -> None:
        if img.path != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(img.path), target)
            img.path = target

    # -- labels from a model ---------------------------------------------------------------------
    def relabel(self, models: Sequence, image_size: int | None = None) -> None:
        """Every image labelled with each model's prediction, as the adapter loads it.

        With several models that disagree on an image, the image is copied once per further
        prediction (``<stem>_c<k>``), so each model finds its own correctly classified images.
        """
        from advxai.data import get_dataset

        preds: dict[int, list[int]] = {id(i): [] for i in self.images}
        for model in models:
            size = image_size or model.info.input_size[-1]
            for split in sorted({i.split for i in self.images}):
                ds = get_dataset("imagenet", "train" if split == "train" else "val", root=str(self.root),
                                 image_size=size)
                by_path = {i.path.resolve(): i for i in self.images if i.split == split}
                for start in range(0, len(ds), 16):
                    idx = torch.arange(start, min(start + 16, len(ds)))
                    pred, _ = model.predict(ds.load_images(idx))
                    for k, p in zip(idx.tolist(), pred.tolist()):
                        img = by_path[Path(ds.files[k]).resolve()]
                        if p not in preds[id(img)]:
                            preds[id(img)].append(p)
        extra = []
        for img in list(self.images):
            labels = preds[id(img)]
            if not labels:
                continue
            old = img.wnid
            img.wnid = str(labels[0]) if self.layout == "v2" else WNIDS[labels[0]]
            img.boxes = [(img.wnid if w == old else w, b) for w, b in img.boxes]
            for k, p in enumerate(labels[1:], start=1):
                wnid = str(p) if self.layout == "v2" else WNIDS[p]
                stem, ext = os.path.splitext(img.name)
                copy = FakeImage(img.split, f"{stem}_c{k}{ext}", wnid, img.size,
                                 [(wnid if w == img.wnid else w, b) for w, b in img.boxes])
                copy.path = img.path.with_name(copy.name)
                shutil.copyfile(img.path, copy.path)
                extra.append(copy)
        self.images += extra
        self.write_labels()


def _voc_xml(img: FakeImage) -> str:
    objects = "".join(
        f"<object><name>{escape(w)}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{int(b[0])}</xmin><ymin>{int(b[1])}</ymin><xmax>{int(b[2])}</xmax><ymax>{int(b[3])}</ymax>"
        f"</bndbox></object>" for w, b in img.boxes)
    return (f"<annotation><folder>{img.split}</folder><filename>{escape(img.stem)}</filename>"
            f"<source><database>ILSVRC_2012</database></source><size><width>{img.size[0]}</width>"
            f"<height>{img.size[1]}</height><depth>3</depth></size><segmented>0</segmented>{objects}</annotation>\n")


def _fake_boxes(k: int, size: tuple[int, int], wnid: str, other: str, may_lack: bool) -> list[tuple[str, list[float]]]:
    """One or two boxes of the image's class, sometimes one of another class; every 7th image none
    where ``may_lack`` (a flat validation folder's labels come from its boxes, so there every image has one)."""
    w, h = size
    if may_lack and k % 7 == 6:
        return []
    boxes = [(wnid, [w * 0.1 // 1, h * 0.2 // 1, w * 0.6 // 1, h * 0.9 // 1])]
    if k % 2:
        boxes.append((wnid, [0.0, 0.0, w * 0.3 // 1, h * 0.25 // 1]))  # in a corner: the crop may cut it
    if k % 3 == 0:
        boxes.append((other, [w * 0.5 // 1, h * 0.5 // 1, w - 1.0, h - 1.0]))
    return boxes


def fake_imagenet(root: str | os.PathLike, layout: str = "ilsvrc", val: str = "flat", boxes: str | None = "csv",
                  classes: Sequence[int] = (0, 1, 2, 954), train_per_class: int = 3, val_per_class: int = 3,
                  mapping: bool = True, seed: int = 0) -> FakeImageNet:
    """A fake ImageNet (see the module doc) with images of ``classes``; one greyscale, one PNG."""
    if layout not in ("ilsvrc", "kaggle", "valdir", "v2"):
        raise ValueError(f"layout must be ilsvrc, kaggle, valdir or v2, not {layout!r}")
    if layout == "valdir" and boxes in ("xml", "both"):
        raise ValueError("a validation folder given directly holds only class folders: its boxes come as a CSV")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    splits = {"val": val_per_class} if layout in ("valdir", "v2") else {"train": train_per_class, "val": val_per_class}
    images, k = [], 0
    for split, per in splits.items():
        for c in classes:
            for j in range(per):
                wnid = str(c) if layout == "v2" else WNIDS[c]
                size = SIZES[k % len(SIZES)]
                stem = f"{wnid}_{j + 1}" if split == "train" else f"ILSVRC2012_val_{k + 1:08d}"
                ext = ".png" if k == 4 else (".jpeg" if layout == "v2" else ".JPEG")
                flat = split == "val" and val == "flat" and layout in ("ilsvrc", "kaggle")
                img = FakeImage(split, stem + ext, wnid, size, [] if layout == "v2" else
                                _fake_boxes(k, size, wnid, WNIDS[(c + 1) % 1000], may_lack=not flat))
                img.path = write_image(root / "_incoming" / img.name, size, seed * 10_000 + k,
                                       mode="L" if k == 2 else "RGB")
                images.append(img)
                k += 1
    fake = FakeImageNet(root, layout, val, None if layout == "v2" else boxes, images, mapping and layout != "v2")
    fake.write_labels()
    shutil.rmtree(root / "_incoming", ignore_errors=True)
    return fake


# --------------------------------------------------------------------------- CUB-200-2011

CUB_GROUPS = ("bill_shape", "wing_color", "upperparts_color", "underparts_color", "breast_pattern", "back_color",
              "tail_shape", "upper_tail_color", "head_pattern", "breast_color", "throat_color", "eye_color",
              "bill_length", "forehead_color", "under_tail_color", "nape_color", "belly_color", "wing_shape",
              "size", "shape", "back_pattern", "tail_pattern", "belly_pattern", "primary_color", "leg_color",
              "bill_color", "crown_color", "wing_pattern")
CUB_PARTS = ("back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing", "nape",
             "right eye", "right leg", "right wing", "tail", "throat")


@dataclass
class FakeCUB:
    root: Path
    files: list[str]  # relative to images/, by image id - 1
    labels: list[int]  # 0-based
    is_train: list[bool]
    boxes: list[list[float]]  # x, y, w, h

    def write_labels(self) -> None:
        (self.root / "image_class_labels.txt").write_text(
            "".join(f"{i + 1} {y + 1}\n" for i, y in enumerate(self.labels)))


def fake_cub(root: str | os.PathLike, classes: Sequence[int] = (0, 1, 2), per_class: int = 4, num_classes: int = 200,
             num_attributes: int = 312, seed: int = 0) -> FakeCUB:
    """CUB_200_2011 with every file the adapter reads (``attributes.txt`` beside the folder, as CUB ships it)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    class_names = [f"{k + 1:03d}.Fake_Bird_{k + 1}" for k in range(num_classes)]
    files, labels, is_train, boxes = [], [], [], []
    for c in classes:
        for j in range(per_class):
            k = len(files)
            size = SIZES[k % len(SIZES)]
            rel = f"{class_names[c]}/Fake_Bird_{c + 1}_{j + 1:04d}.jpg"
            write_image(root / "images" / rel, size, seed * 10_000 + k, mode="L" if k == 1 else "RGB")
            files.append(rel)
            labels.append(c)
            is_train.append(j % 2 == 0)
            boxes.append([size[0] * 0.1 // 1, size[1] * 0.1 // 1, size[0] * 0.5 // 1, size[1] * 0.6 // 1])
    (root / "attributes").mkdir(parents=True, exist_ok=True)
    (root / "parts").mkdir(parents=True, exist_ok=True)
    (root / "images.txt").write_text("".join(f"{i + 1} {f}\n" for i, f in enumerate(files)))
    (root / "train_test_split.txt").write_text("".join(f"{i + 1} {int(t)}\n" for i, t in enumerate(is_train)))
    (root / "classes.txt").write_text("".join(f"{k + 1} {n}\n" for k, n in enumerate(class_names)))
    (root / "bounding_boxes.txt").write_text(
        "".join(f"{i + 1} {' '.join(f'{v:.1f}' for v in b)}\n" for i, b in enumerate(boxes)))
    names = [f"has_{CUB_GROUPS[a % len(CUB_GROUPS)]}::value_{a // len(CUB_GROUPS) + 1}" for a in range(num_attributes)]
    (root.parent / "attributes.txt").write_text("".join(f"{a + 1} {n}\n" for a, n in enumerate(names)))
    table = rng.uniform(1, 100, (num_classes, num_attributes))
    (root / "attributes" / "class_attribute_labels_continuous.txt").write_text(
        "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in table))
    present = rng.random((len(files), num_attributes)) < 0.3
    (root / "attributes" / "image_attribute_labels.txt").write_text("".join(
        f"{i + 1} {a + 1} {int(present[i, a])} {1 + (i + a) % 4} {1.5 + a % 7:.3f}\n"
        for i in range(len(files)) for a in range(num_attributes)))
    (root / "parts" / "parts.txt").write_text("".join(f"{p + 1} {n}\n" for p, n in enumerate(CUB_PARTS)))
    locs = []
    for i in range(len(files)):
        w, h = SIZES[i % len(SIZES)]
        for p in range(len(CUB_PARTS)):
            visible = int((i + p) % 3 != 0)
            locs.append(f"{i + 1} {p + 1} {w * (p + 1) / 17 * visible:.1f} {h * 0.5 * visible:.1f} {visible}\n")
    (root / "parts" / "part_locs.txt").write_text("".join(locs))
    fake = FakeCUB(root, files, labels, is_train, boxes)
    fake.write_labels()
    return fake


def relabel_cub(fake: FakeCUB, model, image_size: int | None = None) -> None:
    """``image_class_labels.txt`` rewritten to ``model``'s predictions on the adapter's images (both splits)."""
    from advxai.data import get_dataset

    size = image_size or model.info.input_size[-1]
    for split in ("train", "test"):
        ds = get_dataset("cub", split, root=str(fake.root), image_size=size)
        pred, _ = model.predict(ds.load_images(torch.arange(len(ds))))
        _check_range(pred, ds.num_classes, "cub")
        ids = [k for k, t in enumerate(fake.is_train) if t == (split == "train")]  # the adapter's order: by id
        for k, p in zip(ids, pred.tolist()):
            fake.labels[k] = p
    fake.write_labels()


# --------------------------------------------------------------------------- CIFAR-10

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _cifar_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # bytes keys, protocol 2: what Python 2's cPickle wrote


def fake_cifar10(root: str | os.PathLike, per_batch: int = 10, seed: int = 0) -> Path:
    """``<root>/cifar-10-batches-py`` with five training batches, the test batch and ``batches.meta``."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        _cifar_pickle(folder / name, {b"batch_label": f"fake {name}".encode(), b"labels": labels, b"data": data,
                                      b"filenames": [f"img_{k:05d}.png".encode() for k in range(per_batch)]})
    _cifar_pickle(folder / "batches.meta", {b"num_cases_per_batch": per_batch,
                                            b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072})
    return folder


def relabel_cifar10(folder: Path, model) -> None:
    """Each batch's ``labels`` rewritten to ``model``'s predictions on the adapter's images."""
    from advxai.data import get_dataset
    from advxai.data.cifar10 import TEST_FILES, TRAIN_FILES, _unpickle

    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        ds = get_dataset("cifar10", split, root=str(folder))
        pred, _ = model.predict(ds.load_images(torch.arange(len(ds))))
        _check_range(pred, 10, "cifar10")
        pred, start = pred.tolist(), 0
        for name in names:
            batch = {k.encode(): v for k, v in _unpickle(Path(folder) / name).items()}
            n = len(batch[b"labels"])
            batch[b"labels"] = pred[start:start + n]
            start += n
            _cifar_pickle(Path(folder) / name, batch)


# --------------------------------------------------------------------------- AwA2


def fake_awa2(root: str | os.PathLike, classes: Sequence[int] = (0, 1, 2, 3), per_class: int = 8,
              num_classes: int = 50, num_predicates: int = 85, binary: bool = True, seed: int = 0) -> Path:
    """``<root>/Animals_with_Attributes2`` as AwA2-data.zip extracts; images for ``classes`` only."""
    folder = Path(root) / "Animals_with_Attributes2"
    rng = np.random.default_rng(seed)
    names = [f"animal+{k + 1:02d}" for k in range(num_classes)]
    for k, name in enumerate(names):
        (folder / "JPEGImages" / name).mkdir(parents=True, exist_ok=True)
        if k in classes:
            for j in range(per_class):
                n = len(list((folder / "JPEGImages").rglob("*.jpg")))
                write_image(folder / "JPEGImages" / name / f"{name}_{10001 + j}.jpg", SIZES[n % len(SIZES)],
                            seed * 10_000 + n, mode="L" if n == 3 else "RGB")
    (folder / "classes.txt").write_text("".join(f"{k + 1}\t{n}\n" for k, n in enumerate(names)))
    (folder / "predicates.txt").write_text("".join(f"{a + 1}\tpredicate{a + 1}\n" for a in range(num_predicates)))
    table = rng.uniform(0, 100, (num_classes, num_predicates))
    (folder / "predicate-matrix-continuous.txt").write_text(
        "".join(" ".join(f"{v:.2f}" for v in row) + "\n" for row in table))
    if binary:
        (folder / "predicate-matrix-binary.txt").write_text(
            "".join(" ".join(str(int(v > 50)) for v in row) + "\n" for row in table))
    (folder / "trainclasses.txt").write_text("".join(f"{n}\n" for n in names[:40]))  # zero-shot files, unused
    (folder / "testclasses.txt").write_text("".join(f"{n}\n" for n in names[40:]))
    return folder


def relabel_awa2(folder: Path, model, image_size: int | None = None, seed: int = 0) -> None:
    """Images moved to the class folder of ``model``'s prediction (all splits; the split is then redrawn)."""
    from advxai.data import get_dataset

    size = image_size or model.info.input_size[-1]
    moves = []
    for split in ("train", "val", "test"):
        ds = get_dataset("awa2", split, root=str(folder), image_size=size, seed=seed)
        pred, _ = model.predict(ds.load_images(torch.arange(len(ds))))
        _check_range(pred, ds.num_classes, "awa2")
        moves += [(Path(ds.files[k]), ds.classes[p]) for k, p in enumerate(pred.tolist())]
    for path, cls in moves:
        target = Path(folder) / "JPEGImages" / cls / path.name
        if target != path:
            shutil.move(str(path), target)


def _idx(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: two zero bytes, type 0x08, the number of dimensions, big-endian sizes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def fake_mnist(root: str | os.PathLike) -> Path:
    """MNIST's four IDX files under ``<root>/MNIST/raw``, holding scikit-learn's 1,797 digits (28x28, the
    ``digits`` data set's train/test split) instead of the 70,000: real handwriting in the real
    file format, small enough to train a model on in seconds. Returns ``root``."""
    from advxai.data import get_dataset

    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ds = get_dataset("digits", split)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(ds.images[:, 0].numpy()))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(ds.labels.numpy().astype(np.uint8)))
    return Path(root)


def _check_range(pred: torch.Tensor, num_classes: int, name: str) -> None:
    if int(pred.max()) >= num_classes:
        raise ValueError(f"the model predicts class {int(pred.max())}, outside {name}'s {num_classes} classes")


# --------------------------------------------------------------------------- torchvision checkpoints

# Approximate size of each random checkpoint on disk: vgg16 and vgg19 are the big ones.
CHECKPOINT_MB = {"resnet50": 98, "resnet152": 230, "densenet169": 55, "vgg16": 528, "vgg19": 548, "inception_v3": 104}


def checkpoint_file(torch_home: str | os.PathLike, name: str) -> Path:
    """``$TORCH_HOME/hub/checkpoints/<file>`` under the name torchvision gives ``name``'s IMAGENET1K_V1 weights."""
    import torchvision.models as tvm

    from advxai.models.torchvision_models import TORCHVISION

    enum_name = TORCHVISION[name][1]
    url = getattr(tvm, enum_name).IMAGENET1K_V1.url
    return Path(torch_home) / "hub" / "checkpoints" / os.path.basename(url)


def legacy_densenet_keys(sd: dict) -> dict:
    """A DenseNet state dict as torchvision's checkpoint files hold it: a dense layer's ``norm1`` /
    ``relu1`` / ``conv1`` (and ``...2``) are ``norm.1`` / ``relu.1`` / ``conv.1`` there, and the files
    predate BatchNorm's ``num_batches_tracked``."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12]\.(?:weight|bias|running_mean|running_var))$")
    return {(f"{m.group(1)}.{m.group(2)}" if (m := pattern.match(k)) else k): v for k, v in sd.items()
            if not k.endswith("num_batches_tracked")}


def write_checkpoints(torch_home: str | os.PathLike, models: Iterable[str], seed: int = 0) -> dict[str, Path]:
    """Random-weight state dicts for ``models`` where torchvision looks for downloaded weights.

    Built only for the models asked for, and only when the file is not there yet. Sizes on disk
    (MB): resnet50 98, resnet152 230, densenet169 55, inception_v3 104, and the big ones vgg16 528
    and vgg19 548 (seconds each to build and write). The weights are torchvision's own random
    initialisation under ``seed``; the global random state is left as it was.
    """
    import torchvision.models as tvm

    from advxai.models.torchvision_models import TORCHVISION

    out = {}
    for name in models:
        if name not in TORCHVISION:
            raise ValueError(f"no torchvision model {name!r}; valid: {sorted(TORCHVISION)}")
        file = checkpoint_file(torch_home, name)
        out[name] = file
        if file.is_file():
            continue
        ctor = TORCHVISION[name][0]
        kwargs = {"weights": None}
        if name == "inception_v3":  # as the loader builds it: its state dict includes the auxiliary head
            kwargs.update(aux_logits=True, transform_input=False, init_weights=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = getattr(tvm, ctor)(**kwargs)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".part")
        sd = net.state_dict()
        if name.startswith("densenet"):  # as torchvision's published files name a dense layer's parts
            sd = legacy_densenet_keys(sd)
        torch.save(sd, tmp)
        os.replace(tmp, file)
    return out


@contextlib.contextmanager
def environment(**values: str | None):
    """The environment variables ``values`` set (``None``: unset) inside the block, restored after."""
    previous = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def torch_home(path: str | os.PathLike):
    """``$TORCH_HOME`` set to ``path`` inside the block (torchvision reads it on every lookup)."""
    with environment(TORCH_HOME=str(path)):
        yield Path(path)


# --------------------------------------------------------------------------- all of it


def build_fake_world(tmp_path: str | os.PathLike, models: Sequence[str] = (), datasets: Sequence[str] = (
        "imagenet", "cub", "cifar10", "awa2", "mnist"), seed: int = 0,
        sizes: dict[str, Sequence[int]] | None = None) -> dict[str, str]:
    """Fake data sets and checkpoints in ``tmp_path``; returns the environment variables pointing at them.

    ``models``: torchvision models whose random checkpoints are written (see
    :func:`write_checkpoints` for the sizes) and whose predictions label the fake ImageNet (train
    and val), so that each of them classifies its images correctly. ImageNet comes in the ILSVRC
    layout with a flat validation folder and box tables for both splits. Returns ``ADVXAI_<SET>``
    for each data set and ``TORCH_HOME``.

    ``sizes``: for a model, the sides (``$ADVXAI_IMAGE_SIZE``) at which it labels the images, so
    that runs at those sizes find them correctly classified; a model not listed labels them at its
    own input size.
    """
    from advxai.runtime import IMAGE_SIZE_ENV

    from advxai.models import get_model

    base = Path(tmp_path)
    unknown = sorted(set(datasets) - {"imagenet", "cub", "cifar10", "awa2", "mnist"})
    if unknown:
        raise ValueError(f"no fake for {unknown}; valid: awa2, cifar10, cub, imagenet, mnist")
    env = {"TORCH_HOME": str(base / "torch")}
    write_checkpoints(env["TORCH_HOME"], models, seed=seed)
    if "imagenet" in datasets:
        fake = fake_imagenet(base / "imagenet", layout="ilsvrc", val="flat", boxes="csv", seed=seed)
        labellers = []  # one model object per (model, size): each knows its input size
        for name in models:
            for size in (sizes or {}).get(name) or [None]:
                with environment(TORCH_HOME=env["TORCH_HOME"], **{IMAGE_SIZE_ENV: size and str(size)}):
                    labellers.append(get_model(name, device="cpu"))
        if labellers:
            fake.relabel(labellers)
        env["ADVXAI_IMAGENET"] = str(fake.root)
    if "cub" in datasets:
        env["ADVXAI_CUB"] = str(fake_cub(base / "cub" / "CUB_200_2011", seed=seed).root)
    if "cifar10" in datasets:
        fake_cifar10(base / "cifar10", seed=seed)
        env["ADVXAI_CIFAR10"] = str(base / "cifar10")
    if "awa2" in datasets:
        fake_awa2(base / "awa2", seed=seed)
        env["ADVXAI_AWA2"] = str(base / "awa2")
    if "mnist" in datasets:
        env["ADVXAI_MNIST"] = str(fake_mnist(base / "mnist"))
    return env
