import pytest
import torch
import torch.nn as nn

from advxai import runtime
from advxai.data import get_dataset
from advxai.models import Classifier, ModelInfo, get_model, list_models
from advxai.models.torchvision_models import TORCHVISION
from advxai.models.small import DigitsCNN, DigitsVGG, ShapesDenseNet, ShapesResNet
from advxai.models import training
from advxai.models.training import TrainConfig, random_shift, train_classifier, training_precision


def _info(**kw):
    base = dict(name="t", dataset="digits", input_size=(1, 28, 28), class_names=[str(i) for i in range(10)],
                mean=(0.5,), std=(0.25,), cam_layer="cam", feature_layer="head.pool", classifier_layer="head.fc")
    base.update(kw)
    return ModelInfo(**base)


def test_registry_names_and_errors():
    names = set(list_models())
    assert {"digits_cnn", "shapes_resnet", "shapes_densenet", "efficientnet_lite0", "resnet50", "vgg19"} <= names
    with pytest.raises(ValueError, match="valid: .*shapes_resnet"):
        get_model("resnet18")
    with pytest.raises(ValueError, match="train_budget"):
        get_model("digits_cnn", train_budget="tiny")
    with pytest.raises(TypeError, match="weights"):
        get_model("digits_cnn", weights="random")


@pytest.mark.parametrize("arch, shape, cam", [
    (lambda: DigitsCNN(10, 1), (2, 1, 28, 28), (7, 7)),
    (lambda: DigitsVGG(10, 1), (2, 1, 28, 28), (7, 7)),
    (lambda: ShapesResNet(20), (2, 3, 64, 64), (8, 8)),
    (lambda: ShapesDenseNet(20), (2, 3, 64, 64), (8, 8)),
])
def test_small_models_have_an_exact_gap_head(arch, shape, cam):
    net = arch().eval()
    cam_layer = "cam" if hasattr(net, "cam") else "layer3"
    info = _info(input_size=shape[1:], mean=(0.5,) * shape[1], std=(0.25,) * shape[1], cam_layer=cam_layer,
                 class_names=[str(i) for i in range(net.head.fc.out_features)])
    model = Classifier(net, info)
    x = torch.rand(*shape)
    logits, a = model.feature_maps(x)
    assert a.shape[-2:] == cam
    # CAM is exact: logits = W . mean(A) + b
    expected = a.mean((2, 3)) @ model.classifier.weight.T + model.classifier.bias
    assert torch.allclose(logits, expected, atol=1e-5)
    assert model.features(x).shape == (2, a.shape[1])
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_classifier_normalises_inside():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    model = Classifier(net, _info(input_size=(1, 2, 2), class_names=["a", "b"], mean=(0.5,), std=(0.25,),
                                  cam_layer="0", feature_layer="0", classifier_layer="1"))
    x = torch.rand(3, 1, 2, 2)
    assert torch.allclose(model(x), net((x - 0.5) / 0.25))
    labels, probs = model.predict(x)
    assert labels.shape == (3,) and torch.allclose(probs.sum(1), torch.ones(3))


def test_random_shift_moves_content():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 4, 4] = 1
    y = random_shift(x, 2, g)
    assert y.shape == x.shape and torch.all(y.sum((1, 2, 3)) == 1)
    assert not torch.equal(x, y)


def _toy_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long()
    return x, y


def _toy_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 2))


def test_training_is_deterministic_and_learns():
    x, y = _toy_problem()
    cfg = TrainConfig(epochs=4, batch_size=16, lr=1e-2)
    a = train_classifier(_toy_net(), x, y, cfg)
    b = train_classifier(_toy_net(), x, y, cfg)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k])
    assert a["history"][-1]["loss"] < a["history"][0]["loss"]


