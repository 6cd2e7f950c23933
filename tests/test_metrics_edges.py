import numpy as np
import pytest
import torch
from pytorch_msssim import ssim as msssim_ssim
from skimage.filters import sobel
from skimage.metrics import structural_similarity

from advxai.attacks import PGD
from advxai.attacks.edges import edge_mask, edge_weights, sobel_magnitude
from advxai.metrics import accuracy, noise_rate, ssim

from .helpers import batch, tiny_classifier


def test_sobel_matches_skimage():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 20, 24, generator=g)
    ours = sobel_magnitude(x)
    for i in range(3):
        ref = sobel(x[i].mean(0).numpy().astype(np.float64))
        assert np.allclose(ours[i, 0].numpy(), ref, atol=1e-6)
    assert ours.min() >= 0 and ours.max() <= 1


def test_edge_masks():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8:] = 1.0
    w = edge_weights(x)
    assert w[0, 0, :, 7:9].min() > 0.5 and w[0, 0, :, :6].max() == 0
    m = edge_mask(x, 0.1)
    assert set(m.unique().tolist()) == {0.0, 1.0} and m.sum() == 2 * 16
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        edge_mask(x, 1.5)


def test_edge_mask_restricts_pgd():
    model = tiny_classifier(in_channels=3, size=16)
    x, y = batch(model, 4)
    x = torch.zeros_like(x)
    x[..., 8:] = 0.8  # one vertical edge
    res = PGD(model, eps=0.1, steps=3, step_mask=lambda xb: edge_mask(xb, 0.1))(x, y)
    changed = (res.x_adv - x).abs().amax(1)
    assert changed[:, :, :6].max() == 0 and changed[:, :, 7:9].max() > 0


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage_and_pytorch_msssim(channels):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, channels, 32, 32, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ours = ssim(x, y)
    ref = [structural_similarity(x[i].numpy(), y[i].numpy(), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0, channel_axis=0) for i in range(4)]
    assert np.allclose(ours.numpy(), ref, atol=1e-5)
    assert torch.allclose(ours, msssim_ssim(x, y, data_range=1.0, size_average=False), atol=1e-5)
    assert torch.allclose(ssim(x, x), torch.ones(4))
    assert torch.allclose(noise_rate(x, x), torch.zeros(4), atol=1e-6)


def test_ssim_bad_input():
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 3, 16, 16))


def test_accuracy():
    assert accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
