"""``$ADVXAI_IMAGE_SIZE`` (``advxai run --image-size``): image-folder data sets and torchvision models
change size together, cache entries of another size never meet, and bad values stop a run at once."""
from __future__ import annotations

import pytest
import torch

from advxai import cli, runtime
from advxai.data import get_dataset
from advxai.models import get_model
from advxai.studies.causal_attribution import _size_kwargs

from . import fakes


@pytest.fixture(autouse=True)
def _restore_the_setting(monkeypatch):
    """Whatever a test (or the CLI it calls) sets, the variable is as before afterwards."""
    monkeypatch.setenv(runtime.IMAGE_SIZE_ENV, "")  # recorded for undo; empty means unset


def test_unset_means_none_and_bad_values_name_the_variable_and_range(monkeypatch):
    monkeypatch.delenv(runtime.IMAGE_SIZE_ENV)
    assert runtime.image_size_override() is None
    monkeypatch.setenv(runtime.IMAGE_SIZE_ENV, " 96 ")
    assert runtime.image_size_override() == 96
    for bad in ("abc", "20", "4096", "9.5"):
        monkeypatch.setenv(runtime.IMAGE_SIZE_ENV, bad)
        with pytest.raises(ValueError, match=r"\$ADVXAI_IMAGE_SIZE must be an integer in \[32, 1024\]"):
            runtime.image_size_override()


def test_folder_data_sets_load_at_the_set_size_unless_a_size_is_given(tmp_path, monkeypatch):
    fake = fakes.fake_imagenet(tmp_path / "imagenet", layout="ilsvrc", val="flat", boxes="csv")
    monkeypatch.delenv(runtime.IMAGE_SIZE_ENV)
    assert get_dataset("imagenet", "val", root=str(fake.root)).image_shape == (3, 224, 224)
    monkeypatch.setenv(runtime.IMAGE_SIZE_ENV, "64")
    ds = get_dataset("imagenet", "val", root=str(fake.root))
    b = ds.batch(torch.arange(2))
    assert b.x.shape == (2, 3, 64, 64) and b.masks.shape[-1] == 64  # boxes follow the frame
    assert get_dataset("imagenet", "val", root=str(fake.root), image_size=48).image_shape == (3, 48, 48)


def test_torchvision_models_take_the_set_size_and_digest_it(monkeypatch):
    monkeypatch.delenv(runtime.IMAGE_SIZE_ENV)
    torch.manual_seed(0)
    native = get_model("resnet50", device="cpu", weights="random")
    assert native.info.input_size == (3, 224, 224) and "native_input_size" not in native.info.notes
    monkeypatch.setenv(runtime.IMAGE_SIZE_ENV, "96")
    torch.manual_seed(0)
    small = get_model("resnet50", device="cpu", weights="random")
    assert small.info.input_size == (3, 96, 96) and small.info.notes["native_input_size"] == 224
    assert torch.equal(small.net.fc.weight, native.net.fc.weight)  # the same weights ...
    assert runtime.model_digest(small) != runtime.model_digest(native)  # ... keyed apart in the cache
    logits, (a,) = small.forward_with(torch.rand(1, 3, 96, 96), [small.info.cam_layer])
    assert logits.shape == (1, 1000) and a.shape[-1] == 3  # 96 / 32
    monkeypatch.setenv(runtime.IMAGE_SIZE_ENV, "64")
    with pytest.raises(ValueError, match="inception_v3 takes images of at least 75 pixels"):
        get_model("inception_v3", device="cpu", weights="random")


def test_size_zero_follows_the_model(monkeypatch):
    monkeypatch.setenv(runtime.IMAGE_SIZE_ENV, "96")
    net = get_model("inception_v3", device="cpu", weights="random")
    assert _size_kwargs(0, net) == {"image_size": 96}
    assert _size_kwargs(None, net) == {} and _size_kwargs(128, net) == {"image_size": 128}
    monkeypatch.delenv(runtime.IMAGE_SIZE_ENV)
    assert _size_kwargs(0, get_model("inception_v3", device="cpu", weights="random")) == {"image_size": 299}


def test_cli_refuses_a_bad_size_before_running(capsys, monkeypatch):
    monkeypatch.delenv(runtime.IMAGE_SIZE_ENV)
    assert cli.main(["run", "ch03", "--profile", "paper", "--image-size", "20"]) == 2
    assert "--image-size must be an integer in [32, 1024]" in capsys.readouterr().err
    monkeypatch.setenv(runtime.IMAGE_SIZE_ENV, "huge")
    assert cli.main(["run", "ch03"]) == 2
    assert "$ADVXAI_IMAGE_SIZE must be an integer" in capsys.readouterr().err
