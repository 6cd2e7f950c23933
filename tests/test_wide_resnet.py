"""Wide ResNets: the architecture (Zagoruyko & Komodakis), the registered ``cifar10_wrn``, and its
normal and interpretation-robust training on a (fake) local CIFAR-10."""
from __future__ import annotations

import pytest
import torch

from advxai.data.folders import DataNotFound
from advxai.defenses.interpretation_robust import RobustTrainConfig, train_model
from advxai.models import MODELS, get_model
from advxai.models.wide_resnet import WideResNet, wrn_blocks

from .fakes import fake_cifar10


def test_wrn_28_10_has_the_papers_size():
    net = WideResNet(depth=28, width=10)
    # Zagoruyko & Komodakis, Table 4: WRN-28-10 has 36.5 M parameters
    assert sum(p.numel() for p in net.parameters()) == 36_479_194
    assert len(net.group1) == len(net.group2) == len(net.group3) == 4
    assert net.head.fc.in_features == 640


def test_small_wrn_shapes_and_exact_cam():
    torch.manual_seed(0)
    net = WideResNet(num_classes=10, in_channels=3, depth=10, width=1).eval()
    x = torch.rand(3, 3, 32, 32)
    seen = {}
    net.cam.register_forward_hook(lambda m, i, o: seen.setdefault("a", o))
    with torch.no_grad():
        logits = net(x)
    a = seen["a"]
    assert a.shape == (3, 64, 8, 8) and logits.shape == (3, 10)
    # a GAP head: each logit is the mean over positions of its class's weighted feature map (CAM is exact)
    cam = torch.einsum("kc,bchw->bkhw", net.head.fc.weight, a).mean((2, 3)) + net.head.fc.bias
    torch.testing.assert_close(cam, logits)
    relus = [m for m in net.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 2 * 3 + 1  # one module per activation (interpreters swap them one by one)


@pytest.mark.parametrize("depth", [8, 12, 27, True])
def test_depth_must_be_6n_plus_4(depth):
    with pytest.raises(ValueError, match="6n \\+ 4"):
        wrn_blocks(depth)


def test_width_and_dropout_are_checked():
    with pytest.raises(ValueError, match="width"):
        WideResNet(depth=10, width=0)
    with pytest.raises(ValueError, match="dropout"):
        WideResNet(depth=10, width=1, dropout=1.0)


def test_registered_and_needs_its_data(monkeypatch, tmp_path):
    entry = MODELS.check("cifar10_wrn")
    assert entry.meta["dataset"] == "cifar10"
    monkeypatch.setenv("ADVXAI_CIFAR10", str(tmp_path / "absent"))
    with pytest.raises(DataNotFound, match="cifar-10-batches-py"):
        get_model("cifar10_wrn", device="cpu", train_budget="smoke")
    with pytest.raises(TypeError, match="train_budget"):
        get_model("cifar10_wrn", device="cpu", weights="imagenet")


def test_normal_and_robust_training_of_a_small_wrn(tmp_cache, tmp_path, monkeypatch):
    folder = fake_cifar10(tmp_path, per_batch=8)
    monkeypatch.setenv("ADVXAI_CIFAR10", str(folder))
    cfg = RobustTrainConfig(epochs=1, batch_size=8, eps=2 / 255, steps=1)
    small = {"depth": 10, "width": 1}
    normal = train_model("cifar10_wrn", "normal", cfg, n_train=16, device="cpu", arch_options=small)
    robust = train_model("cifar10_wrn", "robust", cfg, n_train=16, device="cpu", arch_options=small)
    for m in (normal, robust):
        assert m.info.input_size == (3, 32, 32) and m.info.cam_layer == "cam"
        assert "'depth': 10" in m.info.architecture and 0 <= m.info.test_accuracy <= 1
        assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert not torch.equal(normal.net.head.fc.weight, robust.net.head.fc.weight)
    again = train_model("cifar10_wrn", "normal", cfg, n_train=16, device="cpu", arch_options=small)  # cached
    torch.testing.assert_close(again.net.head.fc.weight, normal.net.head.fc.weight)
    entries = list((tmp_cache / "robust_models").glob("*.pt"))
    assert len(entries) == 2
    with pytest.raises(ValueError, match="6n \\+ 4"):
        train_model("cifar10_wrn", "normal", cfg, n_train=16, device="cpu", arch_options={"depth": 12})
    with pytest.raises(ValueError, match="does not take"):
        train_model("cifar10_wrn", "normal", cfg, n_train=16, device="cpu", arch_options={"blocks": 2})
