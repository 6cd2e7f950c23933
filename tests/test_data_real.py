"""The real-data adapters on fake folders in their real layouts, and the papers' sampling."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from advxai.data import (
    DataNotFound, InMemoryImageDataset, get_dataset, list_datasets, sample_correct, sample_correct_pair, select_correct,
)
from advxai.data.awa2 import SPLIT_COUNTS, split_counts
from advxai.data.sampling import FewerCorrect, empty_classes, require_class_images, stratified_order
from advxai.errors import EmptySelection
from advxai.models import Classifier, ModelInfo

from . import fakes

S = 32  # image_size in these tests: resize_to is round(32 * 256 / 224) = 37


def _imagenet(tmp_path, **kw):
    return fakes.fake_imagenet(tmp_path / "imagenet", **kw)


def _record(fake, ds, i):
    path = Path(ds.files[i]).resolve()
    return next(img for img in fake.images if img.path.resolve() == path)


# --------------------------------------------------------------------------- ImageNet: layouts, labels


@pytest.mark.parametrize("layout,val,boxes", [("ilsvrc", "flat", "csv"), ("ilsvrc", "folders", "xml"),
                                              ("kaggle", "flat", "both"), ("kaggle", "folders", "xml")])
def test_imagenet_train_and_val_splits(tmp_path, layout, val, boxes):
    fake = _imagenet(tmp_path, layout=layout, val=val, boxes=boxes)
    for split, part in (("train", "train"), ("val", "val"), ("test", "val")):
        ds = get_dataset("imagenet", split, root=str(fake.root), image_size=S)
        written = [img for img in fake.images if img.split == part]
        assert len(ds) == len(written) and ds.has_boxes
        for i in range(len(ds)):  # all 1,000 fake folders exist: the sorted WordNet ids are the class index
            assert int(ds.labels[i]) == int(_record(fake, ds, i).wnid[1:])
        assert ds.classes[954] == "banana" and ds.wnids[954] == "n00000954"
        x = ds.batch(torch.arange(len(ds))).x
        assert x.shape == (len(ds), 3, S, S) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_imagenet_validation_folder_and_v2(tmp_path):
    valdir = fakes.fake_imagenet(tmp_path / "valdir", layout="valdir", boxes="csv", mapping=False)
    ds = get_dataset("imagenet", "val", root=str(valdir.root), image_size=S)
    assert sorted(ds.labels.tolist()) == sorted(int(i.wnid[1:]) for i in valdir.images) and ds.has_boxes
    with pytest.raises(DataNotFound, match="validation folder.*ILSVRC layout"):
        get_dataset("imagenet", "train", root=str(valdir.root))
    v2 = fakes.fake_imagenet(tmp_path / "v2", layout="v2")
    ds = get_dataset("imagenet", "test", root=str(v2.root), image_size=S)
    assert sorted(ds.labels.tolist()) == sorted(int(i.wnid) for i in v2.images)
    assert not ds.has_boxes and "boxes" not in ds.batch([0]) and "masks" not in ds.batch([0])
    with pytest.raises(DataNotFound, match="ImageNetV2.*no split 'train'"):
        get_dataset("imagenet", "train", root=str(v2.root))


def test_imagenet_class_index_needs_all_folders_or_the_mapping(tmp_path):
    fake = _imagenet(tmp_path, layout="ilsvrc", val="folders", boxes=None, mapping=False)
    for split in ("train", "val"):  # drop the empty class folders: fewer than 1,000 remain
        for d in (fake.root / split).iterdir():
            if not any(d.iterdir()):
                d.rmdir()
    with pytest.raises(DataNotFound, match="LOC_synset_mapping.txt"):
        get_dataset("imagenet", "train", root=str(fake.root))
    order = list(reversed(fakes.WNIDS))  # a mapping in another order decides the index
    (fake.root / "LOC_synset_mapping.txt").write_text("".join(f"{w} name\n" for w in order))
    ds = get_dataset("imagenet", "train", root=str(fake.root), image_size=S)
    assert all(int(ds.labels[i]) == order.index(_record(fake, ds, i).wnid) for i in range(len(ds)))
    (fake.root / "LOC_synset_mapping.txt").write_text("n00000001 one\nnot-a-wnid two\n")
    with pytest.raises(DataNotFound, match="WordNet ids"):
        get_dataset("imagenet", "train", root=str(fake.root))


def test_imagenet_listing_reads_no_image(tmp_path, monkeypatch):
    fake = _imagenet(tmp_path, layout="kaggle", val="flat", boxes="csv")

    def refuse(*_a, **_k):
        raise AssertionError("an image was opened while listing")

    monkeypatch.setattr(Image, "open", refuse)
    for split in ("train", "val"):
        ds = get_dataset("imagenet", split, root=str(fake.root), image_size=S)
        assert len(ds) == 12
    assert len(ds.files.names()) == 12 and isinstance(ds.files[0], Path) and len(ds.files[2:5]) == 3


# --------------------------------------------------------------------------- ImageNet: boxes


def test_box_and_mask_in_the_cropped_frame_by_hand(tmp_path):
    fake = _imagenet(tmp_path, layout="ilsvrc", val="flat", boxes="csv")
    ds = get_dataset("imagenet", "val", root=str(fake.root), image_size=S)
    i = next(k for k in range(len(ds)) if _record(fake, ds, k).size == (64, 48) and len(_record(fake, ds, k).own_boxes()) == 1)
    (x0, y0, x1, y1), = _record(fake, ds, i).own_boxes()
    assert (x0, y0, x1, y1) == (6, 9, 38, 43)
    # 64x48, shorter side 48 -> 37: 49x37 (64 * 37 / 48 = 49.33 rounds to 49); crop 32 from (8, 2)
    expected = [max(0.0, 6 * 49 / 64 - 8), 9 * 37 / 48 - 2, 38 * 49 / 64 - 8, 43 * 37 / 48 - 2]
    b = ds.batch([i])
    assert torch.allclose(b.boxes[0, 0], torch.tensor(expected), atol=1e-5)
    assert torch.isnan(b.boxes[0, 1:]).all()
    # pixel centres inside the box: columns 0..20 (20.5 <= 21.09), rows 5..30 (4.9375 <= 5.5, 30.5 <= 31.15)
    mask = torch.zeros(S, S, dtype=torch.bool)
    mask[5:31, 0:21] = True
    assert torch.equal(b.masks[0, 0], mask)


def test_boxes_follow_the_pixels_they_cover(tmp_path):
    """A white rectangle drawn at the box lands where the box's mask says, after resize and crop."""
    root = tmp_path / "valdir"
    for w in fakes.WNIDS:
        (root / w).mkdir(parents=True)
    rows = []
    for k, (size, box) in enumerate([((300, 200), (120, 40, 260, 170)), ((150, 400), (10, 150, 140, 300)),
                                     ((257, 255), (0, 0, 100, 60))]):
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        arr[box[1]:box[3], box[0]:box[2]] = 255  # x in [x0, x1), as edges: the box spans x0 <= x <= x1
        Image.fromarray(arr).save(root / "n00000005" / f"img{k}.png")
        rows.append(f"img{k},n00000005 {' '.join(map(str, box))}\n")
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(rows))
    for size in (64, 224):
        ds = get_dataset("imagenet", "val", root=str(root), image_size=size)
        b = ds.batch(torch.arange(len(ds)))
        for k in range(len(ds)):
            white = b.x[k].mean(0) > 0.5
            inter = (white & b.masks[k, 0]).sum().item()
            union = (white | b.masks[k, 0]).sum().item()
            assert inter / union > 0.93, (size, k, inter / union)


