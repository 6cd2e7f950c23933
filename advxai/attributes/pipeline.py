"""The steps of Gulshad et al.'s pipeline, batched: SJE on a classifier's features, both classifiers on
(adversarial) images, attribute selection and grounding.

* :func:`fit_sje`: penultimate features of a training subset, then SJE on them;
* :func:`embed`: one forward pass gives the softmax prediction, the features SJE reads, SJE's class
  and the predicted attributes Z (:class:`Embedded`);
* :func:`attack_and_embed`: I-FGSM (untargeted, or targeted at random classes) against the softmax
  classifier, then :func:`embed` on the adversarial images (SJE is attacked only through the
  features, as in the paper). The book's study runs the attack on the engine instead
  (:mod:`advxai.studies.attributes`) and embeds the result the same way;
* :func:`select_and_ground`: Eqs. 16-17 attribute selection, grounding by a detector, and Grad-CAM
  localisation scored by IoU against the attributes' part boxes, in chunks of images so that the
  Grad-CAM maps of a whole test set never sit in memory at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..attacks.gradient import BIM
from ..attacks.store import random_targets
from .analysis import select_attributes
from .grounding import (AnnotationDetector, CUBPartDetector, GradCAMLocaliser, attribute_part_boxes, box_iou, ground,
                        grounding_scores, peak_in_box)
from .sje import SJE, SJEConfig, extract_features

__all__ = ["fit_sje", "Embedded", "embed", "attack_and_embed", "select_and_ground", "default_detector"]


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
    """Images seen by one network and its SJE: softmax and SJE predictions, predicted attributes Z.

    ``x`` (the images, on the CPU) is ``None`` when the caller chose not to keep them (a large test
    set attacked at many budgets); the predictions are what the accuracy curves need."""

    x: torch.Tensor | None
    softmax_pred: torch.Tensor
    sje_pred: torch.Tensor
    z: torch.Tensor
    target: torch.Tensor | None = None

    def correct(self, y: torch.Tensor, classifier: str) -> torch.Tensor:
        """Per image [B] (bool): does ``classifier`` ("softmax" or "sje") give the label ``y``?"""
        if classifier not in ("softmax", "sje"):
            raise ValueError(f"classifier must be 'softmax' or 'sje', got {classifier!r}")
        pred = self.softmax_pred if classifier == "softmax" else self.sje_pred
        return pred.cpu() == y.cpu()

    def accuracy(self, y: torch.Tensor, classifier: str) -> float:
        return self.correct(y, classifier).float().mean().item()


@torch.no_grad()
def embed(model, sje: SJE, x: torch.Tensor, batch_size: int = 256, target: torch.Tensor | None = None,
          keep_images: bool = True) -> Embedded:
    """One forward pass per batch gives both the logits and the features SJE reads."""
    preds, feats = [], []
    for s in range(0, len(x), batch_size):
        logits, (f,) = model.forward_with(x[s:s + batch_size].to(model.device), [model.info.feature_layer])
        preds.append(logits.argmax(1))
        feats.append(f.flatten(1))
    f = torch.cat(feats)
    return Embedded(x=x if keep_images else None, softmax_pred=torch.cat(preds).cpu(), sje_pred=sje.predict(f).cpu(),
                    z=sje.predict_attributes(f).cpu(), target=target)


def attack_and_embed(model, sje: SJE, x: torch.Tensor, y: torch.Tensor, eps: float, targeted: bool,
                     steps: int = 10, target_seed: int = 0, batch_size: int | None = None) -> Embedded:
    """I-FGSM with ``steps`` steps of eps/steps (their setting: 10 steps, α = ε/10) on the softmax classifier."""
    target = random_targets(y, model.info.num_classes, target_seed) if targeted else None
    result = BIM(model, eps=eps, steps=steps, targeted=targeted, batch_size=batch_size)(x, y, target)
    return embed(model, sje, result.x_adv.cpu(), target=target)


def default_detector(dataset):
    """The annotation detector a data set supports: CUB's parts and per-image attributes, or the
    data set's own part boxes (``shapes``); ``None`` when it has neither (AwA2)."""
    if "part_locs" in dataset.annotations:
        return CUBPartDetector.for_dataset(dataset)
    if dataset.attribute_parts is not None and "part_boxes" in dataset.annotations:
        return AnnotationDetector.for_dataset(dataset)
    return None


