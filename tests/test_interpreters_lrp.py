"""LRP / DTD / CLRP / SGLRP: against zennit's rules, relevance conservation, big models, bad input.

zennit is the oracle of the rule tests only (a test dependency): those take the ``zen`` fixture and
are skipped without it; every other test runs without zennit."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from advxai.interpreters import get_interpreter
from advxai.interpreters.lrp import LRP, LRPError
from advxai.models import Classifier, ModelInfo
from advxai.models.small import BasicBlock, DigitsVGG, GAPHead


@pytest.fixture(scope="module")
def zen():
    """zennit's attribution, canonizers, composites, rules and layer types (the test is skipped without zennit)."""
    pytest.importorskip("zennit")
    from zennit import attribution, canonizers, composites, rules, types

    return SimpleNamespace(**{name: getattr(module, name) for module, names in (
        (attribution, ["Gradient"]), (canonizers, ["SequentialMergeBatchNorm"]),
        (composites, ["LayerMapComposite", "SpecialFirstLayerMapComposite"]),
        (rules, ["AlphaBeta", "Epsilon", "Norm", "Pass", "ZBox", "ZPlus"]),
        (types, ["Activation", "AvgPool", "Convolution", "Linear"])) for name in names})


def wrap(net, channels=3, size=16, classes=6, mean=0.4, std=0.3, name="net") -> Classifier:
    info = ModelInfo(name=name, dataset="test", input_size=(channels, size, size),
                     class_names=[str(i) for i in range(classes)], mean=(mean,) * channels, std=(std,) * channels,
                     cam_layer="", feature_layer="", classifier_layer="", gap_head=False)
    return Classifier(net, info)


class SmallNet(nn.Module):
    """conv-ReLU-maxpool-conv(+BN)-ReLU-GAP-linear: every layer type DTD meets in a plain CNN."""

    def __init__(self, bn=False, bias=True):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 12, 3, padding=1, bias=bias and not bn), *( [nn.BatchNorm2d(12)] if bn else []), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(12, 6, bias=bias)

    def forward(self, x):
        return self.fc(self.features(x))


def small_model(bn=False, bias=True, seed=0):
    torch.manual_seed(seed)
    net = SmallNet(bn, bias)
    if bn:  # non-trivial statistics, so the merge matters
        bnl = net.features[4]
        bnl.running_mean.uniform_(-0.2, 0.2)
        bnl.running_var.uniform_(0.5, 2.0)
        bnl.weight.data.uniform_(0.5, 1.5)
        bnl.bias.data.uniform_(-0.1, 0.1)
    return wrap(net)


def zennit_relevance(zen, model, x, target, hidden, first=None, canonizers=()):
    layer_map = [(zen.Activation, zen.Pass()), (zen.AvgPool, zen.Norm()), (zen.Convolution, hidden),
                 (zen.Linear, hidden)]
    if first is None:
        composite = zen.LayerMapComposite(layer_map=layer_map, canonizers=list(canonizers))
    else:
        composite = zen.SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=[(zen.Convolution, first)],
                                                      canonizers=list(canonizers))
    seed = torch.nn.functional.one_hot(target, model.info.num_classes).float()
    x = x.clone().requires_grad_(True)
    with zen.Gradient(model=model, composite=composite) as attributor:
        _, rel = attributor(x, seed)
    # zennit attributes to the raw pixel through the normalisation (a division by std): undo it
    return rel * model.std


def box(model):
    return (0 - model.mean) / model.std, (1 - model.mean) / model.std


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 16, 16, generator=g)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("rule", ["epsilon", "zplus", "alpha_beta", "dtd"])
def test_rules_match_zennit(zen, batch, rule, bias):
    model = small_model()
    target = torch.tensor([0, 1, 2, 5])
    zero = None if bias else "bias"
    low, high = box(model)
    if rule == "epsilon":
        ours = LRP(model, rule="epsilon", epsilon=0.05, bias=bias)
        ref = zennit_relevance(zen, model, batch, target, zen.Epsilon(0.05, zero_params=zero))
    elif rule == "zplus":
        ours = LRP(model, rule="zplus", bias=bias)
        ref = zennit_relevance(zen, model, batch, target, zen.ZPlus(zero_params=zero))
    elif rule == "alpha_beta":
        ours = LRP(model, rule="alpha_beta", alpha=2.0, beta=1.0, bias=bias)
        ref = zennit_relevance(zen, model, batch, target, zen.AlphaBeta(2.0, 1.0, zero_params=zero))
    else:
        ours = LRP(model, rule="dtd", bias=bias)
        ref = zennit_relevance(zen, model, batch, target, zen.ZPlus(zero_params=zero),
                               zen.ZBox(low, high, zero_params=zero))
    expl = ours(batch, target)
    assert expl.raw.shape == batch.shape and expl.maps.shape == (4, 1, 16, 16)
    torch.testing.assert_close(expl.raw, ref, rtol=1e-4, atol=1e-6)


