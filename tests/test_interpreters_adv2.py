"""GRAD, CAM, Grad-CAM, MASK, RTS, the smooth ReLU surrogate, integrated gradients and map metrics."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from advxai import map_metrics as mm
from advxai.interpreters import CAM, Grad, GradCAM, Mask, get_interpreter, list_interpreters
from advxai.interpreters import integrated_gradients
from advxai.interpreters.rts import RTS, RTSConfig, encoder_layers, train_rts
from advxai.interpreters.surrogate import (SmoothReLU, smooth_relu, smooth_relu6, smooth_relu_backward,
                                           surrogate_derivative)

from .helpers import batch, smoke_model, tiny_classifier, trained_digits_classifier

# --------------------------------------------------------------------------- registry


def test_registry_lists_the_four_interpreters_and_rejects_unknown_names():
    assert {"grad", "cam", "gradcam", "mask", "rts"} <= set(list_interpreters())
    model = tiny_classifier()
    with pytest.raises(ValueError, match="valid: .*cam.*grad"):
        get_interpreter("saliency", model)


# --------------------------------------------------------------------------- surrogate


def test_surrogate_keeps_relu_values_and_uses_h_as_derivative():
    z = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    y = smooth_relu(z)
    assert torch.equal(y, torch.relu(z))
    g, = torch.autograd.grad(y.sum(), z)
    tau = 1e-4
    expected = torch.where(z < 0, 1 + z / torch.sqrt(z ** 2 + tau), z / torch.sqrt(z ** 2 + tau))
    assert torch.allclose(g, expected)
    assert torch.allclose(surrogate_derivative(z.detach()), expected)
    # far from 0 it matches ReLU's derivative
    far = z.detach().abs() > 0.5
    assert torch.allclose(g[far], (z.detach()[far] > 0).double(), atol=1e-3)


def test_surrogate_second_derivative_is_nonzero_and_passes_gradcheck():
    # points away from z = 0, where h itself jumps by 1
    z = torch.tensor([-1.3, -0.2, -0.03, 0.02, 0.15, 0.9, 4.0], dtype=torch.float64, requires_grad=True)
    gout = torch.tensor([0.5, -1.0, 2.0, 1.5, -0.7, 1.1, 0.3], dtype=torch.float64, requires_grad=True)

    def first_order(z, gout):
        y = smooth_relu(z)
        return torch.autograd.grad(y, z, gout, create_graph=True)[0]

    assert torch.autograd.gradcheck(first_order, (z, gout))
    assert torch.autograd.gradgradcheck(lambda z: smooth_relu(z), (z,))
    second, = torch.autograd.grad(first_order(z, torch.ones_like(z)).sum(), z)
    tau = 1e-4
    assert torch.allclose(second, tau / (z.detach() ** 2 + tau) ** 1.5)
    assert (second > 0).all()
    # ReLU6 = relu(z) - relu(z - 6): values kept, derivative h(z) - h(z - 6)
    z6 = torch.tensor([-1.0, 3.0, 5.9, 6.5, 9.0], dtype=torch.float64, requires_grad=True)
    assert torch.equal(smooth_relu6(z6), F.relu6(z6))
    assert torch.autograd.gradgradcheck(lambda z: smooth_relu6(z), (z6,))


def test_smooth_relu_context_makes_input_hessian_nonzero_and_restores_everything():
    model = tiny_classifier(in_channels=1, size=12).double()
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64, requires_grad=True)

    def curvature():
        z = model(x)[:, 0].sum()
        g, = torch.autograd.grad(z, x, create_graph=True)
        return torch.autograd.grad((g ** 2).sum(), x, allow_unused=True)[0]

    plain = curvature()
    assert plain is None or torch.count_nonzero(plain) == 0  # piecewise-linear network: zero Hessian
    relus_before = [m for m in model.modules() if type(m) is nn.ReLU]
    with smooth_relu_backward(model):
        assert any(isinstance(m, SmoothReLU) for m in model.modules())
        assert F.relu is not torch.nn.functional.__dict__.get("_unused")
        with torch.no_grad():
            out_smooth = model(x)
        smooth = curvature()
    assert torch.count_nonzero(smooth) > 0
    with torch.no_grad():
        assert torch.equal(out_smooth, model(x))  # forward values unchanged
    assert [m for m in model.modules() if type(m) is nn.ReLU] == relus_before
    assert not any(isinstance(m, SmoothReLU) for m in model.modules())
    assert F.relu(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]
    # functional ReLU inside model code is routed through the surrogate too
    w = torch.randn(4, 4, dtype=torch.float64)
    v = torch.randn(4, dtype=torch.float64, requires_grad=True)
    with smooth_relu_backward(None):
        g, = torch.autograd.grad(F.relu(w @ v).sum(), v, create_graph=True)
        h, = torch.autograd.grad(g.pow(2).sum(), v)
    assert torch.count_nonzero(h) > 0


def test_smooth_relu_context_restores_modules_when_the_block_raises():
    model = tiny_classifier()
    with pytest.raises(RuntimeError, match="boom"):
        with smooth_relu_backward(model):
            raise RuntimeError("boom")
    assert not any(isinstance(m, SmoothReLU) for m in model.modules())
    assert F.relu.__module__ == "torch.nn.functional"


# --------------------------------------------------------------------------- GRAD


@pytest.mark.parametrize("score", ["prob", "log_prob", "logit"])
def test_grad_matches_autograd(score):
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, n=5)
    expl = Grad(model, score=score, pool=4)(x, y)
    xr = x.clone().requires_grad_(True)
    logits = model(xr)
    s = {"prob": logits.softmax(1), "log_prob": logits.log_softmax(1), "logit": logits}[score]
    g, = torch.autograd.grad(s.gather(1, y[:, None]).sum(), xr)
    ref = F.avg_pool2d(g.abs().amax(1, keepdim=True), 4)
    lo, hi = ref.flatten(1).min(1).values.view(-1, 1, 1, 1), ref.flatten(1).max(1).values.view(-1, 1, 1, 1)
    ref = (ref - lo) / (hi - lo + 1e-12)
    assert torch.allclose(expl.extras["native"], ref, atol=1e-6)
    assert torch.allclose(expl.raw, g, atol=1e-7)
    assert expl.maps.shape == (5, 1, 16, 16) and torch.isfinite(expl.maps).all()
    assert expl.maps.min() >= 0 and expl.maps.max() <= 1 + 1e-6


def test_grad_with_graph_uses_the_surrogate_and_is_differentiable():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, n=4)
    interp = Grad(model, score="logit")
    exact = interp(x, y).extras["native"]
    xr = x.clone().requires_grad_(True)
    smooth = interp(xr, y, create_graph=True).extras["native"]
    # h ~ ReLU' except within a few sqrt(tau) of 0: the maps agree closely, not exactly
    assert (smooth.detach() - exact).abs().mean() < 0.08
    assert torch.corrcoef(torch.stack([smooth.detach().flatten(), exact.flatten()]))[0, 1] > 0.9
    g, = torch.autograd.grad(smooth.pow(2).sum(), xr)
    assert torch.count_nonzero(g) > 0
    no_sur = Grad(model, score="logit", surrogate=False)
    xr2 = x.clone().requires_grad_(True)
    n2 = no_sur(xr2, y, create_graph=True).extras["native"]
    g2, = torch.autograd.grad(n2.pow(2).sum(), xr2, allow_unused=True)
    # without the surrogate only min-max normalisation and pooling carry curvature: far less signal
    assert g2 is None or g2.abs().sum() < g.abs().sum()


def test_grad_bad_settings():
    model = tiny_classifier()
    with pytest.raises(ValueError, match="score must be"):
        Grad(model, score="margin")
    with pytest.raises(ValueError, match="pool"):
        Grad(model, pool=0)


# --------------------------------------------------------------------------- CAM and Grad-CAM


def test_gradcam_matches_captum_layergradcam():
    from captum.attr import LayerGradCam

    model = tiny_classifier(in_channels=3, size=16, width=6)
    x, y = batch(model, n=6)
    target = (y + 1) % 10
    ours = GradCAM(model)(x, target)
    ref = LayerGradCam(model, model.net.cam).attribute(x, target=target, relu_attributions=True)
    assert torch.allclose(ours.raw, ref, atol=1e-6)


def test_cam_equals_gradcam_up_to_scale_on_a_gap_linear_head():
    model = tiny_classifier(in_channels=3, size=16, width=6)
    x, y = batch(model, n=6)
    cam, gcam = CAM(model)(x, y), GradCAM(model)(x, y)
    h, w = cam.raw.shape[-2:]
    assert torch.allclose(gcam.raw, torch.relu(cam.raw) / (h * w), atol=1e-6)
    # CAM's logit decomposition: the spatial mean of the map plus the bias is the logit
    logits = model(x).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(cam.raw.mean((1, 2, 3)) + model.classifier.bias[y], logits, atol=1e-5)


def test_cam_and_gradcam_are_differentiable_wrt_the_input():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, n=3)
    for interp in (CAM(model), GradCAM(model)):
        xr = x.clone().requires_grad_(True)
        out = interp(xr, y, create_graph=True).extras["native"]
        g, = torch.autograd.grad(out.pow(2).sum(), xr)
        assert torch.isfinite(g).all() and torch.count_nonzero(g) > 0


def test_gradcam_accepts_a_scalar_score_function():
    model = tiny_classifier(in_channels=3, size=16, width=6)
    x, _ = batch(model, n=4)
    proj = torch.randn(12, 3)  # e.g. 3 "attribute" scores read from the features

    def attribute_scores(inp):
        return model.features(inp) @ proj

    gc = GradCAM(model, score_fn=attribute_scores)
    out = gc(x, target=2)  # the third score, beyond no class check
    assert out.maps.shape == (4, 1, 16, 16) and torch.isfinite(out.maps).all()
    # equals Grad-CAM of a linear read-out: weights proj[:, 2] / (h w) on the feature map
    _, a = model.feature_maps(x)
    ref = torch.relu(torch.einsum("k,bkhw->bhw", proj[:, 2], a))[:, None] / a[0, 0].numel()
    assert torch.allclose(out.raw, ref, atol=1e-6)
    scalar = GradCAM(model, score_fn=lambda inp: attribute_scores(inp)[:, 2])(x)
    assert torch.allclose(scalar.raw, out.raw, atol=1e-6)


def test_cam_refuses_models_without_a_gap_head():
    model = tiny_classifier()
    model.info = dataclasses.replace(model.info, gap_head=False)
    with pytest.raises(ValueError, match="CAM needs"):
        CAM(model)


def test_explaining_an_out_of_range_class_fails():
    model = tiny_classifier()
    x, _ = batch(model, n=2)
    with pytest.raises(ValueError, match="target classes"):
        CAM(model)(x, target=10)
    with pytest.raises(ValueError, match="not differentiable"):
        Mask(model, iterations=2)(x, create_graph=True)


# --------------------------------------------------------------------------- MASK


def test_mask_lowers_the_class_probability_and_keeps_most_of_the_image():
    model = trained_digits_classifier()
    from .helpers import digits_batch

    x, y = digits_batch(model, n=6)
    interp = Mask(model, iterations=60, mask_size=7, l1=1e-3, blur_sigma=4.0)
    expl = interp(x, y)
    keep = expl.extras["keep_mask"]
    with torch.no_grad():
        p0 = model(x).softmax(1).gather(1, y[:, None]).squeeze(1)
        big = interp.upsample(keep, x.shape[-2:])
        p1 = model(big * x + (1 - big) * interp.alternative(x)).softmax(1).gather(1, y[:, None]).squeeze(1)
    assert (p1 < p0).all() and p1.mean() < 0.5 * p0.mean()
    assert expl.maps.shape == x.shape[:1] + (1,) + x.shape[2:]
    assert 0 < expl.maps.mean() < 0.6  # a deletion, not the whole image
    assert torch.allclose(expl.extras["native"], 1 - keep)


def test_mask_objective_matches_its_definition_and_settings_are_checked():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, n=2)
    interp = Mask(model, mask_size=4, formulation="basic", l1=0.01)
    m = torch.rand(2, 1, 4, 4)
    alt = interp.alternative(x)
    big = interp.upsample(m, (16, 16))
    p = model(big * x + (1 - big) * alt).softmax(1).gather(1, y[:, None]).squeeze(1)
    expected = p + 0.01 * (28 * 28 / 16) * (1 - m).abs().flatten(1).sum(1)
    assert torch.allclose(interp.objective(m, x, alt, y), expected, atol=1e-6)
    for bad in ({"formulation": "eq12"}, {"perturbation": "inpaint"}, {"iterations": 0}, {"l1": -1.0}):
        with pytest.raises(ValueError):
            Mask(model, **bad)


# --------------------------------------------------------------------------- RTS


@pytest.fixture(scope="module")
def shapes_smoke_model():
    return smoke_model("shapes_resnet")


def test_rts_training_lowers_its_loss_and_its_maps_localise(shapes_smoke_model, tmp_cache):
    from advxai.data import get_dataset

    model = shapes_smoke_model
    cfg = RTSConfig(steps=50, batch_size=8, lr=1e-2, width=16, fake_fraction=0.0)
    train = get_dataset("shapes", "train", n=400)
    layers = encoder_layers(model)
    assert layers == ["layer3", "layer2"]
    payload = train_rts(model, layers, cfg, torch.device("cpu"), dataset=train, progress=False)
    hist = payload["history"]
    assert np.mean(hist[-10:]) < np.mean(hist[:5]) - 0.2
    rts = RTS(model, config=cfg, payload=payload)
    test = get_dataset("shapes", "test")
    b = test.batch(torch.arange(48))
    maps = rts(b.x, b.y).maps
    assert maps.shape == (48, 1, 64, 64) and maps.min() >= 0 and maps.max() <= 1
    objects = b.masks.float()
    inside = (maps * objects).flatten(1).sum(1) / maps.flatten(1).sum(1)
    # the object covers ~8 % of an image; a trained mask puts far more of its mass there
    assert inside.mean() > 2.5 * objects.mean()
    # differentiable with respect to the input (ADV² needs it)
    xr = b.x[:2].clone().requires_grad_(True)
    g, = torch.autograd.grad(rts(xr, b.y[:2], create_graph=True).extras["native"].sum(), xr)
    assert torch.count_nonzero(g) > 0


def test_rts_is_cached_per_model(shapes_smoke_model, tmp_cache):
    cfg = RTSConfig(steps=2, batch_size=4, width=8)
    a = RTS(shapes_smoke_model, config=cfg, progress=False)
    files = list((tmp_cache / "rts").glob("*.pt"))
    assert len(files) == 1
    b = RTS(shapes_smoke_model, config=cfg, progress=False)  # loaded, not retrained
    assert a.history == b.history
    for p, q in zip(a.decoder.parameters(), b.decoder.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="train_budget"):
        RTS(shapes_smoke_model, train_budget="tiny")


def test_encoder_layers_search_finds_one_map_per_scale():
    model = tiny_classifier(in_channels=3, size=16)
    assert encoder_layers(model, stride=4) == ["cam"]  # nothing between 8x8 and 16/4
    layers = encoder_layers(model, stride=1)  # coarse to fine: the CAM map, then the last 16x16 map
    assert layers == ["cam", "features.1"]
    _, feats = model.forward_with(torch.zeros(1, 3, 16, 16), layers)
    assert [f.shape[-1] for f in feats] == [8, 16]


# --------------------------------------------------------------------------- IG


def test_integrated_gradients_completeness_and_captum():
    from captum.attr import IntegratedGradients

    model = tiny_classifier(in_channels=3, size=16).double()
    x, y = batch(model.float(), n=3)
    model = model.double()
    x = x.double()
    x0 = torch.rand_like(x) * 0.2

    def fn(inp):
        return model(inp).softmax(1)[:, 3]

    attr = integrated_gradients(lambda inp, _index: fn(inp), x, x0, steps=200, method="riemann_middle",
                                internal_batch_size=64)
    gap = (fn(x) - fn(x0)).detach()
    assert torch.allclose(attr.flatten(1).sum(1), gap, atol=2e-3)
    ref = IntegratedGradients(lambda inp: model(inp).softmax(1)).attribute(
        x, baselines=x0, target=3, n_steps=200, method="riemann_middle")
    assert torch.allclose(attr, ref, atol=1e-8)


# --------------------------------------------------------------------------- metrics


def test_map_distances_and_iou():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.zeros(2, 1, 4, 4)
    b[0, 0, 0, :] = 1.0  # 4 of 16 pixels differ by 1
    assert torch.allclose(mm.map_l1(a, b), torch.tensor([0.25, 0.0]))
    assert torch.allclose(mm.map_l2(a, b), torch.tensor([0.5, 0.0]))
    x = torch.arange(16.).view(1, 1, 4, 4)
    assert mm.binarize_topk(x, 0.25).sum() == 4 and mm.binarize_topk(x, 0.25)[0, 0, 3].all()
    y = x.flip(-1)  # top row reversed: the top-4 sets are the same last row
    assert mm.map_iou(x, y, 0.25).item() == 1.0
    z = -x  # top 25 % of -x is the first row: disjoint
    assert mm.map_iou(x, z, 0.25).item() == 0.0
    assert abs(mm.map_iou(x, x.roll(2, dims=-1).clone(), 0.5).item() - 1.0) < 1e-6
    with pytest.raises(ValueError, match="same shape"):
        mm.map_l1(a, torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="top_k"):
        mm.binarize_topk(x, 0.0)
    probs = torch.tensor([[0.1, 0.9], [0.7, 0.3]])
    assert torch.allclose(mm.misclassification_confidence(probs, torch.tensor([1, 1])), torch.tensor([0.9, 0.3]))
    assert mm.attack_success_rate(torch.tensor([1, 0]), torch.tensor([1, 1])) == 0.5


def test_localization_on_synthetic_maps():
    obj = torch.zeros(3, 1, 32, 32, dtype=torch.bool)
    obj[:, :, 8:20, 10:22] = True
    good = obj.float() + 0.01 * torch.rand(3, 1, 32, 32)
    bad = torch.zeros(3, 1, 32, 32)
    bad[:, :, 24:30, 0:6] = 1.0
    res_good = mm.localization(good, obj, alpha=1.0)
    res_bad = mm.localization(bad, obj, alpha=1.0)
    assert res_good["correct"].all() and np.allclose(res_good["mask_iou"], 1.0)
    assert not res_bad["correct"].any() and np.allclose(res_bad["box_iou"], 0.0)
    # a spurious small blob is dropped by keeping the largest component
    two = good.clone()
    two[:, :, 0:2, 0:2] = 1.0
    assert mm.localization(two, obj)["correct"].all()
