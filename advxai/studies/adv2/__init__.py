"""The experiments of chapter 3: Zhang et al., *Interpretable Deep Learning under Fire* (ADV²).

ADV² fools a classifier into a class the adversary chose while the interpreter's map of the
adversarial input stays the one the adversary chose too (by default the benign map). Each function
runs one experiment of the paper on a :class:`Study` (the classifiers, their interpreters and the
attacked images, built by :func:`prepare` from the chapter's parameters) and returns a tidy table
plus what its figure needs; attacks run as jobs on the chapter's engine (:mod:`advxai.engine`):

* :func:`localisation` -- Table 2, the interpreters' weakly supervised localisation;
* :func:`attack_effectiveness` -- Table 3, Fig. 4, Figs. 5-6 and Table 13: PGD and ADV² on every
  model and interpreter (:func:`table3`, :func:`table13` summarise it);
* :func:`feature_squeezing`, :func:`squeezing_maps` -- Tables 4-5: basic and adaptive ADV² against
  feature squeezing;
* :func:`stadv_study` -- Figs. 9-10: ADV² on the StAdv framework;
* :func:`gradcam_study` -- appendix A1, Table 10: ADV² against Grad-CAM;
* :func:`random_targets_study` -- Tables 6-8, Figs. 11-13: random patch and random class targets;
* :func:`transfer_study` -- Table 9: transfer between interpreters;
* :func:`proposition1` -- Proposition 1 with integrated gradients;
* :func:`aid_study` -- Figs. 15-16: adversarial interpretation distillation, with a control.

The figures are in :mod:`advxai.studies.adv2.figures`.
"""
from .aid import VARIANTS, AIDStudy, aid_study
from .effectiveness import (Effectiveness, attack_effectiveness, describe_attacks, iou_curves, localisation,
                            localisation_table, table3, table13)
from .evasion import GradCAMStudy, Squeezing, StAdvStudy, feature_squeezing, gradcam_study, squeezing_maps, stadv_study
from .gap import RandomTargets, Transfer, proposition1, proposition1_table, random_targets_study, transfer_study
from .setup import INTERPRETER_NAMES, LABEL, Study, batched_maps, concat_tables, prepare, setup_table

__all__ = ["VARIANTS", "AIDStudy", "aid_study", "Effectiveness", "attack_effectiveness", "describe_attacks",
           "iou_curves", "localisation", "localisation_table", "table3", "table13", "GradCAMStudy", "Squeezing",
           "StAdvStudy", "feature_squeezing", "gradcam_study", "squeezing_maps", "stadv_study", "RandomTargets",
           "Transfer", "proposition1", "proposition1_table", "random_targets_study", "transfer_study",
           "INTERPRETER_NAMES", "LABEL", "Study", "batched_maps", "concat_tables", "prepare", "setup_table"]