def test_boxes_of_the_labelled_class_only_and_images_without_boxes(tmp_path):
    fake = _imagenet(tmp_path, layout="ilsvrc", val="folders", boxes="csv", classes=(0, 1, 2, 3, 4, 954))
    ds = get_dataset("imagenet", "train", root=str(fake.root), image_size=S)
    b = ds.batch(torch.arange(len(ds)))
    for i in range(len(ds)):
        rec = _record(fake, ds, i)
        present = ~torch.isnan(b.boxes[i]).any(-1)
        raw = ds.raw_boxes([i])[0]
        assert raw.tolist() == rec.own_boxes()  # another class's box is never among them
        if not rec.own_boxes():
            assert not present.any() and not b.masks[i].any()
        assert int(present.sum()) <= len(rec.own_boxes())
        assert (b.boxes[i][present] >= 0).all() and (b.boxes[i][present] <= S).all()
        assert bool(b.masks[i].any()) == bool(present.any())
    records = [_record(fake, ds, i) for i in range(len(ds))]  # both cases are exercised:
    assert any(not r.own_boxes() for r in records)  # an image without a box
    assert any(len(r.boxes) > len(r.own_boxes()) for r in records)  # a box of another class, left out


def test_xml_and_csv_boxes_agree(tmp_path):
    csv = fakes.fake_imagenet(tmp_path / "csv", layout="ilsvrc", val="flat", boxes="csv")
    xml = fakes.fake_imagenet(tmp_path / "xml", layout="ilsvrc", val="flat", boxes="xml")
    for split in ("train", "val"):
        a = get_dataset("imagenet", split, root=str(csv.root), image_size=S)
        b = get_dataset("imagenet", split, root=str(xml.root), image_size=S)
        assert a.labels.tolist() == b.labels.tolist() and a.files.names() == b.files.names()
        ba, bb = a.batch(torch.arange(len(a))), b.batch(torch.arange(len(b)))
        assert torch.equal(ba.x, bb.x) and torch.equal(ba.masks, bb.masks)
        assert torch.allclose(ba.boxes, bb.boxes, equal_nan=True)
    assert next((xml.root / "Annotations" / "train").rglob("*.xml")).parent.name.startswith("n")  # train/<wnid>/


