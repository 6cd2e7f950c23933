"""Chapter 0's measurements (advxai.studies.data_and_models) at smoke sizes."""
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from advxai import claims
from advxai.data import get_dataset
from advxai.data.base import InMemoryImageDataset
from advxai.models import Classifier, ModelInfo
from advxai.studies import data_and_models as dm

from .fakes import fake_cifar10
from .helpers import one_thread, smoke_model, tiny_classifier


def test_sample_batch_is_seeded_and_balanced_over_classes():
    digits = get_dataset("digits", "test")
    a, b = dm.sample_batch(digits, 20, seed=3), dm.sample_batch(digits, 20, seed=3)
    assert torch.equal(a.index, b.index) and len(a.index) == 20
    assert torch.bincount(a.y, minlength=10).tolist() == [2] * 10  # 20 images over 10 classes
    assert not torch.equal(dm.sample_batch(digits, 20, seed=4).index, a.index)


def test_shapes_tables_describe_the_classes_and_one_image():
    shapes = get_dataset("shapes", "test", n=64)
    table = dm.class_table(shapes)
    assert len(table) == shapes.num_classes and table["class"].tolist() == shapes.classes
    values = table.drop(columns="class").to_numpy()
    # the generator's promise: any two classes differ in at least three attribute groups
    assert min((values[i] != values[j]).sum() for i, j in itertools.combinations(range(len(values)), 2)) >= 3
    b = dm.sample_batch(shapes, 8, seed=0)
    attrs = dm.image_attributes(shapes, b, 0)
    assert len(attrs) == values.shape[1]  # one value per group for the image and for its class
    assert attrs["same"].tolist() == [a == c for a, c in zip(attrs["image attribute"], attrs["class attribute"])]
    assert sorted(attrs["class attribute"].str.split("::").str[1]) == sorted(values[int(b.y[0])])


def test_generation_rate_is_measured_on_one_thread_and_restores_the_count():
    threads = torch.get_num_threads()
    r = dm.generation_rate(16, seed=1)
    assert torch.get_num_threads() == threads
    assert r["images"] == 16 and r["seconds"] > 0 and r["per_minute"] == pytest.approx(16 / r["seconds"] * 60)
    with pytest.raises(ValueError, match="positive integer"):
        dm.generation_rate(0)


def test_photo_labels_name_every_photograph_and_the_ones_left_out():
    photos = get_dataset("photos", "test", image_size=64)
    labels, left_out = dm.photo_labels(photos)
    assert labels["photo"].tolist() == photos.info["photos"]
    assert all(lbl.split(" ", 1)[1] == photos.classes[int(lbl.split(" ", 1)[0])] for lbl in labels["ImageNet label"])
    assert len(left_out) >= 1 and left_out["why"].str.len().min() > 0


def test_model_accuracy_is_the_share_of_the_split_classified_correctly():
    model = smoke_model("digits_cnn")
    digits = get_dataset("digits", "test")
    with one_thread():
        table, loaded = dm.model_accuracy(["digits_cnn"], {"digits": digits}, train_budget="smoke", device="cpu")
    b = digits.batch(torch.arange(len(digits)))
    with torch.no_grad():
        expected = (model(b.x).argmax(1) == b.y).double().mean().item()
    assert table.loc[0, "test accuracy"] == pytest.approx(expected, abs=1e-6)
    assert table.loc[0, "parameters"] == sum(p.numel() for p in model.parameters())
    assert set(loaded) == {"digits_cnn"}
    with pytest.raises(ValueError, match=r"no test set for digits_cnn.*\['imagenet', 'shapes'\]"):
        dm.model_accuracy(["digits_cnn"], {"shapes": digits}, train_budget="smoke", device="cpu")
    # a seeded draw, stratified over classes, when n is below the split's size
    with one_thread():
        sampled, _ = dm.model_accuracy(["digits_cnn"], {"digits": digits}, train_budget="smoke", device="cpu",
                                       n=50, seed=2)
    index = digits.sample_indices(50, seed=2)
    b = digits.batch(index)
    with torch.no_grad():
        expected = (model(b.x).argmax(1) == b.y).double().mean().item()
    assert sampled.loc[0, "images"] == 50 and sampled.loc[0, "of"] == len(digits)
    assert sampled.loc[0, "test accuracy"] == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="n must be a positive integer or None"):
        dm.model_accuracy(["digits_cnn"], {"digits": digits}, train_budget="smoke", device="cpu", n=0)


def test_photo_predictions_rank_classes_and_count_the_label():
    photos = get_dataset("photos", "test", image_size=32)
    model = tiny_classifier(in_channels=3, size=32, num_classes=1000)
    top = dm.photo_predictions(model, photos, k=3)
    assert len(top.table) == 3 * len(photos) and top.n == len(photos)
    for photo, rows in top.table.groupby("photo", sort=False):
        assert rows["rank"].tolist() == [1, 2, 3]
        assert np.all(np.diff(rows["probability"].to_numpy()) <= 0)  # ranked by probability
        assert rows["is label"].sum() <= 1
    first = top.table[top.table["rank"] == 1]
    assert top.top1 == int(first["is label"].sum()) <= top.topk == int(top.table["is label"].sum())
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 1000\]"):
        dm.photo_predictions(model, photos, k=0)


# --------------------------------------------------------------------------- real data sets


