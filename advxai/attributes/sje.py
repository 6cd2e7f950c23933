"""Structured joint embedding (SJE, Akata et al. 2015) as Gulshad et al. use it to predict attributes.

An image's features θ(x) ∈ R^D (the classifier's penultimate layer) and a class's attribute
vector φ(y) ∈ R^E (one row of the data set's class attribute table, L2-normalised per class) meet
in the bilinear compatibility

    F(x, y; W) = θ(x)ᵀ W φ(y),        W ∈ R^{D x E}.

W is learned with the structured ranking loss (their Eqs. 4-5; the extracted text lost the sign,
this is Akata et al.'s form)

    max_y { 0, Δ(y_n, y) + F(x_n, y) - F(x_n, y_n) },      Δ(y_n, y) = margin * [y != y_n],

by stochastic sub-gradient steps: for a sample, ŷ = argmax_y Δ(y_n, y) + F(x_n, y) (the most
violating class); when ŷ != y_n (a *mistake*: the loss is positive)

    W <- W + η θ(x_n) [φ(y_n) - φ(ŷ)]ᵀ                                  (their Eq. 6)

and nothing otherwise. :meth:`SJE.sgd_step` does this for a mini-batch at once: every sample's ŷ
is found with the same W and the per-sample updates are summed. With a batch of one sample this
is exactly the paper's per-sample rule (a test checks it on a hand-computed case); with larger
batches it is the usual mini-batch form of the same sub-gradient.

Predicted attributes are the normalised projection θ(x)ᵀW / ||θ(x)ᵀW||; the class is that of the
nearest class embedding. Because both the prediction and every φ(y) have unit length, the nearest
embedding (Euclidean) is the one with the largest compatibility, so :meth:`SJE.predict` is an
argmax of F.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["SJE", "SJEConfig", "extract_features", "normalize_class_attributes", "check_class_attributes", "dataset_class_attributes"]


def check_class_attributes(class_attributes: torch.Tensor, num_attributes: int | None = None,
                           num_classes: int | None = None) -> torch.Tensor:
    """A float [K, E] table with no all-zero row, of the width (and height) asked for."""
    phi = torch.as_tensor(class_attributes, dtype=torch.float32)
    if phi.dim() != 2:
        raise ValueError(f"class attribute vectors must be a [classes, attributes] table, got shape {tuple(phi.shape)}")
    if num_attributes is not None and phi.shape[1] != num_attributes:
        raise ValueError(f"class attribute vectors have {phi.shape[1]} attributes, expected {num_attributes} "
                         f"(one value per attribute name)")
    if num_classes is not None and phi.shape[0] != num_classes:
        raise ValueError(f"class attribute table has {phi.shape[0]} rows, expected one per class ({num_classes})")
    if not torch.isfinite(phi).all():
        raise ValueError("class attribute vectors contain NaN or infinite values")
    zero = (phi.norm(dim=1) == 0).nonzero().flatten().tolist()
    if zero:
        raise ValueError(f"classes {zero[:8]} have an all-zero attribute vector, which cannot be L2-normalised")
    return phi


def normalize_class_attributes(class_attributes: torch.Tensor) -> torch.Tensor:
    """Each class's attribute vector scaled to unit L2 norm (as the authors do for CUB/AwA)."""
    phi = check_class_attributes(class_attributes)
    return phi / phi.norm(dim=1, keepdim=True)


def dataset_class_attributes(dataset) -> tuple[torch.Tensor, list[str]]:
    """``(class attribute table [K, E], attribute names)`` of a data set, or a clear error without them."""
    if not getattr(dataset, "has_attributes", False):
        raise ValueError(f"data set {getattr(dataset, 'name', dataset)!r} has no class attribute vectors; SJE needs "
                         f"a data set with attributes (shapes, cub)")
    phi = check_class_attributes(dataset.class_attributes, num_attributes=len(dataset.attribute_names),
                                 num_classes=dataset.num_classes)
    return phi, list(dataset.attribute_names)


