"""The MNIST architectures: ``mnist_cnn`` (the papers' network, with a CAM head) and ``mnist_vgg`` (for LRP).

Both follow the conventions of :mod:`advxai.models.small`: a separate ``nn.ReLU`` module for every
activation, no BatchNorm, and ``cam`` (the last feature map's ReLU) -> ``head`` (global average
pooling ``head.pool`` + one linear layer ``head.fc``), so CAM applies exactly and every layer is one
LRP rule. Both are sized so that training on the 60,000 training digits takes under three minutes on
two CPU cores.
"""
from __future__ import annotations

import torch.nn as nn

from .small import GAPHead

__all__ = ["MnistCNN", "MnistVGG"]


def _he_init(module: nn.Module) -> None:
    # Without BatchNorm, PyTorch's default initialisation leaves the deeper layers' activations too
    # small and the first epoch mostly idle; He initialisation keeps their scale.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


class MnistCNN(nn.Module):
    """The MNIST network of Carlini & Wagner (2017), with a global-average-pooling head.

    Neither Jha et al. nor Brama & Grinshpoun describe their MNIST model, so this is the standard
    MNIST CNN of the adversarial-examples literature: Carlini & Wagner's (the model of Papernot et
    al.'s distillation paper, and the one C&W attack on MNIST): 3x3 valid convolutions with 32, 32,
    max-pool, 64, 64, max-pool, then two fully connected layers of 200 units and a linear layer to 10
    classes. What differs: the two 200-unit layers act at each position of the 4x4 map (1x1
    convolutions) instead of on its flattened 1,024 values, and are followed by global average
    pooling and the linear classifier, so the 4x4x200 map before pooling is an exact CAM layer
    (chapter 4 trains it for interpretation robustness with CAM). No dropout (C&W train with 0.5).
    28x28 grey -> 4x4x200 -> GAP -> 10 classes (0.11 M parameters).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(),  # 26x26
            nn.Conv2d(32, 32, 3), nn.ReLU(),  # 24x24
            nn.MaxPool2d(2),  # 12x12
            nn.Conv2d(32, 64, 3), nn.ReLU(),  # 10x10
            nn.Conv2d(64, 64, 3), nn.ReLU(),  # 8x8
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(64, 200, 1), nn.ReLU(),  # C&W's first 200-unit layer, per position
            nn.Conv2d(200, 200, 1),  # the second; its ReLU is the CAM layer
        )
        self.cam = nn.ReLU()
        self.head = GAPHead(200, num_classes)
        _he_init(self.features)

    def forward(self, x):
        return self.head(self.cam(self.features(x)))


class MnistVGG(nn.Module):
    """A plain VGG-style MNIST model: blocks of 3x3 'same' convolutions and max-pooling, widths doubling.

    Like ``digits_vgg`` it has no BatchNorm and no residual additions, so deep Taylor decomposition
    (z+ in the hidden layers, z^B at the input) on it is exact, as the heat-and-blur paper's VGG19.
    One convolution in the first block (VGG19 has two) keeps the 28x28 stage cheap enough to train on
    all 60,000 digits in minutes on a CPU. 28x28 grey -> 32 | pool | 64, 64 | pool | 128 -> 7x7x128
    -> GAP -> 10 classes (0.13 M parameters).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # 7x7
            nn.Conv2d(64, 128, 3, padding=1),
        )
        self.cam = nn.ReLU()
        self.head = GAPHead(128, num_classes)
        _he_init(self.features)

    def forward(self, x):
        return self.head(self.cam(self.features(x)))
