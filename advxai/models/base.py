"""The model wrapper every registry entry returns.

A :class:`Classifier` takes images in [0, 1], normalises them inside itself, and returns logits,
so attacks, budgets and interpreters all live in one pixel space. Its :class:`ModelInfo` names
the layers interpreters need: the last convolutional feature map (``cam_layer``, the one CAM and
Grad-CAM read), the penultimate feature vector (``feature_layer``) and the final linear layer
(``classifier_layer``). Layer names are dotted paths inside ``Classifier.net``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["ModelInfo", "Classifier"]


@dataclass
class ModelInfo:
    name: str
    dataset: str
    input_size: tuple[int, int, int]  # (C, H, W)
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    cam_layer: str  # output: the last conv feature map [B, K, h, w] that global pooling reads
    feature_layer: str  # output: the penultimate feature vector [B, D] (or map pooled to it)
    classifier_layer: str  # the final nn.Linear
    architecture: str = ""
    weights: str = ""  # provenance of the weights
    test_accuracy: float | None = None
    gap_head: bool = True  # logits = Linear(GAP(cam_layer)): CAM applies exactly
    notes: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def as_row(self) -> dict:
        d = asdict(self)
        d.pop("class_names")
        d["classes"] = self.num_classes
        return d


class Classifier(nn.Module):
    """``logits = net((x - mean) / std)`` for ``x`` in [0, 1]; eval mode; parameters frozen.

    Parameters are frozen (``requires_grad=False``) because every use here differentiates with
    respect to the input; code that trains (adversarial training, fine-tuning) unfreezes a copy.
    """

    def __init__(self, net: nn.Module, info: ModelInfo):
        super().__init__()
        self.net = net
        self.info = info
        c = info.input_size[0]
        self.register_buffer("mean", torch.tensor(info.mean, dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(info.std, dtype=torch.float32).view(1, c, 1, 1))
        for m in self.net.modules():  # in-place activations break hooks and double backward
            if hasattr(m, "inplace"):
                m.inplace = False
        self.eval()
        self.requires_grad_(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    # -- layers by name --------------------------------------------------------------------
    def layer(self, name: str) -> nn.Module:
        return self.net.get_submodule(name)

    @property
    def cam_module(self) -> nn.Module:
        return self.layer(self.info.cam_layer)

    @property
    def classifier(self) -> nn.Linear:
        return self.layer(self.info.classifier_layer)

    def forward_with(self, x: torch.Tensor, layers: Sequence[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the outputs of the named layers, from one forward pass."""
        captured: dict[str, torch.Tensor] = {}
        handles = []
        for name in layers:
            def hook(_m, _inp, out, name=name):
                captured[name] = out
            handles.append(self.layer(name).register_forward_hook(hook))
        try:
            logits = self(x)
        finally:
            for h in handles:
                h.remove()
        return logits, [captured[n] for n in layers]

    def feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, A)`` with A the ``cam_layer`` output [B, K, h, w]."""
        logits, (a,) = self.forward_with(x, [self.info.cam_layer])
        return logits, a

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate feature vector [B, D] (what SJE and linear probes read)."""
        _, (f,) = self.forward_with(x, [self.info.feature_layer])
        return f.flatten(1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labels, probabilities)`` in batches, on the model's device."""
        device = self.mean.device
        probs = []
        for start in range(0, len(x), batch_size):
            probs.append(self(x[start:start + batch_size].to(device)).softmax(1))
        p = torch.cat(probs)
        return p.argmax(1), p

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def extra_repr(self) -> str:
        return f"name={self.info.name!r}, input={self.info.input_size}, classes={self.info.num_classes}"
