import struct

import numpy as np
import pytest
import torch
from PIL import Image

from advxai.data import DataNotFound, get_dataset, imagenet_class_index, list_datasets
from advxai.data import shapes as shp


def test_registry_lists_valid_names():
    assert {"digits", "photos", "shapes", "mnist", "imagenet", "cub"} <= set(list_datasets())
    with pytest.raises(ValueError, match="valid: .*digits"):
        get_dataset("cifar")


# --------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_disjoint_and_mnist_shaped():
    train, test = get_dataset("digits", "train"), get_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    assert 350 <= len(test) <= 370
    x = test.batch(torch.arange(10)).x
    assert x.shape == (10, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert x[:, :, :4].abs().sum() == 0  # MNIST-like 4-pixel margin
    assert sorted(test.labels.unique().tolist()) == list(range(10))
    again = get_dataset("digits", "test")
    assert torch.equal(again.images, test.images)
    # disjoint: no test image equals a train image of the same index set (exact duplicates are rare)
    tr = train.images.flatten(1).float()
    te = test.images.flatten(1).float()
    assert torch.cdist(te[:50], tr).min() > 0


def test_stratified_sample_is_balanced_and_reproducible():
    ds = get_dataset("digits", "test")
    idx = ds.sample_indices(30, seed=1)
    counts = torch.bincount(ds.labels[idx], minlength=10)
    assert counts.min() == 3 and counts.max() == 3
    assert torch.equal(idx, ds.sample_indices(30, seed=1))
    assert not torch.equal(idx, ds.sample_indices(30, seed=2))


# --------------------------------------------------------------------------- photos


def test_photos_are_real_labelled_images():
    ds = get_dataset("photos")
    assert len(ds) == 8 and ds.num_classes == 1000
    x = ds.batch(torch.arange(len(ds))).x
    assert x.shape == (8, 3, 224, 224) and 0 <= x.min() and x.max() <= 1
    assert ds.classes[int(ds.labels[1])] == "espresso"
    assert x.std() > 0.1  # photographs, not blank frames
    small = get_dataset("photos", image_size=64)
    assert small.image_shape == (3, 64, 64)
    with pytest.raises(ValueError, match="image_size"):
        get_dataset("photos", image_size=8)
    assert imagenet_class_index("banana") == 954
    with pytest.raises(ValueError):
        imagenet_class_index("not a class")


# --------------------------------------------------------------------------- shapes


def test_shapes_class_design_keeps_classes_three_groups_apart():
    codes = shp.class_codes(20)
    d = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    np.fill_diagonal(d, 99)
    assert d.min() >= shp.MIN_GROUP_DISTANCE
    assert len(shp.ATTRIBUTE_NAMES) >= 24


def test_shapes_generation_is_deterministic_and_prefix_stable():
    a = shp.generate(200, "train", seed=4)  # crosses a chunk boundary
    b = shp.generate(60, "train", seed=4)
    c = shp.generate(150, "train", seed=4)
    for k in a:
        assert torch.equal(a[k][:60].nan_to_num(-1), b[k].nan_to_num(-1))
        assert torch.equal(a[k][:150].nan_to_num(-1), c[k].nan_to_num(-1))
    assert not torch.equal(a["images"][:10], shp.generate(10, "train", seed=5)["images"])
    assert not torch.equal(a["images"][:10], shp.generate(10, "test", seed=4)["images"])


def test_shapes_annotations_are_consistent():
    ds = get_dataset("shapes", "test", n=256, use_cache=False)
    b = ds.batch(torch.arange(len(ds)))
    assert b.x.shape == (256, 3, 64, 64)
    attrs = b.attributes.view(256, len(shp.GROUPS), shp.N_VALUES)
    assert torch.all(attrs.sum(-1) == 1)  # one value per group
    # parts are inside the object mask, and each box is the tight box of its part
    for k, part in enumerate(shp.PARTS):
        m = shp.part_mask(b.part_bits, part)
        assert torch.all(m <= b.masks)
        for i in range(0, 256, 37):
            ys, xs = torch.nonzero(m[i, 0], as_tuple=True)
            if len(ys) == 0:
                assert torch.isnan(b.part_boxes[i, k]).all()
                continue
            assert b.part_boxes[i, k].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1,
                                                  ys.max().item() + 1]
    area = b.masks.float().mean((1, 2, 3))
    assert 0.02 < area.mean() < 0.25
    # per-image attributes follow the class vector except for ~flip_prob of the groups
    class_codes = torch.as_tensor(shp.class_codes(20))[b.y]
    flips = (attrs.argmax(-1) != class_codes).float().mean()
    assert 0.005 < flips < 0.08