def test_box_geometry_clips_and_drops_boxes_cropped_away():
    from advxai.data.folders import box_masks, boxes_to_frame, crop_frame

    assert crop_frame(64, 48, 32, 37) == (49, 37, 8, 2)
    assert crop_frame(40, 100, 32, 37) == (37, 92, 2, 30)
    boxes = torch.tensor([[[0.0, 0.0, 5.0, 5.0], [20.0, 20.0, 30.0, 30.0], [float("nan")] * 4]])
    out = boxes_to_frame(boxes, torch.tensor([[64, 48]]), 32, 37)
    assert torch.isnan(out[0, 0]).all()  # 5 * 49 / 64 = 3.8 < left = 8: cut away by the crop
    assert torch.allclose(out[0, 1], torch.tensor([20 * 49 / 64 - 8, 20 * 37 / 48 - 2, 30 * 49 / 64 - 8,
                                                   30 * 37 / 48 - 2]))
    assert torch.isnan(out[0, 2]).all()
    assert box_masks(out, 32).sum() == box_masks(out[:, 1:2], 32).sum() > 0


# --------------------------------------------------------------------------- ImageNet: errors


def test_imagenet_missing_root_names_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVXAI_IMAGENET", raising=False)
    with pytest.raises(DataNotFound, match=r"\$ADVXAI_IMAGENET.*root=") as err:
        get_dataset("imagenet", "val")
    assert "train/n01440764" in str(err.value)  # the layout is in the message
    with pytest.raises(DataNotFound, match="does not exist.*root="):
        get_dataset("imagenet", "val", root=str(tmp_path / "absent"))
    monkeypatch.setenv("ADVXAI_IMAGENET", str(tmp_path / "absent"))
    with pytest.raises(DataNotFound, match=r"\$ADVXAI_IMAGENET"):
        get_dataset("imagenet", "val")
    with pytest.raises(ValueError, match="splits"):
        get_dataset("imagenet", "validation", root=str(tmp_path))


def test_imagenet_missing_split_and_malformed_tables(tmp_path):
    fake = _imagenet(tmp_path, layout="ilsvrc", val="flat", boxes="csv")
    import shutil

    shutil.rmtree(fake.root / "train")
    with pytest.raises(DataNotFound, match="split 'train' needs .*train.*Expected layout"):
        get_dataset("imagenet", "train", root=str(fake.root))
    csv = fake.root / "LOC_val_solution.csv"
    good = csv.read_text()
    csv.write_text(good.replace("ImageId,PredictionString", "id,boxes"))
    with pytest.raises(DataNotFound, match="header"):
        get_dataset("imagenet", "val", root=str(fake.root))
    lines = good.splitlines()
    csv.write_text("\n".join(lines[:2] + [lines[2].rsplit(" ", 1)[0]] + lines[3:]) + "\n")
    with pytest.raises(DataNotFound, match="line 3"):
        get_dataset("imagenet", "val", root=str(fake.root))
    csv.write_text(good.replace(" 9 ", " nine ", 1))
    ds = get_dataset("imagenet", "val", root=str(fake.root), image_size=S)  # numbers are read per batch
    with pytest.raises(DataNotFound, match="not a number"):
        ds.batch(torch.arange(len(ds)))
    csv.unlink()
    with pytest.raises(DataNotFound, match="LOC_val_solution.csv"):
        get_dataset("imagenet", "val", root=str(fake.root))


