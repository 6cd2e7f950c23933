"""Attacks by name: ``get_attack("pgd", model, eps=8/255, steps=10)``.

Every attack is a callable object: ``attack(x, y)`` (untargeted) or ``attack(x, y, target=t)``
(built with ``targeted=True``), returning an :class:`AttackResult`. PGD (and C&W) are frameworks:
they take extra objective terms and a per-pixel step mask, so interpretation-aware and
edge-restricted attacks are built on them rather than beside them.
"""
from __future__ import annotations

from ..registry import Registry
from .base import Attack, AttackResult, check_budget, perturbation_norms
from .cw import CW
from .boundary import Boundary
from .deepfool import DeepFool
from .lbfgs import LBFGS
from .gradient import BIM, FGSM, PGD, project, resolve_mask
from .objectives import AttackState, Objective, PredictionLoss, margin
from .patch import LaVAN, AdversarialPatch, PatchAttack

ATTACKS = Registry("attack")
ATTACKS.register("fgsm", "fast gradient sign method (one L-inf step of size eps)")(FGSM)
ATTACKS.register("bim", "basic iterative method / I-FGSM (L-inf steps from the image, no random start)")(BIM)
ATTACKS.register("pgd", "projected gradient descent, L-inf or L2, optional random start; a framework")(PGD)
ATTACKS.register("cw", "Carlini & Wagner L2 (tanh space, Adam, binary search over c, confidence kappa); a framework")(CW)
ATTACKS.register("deepfool", "DeepFool, L2, untargeted, with overshoot")(DeepFool)
ATTACKS.register("lbfgs", "box-constrained L-BFGS (Szegedy et al.), targeted, search over the distance weight c")(LBFGS)
ATTACKS.register("boundary", "Boundary attack (Brendel et al.), decision-based, untargeted, L2")(Boundary)
ATTACKS.register("patch", "adversarial patch (Brown et al.): universal, targeted, learned over random location, "
                 "scale and rotation; fit(images) first")(AdversarialPatch)
ATTACKS.register("lavan", "LaVAN (Karmon et al.): universal, targeted, small square patch at a random "
                 "or fixed location; fit(images) first")(LaVAN)


def get_attack(name: str, model, **params) -> Attack:
    """The attack ``name`` on ``model`` with its settings (see each class for the parameters)."""
    return ATTACKS.get(name, model, **params)


def list_attacks() -> list[str]:
    return ATTACKS.names()


__all__ = ["ATTACKS", "Attack", "AttackResult", "AttackState", "BIM", "Boundary", "CW", "DeepFool", "LBFGS", "FGSM", "Objective", "PGD", "PredictionLoss",
           "AdversarialPatch", "LaVAN", "PatchAttack",
           "check_budget", "get_attack", "list_attacks", "margin", "perturbation_norms", "project", "resolve_mask"]


from .store import adversarial_set, random_targets  # noqa: E402  (the store looks attacks up in ATTACKS)

__all__ += ["adversarial_set", "random_targets"]

from .adv2 import ADV2, ADV2CW, ADV2Mask, make_adv2, make_adv2_cw  # noqa: E402

ATTACKS.register("adv2", "ADV² (Zhang et al.): targeted PGD that also keeps a chosen interpretation; "
                 "interpreter=grad|cam|gradcam|rts|mask, budget=paper|quick|smoke")(make_adv2)
ATTACKS.register("adv2_cw", "ADV² on Carlini & Wagner L2: the interpretation term added to the C&W objective "
                 "(MASK: its look-ahead term)")(make_adv2_cw)

__all__ += ["ADV2", "ADV2CW", "ADV2Mask", "make_adv2", "make_adv2_cw"]

from .stadv import ADV2StAdv, StAdv, make_adv2_stadv  # noqa: E402

ATTACKS.register("stadv", "StAdv (Xiao et al.): a smooth flow field, bilinear resampling, Adam; a framework")(StAdv)
ATTACKS.register("adv2_stadv", "ADV² on StAdv: the interpretation term added to the flow attack "
                 "(interpreter=grad|cam|gradcam|rts|mask, budget=full|quick|smoke)")(make_adv2_stadv)

__all__ += ["ADV2StAdv", "StAdv", "make_adv2_stadv"]


def _defined_in(module: str, name: str):
    """A factory that imports ``advxai.<module>`` on first use: the adaptive attacks live beside the defense
    they adapt to, a layer above the attacks, so the registry names them without importing them."""
    import importlib

    def build(*args, **kwargs):
        return getattr(importlib.import_module(f"advxai.{module}"), name)(*args, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{name} from advxai.{module} (imported on first use)."
    return build


ATTACKS.register("adaptive_adv2_fs", "ADV² adapted to feature squeezing (Zhang et al.): the squeezer's disagreement "
                 "in the objective, or a two-stage search for bit depth; squeezer=<name> or the detector")(
    _defined_in("defenses.feature_squeezing", "AdaptiveADV2"))
ATTACKS.register("adaptive_hb", "heat and blur's Algorithm 2 (Brama & Grinshpoun): an inner attack's perturbation kept "
                 "on the defense's heat-map pixels, repeated; defense=HeatAndBlur, attack=<name>")(
    _defined_in("defenses.heat_and_blur", "AdaptiveHeatAndBlur"))
ATTACKS.register("adaptive_aid", "ADV² against RTS^A (AID-distilled RTS), optionally also pulling the AID detector's "
                 "two maps together (match_weight > 0); detector=AIDDetector or the decoders' budgets")(
    _defined_in("defenses.aid", "AdaptiveAID"))
ATTACKS.register("interpretation_pgd", "PGD that maximises the 2-class CAM discrepancy (Boopathy et al.): the inner "
                 "attack of interpretation-robust training, untargeted")(
    _defined_in("defenses.interpretation_robust", "InterpretationPGD"))