def test_real_data_describes_a_set_folder_and_names_the_layout_of_a_missing_one(tmp_path, monkeypatch):
    fake_cifar10(tmp_path / "cifar10", per_batch=10)
    monkeypatch.setenv("ADVXAI_CIFAR10", str(tmp_path / "cifar10"))
    monkeypatch.delenv("ADVXAI_CUB", raising=False)
    table, missing = dm.real_data(["cifar10", "cub"])
    found = table[table["data set"] == "cifar10"]
    assert found["split"].tolist() == ["train", "test"] and found["images"].tolist() == [50, 10]
    assert (found["folder"] == "found").all() and found["classes"].tolist() == [10, 10]
    assert list(missing) == ["cub"] and "$ADVXAI_CUB" in missing["cub"] and "images.txt" in missing["cub"]
    row = table[table["data set"] == "cub"].iloc[0]
    assert row["folder"].startswith("missing: ") and "$ADVXAI_CUB" in row["folder"] and pd.isna(row["images"])
    with pytest.raises(ValueError, match=r"no real data set \['svhn'\]; valid: \['awa2', 'cifar10'"):
        dm.real_data(["svhn"])


def test_test_sets_load_imagenet_images_at_each_models_input_size():
    sets = dm.TestSets({}, imagenet="photos")
    model = tiny_classifier(in_channels=3, size=48, num_classes=1000)
    model.info.dataset = "imagenet"
    ds = sets.for_model(model)
    assert ds.name == "photos" and ds.image_shape == (3, 48, 48) and sets.for_model(model) is ds
    with pytest.raises(ValueError, match=r"imagenet must be one of \('photos', 'imagenet'\)"):
        dm.TestSets({}, imagenet="imagenet-v2")


# --------------------------------------------------------------------------- fragility


class BrightestChannel(nn.Module):
    """Predicts the brightest colour channel: a gap g between the two brightest channel means is
    closed by an L-inf perturbation of eps exactly when 2 eps > g, so the attack's outcome is known."""

    def forward(self, x):
        return x.mean((2, 3)) * 50.0


def _toy_model(dataset: str, name: str) -> Classifier:
    info = ModelInfo(name=name, dataset=dataset, input_size=(3, 8, 8), class_names=["c0", "c1", "c2"],
                     mean=(0.0,) * 3, std=(1.0,) * 3, cam_layer="", feature_layer="", classifier_layer="")
    return Classifier(BrightestChannel(), info)


def _toy_data(gap: float, n: int = 30, all_wrong: bool = False) -> InMemoryImageDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = (0.35 + 0.3 * torch.rand(n, generator=g)).view(n, 1, 1, 1).repeat(1, 3, 8, 8)
    x[torch.arange(n), y] += gap
    labels = (y + 1) % 3 if all_wrong else y
    return InMemoryImageDataset(name="toy", split="test", classes=["c0", "c1", "c2"], labels=labels,
                                images=(x.clamp(0, 1) * 255).round().to(torch.uint8))


def test_fragility_measures_known_outcomes_and_holds_only_non_digit_models_to_the_rule():
    # gap 0.02: closed at 8/255 (2 eps = 0.063); gap 0.15: not at 8/255, closed at 0.3
    sets = dm.TestSets({"shapes": _toy_data(0.02), "mnist": _toy_data(0.15)})
    models = {"stand_in": _toy_model("shapes", "stand_in"), "digit": _toy_model("mnist", "digit")}
    f = dm.fragility(models, sets, 12, eps=8 / 255, digit_eps=0.3, steps=80, accuracy={"digit": 0.9})
    t = f.table.set_index(["model", "eps"])
    assert t.loc[("stand_in", 8 / 255), "reached target"] == 12
    assert t.loc[("digit", 8 / 255), "reached target"] == 0 and t.loc[("digit", 0.3), "reached target"] == 12
    assert len(f.table) == 3 and (f.table["n"] == 12).all() and (f.table["steps"] == 80).all()
    assert t.loc[("digit", 0.3), "test accuracy"] == 0.9 and np.isnan(t.loc[("stand_in", 8 / 255), "test accuracy"])
    lo, hi = claims.wilson(0, 12)
    assert t.loc[("digit", 8 / 255), "low"] == pytest.approx(lo) and t.loc[("digit", 8 / 255), "high"] == pytest.approx(hi)
    # one claim, for the stand-in only: 12/12 against the paper's 100 %
    assert len(f.claims) == 1
    c = f.claims[0]
    assert c.n == 12 and c.ours == 1.0 and c.paper == 1.0 and c.tolerance == 0.01 and c.verdict == "reproduced"
    assert c.measured_at == "stand-in" and "stand_in" in c.setting
    text = dm.fragility_text(f.table)
    assert "stand_in 12/12" in text and "digit 0/12" in text and "none of them is as fragile" in text
    assert "eps = 0.3 it reached digit 12/12" in text


def test_fragility_of_a_stand_in_that_resists_is_not_reproduced_and_an_empty_draw_is_not_measured():
    sets = dm.TestSets({"shapes": _toy_data(0.15)})
    f = dm.fragility({"robust": _toy_model("shapes", "robust")}, sets, 10, steps=20)
    assert f.claims[0].ours == 0.0 and f.claims[0].verdict == "not reproduced"
    empty = dm.TestSets({"shapes": _toy_data(0.02, all_wrong=True)})
    f = dm.fragility({"wrong": _toy_model("shapes", "wrong")}, empty, 10, steps=2)
    assert f.table.loc[0, "n"] == 0 and f.claims[0].verdict == "not measured" and f.claims[0].reason
    with pytest.raises(ValueError, match="n must be a positive integer"):
        dm.fragility({}, sets, 0)