def test_alpha1_beta0_is_zplus(batch):
    model = small_model()
    a = LRP(model, rule="alpha_beta", alpha=1.0, beta=0.0)(batch).raw
    torch.testing.assert_close(a, LRP(model, rule="zplus")(batch).raw)


def test_alpha1_beta0_matches_zennit(zen, batch):
    model = small_model()
    a = LRP(model, rule="alpha_beta", alpha=1.0, beta=0.0)(batch).raw
    target = model(batch).argmax(1)
    torch.testing.assert_close(a, zennit_relevance(zen, model, batch, target,
                                                   zen.AlphaBeta(1.0, 0.0, zero_params="bias")), rtol=1e-4, atol=1e-6)


def test_batchnorm_is_merged_like_zennit(zen, batch):
    model = small_model(bn=True)
    target = model(batch).argmax(1)
    lrp = LRP(model, rule="epsilon", epsilon=0.01, bias=True)
    assert "features.3+features.4" in lrp.layer_rules
    ref = zennit_relevance(zen, model, batch, target, zen.Epsilon(0.01), canonizers=[zen.SequentialMergeBatchNorm()])
    torch.testing.assert_close(lrp(batch, target).raw, ref, rtol=1e-4, atol=1e-6)


def test_dtd_conserves_relevance_on_a_bias_free_relu_network(batch):
    model = small_model(bias=False)
    for rule in ("dtd", "zplus", "epsilon"):
        r = LRP(model, rule=rule, epsilon=1e-9)(batch).raw.flatten(1).sum(1)  # a logit here is -9e-5
        torch.testing.assert_close(r, torch.ones(4), rtol=1e-3, atol=1e-3)
    logits = model(batch)
    r = LRP(model, seed="logit")(batch).raw.flatten(1).sum(1)
    torch.testing.assert_close(r, logits.max(1).values, rtol=1e-4, atol=1e-4)


def test_residual_network_conserves_with_the_epsilon_rule():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), BasicBlock(8, 8),
                        BasicBlock(8, 12, 2), GAPHead(12, 5))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model = wrap(net, classes=5)
    x = torch.rand(3, 3, 16, 16)
    lrp = LRP(model, rule="epsilon", input_rule="zbox")
    assert all(w.kind != "affine" for w in lrp._graph.weighted.values()), "every BatchNorm follows a conv: merged"
    torch.testing.assert_close(lrp(x).raw.flatten(1).sum(1), torch.ones(3), rtol=1e-3, atol=1e-3)


def test_digits_vgg_is_exact_dtd():
    torch.manual_seed(0)
    model = wrap(DigitsVGG(10, 1), channels=1, size=28, classes=10, mean=0.12, std=0.27)
    x = torch.rand(2, 1, 28, 28)
    expl = LRP(model)(x)
    # biases are left out of the rules; conservation holds up to neurons whose activation only a bias explains
    assert torch.isfinite(expl.raw).all()
    assert expl.raw.flatten(1).sum(1).sub(1).abs().max() < 0.05
    lrp_eps = LRP(model, rule="epsilon", input_rule="zbox")
    torch.testing.assert_close(lrp_eps(x).raw.flatten(1).sum(1), torch.ones(2), rtol=1e-3, atol=1e-3)