def test_imagenet_malformed_xml(tmp_path):
    fake = _imagenet(tmp_path, layout="ilsvrc", val="folders", boxes="xml")
    xml = next((fake.root / "Annotations" / "val").glob("*.xml"))
    xml.write_text("<annotation><object><name>n00000000</name></object>")
    ds = get_dataset("imagenet", "val", root=str(fake.root), image_size=S)
    with pytest.raises(DataNotFound, match="Pascal-VOC"):
        ds.batch(torch.arange(len(ds)))


def test_image_modes_load_as_rgb(tmp_path):
    """Greyscale JPEG, CMYK JPEG, palette PNG (with transparency) and RGBA PNG: RGB [3, S, S] in [0, 1]."""
    root = tmp_path / "v2"
    for k in range(1, 5):
        (root / str(k)).mkdir(parents=True)
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    rgb.convert("L").save(root / "1" / "grey.jpeg")
    rgb.convert("CMYK").save(root / "2" / "cmyk.jpg")
    rgb.convert("P").save(root / "3" / "palette.png", transparency=0)
    rgb.convert("RGBA").save(root / "4" / "rgba.png")
    assert Image.open(root / "2" / "cmyk.jpg").mode == "CMYK" and Image.open(root / "3" / "palette.png").mode == "P"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no PIL warning about palette transparency either
        ds = get_dataset("imagenet", "val", root=str(root), image_size=S)
        x = ds.batch(torch.arange(4)).x
    assert x.shape == (4, 3, S, S) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])  # grey stays grey
    assert x[1:].std() > 0.1


# --------------------------------------------------------------------------- CUB, CIFAR-10, AwA2


def test_cub_on_its_full_fake(tmp_path):
    fake = fakes.fake_cub(tmp_path / "CUB_200_2011")
    for split in ("train", "test"):
        ds = get_dataset("cub", split, root=str(fake.root), image_size=S)
        ids = [k for k, t in enumerate(fake.is_train) if t == (split == "train")]
        assert ds.labels.tolist() == [fake.labels[k] for k in ids] and ds.num_classes == 200
        assert ds.class_attributes.shape == (200, 312) and len(ds.attribute_names) == 312
        b = ds.batch(torch.arange(len(ds)))
        assert b.x.shape == (len(ds), 3, S, S) and b.attributes.shape == (len(ds), 312)
        assert b.part_locs.shape == (len(ds), 15, 3) and ds.part_names[0] == "back"
        x, y, w, h = fake.boxes[ids[0]]
        assert b.bird_box[0].tolist() == [x, y, x + w, y + h]


def test_cub_errors(tmp_path, monkeypatch):
    fake = fakes.fake_cub(tmp_path / "CUB_200_2011")
    monkeypatch.delenv("ADVXAI_CUB", raising=False)
    with pytest.raises(DataNotFound, match=r"\$ADVXAI_CUB.*root="):
        get_dataset("cub")
    table = fake.root / "image_class_labels.txt"
    table.write_text(table.read_text() + "13\n")
    with pytest.raises(DataNotFound, match="line 13 has 1 column"):
        get_dataset("cub", root=str(fake.root))
    table.write_text("1 1\n")
    with pytest.raises(DataNotFound, match="no line in image_class_labels.txt"):
        get_dataset("cub", root=str(fake.root))
    (fake.root / "parts" / "part_locs.txt").unlink()
    fake.write_labels()
    with pytest.raises(DataNotFound, match="part_locs.txt is missing"):
        get_dataset("cub", root=str(fake.root))


def test_cifar10_reads_the_pickled_batches(tmp_path):
    folder = fakes.fake_cifar10(tmp_path / "c")
    from advxai.data.cifar10 import _unpickle

    first = _unpickle(folder / "data_batch_1")
    for root in (tmp_path / "c", folder):  # the parent or the batches folder itself
        train = get_dataset("cifar10", "train", root=str(root))
        assert len(train) == 50 and train.classes[0] == "airplane" and train.image_shape == (3, 32, 32)
        assert torch.equal(train.images[:10], torch.from_numpy(first["data"].reshape(10, 3, 32, 32)))
        assert train.labels[:10].tolist() == first["labels"]
    test = get_dataset("cifar10", "test", root=str(folder))
    assert len(test) == 10 and test.batch([0]).x.dtype == torch.float32


