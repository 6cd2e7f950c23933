"""Attribute prediction and grounding (Gulshad et al.): structured joint embedding (SJE) on a
classifier's features, attribute selection and the distance analyses, grounding on the image."""
from .analysis import PANELS, attribute_distances, changed_attribute_mask, masked_distance, select_attributes
from .grounding import (AnnotationDetector, CUBPartDetector, Detections, Detector, GradCAMLocaliser, Localiser,
                        attribute_part_boxes, box_iou, boxes_from_masks, ground, grounding_scores, peak_in_box)
from .sje import SJE, SJEConfig, dataset_class_attributes, extract_features, normalize_class_attributes
from .disagreement import SJEDisagreement

__all__ = [
    "SJE", "SJEConfig", "dataset_class_attributes", "extract_features", "normalize_class_attributes",
    "PANELS", "attribute_distances", "changed_attribute_mask", "masked_distance", "select_attributes",
    "AnnotationDetector", "CUBPartDetector", "Detections", "Detector", "GradCAMLocaliser", "Localiser",
    "attribute_part_boxes", "box_iou", "boxes_from_masks", "ground", "grounding_scores", "peak_in_box",
    "SJEDisagreement",
]
