"""The smooth-ReLU surrogate stays inside the model it is given: functional ReLU calls in that model's
forward get the surrogate derivative, every other ReLU (outside the model, in another model, in another
thread) keeps its exact one, and nothing in torch is replaced."""
from __future__ import annotations

import threading

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from advxai.interpreters.surrogate import smooth_relu_backward

from .helpers import tiny_classifier


class FunctionalNet(nn.Module):
    """ReLU called functionally in forward, as torchvision's DenseNet and Inception do (no nn.ReLU module)."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = nn.Linear(6, 6).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(6, 6, generator=g, dtype=torch.float64))
        self.out = nn.Linear(6, 1).double()

    def forward(self, x):
        return self.out(F.relu6(F.relu(self.lin(x)) * 3) + torch.relu(-self.lin(x)))


def curvature(fn, v):
    """The gradient of ||d fn / d v||^2: zero through exact ReLUs (piecewise linear), non-zero through the surrogate."""
    v = v.detach().requires_grad_(True)
    g, = torch.autograd.grad(fn(v).sum(), v, create_graph=True)
    h = torch.autograd.grad(g.pow(2).sum(), v, allow_unused=True)[0]
    return torch.zeros_like(v) if h is None else h


def test_functional_relus_in_the_models_forward_use_the_surrogate():
    net = FunctionalNet()
    v = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.count_nonzero(curvature(net, v)) == 0
    with torch.no_grad():
        exact = net(v)
    with smooth_relu_backward(net):
        assert torch.count_nonzero(curvature(net, v)) > 0
        with torch.no_grad():
            assert torch.equal(net(v), exact)  # forward values unchanged
    assert torch.count_nonzero(curvature(net, v)) == 0  # and nothing left behind
    assert not net._forward_hooks and not net.lin._forward_pre_hooks  # the scope's hooks are removed


W = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
V = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
U = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))


def unrelated_relu_curvature() -> int:
    return int(torch.count_nonzero(curvature(lambda u: F.relu(W @ u), V)))


def test_relu_outside_the_model_keeps_its_exact_derivative_while_the_context_is_active():
    net, other = FunctionalNet(), FunctionalNet(seed=1)
    relu, relu6, trelu = F.relu, F.relu6, torch.relu
    with smooth_relu_backward(net):
        assert F.relu is relu and F.relu6 is relu6 and torch.relu is trelu  # nothing patched in torch
        assert unrelated_relu_curvature() == 0  # an unrelated call on the same thread
        assert torch.count_nonzero(curvature(lambda u: torch.relu(W @ u), V)) == 0
        assert torch.count_nonzero(curvature(other, U)) == 0  # another model
        assert torch.count_nonzero(curvature(net, U)) > 0  # while this model's ReLUs are smooth


class BlockingNet(FunctionalNet):
    """Waits in the middle of its forward (after a functional ReLU) until told to go on."""

    def __init__(self, inside: threading.Event, go_on: threading.Event):
        super().__init__()
        self.inside, self.go_on = inside, go_on

    def forward(self, x):
        h = F.relu(self.lin(x))
        self.inside.set()
        assert self.go_on.wait(30)
        return self.out(h)


def test_another_threads_relu_is_unaffected_while_the_model_runs_in_the_context():
    inside, go_on = threading.Event(), threading.Event()
    net = BlockingNet(inside, go_on)
    seen = {}

    def worker():  # runs while the main thread is inside net's forward, in the surrogate's context
        assert inside.wait(30)
        seen["curvature"] = unrelated_relu_curvature()
        go_on.set()

    thread = threading.Thread(target=worker)
    thread.start()
    with smooth_relu_backward(net):
        smooth = curvature(net, U)
    thread.join()
    assert seen == {"curvature": 0} and torch.count_nonzero(smooth) > 0


def test_without_a_model_the_block_is_smooth_on_its_own_thread_only():
    started, measured = threading.Event(), threading.Event()
    seen = {}

    def worker():
        assert started.wait(30)
        seen["curvature"] = unrelated_relu_curvature()
        measured.set()

    thread = threading.Thread(target=worker)
    thread.start()
    with smooth_relu_backward(None):
        assert unrelated_relu_curvature() > 0
        started.set()
        assert measured.wait(30)
    thread.join()
    assert seen == {"curvature": 0} and unrelated_relu_curvature() == 0


def test_module_relus_and_hooks_are_restored_when_the_forward_raises():
    model = tiny_classifier()

    def boom(module, args):
        raise RuntimeError("boom")

    handle = model.net.head.register_forward_pre_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        with smooth_relu_backward(model):
            model(torch.rand(1, 1, 16, 16))
    handle.remove()
    # the mode entered at the outer module was left when the forward raised: ReLU is exact again
    assert unrelated_relu_curvature() == 0
    assert not any("Smooth" in type(m).__name__ for m in model.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
