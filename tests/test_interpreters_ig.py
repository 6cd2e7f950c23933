"""Integrated Gradients against captum, and its completeness axiom."""
import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG

from advxai.interpreters import IntegratedGradients, get_interpreter

from .helpers import batch, digits_batch, small_digits_mlp, tiny_classifier


@pytest.fixture(scope="module")
def model():
    return tiny_classifier(in_channels=3, size=16, width=12)


@pytest.mark.parametrize("method, steps", [("gausslegendre", 20), ("riemann_trapezoid", 30), ("riemann_left", 10)])
def test_equals_captum(model, method, steps):
    x, _ = batch(model, 5)
    t = torch.tensor([0, 3, 5, 7, 9])
    ours = IntegratedGradients(model, steps=steps, method=method, internal_batch_size=7)(x, target=t)
    theirs, delta = CaptumIG(model).attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=steps,
                                              method=method, return_convergence_delta=True)
    assert torch.allclose(ours.raw, theirs, atol=1e-6, rtol=1e-4)
    assert torch.allclose(ours.extras["delta"], delta.float(), atol=1e-5)
    assert ours.maps.shape == (5, 1, 16, 16) and torch.allclose(ours.maps, theirs.sum(1, keepdim=True), atol=1e-5)


def test_completeness_on_a_trained_model():
    """sum IG = F(x) - F(baseline) within 1 % at 64 points (ReLU kinks limit the quadrature's accuracy);
    captum's convergence delta is as small."""
    mlp = small_digits_mlp()
    x, y = digits_batch(mlp, 8)
    expl = get_interpreter("ig", mlp, steps=64)(x)
    with torch.no_grad():
        z = mlp(x).gather(1, expl.target[:, None]).squeeze(1)
        z0 = mlp(torch.zeros_like(x)).gather(1, expl.target[:, None]).squeeze(1)
    assert torch.equal(expl.target, y)  # explains the prediction by default
    assert torch.allclose(expl.raw.flatten(1).sum(1), z - z0, atol=1e-2 * (z - z0).abs().max().item())
    scale = (z - z0).abs().max()
    assert expl.extras["delta"].abs().max() < 1e-2 * scale
    _, delta = CaptumIG(mlp).attribute(x, target=y, n_steps=64, return_convergence_delta=True)
    assert delta.abs().max() < 1e-2 * scale
    assert torch.allclose(expl.extras["delta"], delta.float(), atol=1e-3 * scale)


def test_probability_output_and_baselines(model):
    x, _ = batch(model, 3)
    t = torch.tensor([1, 2, 3])
    ours = IntegratedGradients(model, steps=16, output="probability", baseline="white")(x, target=t)
    wrapped = lambda inp: model(inp).softmax(1)  # noqa: E731
    theirs = CaptumIG(wrapped).attribute(x, baselines=torch.ones_like(x), target=t, n_steps=16)
    assert torch.allclose(ours.raw, theirs, atol=1e-7, rtol=1e-4)
    image_base = torch.rand(1, 3, 16, 16)
    ours = IntegratedGradients(model, steps=8, baseline=image_base)(x, target=t)
    theirs = CaptumIG(model).attribute(x, baselines=image_base.expand_as(x), target=t, n_steps=8)
    assert torch.allclose(ours.raw, theirs, atol=1e-6, rtol=1e-4)


def test_bad_input(model):
    with pytest.raises(ValueError, match="steps"):
        IntegratedGradients(model, steps=0)
    with pytest.raises(ValueError, match="valid: gausslegendre"):
        IntegratedGradients(model, method="simpson")
    with pytest.raises(ValueError, match=r"baseline must be in \[0, 1\]"):
        IntegratedGradients(model, baseline=2.0)
    with pytest.raises(ValueError, match="not differentiable"):
        IntegratedGradients(model)(torch.rand(1, 3, 16, 16), create_graph=True)
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 10\)"):
        IntegratedGradients(model)(torch.rand(1, 3, 16, 16), target=11)
