"""The arena's members by name: every detector and defense of the study, built on one model.

========================  =========  ===========================================================
``ig_masking``            detector   Jha et al.: IG, mask the top positive pixels; score ``-rho``
``feature_squeezing``     detector   Xu et al.: max L1 between softmax of x and of its squeezings
``heat_and_blur_change``  detector   Brama & Grinshpoun's cleaning used as a squeezer: L1 between
                                     softmax of x and of the heat-and-blurred x
``multi_interpreter``     detector   Abdukhamidov et al.: stacked maps of several interpreters,
                                     frozen features, gradient boosting (supervised)
``sje_disagreement``      detector   new here: SJE (Gulshad et al.) on the model's own features
                                     against its softmax; score = how far SJE prefers another class
``aid``                   detector   Zhang et al.'s AID: per-pixel L1 between the RTS map and the
                                     RTS^A map (RTS distilled with AID) of the predicted class
``undefended``            defense    the model itself (the baseline robust accuracy)
``heat_and_blur``         defense    the heat-and-blur cleaned input's label
``adversarial_training``  defense    a PGD adversarially trained copy of the model labels the inputs
                                     (the ``robust`` attack kind crafts white-box against this copy)
========================  =========  ===========================================================

Every member is the defense's own class (each implements :mod:`advxai.defenses.base`'s protocol);
the builders here only fix the arena's defaults (batch sizes, the squeezers, the IG grid). Each
name has a short label for tables (:data:`LABELS`).
"""
from __future__ import annotations

from typing import Sequence

from ..defenses.base import Defense, Detector, Undefended
from ..registry import Registry

__all__ = ["MEMBERS", "DETECTORS", "LABELS", "get_member", "build_members", "member_kind"]

MEMBERS = Registry("arena member")
DETECTORS = MEMBERS  # the name chapter 6 first used for the registry (it holds the defenses too)


def _member(name: str, label: str, kind: str, description: str):
    return MEMBERS.register(name, f"{kind}: {description}", label=label, kind=kind)


@_member("ig_masking", "IG masking", "detector", "IG causal masking (Jha et al.), score -rho")
def _ig_masking(model, fpr: float = 0.05, epsilon: float = 0.01, max_delta: float = 0.3, fraction_of: str = "positive",
                ig_steps: int = 16, batch_size: int = 32):
    from ..defenses.causal_masking import CausalMasking

    return CausalMasking(model, epsilon=epsilon, max_delta=max_delta, fraction_of=fraction_of, steps=ig_steps,
                         batch_size=batch_size, fpr=fpr)


@_member("feature_squeezing", "feature squeezing", "detector", "feature squeezing (Xu et al.), joint L1 score")
def _feature_squeezing(model, fpr: float = 0.05, squeezers: Sequence[str] = ("bit_depth_3", "median_3x3"),
                       batch_size: int = 64):
    from ..defenses.feature_squeezing import FeatureSqueezing

    return FeatureSqueezing(model, squeezers=list(squeezers), fpr=fpr, batch_size=batch_size)


@_member("heat_and_blur_change", "H&B change", "detector", "L1 between softmax of x and of heat-and-blur(x)")
def _heat_and_blur_change(model, fpr: float = 0.05, sigma: float = 1.0, threshold: str = "mean2std",
                          batch_size: int = 32):
    from ..defenses.heat_and_blur import HeatAndBlurChange

    return HeatAndBlurChange(model, fpr, sigma=sigma, threshold=threshold, batch_size=batch_size)


@_member("multi_interpreter", "multi-interpreter", "detector",
         "stacked interpreter maps + gradient boosting (supervised)")
def _multi_interpreter(model, fpr: float = 0.05, interpreters: Sequence[str] = ("grad", "cam"), extractor=None,
                       product: bool = False, booster: str = "gb", seed: int = 0, batch_size: int = 64,
                       **booster_params):
    """``extractor``: a model whose frozen features read the maps (:class:`ModelFeatures`), or ``None`` for
    the pooled maps themselves (:class:`PixelFeatures`)."""
    from ..defenses.multi_interpreter import ModelFeatures, MultiInterpreterDetector, PixelFeatures
    from ..interpreters import get_interpreter

    if not interpreters:
        raise ValueError("the multi-interpreter detector needs at least one interpreter")
    feats = PixelFeatures() if extractor is None else ModelFeatures(extractor)
    return MultiInterpreterDetector(feats, [get_interpreter(n, model) for n in interpreters], booster=booster,
                                    product=product, seed=seed, fpr=fpr, batch_size=batch_size, **booster_params)


@_member("sje_disagreement", "SJE disagreement", "detector", "SJE vs softmax on the same features")
def _sje_disagreement(model, fpr: float = 0.05, **settings):
    from ..attributes.disagreement import SJEDisagreement

    return SJEDisagreement(model, fpr, **settings)


@_member("aid", "AID", "detector", "L1 between the RTS and the AID-distilled RTS^A maps (Zhang et al.)")
def _aid(model, fpr: float = 0.05, **settings):
    from ..defenses.aid import AIDDetector

    return AIDDetector(model, fpr, **settings)


@_member("undefended", "undefended", "defense", "the model itself (baseline robust accuracy)")
def _undefended(model, batch_size: int = 64):
    return Undefended(model, batch_size)


@_member("heat_and_blur", "heat and blur", "defense", "heat-and-blur cleaning (Brama & Grinshpoun, Algorithm 1)")
def _heat_and_blur(model, sigma: float = 1.0, threshold: str = "mean2std", batch_size: int = 32):
    from ..defenses.heat_and_blur import HeatAndBlur

    return HeatAndBlur(model, sigma=sigma, threshold=threshold, batch_size=batch_size)


@_member("adversarial_training", "adv. training", "defense", "a PGD adversarially trained copy of the model")
def _adversarial_training(model, eps: float = 0.025, train_budget: str = "full", batch_size: int = 64, **config):
    from ..defenses.adversarial_training import AdversarialTraining

    return AdversarialTraining(model, eps=eps, train_budget=train_budget, batch_size=batch_size, **config)


LABELS: dict[str, str] = {e.name: e.meta["label"] for e in MEMBERS.entries()}


def member_kind(name: str) -> str:
    """``"detector"`` or ``"defense"`` (unknown names fail with the valid ones)."""
    return MEMBERS.check(name).meta["kind"]


def get_member(name: str, model, **settings) -> Detector | Defense:
    """The arena member ``name`` on ``model`` (unknown names fail with the valid ones)."""
    return MEMBERS.get(name, model, **settings)


def build_members(names: Sequence[str], model, fpr: float = 0.05, settings: dict[str, dict] | None = None,
                  on_build=None) -> dict[str, Detector | Defense]:
    """``{label: member}`` for ``names`` in order: detectors at the benign false-positive rate ``fpr``,
    each member with its ``settings[name]`` (settings may name members not built). Every name is checked
    before anything is built (building can train models); ``on_build(name)`` is a context manager entered around each build (a timer)."""
    import contextlib

    settings = dict(settings or {})
    for name in names:
        MEMBERS.check(name)
    for name in settings:  # settings of members left out of this arena are allowed; misspelt names are not
        MEMBERS.check(name)
    out = {}
    for name in names:
        extra = {"fpr": fpr} if member_kind(name) == "detector" else {}
        with (on_build(name) if on_build is not None else contextlib.nullcontext()):
            out[LABELS[name]] = get_member(name, model, **extra, **settings.get(name, {}))
    return out