def test_bf16_training_is_deterministic_learns_and_keeps_fp32_weights():
    x, y = _toy_problem()
    cfg = TrainConfig(epochs=4, batch_size=16, lr=1e-2)
    a = train_classifier(_toy_net(), x, y, cfg, precision="bf16")
    b = train_classifier(_toy_net(), x, y, cfg, precision="bf16")
    fp32 = train_classifier(_toy_net(), x, y, cfg)
    for k in a["state_dict"]:
        assert a["state_dict"][k].dtype == torch.float32
        assert torch.equal(a["state_dict"][k], b["state_dict"][k])
    assert a["history"][-1]["loss"] < a["history"][0]["loss"]
    # the forward passes ran in bfloat16: the weights are not those of the fp32 run
    assert any(not torch.equal(a["state_dict"][k], fp32["state_dict"][k]) for k in a["state_dict"])
    with pytest.raises(ValueError, match="'bf16' or 'fp32'"):
        train_classifier(_toy_net(), x, y, cfg, precision="auto")


def test_training_runs_channels_last_and_gives_the_weights_back_in_their_layout():
    x, y = _toy_problem()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(),
                        nn.Linear(256, 2))
    strides = {k: v.stride() for k, v in net.state_dict().items()}
    seen = []
    nhwc = torch.channels_last
    net[2].register_forward_pre_hook(lambda m, args: seen.append(m.weight.is_contiguous(memory_format=nhwc)))
    train_classifier(net, x, y, TrainConfig(epochs=1, batch_size=32, lr=1e-2))
    assert seen and all(seen)
    assert {k: v.stride() for k, v in net.state_dict().items()} == strides


def test_training_precision_follows_the_hardware_unless_told(monkeypatch):
    monkeypatch.delenv(training.PRECISION_ENV, raising=False)
    monkeypatch.setattr(training, "native_bf16", lambda device: True)
    assert training_precision("cpu") == "bf16"
    monkeypatch.setattr(training, "native_bf16", lambda device: False)
    assert training_precision("cpu") == "fp32"
    assert training_precision("cpu", "bf16") == "bf16"
    monkeypatch.setenv(training.PRECISION_ENV, "bf16")
    assert training_precision("cpu") == "bf16"
    monkeypatch.setenv(training.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=r"ADVXAI_TRAIN_PRECISION.*auto, bf16, fp32"):
        training_precision("cpu")
    with pytest.raises(ValueError, match="auto, bf16, fp32"):
        training_precision("cpu", "fp16")
    assert training.native_bf16("meta") is False


def test_the_cache_key_holds_the_training_precision(monkeypatch):
    from advxai.models.embedded import trained_model_spec

    monkeypatch.setenv(training.PRECISION_ENV, "fp32")
    fp32 = trained_model_spec("digits_cnn", "smoke", "cpu")
    monkeypatch.setenv(training.PRECISION_ENV, "bf16")
    bf16 = trained_model_spec("digits_cnn", "smoke", "cpu")
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert runtime.cache_path("models", fp32) != runtime.cache_path("models", bf16)