def select_and_ground(model, sje: SJE, dataset, batch, images: torch.Tensor, z: torch.Tensor,
                      phi_other: torch.Tensor, k: int, detector=None, threshold: float = 0.5, *,
                      chunk: int = 128, keep_maps: int | None = None, sweep: Sequence[float] = ()
                      ) -> dict[str, torch.Tensor]:
    """Eqs. 16-17 selection on ``images`` (clean or adversarial versions of ``batch``), then grounding.

    Returns ``selected`` [B, k] attribute indices (best first), ``grounded`` [B, k] (the detector finds
    the attribute), ``detector_boxes``, ``cam_boxes`` (Grad-CAM of the attribute's SJE score) and,
    where the data set has part boxes, ``iou`` / ``hit`` of the Grad-CAM boxes against them,
    ``true_boxes`` and ``pointing`` (the Grad-CAM peak lies in the part's box); ``maps`` are the
    Grad-CAM maps [B', k, H, W] of the first ``keep_maps`` images (all when ``None``), and
    ``sweep_iou`` [T, B, k] the IoU of the boxes at each threshold of ``sweep``.

    Grad-CAM runs on ``chunk`` images at a time (``chunk * k`` maps); with a multiple of 128 the
    localiser's own batches are the same as in one pass, so the numbers do not depend on it.
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    selected = select_attributes(z, phi_other, k)
    if detector is None:
        detector = default_detector(dataset)
        if detector is None:
            raise ValueError(f"data set {dataset.name!r} has neither part boxes nor part locations: pass a detector")
    grounded, det_boxes = ground(selected, detector.detect(batch))
    localiser = GradCAMLocaliser(model, sje, threshold=threshold)
    truth = None
    if "part_boxes" in batch and dataset.attribute_parts is not None:
        truth = attribute_part_boxes(batch["part_boxes"], dataset.attribute_parts, selected).cpu()
    cam_boxes, kept, pointing, sweep_iou = [], [], [], []
    for s in range(0, len(images), chunk):
        maps = localiser.maps(images[s:s + chunk].to(model.device), selected[s:s + chunk].to(model.device)).cpu()
        cam_boxes.append(localiser.boxes(maps))
        if keep_maps is None or s < keep_maps:
            kept.append(maps if keep_maps is None else maps[:keep_maps - s])
        if truth is not None:
            pointing.append(peak_in_box(maps, truth[s:s + chunk]))
            sweep_iou.append(torch.stack([box_iou(localiser.boxes(maps, t), truth[s:s + chunk]) for t in sweep])
                             if len(sweep) else torch.zeros(0, len(maps), k))
    h, w = images.shape[-2:]
    out = {"selected": selected, "grounded": grounded.cpu(), "detector_boxes": det_boxes.cpu(),
           "cam_boxes": torch.cat(cam_boxes) if cam_boxes else torch.zeros(0, k, 4),
           "maps": torch.cat(kept) if kept else torch.zeros(0, k, h, w)}
    if truth is not None:
        out.update({k2: v.cpu() for k2, v in grounding_scores(out["cam_boxes"], truth).items()})
        out["true_boxes"] = truth
        out["pointing"] = torch.cat(pointing) if pointing else torch.zeros(0, k, dtype=torch.bool)
        out["sweep_iou"] = torch.cat(sweep_iou, 1) if sweep_iou else torch.zeros(len(sweep), 0, k)
    return out
