"""The arena: every attack of the study against every detector and defense, on the same images.

Every member is a defense's own class, speaking one protocol (:mod:`advxai.defenses.base`): a
**detector** gives every input a score (higher = more suspicious), is fitted where it learns
(``fit(x_benign, x_adversarial)``, the supervised multi-interpreter detector) and calibrated on
benign images so that at most ``fpr`` of them are flagged (``calibrate``); its number in the arena
is the **detection rate**, the share of successful adversarial inputs flagged. A **defense**
relabels inputs (``predict``); its number is the **robust accuracy**, the share of attacked inputs
given their true label.

* :mod:`~advxai.arena.members`: the members by name (:data:`MEMBERS`, :func:`get_member`,
  :func:`build_members`, their table labels :data:`LABELS`);
* :mod:`~advxai.arena.attacks`: the study's attacks by name (:func:`study_attacks`), crafted or
  loaded from the cache (:func:`craft`);
* :mod:`~advxai.arena.matrix`: :class:`Arena` (calibrate once, evaluate every attack against every
  member as tidy records), :func:`matrix` and :func:`plot_matrix`;
* :mod:`~advxai.arena.claims`: the arena's own claims, computed from the matrix (:func:`cross_claims`);
* :mod:`~advxai.arena.study`: the chapter's experiments (:func:`prepare`, :func:`run_attacks`,
  :func:`build_arena`, :func:`evaluate`) and :mod:`~advxai.arena.reading`: what the matrix shows
  (:func:`read_matrix`, :func:`extra_rows_text`, :func:`conclusions`).
"""
from ..defenses.aid import AIDDetector, MapAgreement, map_disagreement, trained_rts
from ..defenses.base import Defense, Detector, Undefended, detection_rate, threshold_at_fpr
from .attacks import ADV2_BUDGETS, KINDS, ArenaAttack, adaptive_rows, adv2_source, as_result, craft, study_attacks
from .claims import NOTHING_LEFT, PAPER_CLAIMS, cluster_interval, cross_claims, pooled, weighted
from .matrix import Arena, auc, matrix, plot_matrix
from .members import DETECTORS, LABELS, MEMBERS, build_members, get_member, member_kind
from .reading import FAMILIES, Reading, conclusions, extra_rows_text, read_matrix
from .study import Attacks, Matrix, Members, Setup, available_members, build_arena, evaluate, member_settings, \
    prepare, run_attacks, setting_frame

arena_rts = trained_rts  # the name the arena's attacks and chapter 6 first used

__all__ = ["Arena", "ArenaAttack", "KINDS", "ADV2_BUDGETS", "adv2_source", "PAPER_CLAIMS", "NOTHING_LEFT",
           "cluster_interval", "pooled", "available_members", "MEMBERS", "DETECTORS", "LABELS", "get_member",
           "build_members", "member_kind", "study_attacks", "adaptive_rows", "craft", "as_result", "matrix",
           "plot_matrix", "auc", "cross_claims", "weighted", "Detector", "Defense", "Undefended", "threshold_at_fpr",
           "detection_rate", "AIDDetector", "MapAgreement", "map_disagreement", "arena_rts", "trained_rts", "Setup",
           "prepare", "setting_frame", "Attacks", "run_attacks", "member_settings", "Members", "build_arena",
           "Matrix", "evaluate", "FAMILIES", "Reading", "read_matrix", "extra_rows_text", "conclusions"]