def test_clrp_and_sglrp_follow_their_formulas(batch):
    # in float64: CLRP subtracts two nearly equal relevance maps, and float32 leaves only three digits of that
    model, batch = small_model().double(), batch.double()
    target = torch.tensor([0, 1, 2, 3])
    logits = model(batch)
    per_class = torch.stack([LRP(model, rule="epsilon")(batch, torch.full((4,), k)).raw for k in range(6)], 1)
    p = logits.softmax(1)
    p_t = p.gather(1, target[:, None])
    onehot = torch.nn.functional.one_hot(target, 6).float()
    seed = onehot * p_t * (1 - p_t) - (1 - onehot) * p_t * p
    expected = (seed[:, :, None, None, None] * per_class).sum(1)
    torch.testing.assert_close(LRP(model, rule="epsilon", variant="sglrp")(batch, target).raw, expected,
                               rtol=1e-4, atol=1e-7)
    z_t = logits.gather(1, target[:, None])
    r_t = z_t[:, :, None, None] * per_class[torch.arange(4), target]
    r_o = (z_t[:, :, None, None, None] / 5 * (1 - onehot)[:, :, None, None, None] * per_class).sum(1)
    ratio = r_t.flatten(1).sum(1) / r_o.flatten(1).sum(1)
    clrp = LRP(model, rule="epsilon", variant="clrp")(batch, target).raw
    torch.testing.assert_close(clrp, r_t - r_o * ratio[:, None, None, None], rtol=1e-4, atol=2e-5)
    assert clrp.flatten(1).sum(1).abs().max() < 1e-4  # the contrast removes the shared relevance


def test_registered_names():
    model = small_model()
    x = torch.rand(2, 3, 16, 16)
    for name, variant in (("lrp", "lrp"), ("clrp", "clrp"), ("sglrp", "sglrp")):
        interp = get_interpreter(name, model)
        assert interp.variant == variant
        assert interp(x).maps.shape == (2, 1, 16, 16)


@pytest.mark.parametrize("name", ["vgg19", "resnet50"])
def test_torchvision_models_random_weights(name):
    from advxai.models import get_model

    model = get_model(name, device="cpu", weights="random")
    x = torch.rand(2, 3, 64, 64)
    lrp = LRP(model, rule="epsilon", input_rule="zbox")
    expl = lrp(x)
    assert expl.maps.shape == (2, 1, 64, 64) and torch.isfinite(expl.raw).all()
    torch.testing.assert_close(expl.raw.flatten(1).sum(1), torch.ones(2), rtol=2e-3, atol=2e-3)
    assert torch.isfinite(LRP(model)(x).raw).all()


def test_efficientnet_lite0_merges_every_batchnorm():
    from advxai.models import get_model

    model = get_model("efficientnet_lite0", device="cpu")
    lrp = LRP(model)
    assert all(w.kind != "affine" for w in lrp._graph.weighted.values())
    assert len(lrp.layer_rules) == 50 and lrp.layer_rules["stem.0+stem.1"] == "zbox"
    x = torch.rand(1, 3, 224, 224)
    expl = lrp(x)
    assert torch.isfinite(expl.raw).all() and expl.raw.abs().sum() > 0
    # z+ loses the relevance of activations that only the merged BatchNorm biases explain (depthwise
    # convolutions): a property of the rule on this network, so no conservation check here
    assert 0 < expl.raw.sum() <= 1 + 1e-4
    assert torch.isfinite(LRP(model, rule="epsilon", epsilon=0.01, bias=True)(x).raw).all()


def test_bad_input_fails_clearly():
    model = small_model()
    with pytest.raises(LRPError, match="unknown LRP rule 'zlpus'.*valid"):
        LRP(model, rule="zlpus")
    with pytest.raises(LRPError, match="zbox.*layer reading the image"):
        LRP(model, layer_rules={"features.3": "zbox"})
    with pytest.raises(LRPError, match="MaxPool2d.*takes no rule"):
        LRP(model, layer_rules={"features.2": "epsilon"})
    with pytest.raises(LRPError, match="no layer named 'features.9'"):
        LRP(model, layer_rules={"features.9": "epsilon"})
    with pytest.raises(LRPError, match="alpha - beta = 1"):
        LRP(model, rule="alpha_beta", alpha=2.0, beta=0.5)
    with pytest.raises(LRPError, match="unknown LRP variant"):
        LRP(model, variant="glrp")
    swish = wrap(nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 6)))
    swish(torch.rand(1, 3, 16, 16))
    with pytest.raises(LRPError, match="LRP cannot handle net.*'1' \\(SiLU\\).*not piecewise linear"):
        LRP(swish)

    class Gate(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x.mean())

    with pytest.raises(LRPError, match="cannot handle.*sigmoid"):
        LRP(wrap(nn.Sequential(nn.Conv2d(3, 6, 1), Gate(), nn.AdaptiveAvgPool2d(1), nn.Flatten())))

    class Branchy(nn.Module):
        def forward(self, x):
            return x.mean((2, 3)) if x.sum() > 0 else -x.mean((2, 3))

    with pytest.raises(LRPError, match="cannot trace.*data-dependent"):
        LRP(wrap(Branchy()))
