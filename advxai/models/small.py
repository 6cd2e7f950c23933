"""Small architectures for the embedded data sets, sized to train in minutes on two CPU cores.

Every one ends in global average pooling + one linear layer (so CAM applies exactly), uses a
separate ``nn.ReLU`` module for every activation (so interpreters can swap them for smooth
surrogates and LRP can treat each on its own), and exposes the three layers ``ModelInfo`` names:
``cam`` (last feature map), ``pool`` (penultimate vector), ``fc`` (classifier).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class GAPHead(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.pool(x))


class DigitsCNN(nn.Module):
    """28x28 grey -> 5 conv+BatchNorm layers -> 7x7x64 feature map -> GAP -> 10 classes (0.1 M parameters)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        def conv(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)]

        self.features = nn.Sequential(
            *conv(in_channels, 32), nn.ReLU(),
            *conv(32, 32), nn.ReLU(),
            nn.MaxPool2d(2),  # 14x14
            *conv(32, 64), nn.ReLU(),
            *conv(64, 64), nn.ReLU(),
            nn.MaxPool2d(2),  # 7x7
            *conv(64, 64),
        )
        self.cam = nn.ReLU()
        self.head = GAPHead(64, num_classes)

    def forward(self, x):
        return self.head(self.cam(self.features(x)))


class DigitsVGG(nn.Module):
    """A plain VGG-style digits model (conv/ReLU/max-pool, no BatchNorm, linear classifier).

    Without BatchNorm or residual additions every layer is one LRP rule, so deep Taylor
    decomposition on it is exact. Same GAP head as the others.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
        )
        self.cam = nn.ReLU()
        self.head = GAPHead(128, num_classes)
        for m in self.features:  # He initialisation: without BatchNorm the default init trains slowly
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.head(self.cam(self.features(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ShapesResNet(nn.Module):
    """A small ResNet for 64x64 RGB: stem (stride 2) + 3 stages of basic blocks -> 8x8x64 -> GAP."""

    def __init__(self, num_classes: int = 20, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(nn.Conv2d(3, w1, 3, 2, 1, bias=False), nn.BatchNorm2d(w1), nn.ReLU())
        self.layer1 = BasicBlock(w1, w1, 1)  # 32x32
        self.layer2 = BasicBlock(w1, w2, 2)  # 16x16
        self.layer3 = BasicBlock(w2, w3, 2)  # 8x8 (its final ReLU is the CAM layer)
        self.head = GAPHead(w3, num_classes)

    def forward(self, x):
        return self.head(self.layer3(self.layer2(self.layer1(self.stem(x)))))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(self.relu(self.bn(x)))], 1)


class Transition(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(self.relu(self.bn(x))))


class ShapesDenseNet(nn.Module):
    """A small DenseNet for 64x64 RGB: stem (conv stride 2, BN, ReLU, avg-pool) -> 16x16 dense block
    -> transition -> 8x8 dense block (BN-ReLU-conv layers, growth 16) -> GAP.

    The stem pools early because dense blocks at 32x32 cost more in memory traffic than they add
    in accuracy on two CPU cores."""

    def __init__(self, num_classes: int = 20, growth: int = 16, layers: tuple[int, ...] = (3, 5), stem: int = 32):
        super().__init__()
        c = stem
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.AvgPool2d(2))  # 16x16
        blocks: list[nn.Module] = []
        for i, n in enumerate(layers):
            for _ in range(n):
                blocks.append(DenseLayer(c, growth))
                c += growth
            if i < len(layers) - 1:
                blocks.append(Transition(c, c // 2))  # halves the resolution
                c //= 2
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2d(c)
        self.cam = nn.ReLU()
        self.head = GAPHead(c, num_classes)

    def forward(self, x):
        return self.head(self.cam(self.norm(self.blocks(self.stem(x)))))