def test_shapes_part_colours_are_close_shades_of_their_attribute():
    ds = get_dataset("shapes", "test", n=256, use_cache=False)
    b = ds.batch(torch.arange(len(ds)))
    attrs = b.attributes.view(256, len(shp.GROUPS), shp.N_VALUES).argmax(-1)
    # the body's own pixels (not under the wing, head or tail) wear the shade of its body_color value
    only_body = (b.part_bits == 1).float()  # [B, 1, H, W]
    has = only_body.sum((1, 2, 3)) > 20
    mean = (b.x * only_body).sum((2, 3)) / only_body.sum((2, 3)).clamp_min(1)  # [B, 3]
    group = [g for g, _, _ in shp.GROUPS].index("body_color")
    shades = shp._palette_tensor(group)
    nearest = ((mean[:, None] - shades[None]) ** 2).sum(-1).argmin(1)
    assert has.sum() > 200
    assert (nearest[has] == attrs[has, group]).float().mean() > 0.97
    # the shades are the saturated palette pulled towards its mean by COLOUR_SPREAD: close, not equal
    for g in range(len(shp.GROUPS)):
        if "color" not in shp.GROUPS[g][0]:
            continue
        sat = torch.tensor([shp.PALETTE[v] for v in shp.GROUPS[g][2]])
        gap = torch.cdist(shp._palette_tensor(g), shp._palette_tensor(g))
        assert torch.allclose(gap, shp.COLOUR_SPREAD * torch.cdist(sat, sat), atol=1e-6)
    assert 0 < shp.COLOUR_SPREAD < 1


def test_shapes_generator_version_is_part_of_the_model_key(monkeypatch):
    from advxai.models.embedded import trained_model_spec

    before = trained_model_spec("shapes_resnet", "smoke", "cpu")
    assert before["data_version"] == shp.GENERATOR_VERSION
    monkeypatch.setattr(shp, "GENERATOR_VERSION", shp.GENERATOR_VERSION + 1)
    assert trained_model_spec("shapes_resnet", "smoke", "cpu")["data_version"] == shp.GENERATOR_VERSION
    assert "data_version" not in trained_model_spec("digits_cnn", "smoke", "cpu")  # fixed data: key unchanged


def test_shapes_class_attributes_are_expected_frequencies():
    ds = get_dataset("shapes", "test", n=64, use_cache=False, flip_prob=0.1)
    ca = ds.class_attributes
    assert ca.shape == (20, len(shp.ATTRIBUTE_NAMES))
    assert torch.allclose(ca.view(20, -1, 4).sum(-1), torch.ones(20, len(shp.GROUPS)))
    assert ds.attribute_parts is not None and len(ds.attribute_parts) == ca.shape[1]


def test_shapes_bad_parameters():
    with pytest.raises(ValueError, match="flip_prob"):
        get_dataset("shapes", flip_prob=0.7)
    with pytest.raises(ValueError, match="image_size"):
        get_dataset("shapes", image_size=16)
    with pytest.raises(ValueError, match="splits"):
        get_dataset("shapes", split="holdout")


def test_shapes_other_size():
    ds = get_dataset("shapes", "test", n=8, image_size=96, use_cache=False)
    assert ds.batch([0]).x.shape == (1, 3, 96, 96)


# --------------------------------------------------------------------------- real adapters on fakes


def _write_idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for d in array.shape:
            f.write(struct.pack(">I", d))
        f.write(array.astype(np.uint8).tobytes())


def test_mnist_adapter_reads_a_local_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)), 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)), 2049)
    ds = get_dataset("mnist", "test", root=str(tmp_path))
    assert len(ds) == 5 and ds.batch([0, 1]).x.shape == (2, 1, 28, 28)