def test_cifar10_refuses_foreign_pickles_and_missing_files(tmp_path, monkeypatch):
    folder = fakes.fake_cifar10(tmp_path / "c")

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DataNotFound, match=r"refused global (__builtin__|builtins)\.print"):
        get_dataset("cifar10", "test", root=str(folder))
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataNotFound, match="data_batch_3"):
        get_dataset("cifar10", "train", root=str(folder))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(DataNotFound, match=r"uint8 array \[N, 3072\]"):
        get_dataset("cifar10", "test", root=str(folder))
    monkeypatch.delenv("ADVXAI_CIFAR10", raising=False)
    with pytest.raises(DataNotFound, match=r"(?s)\$ADVXAI_CIFAR10.*cifar-10-batches-py"):
        get_dataset("cifar10")


def test_awa2_splits_are_stratified_disjoint_and_seeded(tmp_path):
    fakes.fake_awa2(tmp_path / "a", per_class=20)
    root = str(tmp_path / "a")
    splits = {s: get_dataset("awa2", s, root=root, image_size=S) for s in ("train", "val", "test")}
    files = {s: set(map(str, ds.files)) for s, ds in splits.items()}
    assert not (files["train"] & files["val"]) and not (files["train"] & files["test"]) and not (files["val"] & files["test"])
    assert sum(map(len, files.values())) == 80
    for s, ds in splits.items():  # 20 images a class: 11.9 / 3.0 / 5.1 -> 12 / 3 / 5
        assert torch.bincount(ds.labels, minlength=50)[:4].tolist() == [split_counts(20)[s]] * 4
    assert split_counts(20) == {"train": 12, "val": 3, "test": 5}
    again = get_dataset("awa2", "train", root=root, image_size=S)
    other = get_dataset("awa2", "train", root=root, image_size=S, seed=1)
    assert list(map(str, again.files)) == list(map(str, splits["train"].files))
    assert set(map(str, other.files)) != files["train"]


def test_split_counts_follow_the_paper():
    for n in (1, 2, 7, 100, 746, 1645):
        c = split_counts(n)
        assert sum(c.values()) == n and all(v >= 0 for v in c.values())
        for s, v in c.items():
            assert abs(v - n * SPLIT_COUNTS[s] / 37322) < 1
    assert sum(SPLIT_COUNTS.values()) == 37322


def test_awa2_attributes(tmp_path):
    folder = fakes.fake_awa2(tmp_path / "a")
    ds = get_dataset("awa2", "train", root=str(tmp_path / "a"), image_size=S)
    cont = torch.tensor(np.loadtxt(folder / "predicate-matrix-continuous.txt"), dtype=torch.float32)
    binary = torch.tensor(np.loadtxt(folder / "predicate-matrix-binary.txt"), dtype=torch.float32)
    assert torch.allclose(ds.class_attributes, cont) and ds.attribute_names[0] == "predicate1"
    b = ds.batch(torch.arange(len(ds)))
    assert torch.equal(b.attributes, binary[b.y]) and b.x.shape == (len(ds), 3, S, S) and ds.has_attributes
    (folder / "predicate-matrix-binary.txt").unlink()
    ds = get_dataset("awa2", "train", root=str(folder), image_size=S)  # the folder itself works too
    assert torch.equal(ds.annotations["attributes"], (cont > cont.mean()).float()[ds.labels])


def test_awa2_errors(tmp_path, monkeypatch):
    folder = fakes.fake_awa2(tmp_path / "a")
    monkeypatch.delenv("ADVXAI_AWA2", raising=False)
    with pytest.raises(DataNotFound, match=r"(?s)\$ADVXAI_AWA2.*JPEGImages"):
        get_dataset("awa2")
    matrix = folder / "predicate-matrix-continuous.txt"
    rows = matrix.read_text().splitlines()
    matrix.write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(DataNotFound, match="50 classes x 85 attributes"):
        get_dataset("awa2", root=str(folder))
    matrix.write_text("\n".join(rows[:-1] + [rows[-1].replace(rows[-1].split()[0], "x", 1)]) + "\n")
    with pytest.raises(DataNotFound, match="not a number"):
        get_dataset("awa2", root=str(folder))
    (folder / "predicates.txt").unlink()
    with pytest.raises(DataNotFound, match="predicates.txt is missing"):
        get_dataset("awa2", root=str(folder))
    with pytest.raises(ValueError, match="splits"):
        get_dataset("awa2", "trainval", root=str(folder))


