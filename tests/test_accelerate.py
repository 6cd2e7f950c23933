"""advxai.accelerate: each speed setting does what it says inside the block and leaves no trace after it."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from advxai.accelerate import KNOBS, fast_math, parse_knobs, tf32_state


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.point = nn.Conv2d(8, 4, 1)  # a 1x1 kernel: "contiguous" in both layouts
        self.register_buffer("scale", torch.ones(1, 3, 1, 1))  # a [1, C, 1, 1] buffer, like a normaliser's
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.point(torch.relu(self.conv(x * self.scale))).mean((2, 3)))


def strides(model):
    return {k: v.stride() for k, v in model.state_dict().items()}


def test_parse_knobs_names_and_errors():
    assert parse_knobs(None) == {} and parse_knobs("none") == {} and parse_knobs(" ") == {}
    assert parse_knobs("tf32, channels-last") == {"tf32": True, "channels_last": True}
    with pytest.raises(ValueError, match="valid: tf32, channels_last, bf16, cudnn_benchmark"):
        parse_knobs("tf32,fp8")
    assert set(KNOBS) == {"tf32", "channels_last", "bf16", "cudnn_benchmark"}


def test_tf32_is_set_inside_and_restored_after():
    before = tf32_state()
    with fast_math(tf32=True):
        assert tf32_state() == {"matmul": "tf32", "conv": "tf32"}
        with fast_math(tf32=False):
            assert tf32_state() == {"matmul": "ieee", "conv": "ieee"}
        assert tf32_state() == {"matmul": "tf32", "conv": "tf32"}
    assert tf32_state() == before
    with fast_math():  # None: PyTorch's setting is left alone
        assert tf32_state() == before


def test_settings_are_restored_when_the_block_raises():
    before = (tf32_state(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    model = Net()
    layout = strides(model)
    with pytest.raises(RuntimeError, match="boom"):
        with fast_math(model, tf32=True, channels_last=True, cudnn_benchmark=True):
            raise RuntimeError("boom")
    assert (tf32_state(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == before
    assert strides(model) == layout


def test_channels_last_changes_layout_not_values_and_restores_exact_strides():
    torch.manual_seed(0)
    model = Net()
    x = torch.rand(2, 3, 12, 12)
    layout = strides(model)
    with torch.no_grad():
        ref = model(x)
        with fast_math(model, channels_last=True):
            assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
            assert not model.conv.weight.is_contiguous()
            out = model(x)
        after = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert strides(model) == layout  # the 1x1 kernel and the [1, C, 1, 1] buffer too
    assert torch.equal(after, ref)  # bit for bit: nothing of the block's layout is left


def test_channels_last_keeps_what_the_block_trained():
    model = Net()
    with fast_math(model, channels_last=True):
        with torch.no_grad():
            model.conv.weight.add_(1.0)
            model.point.weight.mul_(0.0)
    assert model.conv.weight.is_contiguous() and float(model.point.weight.detach().abs().sum()) == 0.0
    assert isinstance(model.conv.weight, nn.Parameter)


def test_channels_last_needs_the_model():
    with pytest.raises(ValueError, match="needs the model"):
        with fast_math(channels_last=True):
            pass


def test_bf16_autocasts_on_the_models_device_and_stops_after():
    model = Net()
    x = torch.rand(2, 3, 12, 12)
    with fast_math(model, bf16=True):
        assert model.conv(x).dtype == torch.bfloat16
    assert model.conv(x).dtype == torch.float32
    with fast_math(device="cpu", bf16=True):
        assert torch.mm(torch.rand(4, 4), torch.rand(4, 4)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="model or a device"):
        with fast_math(bf16=True):
            pass


def test_cudnn_benchmark_turns_off_determinism_only_inside():
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    with fast_math(cudnn_benchmark=True):
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == before


def test_bad_values_fail_early():
    with pytest.raises(TypeError, match="tf32 must be"):
        with fast_math(tf32="yes"):
            pass
    with pytest.raises(TypeError, match="bf16 must be"):
        with fast_math(bf16=1):
            pass


def test_gradients_through_the_block_match_fp32_in_layout_only_settings():
    torch.manual_seed(0)
    model = Net()
    x = torch.rand(2, 3, 12, 12, requires_grad=True)
    ref, = torch.autograd.grad(model(x).sum(), x)
    with fast_math(model, channels_last=True, tf32=False):
        out, = torch.autograd.grad(model(x).sum(), x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