def test_killed_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    x, y = _toy_problem()
    cfg = TrainConfig(epochs=4, batch_size=16, lr=1e-2)
    reference = train_classifier(_toy_net(), x, y, cfg)["state_dict"]

    partial = tmp_path / "model.partial"
    import advxai.models.training as training

    real_save = training.atomic_save
    saves = []

    def save_then_die(obj, path):
        real_save(obj, path)
        saves.append(obj["epoch"])
        if obj["epoch"] == 1:
            raise KeyboardInterrupt  # the process is killed after epoch 2 was saved

    monkeypatch.setattr(training, "atomic_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(_toy_net(), x, y, cfg, partial_path=partial)
    assert partial.exists() and saves == [0, 1]
    monkeypatch.setattr(training, "atomic_save", real_save)
    resumed = train_classifier(_toy_net(), x, y, cfg, partial_path=partial)
    assert len(resumed["history"]) == 4
    for k in reference:
        assert torch.equal(reference[k], resumed["state_dict"][k])
    assert not partial.exists()


def test_efficientnet_lite0_has_real_imagenet_weights():
    model = get_model("efficientnet_lite0", device="cpu")
    photos = get_dataset("photos")
    b = photos.batch(torch.arange(len(photos)))
    pred, probs = model.predict(b.x)
    top5 = probs.topk(5, 1).indices
    hits = (top5 == b.y[:, None]).any(1).float().mean()
    assert hits >= 0.75  # a random network would score ~0.005
    assert pred[1].item() == 967  # coffee -> espresso
    logits, a = model.feature_maps(b.x[:2])
    assert a.shape == (2, 1280, 7, 7)
    expected = model.classifier(a.mean((2, 3)))
    assert torch.allclose(logits, expected, atol=1e-4)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_models_build_offline_with_valid_layer_names(name):
    model = get_model(name, device="cpu", weights="random")
    assert "random" in model.info.weights and model.info.num_classes == 1000
    x = torch.rand(1, *model.info.input_size)
    logits, (a, f) = model.forward_with(x, [model.info.cam_layer, model.info.feature_layer])
    assert logits.shape == (1, 1000) and a.dim() == 4 and isinstance(model.classifier, nn.Linear)
    if model.info.gap_head:  # CAM is exact: logits = W . mean(A) + b
        assert torch.allclose(logits, model.classifier(a.mean((2, 3))), atol=1e-3)


def test_torchvision_weights_from_a_file(tmp_path):
    model = get_model("resnet50", device="cpu", weights="random")
    path = tmp_path / "resnet50.pth"
    torch.save(model.net.state_dict(), path)
    again = get_model("resnet50", device="cpu", weights=str(path))
    x = torch.rand(1, 3, 224, 224)
    assert torch.allclose(model(x), again(x))
    with pytest.raises(FileNotFoundError):
        get_model("resnet50", weights=str(tmp_path / "missing.pth"))


def test_loaded_weights_are_the_parameters_trainable_and_nothing_is_left_unset(tmp_path):
    # the network is built on the meta device and the file's tensors become its parameters
    model = get_model("resnet50", device="cpu", weights="random")
    path = tmp_path / "resnet50.pth"
    torch.save(model.net.state_dict(), path)
    again = get_model("resnet50", device="cpu", weights=str(path))
    tensors = [*again.net.parameters(), *again.net.buffers()]
    assert not any(t.is_meta for t in tensors)
    assert all(isinstance(p, torch.nn.Parameter) for p in again.net.parameters())
    assert [p.requires_grad for p in again.net.parameters()] == [p.requires_grad for p in model.net.parameters()]
    for (name, a), b in zip(model.net.state_dict().items(), again.net.state_dict().values()):
        assert torch.equal(a, b), name
    again.net.requires_grad_(True)  # as a fine-tuning user would
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    again(x)[:, 3].sum().backward()  # gradients reach the input and the weights
    assert x.grad is not None and again.net.fc.weight.grad is not None
    sd = model.net.state_dict()
    del sd["fc.bias"]
    torch.save(sd, path)
    with pytest.raises(RuntimeError, match="fc.bias"):
        get_model("resnet50", device="cpu", weights=str(path))


def test_densenet_checkpoints_with_torchvisions_old_layer_names_load(tmp_path):
    # torchvision's published DenseNet files name a dense layer's parts "norm.1", "conv.2", ...
    from tests.fakes import legacy_densenet_keys

    model = get_model("densenet169", device="cpu", weights="random")
    sd = legacy_densenet_keys(model.net.state_dict())  # DenseNetGAP keeps torchvision's key names
    assert any(".norm.1." in k for k in sd) and not any(".norm1.weight" in k for k in sd)
    path = tmp_path / "densenet169.pth"
    torch.save(sd, path)
    again = get_model("densenet169", device="cpu", weights=str(path))
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(model(x), again(x))


def test_torchvision_weights_offline_error_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import advxai.models.torchvision_models as tvm_mod

    def no_network(*_a, **_k):
        raise runtime.NetworkForbidden("offline")

    import torchvision.models as tvm

    monkeypatch.setattr(tvm.ResNet50_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
                        lambda self, *a, **k: no_network())
    with pytest.raises(RuntimeError, match="weights=/path/to/state_dict.pth"):
        tvm_mod.load_torchvision_model("resnet50", device="cpu")