@dataclass(frozen=True)
class SJEConfig:
    """How W is learned: passes over the data, step size η, mini-batch size, margin Δ, seed."""

    epochs: int = 30
    lr: float = 0.01
    batch_size: int = 1
    margin: float = 1.0
    lr_decay: float = 1.0  # η multiplied by this after every epoch
    init_scale: float = 1e-3  # W starts as init_scale * N(0, 1), seeded
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")


class SJE:
    """The SJE attribute classifier on top of fixed image features.

    ``SJE(class_attributes [K, E], feature_dim=D)``; ``attribute_names`` (optional) fixes E and
    names the attributes. ``W`` is a [D, E] tensor; everything is batched and runs on W's device.
    """

    def __init__(self, class_attributes: torch.Tensor, feature_dim: int, attribute_names: list[str] | None = None,
                 margin: float = 1.0, W: torch.Tensor | None = None, device: str | torch.device = "cpu"):
        if not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive integer, got {feature_dim!r}")
        width = len(attribute_names) if attribute_names is not None else None
        raw = check_class_attributes(class_attributes, num_attributes=width)
        self.attribute_names = list(attribute_names) if attribute_names is not None else [
            f"attribute_{i}" for i in range(raw.shape[1])]
        self.phi = (raw / raw.norm(dim=1, keepdim=True)).to(device)  # [K, E], unit rows
        self.margin = float(margin)
        if W is None:
            W = torch.zeros(feature_dim, raw.shape[1])
        W = torch.as_tensor(W, dtype=torch.float32)
        if W.shape != (feature_dim, raw.shape[1]):
            raise ValueError(f"W must be [feature_dim, attributes] = [{feature_dim}, {raw.shape[1]}], "
                             f"got {tuple(W.shape)}")
        self.W = W.to(device)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def for_dataset(cls, dataset, feature_dim: int, margin: float = 1.0, device="cpu") -> "SJE":
        """An (untrained) SJE for a data set's classes and attributes; an error if it has none."""
        phi, names = dataset_class_attributes(dataset)
        return cls(phi, feature_dim, names, margin=margin, device=device)

    @property
    def num_classes(self) -> int:
        return self.phi.shape[0]

    @property
    def num_attributes(self) -> int:
        return self.phi.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.W.shape[0]

    @property
    def device(self) -> torch.device:
        return self.W.device

    def to(self, device) -> "SJE":
        self.W, self.phi = self.W.to(device), self.phi.to(device)
        return self

    def state_dict(self) -> dict:
        return {"W": self.W.detach().cpu(), "phi": self.phi.detach().cpu(), "margin": self.margin,
                "attribute_names": list(self.attribute_names)}

    @classmethod
    def from_state(cls, state: dict, device="cpu") -> "SJE":
        W = state["W"]
        return cls(state["phi"], W.shape[0], state["attribute_names"], state["margin"], W=W, device=device)

    # -- checks ------------------------------------------------------------------------------
    def _features(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(f"features must be [B, {self.feature_dim}] (the width W was built for), "
                             f"got {tuple(features.shape)}")
        return features.to(self.device, torch.float32)

    def _labels(self, y: torch.Tensor, n: int) -> torch.Tensor:
        y = torch.as_tensor(y, dtype=torch.long, device=self.device)
        if y.shape != (n,):
            raise ValueError(f"labels must be [B] = [{n}], got {tuple(y.shape)}")
        if n and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes})")
        return y

    # -- the model ---------------------------------------------------------------------------
    def project(self, features: torch.Tensor) -> torch.Tensor:
        """θ(x)ᵀW, the unnormalised attribute scores [B, E] (differentiable; Grad-CAM reads these)."""
        return self._features(features) @ self.W

    def predict_attributes(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted attributes: θ(x)ᵀW scaled to unit length per image [B, E]."""
        return F.normalize(self.project(features), dim=1)

    def compatibility(self, features: torch.Tensor) -> torch.Tensor:
        """F(x, y) = θ(x)ᵀ W φ(y) for every class [B, K]."""
        return self.project(features) @ self.phi.T

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The class of the nearest class embedding (= the largest compatibility) [B]."""
        return self.compatibility(features).argmax(1)

    def accuracy(self, features: torch.Tensor, y: torch.Tensor) -> float:
        y = self._labels(y, len(features))
        return (self.predict(features) == y).float().mean().item() if len(y) else float("nan")

    def _augmented(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Δ(y_n, y) + F(x_n, y): the loss-augmented scores [B, K]."""
        delta = torch.full_like(scores, self.margin)
        delta.scatter_(1, y[:, None], 0.0)
        return scores + delta

    def loss(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The ranking loss per image [B]: max_y {0, Δ(y_n, y) + F(x_n, y) - F(x_n, y_n)}."""
        y = self._labels(y, len(features))
        scores = self.compatibility(features)
        true = scores.gather(1, y[:, None]).squeeze(1)
        return (self._augmented(scores, y).amax(1) - true).clamp_min(0)

    # -- learning ----------------------------------------------------------------------------
    @torch.no_grad()
    def sgd_step(self, features: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        """One update on a mini-batch; returns the mistake mask [B].

        ŷ_n = argmax_y Δ(y_n, y) + F(x_n, y) with the current W for every sample; where ŷ_n != y_n,
        W += lr θ(x_n)[φ(y_n) - φ(ŷ_n)]ᵀ, summed over the batch. At batch size 1 this is the paper's
        Eq. 6 exactly.
        """
        x = self._features(features)
        y = self._labels(y, len(x))
        y_hat = self._augmented(x @ self.W @ self.phi.T, y).argmax(1)
        mistake = y_hat != y
        # [B, E] direction per sample, zero where there is no mistake; then sum_n x_n d_nᵀ.
        direction = (self.phi[y] - self.phi[y_hat]) * mistake[:, None].to(x.dtype)
        self.W += lr * (x.T @ direction)
        return mistake

    def fit(self, features: torch.Tensor, y: torch.Tensor, config: SJEConfig = SJEConfig(),
            val: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[dict]:
        """Learn W on ``(features, y)``: ``config.epochs`` seeded passes; returns one record per epoch
        (mistake rate, mean ranking loss, training accuracy, and validation accuracy if ``val``)."""
        x = self._features(features)
        y = self._labels(y, len(x))
        if not len(x):
            raise ValueError("SJE.fit needs at least one sample")
        self.margin = float(config.margin)
        g = torch.Generator().manual_seed(config.seed)
        self.W = (config.init_scale * torch.randn(self.W.shape, generator=g)).to(self.device)
        history, lr = [], config.lr
        for epoch in range(config.epochs):
            order = torch.randperm(len(x), generator=g).to(self.device)
            mistakes = 0
            for s in range(0, len(order), config.batch_size):
                idx = order[s:s + config.batch_size]
                mistakes += int(self.sgd_step(x[idx], y[idx], lr).sum())
            record = {"epoch": epoch, "lr": lr, "mistake_rate": mistakes / len(x),
                      "loss": self.loss(x, y).mean().item(), "train_accuracy": self.accuracy(x, y)}
            if val is not None:
                record["val_accuracy"] = self.accuracy(*val)
            history.append(record)
            lr *= config.lr_decay
        return history

    def __repr__(self) -> str:
        return f"SJE(features={self.feature_dim}, attributes={self.num_attributes}, classes={self.num_classes})"


@torch.no_grad()
def extract_features(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The classifier's penultimate features θ(x) [N, D] (``model.features``), in batches, on its device."""
    device = model.device
    parts = [model.features(x[s:s + batch_size].to(device)) for s in range(0, len(x), batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, 0)
