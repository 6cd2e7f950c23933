"""SJE disagreement: a detector built from Gulshad et al.'s attribute classifier (new in this study).

SJE reads the network's penultimate features, so an attack on the softmax head also moves what
SJE sees, but through a different (attribute) classifier. The score is how much more SJE's best
class is compatible with the features than the softmax's label:
``max_k F(x, k) - F(x, argmax softmax)``, 0 when the two classifiers agree, positive when they
disagree. It costs one matrix product on features the model computes anyway.
"""
from __future__ import annotations

import torch

from ..defenses import base

__all__ = ["SJEDisagreement"]


class SJEDisagreement(base.Detector):
    """SJE against softmax on the same network, a :class:`~advxai.defenses.base.Detector` with nothing to fit.

    ``sje``: a fitted :class:`~advxai.attributes.SJE`, or ``None`` to fit one on the first ``n_train``
    training images of ``dataset`` (a data set with class attribute vectors) with ``epochs``, ``lr``
    and ``seed``."""

    name = "sje_disagreement"

    def __init__(self, model, fpr: float = 0.05, sje=None, dataset: str = "shapes", n_train: int = 1000,
                 epochs: int = 5, lr: float = 0.01, seed: int = 0, batch_size: int = 128):
        super().__init__(model, fpr, batch_size)
        if sje is None:
            from ..data import get_dataset
            from .sje import SJEConfig
            from .pipeline import fit_sje

            train = get_dataset(dataset, split="train")
            index = torch.arange(min(int(n_train), len(train)))
            sje, _ = fit_sje(model, train, index, SJEConfig(epochs=epochs, lr=lr, batch_size=1, seed=seed))
        self.sje = sje

    @torch.no_grad()
    def predictions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(softmax label, SJE label)`` of a batch, on the CPU."""
        logits, (f,) = self.model.forward_with(x.to(self.device), [self.model.info.feature_layer])
        return logits.argmax(1).cpu(), self.sje.predict(f.flatten(1)).cpu()

    @torch.no_grad()
    def _score(self, x):
        logits, (f,) = self.model.forward_with(x, [self.model.info.feature_layer])
        comp = self.sje.compatibility(f.flatten(1))
        soft = logits.argmax(1).to(comp.device)
        return comp.max(1).values - comp.gather(1, soft[:, None]).squeeze(1)