def test_new_data_sets_are_registered():
    assert {"imagenet", "cub", "cifar10", "awa2"} <= set(list_datasets())


# --------------------------------------------------------------------------- sampling


class _Oracle(nn.Module):
    """Predicts the class written into pixel (0, 0) of the first channel (value k/255 -> class k)."""

    def __init__(self, num_classes):
        super().__init__()
        self.register_buffer("classes", torch.arange(num_classes, dtype=torch.float32))

    def forward(self, x):
        k = torch.round(x[:, 0, 0, 0] * 255)  # the Classifier normalises with mean 0, std 1
        return -(k[:, None] - self.classes[None]) ** 2


class CountingClassifier(Classifier):
    def __init__(self, num_classes, name="oracle"):
        info = ModelInfo(name=name, dataset="test", input_size=(1, 4, 4), class_names=[str(k) for k in range(num_classes)],
                         mean=(0.0,), std=(1.0,), cam_layer="", feature_layer="", classifier_layer="")
        super().__init__(_Oracle(num_classes), info)
        self.seen = 0

    def predict(self, x, batch_size=256):
        self.seen += len(x)
        return super().predict(x, batch_size)


def _dataset(labels, predictions, num_classes):
    images = torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.as_tensor(predictions, dtype=torch.uint8)
    return InMemoryImageDataset(name="toy", split="test", classes=[str(k) for k in range(num_classes)],
                                labels=torch.as_tensor(labels, dtype=torch.long), images=images)