def test_mnist_missing_folder_names_layout(tmp_path, tmp_cache, monkeypatch):
    monkeypatch.delenv("ADVXAI_MNIST", raising=False)
    with pytest.raises(DataNotFound, match="MNIST/raw"):
        get_dataset("mnist", "test")
    with pytest.raises(DataNotFound, match="Expected layout"):
        get_dataset("mnist", "test", root=str(tmp_path / "absent"))


def _jpeg(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)


def test_imagenet_v2_numbered_folders(tmp_path):
    _jpeg(tmp_path / "0" / "a.jpeg", (255, 0, 0))
    _jpeg(tmp_path / "954" / "b.jpeg", (0, 255, 0))
    ds = get_dataset("imagenet", "val", root=str(tmp_path), image_size=32)
    assert ds.labels.tolist() == [0, 954]
    x = ds.batch([1]).x
    assert x.shape == (1, 3, 32, 32) and abs(x[0, 1].mean().item() - 1.0) < 0.01


def test_imagenet_wordnet_folders_need_a_mapping_when_partial(tmp_path):
    _jpeg(tmp_path / "n01440764" / "a.JPEG", (0, 0, 255))
    with pytest.raises(DataNotFound, match="LOC_synset_mapping"):
        get_dataset("imagenet", root=str(tmp_path))
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish\n")
    ds = get_dataset("imagenet", root=str(tmp_path))
    assert ds.labels.tolist() == [0]


def test_imagenet_missing_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVXAI_IMAGENET", raising=False)
    with pytest.raises(DataNotFound, match="n01440764"):
        get_dataset("imagenet")


def _fake_cub(root, n_attr=4):
    (root / "attributes").mkdir(parents=True)
    (root / "parts").mkdir()
    files = ["001.Black_footed_Albatross/a.jpg", "002.Laysan_Albatross/b.jpg", "002.Laysan_Albatross/c.jpg"]
    for i, f in enumerate(files):
        _jpeg(root / "images" / f, (40 * i, 100, 200))
    (root / "images.txt").write_text("".join(f"{i + 1} {f}\n" for i, f in enumerate(files)))
    (root / "image_class_labels.txt").write_text("1 1\n2 2\n3 2\n")
    (root / "train_test_split.txt").write_text("1 1\n2 0\n3 0\n")
    (root / "classes.txt").write_text("1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n")
    (root / "bounding_boxes.txt").write_text("1 1 2 10 10\n2 0 0 20 15\n3 5 5 5 5\n")
    (root / "attributes.txt").write_text("".join(f"{a + 1} has_attr::{a}\n" for a in range(n_attr)))
    (root / "attributes" / "class_attribute_labels_continuous.txt").write_text(
        "10 0 50 0\n0 80 0 20\n")
    (root / "attributes" / "image_attribute_labels.txt").write_text(
        "".join(f"{i} {a} {int((i + a) % 2)} 3 1.0\n" for i in (1, 2, 3) for a in range(1, n_attr + 1)))
    (root / "parts" / "parts.txt").write_text("1 back\n2 beak\n")
    (root / "parts" / "part_locs.txt").write_text("".join(f"{i} {p} 3 4 1\n" for i in (1, 2, 3) for p in (1, 2)))


def test_cub_adapter_reads_attributes_and_parts(tmp_path):
    _fake_cub(tmp_path)
    ds = get_dataset("cub", "test", root=str(tmp_path), image_size=32)
    assert len(ds) == 2 and ds.labels.tolist() == [1, 1]
    assert ds.class_attributes.shape == (2, 4) and ds.has_attributes
    b = ds.batch([0, 1])
    assert b.x.shape == (2, 3, 32, 32)
    assert b.attributes.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]
    assert b.bird_box[0].tolist() == [0, 0, 20, 15]
    assert b.part_locs.shape == (2, 2, 3)


def test_cub_missing_table_names_layout(tmp_path):
    _fake_cub(tmp_path)
    (tmp_path / "bounding_boxes.txt").unlink()
    with pytest.raises(DataNotFound, match="bounding_boxes.txt"):
        get_dataset("cub", root=str(tmp_path))
