"""Grounding predicted attributes on the image, and scoring it.

Gulshad et al. ground the attributes SJE selects (Eqs. 16-17) with a detector that predicts
(box, attribute, object) triples (Faster R-CNN trained on Visual Genome): an attribute is
*grounded* when the detector finds a box carrying it, and drawn with that box. They had no part
boxes to score this against. Two roles are kept apart here:

* a :class:`Detector` returns :class:`Detections` (boxes, each with the attribute it carries) and
  :func:`ground` matches selected attributes with them, the paper's rule. Provided:
  :class:`AnnotationDetector`, which reads the data set's own per-image attributes and part boxes
  (a perfect detector on ``shapes``; on CUB the per-image attribute labels and the 15 part
  locations, via :class:`CUBPartDetector`). A trained detector plugs in by implementing ``detect``.
* a :class:`Localiser` puts a box on the image for any attribute without looking at annotations:
  :class:`GradCAMLocaliser` thresholds the Grad-CAM map of the attribute's SJE score θ(x)ᵀW[:, a].
  :func:`box_iou` against the ground-truth box of the attribute's part scores it, which the paper
  could not do.

Boxes are (x0, y0, x1, y1) in pixels of the model's input with exclusive right/bottom edges (as
``shapes``' ``part_boxes``), NaN where there is none. Everything is batched over images and attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import torch

__all__ = ["Detections", "Detector", "Localiser", "AnnotationDetector", "CUBPartDetector", "GradCAMLocaliser",
           "ground", "box_iou", "boxes_from_masks", "peak_in_box", "attribute_part_boxes", "cub_attribute_parts",
           "grounding_scores"]


# --------------------------------------------------------------------------- boxes


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``a`` and ``b`` [..., 4] elementwise (exclusive right/bottom edges); 0 where either is NaN."""
    if a.shape != b.shape or a.shape[-1] != 4:
        raise ValueError(f"boxes must be two [..., 4] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    b = b.to(a.device, a.dtype)
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp_min(0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp_min(0)
    inter = iw * ih
    area = lambda r: (r[..., 2] - r[..., 0]).clamp_min(0) * (r[..., 3] - r[..., 1]).clamp_min(0)  # noqa: E731
    union = area(a) + area(b) - inter
    iou = inter / union.clamp_min(1e-12)
    invalid = torch.isnan(a).any(-1) | torch.isnan(b).any(-1) | (union <= 0)
    return torch.where(invalid, torch.zeros_like(iou), iou)


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes [..., 4] of boolean masks [..., H, W] (exclusive edges); NaN for an empty mask."""
    rows, cols = masks.any(-1), masks.any(-2)  # [..., H], [..., W]
    h, w = masks.shape[-2:]
    ys = torch.arange(h, device=masks.device, dtype=torch.float32)
    xs = torch.arange(w, device=masks.device, dtype=torch.float32)
    boxes = torch.stack([
        torch.where(cols, xs, float(w)).amin(-1), torch.where(rows, ys, float(h)).amin(-1),
        torch.where(cols, xs, -1.0).amax(-1) + 1, torch.where(rows, ys, -1.0).amax(-1) + 1,
    ], -1)
    return torch.where(rows.any(-1, keepdim=True), boxes, torch.full_like(boxes, float("nan")))


def attribute_part_boxes(part_boxes: torch.Tensor, attribute_parts: Sequence[int], attributes: torch.Tensor
                         ) -> torch.Tensor:
    """The ground-truth box [B, k, 4] of each attribute's part: ``part_boxes`` [B, P, 4], ``attributes`` [B, k]."""
    parts = torch.as_tensor(list(attribute_parts), dtype=torch.long, device=part_boxes.device)[attributes.to(
        part_boxes.device)]  # [B, k]
    return part_boxes.gather(1, parts[..., None].expand(-1, -1, 4))


# --------------------------------------------------------------------------- detectors


@dataclass
class Detections:
    """Per image up to J boxes [B, J, 4], the attribute each carries [B, J] (-1: no detection) and a score."""

    boxes: torch.Tensor
    attributes: torch.Tensor
    scores: torch.Tensor | None = None

    def __post_init__(self):
        if self.boxes.dim() != 3 or self.boxes.shape[-1] != 4 or self.attributes.shape != self.boxes.shape[:2]:
            raise ValueError(f"detections need boxes [B, J, 4] and attributes [B, J], got {tuple(self.boxes.shape)} "
                             f"and {tuple(self.attributes.shape)}")
        if self.scores is None:
            self.scores = torch.ones(self.attributes.shape, device=self.boxes.device)


@runtime_checkable
class Detector(Protocol):
    """Anything that finds attribute-carrying boxes in a batch (a :class:`~advxai.data.Batch` with ``x``)."""

    def detect(self, batch) -> Detections:
        ...


@runtime_checkable
class Localiser(Protocol):
    """Anything that puts one box [B, k, 4] on each image for each of its attributes [B, k]."""

    def localise(self, x: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        ...


def ground(selected: torch.Tensor, detections: Detections) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's matching: a selected attribute is grounded when a detection carries it.

    ``selected`` [B, k] attribute indices. Returns ``(grounded [B, k] bool, boxes [B, k, 4])``, the
    box of the best-scoring matching detection (NaN where none matches).
    """
    if selected.dim() != 2 or selected.shape[0] != detections.boxes.shape[0]:
        raise ValueError(f"selected attributes must be [B, k] with B = {detections.boxes.shape[0]}, "
                         f"got {tuple(selected.shape)}")
    dev = detections.boxes.device
    match = selected.to(dev)[:, :, None] == detections.attributes[:, None, :]  # [B, k, J]
    score = torch.where(match, detections.scores[:, None, :], torch.full_like(match, -torch.inf, dtype=torch.float32))
    best = score.argmax(-1)  # [B, k]
    grounded = match.any(-1)
    boxes = detections.boxes.gather(1, best[..., None].expand(-1, -1, 4))
    return grounded, torch.where(grounded[..., None], boxes, torch.full_like(boxes, float("nan")))


class AnnotationDetector:
    """A perfect attribute detector from a data set's annotations: one box per attribute present in the image.

    An attribute counts as present when its per-image value is above ``threshold`` (``attributes``
    annotation, [B, E]); its box is its part's box (``part_boxes`` [B, P, 4] and the data set's
    ``attribute_parts``). It stands for the paper's Faster R-CNN with the errors taken out: an
    attribute is grounded exactly when the image shows it.
    """

    def __init__(self, attribute_parts: Sequence[int], threshold: float = 0.5):
        if attribute_parts is None:
            raise ValueError("AnnotationDetector needs the data set's attribute_parts (the part of each attribute)")
        self.attribute_parts = [int(p) for p in attribute_parts]
        self.threshold = float(threshold)

    @classmethod
    def for_dataset(cls, dataset, threshold: float = 0.5) -> "AnnotationDetector":
        if dataset.attribute_parts is None or "part_boxes" not in dataset.annotations:
            raise ValueError(f"data set {dataset.name!r} has no part boxes per attribute; for CUB use CUBPartDetector")
        return cls(dataset.attribute_parts, threshold)

    def detect(self, batch) -> Detections:
        attrs, part_boxes = batch["attributes"], batch["part_boxes"]
        if attrs.shape[1] != len(self.attribute_parts):
            raise ValueError(f"batch has {attrs.shape[1]} attributes, the detector knows {len(self.attribute_parts)}")
        e = attrs.shape[1]
        idx = torch.arange(e, device=attrs.device).expand(len(attrs), -1)
        boxes = attribute_part_boxes(part_boxes, self.attribute_parts, idx)
        present = (attrs > self.threshold) & ~torch.isnan(boxes).any(-1)
        return Detections(boxes=boxes, attributes=torch.where(present, idx, -1), scores=attrs.float())


# --------------------------------------------------------------------------- CUB

CUB_PARTS = ("back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing", "nape",
             "right eye", "right leg", "right wing", "tail", "throat")
# The body region each CUB attribute group describes, as CUB part names ("*" = the whole bird).
_CUB_GROUP_PARTS = {
    "bill": ("beak",), "wing": ("left wing", "right wing"), "upperparts": ("back", "nape", "crown"),
    "underparts": ("belly", "breast", "throat"), "breast": ("breast",), "back": ("back",),
    "upper_tail": ("tail",), "under_tail": ("tail",), "tail": ("tail",), "head": ("crown", "forehead", "nape"),
    "throat": ("throat",), "eye": ("left eye", "right eye"), "forehead": ("forehead",), "nape": ("nape",),
    "belly": ("belly",), "leg": ("left leg", "right leg"), "crown": ("crown",),
}


def cub_attribute_parts(attribute_names: Sequence[str], part_names: Sequence[str] = CUB_PARTS) -> torch.Tensor:
    """[E, P] boolean: which CUB parts each attribute describes (all parts for size, shape, primary colour)."""
    out = torch.zeros(len(attribute_names), len(part_names), dtype=torch.bool)
    for i, name in enumerate(attribute_names):
        group = name.split("::")[0].removeprefix("has_")
        region = next((parts for key, parts in sorted(_CUB_GROUP_PARTS.items(), key=lambda kv: -len(kv[0]))
                       if group.startswith(key)), None)
        if region is None:
            out[i] = True
        else:
            for p in region:
                if p in part_names:
                    out[i, list(part_names).index(p)] = True
    return out


class CUBPartDetector:
    """CUB's annotations as a detector: an attribute annotated present is boxed around its parts' locations.

    ``part_locs`` [B, P, 3] (x, y, visible) are in the model input's pixels, or, for a detector made
    by :meth:`for_dataset`, in the original images' (mapped with :meth:`to_input_pixels`). The box of an attribute is the union of ``half``-pixel squares around
    its visible parts. Replace with a trained part/attribute detector by implementing ``detect``.
    """

    def __init__(self, attribute_names: Sequence[str], part_names: Sequence[str] = CUB_PARTS, half: float = 16.0,
                 threshold: float = 0.5, dataset=None):
        self.parts = cub_attribute_parts(attribute_names, part_names)
        self.half, self.threshold = float(half), float(threshold)
        self.dataset = dataset

    @classmethod
    def for_dataset(cls, dataset, half: float | None = None, threshold: float = 0.5) -> "CUBPartDetector":
        """A detector for the ``cub`` adapter's batches: part locations are mapped from the original
        images' pixels to the model input's (the adapter's resize and centre crop) on the fly."""
        if "part_locs" not in dataset.annotations or not dataset.attribute_names:
            raise ValueError(f"data set {dataset.name!r} has no part locations and attributes (CUB's parts/ folder)")
        half = half if half is not None else dataset.image_size / 14  # 16 px at 224
        return cls(dataset.attribute_names, dataset.part_names or CUB_PARTS, half, threshold, dataset)

    @staticmethod
    def to_input_pixels(part_locs: torch.Tensor, sizes: torch.Tensor, image_size: int, resize_to: int) -> torch.Tensor:
        """Map part locations from original pixels (``sizes`` [B, 2] = (width, height)) through the
        resize-shorter-side-then-centre-crop of the ``cub`` adapter; parts cropped away become invisible."""
        w, h = sizes[:, 0:1].float(), sizes[:, 1:2].float()
        scale = resize_to / torch.minimum(w, h)
        nw, nh = torch.clamp(torch.round(w * scale), min=image_size), torch.clamp(torch.round(h * scale), min=image_size)
        left, top = torch.div(nw - image_size, 2, rounding_mode="floor"), torch.div(nh - image_size, 2, rounding_mode="floor")
        x = part_locs[..., 0] * (nw / w) - left
        y = part_locs[..., 1] * (nh / h) - top
        inside = (x >= 0) & (x < image_size) & (y >= 0) & (y < image_size)
        return torch.stack([x, y, part_locs[..., 2] * inside], -1)

    def _input_locs(self, batch) -> torch.Tensor:
        from PIL import Image

        locs = batch["part_locs"]
        if self.dataset is None:
            return locs
        sizes = []
        for i in batch["index"].tolist():
            with Image.open(self.dataset.files[i]) as im:  # reads the header only
                sizes.append(im.size)
        return self.to_input_pixels(locs, torch.tensor(sizes, device=locs.device), self.dataset.image_size,
                                    self.dataset.resize_to)

    def detect(self, batch) -> Detections:
        locs, attrs = self._input_locs(batch), batch["attributes"]
        parts = self.parts.to(locs.device)  # [E, P]
        if attrs.shape[1] != parts.shape[0] or locs.shape[1] != parts.shape[1]:
            raise ValueError(f"batch has {attrs.shape[1]} attributes and {locs.shape[1]} parts; the detector knows "
                             f"{parts.shape[0]} and {parts.shape[1]}")
        visible = locs[..., 2] > 0  # [B, P]
        use = parts[None] & visible[:, None, :]  # [B, E, P]
        inf = torch.tensor(float("inf"), device=locs.device)
        x, y = locs[..., 0][:, None, :], locs[..., 1][:, None, :]
        x0 = torch.where(use, x - self.half, inf).amin(-1)
        y0 = torch.where(use, y - self.half, inf).amin(-1)
        x1 = torch.where(use, x + self.half, -inf).amax(-1)
        y1 = torch.where(use, y + self.half, -inf).amax(-1)
        boxes = torch.stack([x0, y0, x1, y1], -1)
        found = use.any(-1)
        boxes = torch.where(found[..., None], boxes, torch.full_like(boxes, float("nan")))
        idx = torch.arange(attrs.shape[1], device=locs.device).expand(len(attrs), -1)
        present = (attrs > self.threshold) & found
        return Detections(boxes=boxes, attributes=torch.where(present, idx, -1), scores=attrs.float())


# --------------------------------------------------------------------------- localisers


class GradCAMLocaliser:
    """Box around the Grad-CAM map of an attribute's SJE score θ(x)ᵀW[:, a], thresholded at ``threshold`` of its peak.

    Grad-CAM (``advxai.interpreters.cam.GradCAM`` with a score function) reads the model's CAM layer;
    the map is min-max normalised, upsampled to the input, and the box encloses every pixel at or
    above ``threshold``.
    """

    def __init__(self, model, sje, threshold: float = 0.5, batch_size: int = 128):
        from ..interpreters.cam import GradCAM

        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        self.model, self.sje, self.threshold, self.batch_size = model, sje, float(threshold), int(batch_size)
        self.gradcam = GradCAM(model, score_fn=lambda x: sje.project(model.features(x)))

    def maps(self, x: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        """Grad-CAM maps [B, k, H, W] in [0, 1] of each image's attributes [B, k]."""
        b, k = attributes.shape
        xs = x.repeat_interleave(k, 0)
        targets = attributes.reshape(-1).to(x.device)
        parts = [self.gradcam.explain(xs[s:s + self.batch_size], targets[s:s + self.batch_size]).maps.detach()
                 for s in range(0, len(xs), self.batch_size)]
        return torch.cat(parts).view(b, k, *x.shape[-2:])

    def boxes(self, maps: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """Boxes [..., 4] around the pixels of ``maps`` [..., H, W] at or above ``threshold`` of each map's peak."""
        t = self.threshold if threshold is None else float(threshold)
        return boxes_from_masks(maps >= t * maps.amax((-2, -1), keepdim=True).clamp_min(1e-12))

    def localise(self, x: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        return self.boxes(self.maps(x, attributes))


def peak_in_box(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The pointing game: does each map's maximum [..., H, W] fall inside its box [..., 4]? (False for NaN boxes)."""
    w = maps.shape[-1]
    flat = maps.flatten(-2).argmax(-1)
    py, px = (flat // w).float() + 0.5, (flat % w).float() + 0.5  # pixel centres
    boxes = boxes.to(maps.device)
    inside = (px >= boxes[..., 0]) & (px <= boxes[..., 2]) & (py >= boxes[..., 1]) & (py <= boxes[..., 3])
    return inside & ~torch.isnan(boxes).any(-1)


def grounding_scores(pred_boxes: torch.Tensor, true_boxes: torch.Tensor, iou_threshold: float = 0.5
                     ) -> dict[str, torch.Tensor]:
    """``iou`` [B, k] between predicted and ground-truth boxes and ``hit`` (IoU >= ``iou_threshold``)."""
    iou = box_iou(pred_boxes, true_boxes)
    return {"iou": iou, "hit": iou >= iou_threshold}