def _toy(n=600, num_classes=6, accuracy=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    wrong = (labels + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
    correct = torch.rand(n, generator=g) < accuracy
    return _dataset(labels, torch.where(correct, labels, wrong), num_classes), correct


def _reference(ds, correct, n, seed, stratified=True, exclude=()):
    """The draw computed the slow way: every image classified, then the seeded round-robin."""
    g = torch.Generator().manual_seed(seed)
    ok = correct.clone()
    ok[list(exclude)] = False
    if not stratified:
        perm = torch.randperm(len(ds), generator=g)
        return sorted(perm[ok[perm]][:n].tolist())
    queues = [torch.nonzero(ds.labels == c).flatten() for c in range(ds.num_classes)]
    queues = [q[torch.randperm(len(q), generator=g)] for q in queues if len(q)]
    order = torch.randperm(len(queues), generator=g).tolist()
    queues = [queues[c][ok[queues[c]]].tolist() for c in order]
    out, depth = [], 0
    while len(out) < n and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(out) < n:
                out.append(q[depth])
        depth += 1
    return sorted(out)


@pytest.mark.parametrize("stratified", [True, False])
@pytest.mark.parametrize("seed", [0, 3])
def test_sample_correct_matches_the_slow_draw(stratified, seed):
    ds, correct = _toy()
    model = CountingClassifier(6)
    got = sample_correct(ds, model, 40, seed, stratified=stratified, batch_size=7)
    assert got.tolist() == _reference(ds, correct, 40, seed, stratified)
    assert correct[got].all()
    assert model.seen < len(ds) // 2  # classified only as far as the draw needed
    for batch_size in (1, 64, 1000):  # the draw does not depend on the batch size
        assert sample_correct(ds, CountingClassifier(6), 40, seed, stratified=stratified,
                              batch_size=batch_size).tolist() == got.tolist()


def test_all_correct_draw_is_sample_indices_and_stops_early():
    ds, _ = _toy(n=1000, accuracy=1.0)
    for stratified in (True, False):
        model = CountingClassifier(6)
        sample = select_correct(ds, model, 25, seed=5, stratified=stratified, batch_size=8)
        assert sample.indices.tolist() == ds.sample_indices(25, seed=5, stratified=stratified).tolist()
        assert model.seen == sample.looked_at == 25 and sample.accuracy == 1.0  # not one image more
    order = stratified_order(ds.labels, 6, seed=5)
    assert sorted(order[:25].tolist()) == ds.sample_indices(25, seed=5).tolist()
    assert sorted(order.tolist()) == list(range(1000))


def test_early_stop_with_errors_classifies_about_n_over_accuracy():
    ds, correct = _toy(n=3000, accuracy=0.5)
    model = CountingClassifier(6)
    sample = select_correct(ds, model, 60, batch_size=16)
    assert len(sample.indices) == 60 and model.seen == sample.looked_at
    assert 60 <= sample.looked_at <= 200  # ~120 expected at 50 % accuracy; the set holds 3,000
    assert sample.correct_seen >= 60 and not sample.exhausted


def test_stratified_counts():
    ds, correct = _toy(n=1200, num_classes=6, accuracy=0.7)
    idx = sample_correct(ds, CountingClassifier(6), 60)
    assert torch.bincount(ds.labels[idx], minlength=6).tolist() == [10] * 6
    idx = sample_correct(ds, CountingClassifier(6), 62)
    assert sorted(torch.bincount(ds.labels[idx], minlength=6).tolist()) == [10, 10, 10, 10, 11, 11]


def test_a_class_with_few_correct_images_gives_way():
    labels = torch.arange(300) % 3
    preds = labels.clone()
    preds[labels == 0] = 1  # class 0 is never right ...
    preds[torch.nonzero(labels == 0).flatten()[:2]] = 0  # ... but for two images
    ds = _dataset(labels, preds, 3)
    idx = sample_correct(ds, CountingClassifier(3), 30)
    assert torch.bincount(ds.labels[idx], minlength=3).tolist() == [2, 14, 14]


def test_exclude_and_the_disjoint_pair():
    ds, correct = _toy(n=400)
    evaluated = sample_correct(ds, CountingClassifier(6), 30, seed=1)
    again = sample_correct(ds, CountingClassifier(6), 30, seed=1, exclude=evaluated)
    assert not set(evaluated.tolist()) & set(again.tolist()) and correct[again].all()
    assert again.tolist() == _reference(ds, correct, 30, 1, exclude=evaluated.tolist())
    ev, tr = sample_correct_pair(ds, CountingClassifier(6), 30, 50, seed=1)
    assert ev.tolist() == evaluated.tolist() and len(tr) == 50 and not set(ev.tolist()) & set(tr.tolist())
    with pytest.raises(IndexError, match="exclude"):
        sample_correct(ds, CountingClassifier(6), 5, exclude=[400])


def test_fewer_correct_than_asked_warns_and_returns_them():
    ds, correct = _toy(n=60, accuracy=0.2)
    model = CountingClassifier(6)
    with pytest.warns(FewerCorrect, match=rf"only {int(correct.sum())} .*asked for 50"):
        idx = sample_correct(ds, model, 50)
    assert sorted(idx.tolist()) == torch.nonzero(correct).flatten().tolist() and model.seen == 60
    sample = select_correct(ds, CountingClassifier(6), 50)
    assert sample.short and sample.exhausted and sample.accuracy == int(correct.sum()) / 60


def test_no_correct_image_raises_empty_selection_with_the_numbers():
    labels = torch.arange(40) % 4
    ds = _dataset(labels, (labels + 1) % 4, 4)
    with pytest.raises(EmptySelection, match=r"clumsy classifies none of the 40 toy/test images .*accuracy 0\.0%"):
        sample_correct(ds, CountingClassifier(4, name="clumsy"), 10)
    with pytest.raises(EmptySelection, match="no eligible image"):
        sample_correct(_toy(n=20)[0], CountingClassifier(6), 5, exclude=torch.arange(20))


def test_empty_class_helpers():
    labels = torch.tensor([0, 0, 2, 2, 2])
    ds = _dataset(labels, labels, 4)
    assert empty_classes(ds) == [1, 3] and empty_classes(ds, [0, 3]) == [3]
    with pytest.raises(EmptySelection, match=r"no image of class 1 \(1\)"):
        require_class_images(ds, [0, 1])
    assert sample_correct(ds, CountingClassifier(4), 3, classes=[2]).tolist() == [2, 3, 4]
    with pytest.raises(EmptySelection) as err:
        sample_correct(ds, CountingClassifier(4), 3, classes=[3])
    assert err.value.reason == "a class with no images"
    with pytest.raises(ValueError, match=r"0\.\.3"):
        require_class_images(ds, [7])


def test_sampling_checks_its_arguments():
    ds, _ = _toy(n=20)
    with pytest.raises(ValueError, match="positive"):
        sample_correct(ds, CountingClassifier(6), 0)
    with pytest.raises(ValueError, match="batch_size"):
        sample_correct(ds, CountingClassifier(6), 3, batch_size=0)
    with pytest.raises(ValueError, match="predicts 4 classes"):
        sample_correct(ds, CountingClassifier(4), 3)


# --------------------------------------------------------------------------- the fake world


def test_fake_world_labels_images_with_the_models_predictions(tmp_path, monkeypatch):
    """Random torchvision weights where torchvision looks for them; every fake ImageNet image counts as correct."""
    from advxai.models import get_model

    env = fakes.build_fake_world(tmp_path, models=["resnet50"], datasets=["imagenet", "cifar10"])
    assert set(env) == {"TORCH_HOME", "ADVXAI_IMAGENET", "ADVXAI_CIFAR10"}
    assert fakes.checkpoint_file(env["TORCH_HOME"], "resnet50").name.startswith("resnet50-")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    model = get_model("resnet50", device="cpu")
    assert "IMAGENET1K_V1" in model.info.weights and "downloaded" not in model.info.weights
    ds = get_dataset("imagenet", "val", image_size=224)
    pred, _ = model.predict(ds.load_images(torch.arange(len(ds))))
    assert torch.equal(pred, ds.labels)
    sample = select_correct(ds, model, len(ds))
    assert len(sample.indices) == len(ds) and sample.looked_at == len(ds)
    assert ds.has_boxes and ds.batch([0]).masks.any()


@pytest.mark.parametrize("layout,val,boxes", [("ilsvrc", "flat", "csv"), ("kaggle", "folders", "xml"), ("v2", "folders", None)])
def test_relabel_gives_every_model_its_correct_images(tmp_path, layout, val, boxes):
    from .helpers import tiny_classifier

    fake = _imagenet(tmp_path, layout=layout, val=val, boxes=boxes)
    models = [tiny_classifier(in_channels=3, size=S, num_classes=1000, seed=k) for k in range(2)]
    fake.relabel(models, image_size=S)
    splits = ("val",) if layout == "v2" else ("train", "val")
    for split in splits:
        ds = get_dataset("imagenet", split, root=str(fake.root), image_size=S)
        x = ds.load_images(torch.arange(len(ds)))
        right = torch.stack([m.predict(x)[0] == ds.labels for m in models])
        assert right.any(0).all()  # every image is some model's correct image ...
        assert (right.float().mean(1) >= 0.5).all()  # ... and each model gets at least its share
        assert len(ds) > 12  # the two models disagree somewhere: images were copied for the second
        if ds.has_boxes:  # boxes moved along with the labels
            assert sum(len(r) for r in ds.raw_boxes(range(len(ds)))) > 0


def test_relabel_cifar10_cub_awa2(tmp_path):
    from .helpers import tiny_classifier

    folder = fakes.fake_cifar10(tmp_path / "c")
    model = tiny_classifier(in_channels=3, size=32, num_classes=10)
    fakes.relabel_cifar10(folder, model)
    for split in ("train", "test"):
        ds = get_dataset("cifar10", split, root=str(folder))
        assert torch.equal(model.predict(ds.load_images(torch.arange(len(ds))))[0], ds.labels)
    cub = fakes.fake_cub(tmp_path / "CUB_200_2011")
    model = tiny_classifier(in_channels=3, size=S, num_classes=200)
    fakes.relabel_cub(cub, model)
    ds = get_dataset("cub", "test", root=str(cub.root), image_size=S)
    assert torch.equal(model.predict(ds.load_images(torch.arange(len(ds))))[0], ds.labels)
    awa = fakes.fake_awa2(tmp_path / "a")
    model = tiny_classifier(in_channels=3, size=S, num_classes=50)
    fakes.relabel_awa2(awa, model)
    for split in ("train", "val", "test"):
        ds = get_dataset("awa2", split, root=str(awa), image_size=S)
        assert torch.equal(model.predict(ds.load_images(torch.arange(len(ds))))[0], ds.labels)
    with pytest.raises(ValueError, match="outside cifar10's 10 classes"):
        fakes.relabel_cifar10(folder, tiny_classifier(in_channels=3, size=32, num_classes=1000))


def test_fake_mnist_reads_through_the_mnist_adapter(tmp_path):
    from advxai.data import get_dataset

    root = fakes.fake_mnist(tmp_path / "mnist")
    train, test = get_dataset("mnist", "train", root=str(root)), get_dataset("mnist", "test", root=str(root))
    digits = get_dataset("digits", "test")
    assert (len(train), len(test)) == (len(get_dataset("digits", "train")), len(digits))
    assert len(train) + len(test) == 1797 and test.image_shape == (1, 28, 28)
    assert torch.equal(test.images, digits.images) and torch.equal(test.labels, digits.labels)
