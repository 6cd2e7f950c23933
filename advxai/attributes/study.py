"""The experiment steps of Gulshad et al.'s study, batched, as the chapter runs them.

* :func:`fit_sje`: penultimate features of a training subset, then SJE on them;
* :func:`attack_and_embed`: I-FGSM (untargeted, or targeted at random classes) against the softmax
  classifier, then both classifiers read the adversarial images: the softmax directly, SJE through
  the same network's features (SJE is attacked only as a black box, as in the paper);
* :func:`select_and_ground`: Eqs. 16-17 attribute selection, grounding by a detector, and Grad-CAM
  localisation scored by IoU against the attributes' part boxes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..attacks.gradient import BIM
from ..attacks.store import random_targets
from .analysis import select_attributes
from .grounding import (AnnotationDetector, CUBPartDetector, GradCAMLocaliser, attribute_part_boxes, ground,
                        grounding_scores, peak_in_box)
from .sje import SJE, SJEConfig, extract_features

__all__ = ["fit_sje", "Embedded", "embed", "attack_and_embed", "select_and_ground"]


def fit_sje(model, dataset, index: torch.Tensor, config: SJEConfig = SJEConfig(), batch_size: int = 256
            ) -> tuple[SJE, list[dict]]:
    """SJE trained on ``model``'s features of ``dataset`` images ``index`` (the data set must have attributes)."""
    sje = SJE.for_dataset(dataset, feature_dim=1)  # checks the attributes before any feature is computed
    feats = torch.cat([extract_features(model, dataset.load_images(index[s:s + batch_size]))
                       for s in range(0, len(index), batch_size)])
    sje = SJE.for_dataset(dataset, feature_dim=feats.shape[1], device=feats.device)
    history = sje.fit(feats, dataset.labels[index].to(feats.device), config)
    return sje, history


@dataclass
class Embedded:
    """Images seen by one network and its SJE: softmax and SJE predictions, predicted attributes Z."""

    x: torch.Tensor
    softmax_pred: torch.Tensor
    sje_pred: torch.Tensor
    z: torch.Tensor
    target: torch.Tensor | None = None

    def accuracy(self, y: torch.Tensor, classifier: str) -> float:
        pred = self.softmax_pred if classifier == "softmax" else self.sje_pred
        return (pred.cpu() == y.cpu()).float().mean().item()


@torch.no_grad()
def embed(model, sje: SJE, x: torch.Tensor, batch_size: int = 256, target: torch.Tensor | None = None) -> Embedded:
    """One forward pass per batch gives both the logits and the features SJE reads."""
    preds, feats = [], []
    for s in range(0, len(x), batch_size):
        logits, (f,) = model.forward_with(x[s:s + batch_size].to(model.device), [model.info.feature_layer])
        preds.append(logits.argmax(1))
        feats.append(f.flatten(1))
    f = torch.cat(feats)
    return Embedded(x=x, softmax_pred=torch.cat(preds).cpu(), sje_pred=sje.predict(f).cpu(),
                    z=sje.predict_attributes(f).cpu(), target=target)


def attack_and_embed(model, sje: SJE, x: torch.Tensor, y: torch.Tensor, eps: float, targeted: bool,
                     steps: int = 10, target_seed: int = 0, batch_size: int | None = None) -> Embedded:
    """I-FGSM with ``steps`` steps of eps/steps (their setting: 10 steps, α = ε/10) on the softmax classifier."""
    target = random_targets(y, model.info.num_classes, target_seed) if targeted else None
    result = BIM(model, eps=eps, steps=steps, targeted=targeted, batch_size=batch_size)(x, y, target)
    return embed(model, sje, result.x_adv.cpu(), target=target)


def select_and_ground(model, sje: SJE, dataset, batch, images: torch.Tensor, z: torch.Tensor,
                      phi_other: torch.Tensor, k: int, detector=None, threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """Eqs. 16-17 selection on ``images`` (clean or adversarial versions of ``batch``), then grounding.

    Returns ``selected`` [B, k] attribute indices (best first), ``grounded`` [B, k] (the detector finds
    the attribute), ``detector_boxes``, ``cam_boxes`` (Grad-CAM of the attribute's SJE score) and,
    where the data set has part boxes, ``iou`` / ``hit`` of the Grad-CAM boxes against them and
    ``pointing`` (the Grad-CAM peak lies in the part's box); ``maps`` are the Grad-CAM maps [B, k, H, W].
    """
    selected = select_attributes(z, phi_other, k)
    if detector is None:
        detector = (CUBPartDetector.for_dataset(dataset) if "part_locs" in dataset.annotations
                    else AnnotationDetector.for_dataset(dataset))
    grounded, det_boxes = ground(selected, detector.detect(batch))
    localiser = GradCAMLocaliser(model, sje, threshold=threshold)
    maps = localiser.maps(images.to(model.device), selected.to(model.device)).cpu()
    cam_boxes = localiser.boxes(maps)
    out = {"selected": selected, "grounded": grounded.cpu(), "detector_boxes": det_boxes.cpu(), "cam_boxes": cam_boxes,
           "maps": maps}
    if "part_boxes" in batch and dataset.attribute_parts is not None:
        truth = attribute_part_boxes(batch["part_boxes"], dataset.attribute_parts, selected)
        out.update({k2: v.cpu() for k2, v in grounding_scores(cam_boxes, truth).items()})
        out["true_boxes"] = truth
        out["pointing"] = peak_in_box(maps, truth)
    return out
