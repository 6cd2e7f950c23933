"""Wide residual networks (Zagoruyko & Komodakis, 2016) for CIFAR-10: the AdvEdge paper's Table VII model.

WRN-d-k: a 3x3 convolution to 16 channels, then three groups of ``n = (d - 4) / 6`` pre-activation
basic blocks (BatchNorm, ReLU, 3x3 convolution, twice; dropout between the two convolutions when
asked) of widths 16k, 32k and 64k, the second and third group starting with stride 2, then
BatchNorm, ReLU, global average pooling and one linear layer. A block whose width or stride
changes sends its pre-activated input through a 1x1 convolution on the shortcut, as the authors'
code does. On 32x32 inputs the last feature map is 8x8, and with the GAP head CAM is exact.

Depth and width are parameters: WRN-28-10 (36.5 M parameters) is the registered ``cifar10_wrn``;
a small one (``depth=10, width=1``) trains in seconds for tests. As the study's other models, every
activation is its own ``nn.ReLU`` module, and the layers ``ModelInfo`` names are ``cam`` (the last
feature map), ``head.pool`` and ``head.fc``.
"""
from __future__ import annotations

import torch.nn as nn

from .small import GAPHead

__all__ = ["WideBlock", "WideResNet", "wrn_blocks"]


def wrn_blocks(depth: int) -> int:
    """Blocks per group of a WRN of ``depth`` layers (``depth = 6 n + 4``)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"a wide ResNet's depth is 6n + 4 with n >= 1 (10, 16, 22, 28, 40 ...), got {depth!r}")
    return (depth - 4) // 6


class WideBlock(nn.Module):
    """A pre-activation basic block: BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        a = self.relu1(self.bn1(x))
        out = self.conv2(self.dropout(self.relu2(self.bn2(self.conv1(a)))))
        # a projection shortcut takes the pre-activated input (the authors' code); identity takes x itself
        return out + (self.shortcut(a) if self.shortcut is not None else x)


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` for ``num_classes`` classes and ``in_channels``-channel inputs."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 28, width: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        n = wrn_blocks(depth)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"a wide ResNet's width factor must be a positive integer, got {width!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        widths = (16 * width, 32 * width, 64 * width)
        self.depth, self.width = depth, width
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        groups, cin = [], 16
        for g, cout in enumerate(widths):
            blocks = [WideBlock(cin if b == 0 else cout, cout, (1 if g == 0 else 2) if b == 0 else 1, dropout)
                      for b in range(n)]
            groups.append(nn.Sequential(*blocks))
            cin = cout
        self.group1, self.group2, self.group3 = groups
        self.bn = nn.BatchNorm2d(widths[-1])
        self.cam = nn.ReLU()
        self.head = GAPHead(widths[-1], num_classes)
        for m in self.modules():  # He initialisation, as the authors'
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.cam(self.bn(self.group3(self.group2(self.group1(self.conv(x)))))))


def _specs() -> dict:
    """The registered wide ResNets, trained here on first use like the embedded models (on a local copy of
    their data set). Normalisation: CIFAR-10's training-set mean and standard deviation per channel."""
    from .embedded import TrainedModelSpec
    from .training import TrainConfig

    return {
        # WRN-28-10 as Zagoruyko & Komodakis; this package's training loop (AdamW, one cycle, random shifts of
        # 4 pixels) with a budget meant for a GPU. The smoke budget: one epoch on 2,000 images.
        "cifar10_wrn": TrainedModelSpec(
            WideResNet, "cifar10", TrainConfig(epochs=30, batch_size=128, lr=2e-3, shift=4),
            TrainConfig(epochs=1, batch_size=32, lr=2e-3, shift=4), 2000, (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616), "WRN-28-10 (Zagoruyko & Komodakis), 8x8x640 map, GAP + linear"),
    }


WIDE_RESNETS = _specs()
