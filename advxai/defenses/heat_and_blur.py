"""Heat and Blur (Brama & Grinshpoun): blur the image except its most relevant pixels, then classify.

Algorithm 1, per image:

1. classify the input, ``c = argmax f(x)``;
2. the heat-map of ``c``: deep Taylor decomposition (:class:`~advxai.interpreters.lrp.LRP`, z⁺ in
   hidden layers, z^B at the input) summed over colour channels, then its absolute value;
3. binarise it: ``"mean2std"`` keeps the pixels above ``mean + k * std`` of the map (Eq. 2, k = 2),
   ``"topk"`` keeps the ``top`` fraction of pixels with the largest values (the text's "top 5 %");
4. blur the whole image with a Gaussian of standard deviation ``sigma`` (pixels);
5. put the original pixel values back under the binarised map (every colour channel);
6. classify the cleaned image.

The defense costs two forward passes and one LRP pass per image, all batched. :class:`HeatAndBlur`
is a :class:`~advxai.defenses.base.Defense` (``purify``, ``predict``; ``clean`` returns every step);
:class:`HeatAndBlurChange` uses the cleaning as a squeezer, a detector: the L1 distance between the
softmax outputs of the input and of its cleaned version.

:class:`AdaptiveHeatAndBlur` (registered as the attack ``"adaptive_hb"``) is the paper's
Algorithm 2: an attacker who knows the defense runs an attack, keeps its perturbation only on the
pixels of the (current) binarised heat-map, clips to the allowed range and repeats until the
defended classifier is fooled or ``iterations`` run out. As written (``restrict="after"``), the
inner attack neither knows which pixels will be kept nor aims at the defended classifier: it
spreads its perturbation over the whole image against the undefended model, and most of it is then
thrown away, so the attack is weaker than the same attack without any restriction. Two settings
make it adaptive: ``restrict="during"`` gives the inner attack the heat-map as its step mask (it may
change only those pixels, which is how Sec. 5.2 describes the attacks), and ``through_defense=True``
makes it attack the defended classifier, ``f(where(mask, x, blur(x)))`` with the iteration's mask
held fixed and the blur differentiated (a straight-through treatment of the map, whose own gradient
is of no use). Measured on the digits, the restriction to the map's few pixels is what makes the
attack fail: knowing the map and the defense raises its success only a little, while the same PGD
through the defense on the whole image (``restrict="none", through_defense=True``) is stronger than
PGD against the undefended model.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..attacks.base import Attack
from ..interpreters import Interpreter, get_interpreter
from ..interpreters.ops import gaussian_blur
from ..map_metrics import binarize_topk
from .base import Defense, Detector, check_images

__all__ = ["HeatAndBlur", "HeatAndBlurChange", "CleanResult", "binarize", "mask_iou", "check_sigma",
           "AdaptiveHeatAndBlur", "AdaptiveResult", "DefendedModel", "THRESHOLDS", "RESTRICT"]

THRESHOLDS = ("mean2std", "topk")
RESTRICT = ("after", "during", "none")


def check_sigma(sigma: float) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma (the Gaussian blur's standard deviation, in pixels) must be > 0, got {sigma!r}")
    return float(sigma)


def binarize(heat: torch.Tensor, method: str = "mean2std", k: float = 2.0, top: float = 0.05) -> torch.Tensor:
    """Boolean maps [B, 1, H, W] of the hottest pixels of ``heat`` [B, 1, H, W] (use ``|relevance|``).

    ``"mean2std"``: ``heat > mean + k * std`` per image (Eq. 2; population standard deviation);
    ``"topk"``: exactly ``ceil(top * H * W)`` pixels with the largest values per image.
    """
    if method not in THRESHOLDS:
        raise ValueError(f"unknown binarisation {method!r}; valid: {', '.join(THRESHOLDS)}")
    if heat.dim() != 4 or heat.shape[1] != 1:
        raise ValueError(f"heat-maps must be [B, 1, H, W], got {tuple(heat.shape)}")
    if method == "topk":
        if not (isinstance(top, (int, float)) and 0 < top <= 1):
            raise ValueError(f"top (the kept fraction of pixels) must be in (0, 1], got {top!r}")
        return binarize_topk(heat, top)
    flat = heat.flatten(1)
    thr = flat.mean(1, keepdim=True) + k * flat.std(1, unbiased=False, keepdim=True)
    return (flat > thr).view_as(heat)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Jaccard similarity of two boolean masks per image [B] (1 when both are empty)."""
    if a.shape != b.shape:
        raise ValueError(f"masks must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.flatten(1).bool(), b.flatten(1).bool()
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@dataclass
class CleanResult:
    x_clean: torch.Tensor  # [B, C, H, W] the cleaned images
    blurred: torch.Tensor  # [B, C, H, W] the blurred images (step 4)
    mask: torch.Tensor  # [B, 1, H, W] bool, the restored pixels (step 3)
    heat: torch.Tensor  # [B, 1, H, W] |relevance| of the predicted class (step 2)
    pred_input: torch.Tensor  # [B] the prediction on the input (step 1)
    pred: torch.Tensor  # [B] the prediction on the cleaned image (step 6)
    probs: torch.Tensor  # [B, K] softmax on the cleaned image
    logits: torch.Tensor  # [B, K] logits on the cleaned image
    extras: dict = field(default_factory=dict)


class HeatAndBlur(Defense):
    """Algorithm 1 on a classifier: ``purify(x)`` gives the cleaned images, ``predict(x)`` their labels,
    ``clean(x)`` a :class:`CleanResult` with every step.

    ``interpreter`` is a registered interpreter name (default ``"lrp"``, deep Taylor decomposition)
    or an :class:`~advxai.interpreters.Interpreter`; ``interpreter_settings`` go to it by name.
    """

    name = "heat_and_blur"

    def __init__(self, model: nn.Module, sigma: float = 1.0, threshold: str = "mean2std", k: float = 2.0,
                 top: float = 0.05, interpreter: str | Interpreter = "lrp", batch_size: int = 64,
                 **interpreter_settings):
        super().__init__(model, int(batch_size))
        self.sigma = check_sigma(sigma)
        if threshold not in THRESHOLDS:
            raise ValueError(f"unknown binarisation {threshold!r}; valid: {', '.join(THRESHOLDS)}")
        if not (isinstance(top, (int, float)) and 0 < top <= 1):
            raise ValueError(f"top (the kept fraction of pixels) must be in (0, 1], got {top!r}")
        if not (isinstance(k, (int, float)) and math.isfinite(k)):
            raise ValueError(f"k (standard deviations above the mean) must be a number, got {k!r}")
        self.threshold, self.k, self.top = threshold, float(k), float(top)
        self.interpreter = (interpreter if isinstance(interpreter, Interpreter)
                            else get_interpreter(interpreter, model, **interpreter_settings))

    def heatmap(self, x: torch.Tensor, target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(|relevance| [B, 1, H, W], explained class [B])`` for the predicted class (or ``target``)."""
        expl = self.interpreter(x, target)
        return expl.maps.abs().detach(), expl.target

    def mask(self, heat: torch.Tensor) -> torch.Tensor:
        return binarize(heat, self.threshold, self.k, self.top)

    def blur(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        return gaussian_blur(x, check_sigma(self.sigma if sigma is None else sigma)).clamp(0, 1)

    @torch.no_grad()
    def restore(self, x: torch.Tensor, mask: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """Steps 4-5 for a given mask: the blurred image with the original pixels under the mask."""
        return torch.where(mask, x, self.blur(x, sigma))

    def clean(self, x: torch.Tensor, sigmas: list[float] | None = None) -> CleanResult | list[CleanResult]:
        """Clean ``x`` (in batches; results on the model's device). With ``sigmas``, one result per sigma
        from a single heat-map pass."""
        check_images(x, self.name)
        sig = [self.sigma] if sigmas is None else [check_sigma(s) for s in sigmas]
        dev = self.device
        parts: list[list[CleanResult]] = [[] for _ in sig]
        for start in range(0, len(x), self.batch_size):
            xb = x[start:start + self.batch_size].to(dev)
            heat, pred_in = self.heatmap(xb)
            m = self.mask(heat)
            for i, s in enumerate(sig):
                blurred = self.blur(xb, s)
                clean = torch.where(m, xb, blurred)
                with torch.no_grad():
                    logits = self.model(clean)
                probs = logits.softmax(1)
                parts[i].append(CleanResult(clean, blurred, m, heat, pred_in, probs.argmax(1), probs, logits,
                                            {"sigma": s}))
        if len(x) == 0:  # nothing to clean (e.g. no successful adversarial example): empty results
            with torch.no_grad():
                logits = self.model(x.to(dev))
            empty = torch.zeros(0, 1, *x.shape[2:], device=dev)
            parts = [[CleanResult(x.to(dev), x.to(dev), empty.bool(), empty, logits.argmax(1), logits.argmax(1),
                                  logits.softmax(1), logits, {"sigma": s})] for s in sig]
        out = [_concat(p) for p in parts]
        return out[0] if sigmas is None else out

    def _purify(self, x: torch.Tensor) -> torch.Tensor:
        return self.clean(x).x_clean

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.clean(x).pred

    def __repr__(self) -> str:
        return f"HeatAndBlur(sigma={self.sigma}, threshold={self.threshold!r}, interpreter={self.interpreter.name})"


class HeatAndBlurChange(Detector):
    """Heat and blur used as a squeezer: the score is the L1 distance between the softmax of the input and
    that of its cleaned version (a changed label moves it by up to 2). Nothing to fit.

    ``defense``: the :class:`HeatAndBlur` whose cleaning is compared, or ``None`` to build one on
    ``model`` with ``sigma``, ``threshold`` and ``batch_size``."""

    name = "heat_and_blur_change"

    def __init__(self, model: nn.Module, fpr: float = 0.05, sigma: float = 1.0, threshold: str = "mean2std",
                 batch_size: int = 32, defense: HeatAndBlur | None = None):
        super().__init__(model, fpr, batch_size)
        if defense is not None and defense.model is not model:
            raise ValueError("the heat-and-blur defense must clean for the detector's own model")
        self.defense = defense if defense is not None else HeatAndBlur(model, sigma=sigma, threshold=threshold,
                                                                       batch_size=batch_size)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            p = self.model(x).softmax(1)
        return (p - self.defense.clean(x).probs).abs().sum(1)


def _concat(parts: list[CleanResult]) -> CleanResult:
    def cat(name):
        return torch.cat([getattr(p, name) for p in parts])

    return CleanResult(cat("x_clean"), cat("blurred"), cat("mask"), cat("heat"), cat("pred_input"), cat("pred"),
                       cat("probs"), cat("logits"), dict(parts[0].extras))


class DefendedModel(nn.Module):
    """The defended classifier as one differentiable model for a fixed binarised heat-map:
    ``model(where(mask, x, blur(x)))``, ``mask`` [B, 1, H, W] for the batch it was made for.

    Heat and Blur recomputes its map from each input, a step that has no useful gradient; an attack
    holds the map of the image it starts from (the map changes little under a small perturbation,
    the paper's own observation) and differentiates through the blur and the restoring. It carries
    the model's ``info``, so attacks built on it check inputs and classes as on the model."""

    def __init__(self, defense: "HeatAndBlur", mask: torch.Tensor):
        super().__init__()
        self.model, self.defense = defense.model, defense
        self.info = getattr(defense.model, "info", None)
        self.register_buffer("mask", mask.bool())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.mask.shape[0] and self.mask.shape[0] != 1:
            raise ValueError(f"the defended model holds masks for {self.mask.shape[0]} images, got a batch of "
                             f"{x.shape[0]}: build it for the batch it classifies")
        return self.model(torch.where(self.mask, x, self.defense.blur(x)))


@dataclass
class AdaptiveResult:
    x_adapt: torch.Tensor  # [B, C, H, W] the last iterate (the image itself where nothing was kept)
    success: torch.Tensor  # [B] the defended classifier is fooled
    fooled_plain: torch.Tensor  # [B] the undefended classifier is fooled by x_adapt
    pred_defended: torch.Tensor  # [B]
    pred_plain: torch.Tensor  # [B]
    confidence: torch.Tensor  # [B] the defended classifier's probability of its (wrong) label
    iterations: torch.Tensor  # [B] iterations used (the iteration of success, else the maximum)
    linf: torch.Tensor
    l2: torch.Tensor
    logits_defended: torch.Tensor  # [B, K]

    @property
    def success_rate(self) -> float:
        return self.success.float().mean().item() if len(self.success) else float("nan")


class AdaptiveHeatAndBlur(Attack):
    """Algorithm 2 against ``defense`` (a :class:`HeatAndBlur`; ``None``: built on ``model`` with ``sigma``
    and ``threshold``), with the inner ``attack``: a registered attack's name (built on ``model`` with
    ``attack_params`` and this attack's mode) or an :class:`~advxai.attacks.Attack`.

    Each iteration attacks the current image, copies the inner attack's pixels only where the current
    image's binarised heat-map is on, clips to [0, 1] (and, with ``eps``, to the L-inf ball of radius
    ``eps`` around the original, so the total perturbation keeps the attack's budget), and stops for
    the images the defended classifier now mislabels (or labels ``target``).

    ``restrict``: ``"after"`` (Algorithm 2 as written: the inner attack perturbs the whole image, only
    the heat-map pixels are kept), ``"during"`` (the heat-map is the inner attack's step mask, so it
    spends its budget on those pixels alone; the inner attack must take ``step_mask``, as PGD, BIM, FGSM
    and C&W do) or ``"none"`` (the whole perturbation is kept: no longer Algorithm 2, but with
    ``through_defense`` the reference adaptive attack). ``through_defense``: the inner attack's model
    is the :class:`DefendedModel` of the current image's map instead of the undefended classifier.
    ``"during"`` and ``through_defense`` rebuild the inner attack for every iteration, so it must be
    given by name. ``threshold``, ``top`` and ``sigma`` describe the defense built when ``defense``
    is ``None``.

    Called like every attack, its result's ``success`` says whether the *undefended* model is fooled
    (what an adversarial image is to every other member of the study); ``extras`` hold
    ``defended_success`` and ``iterations``. :meth:`run` returns the whole :class:`AdaptiveResult`.
    """

    name = "adaptive_hb"

    def __init__(self, model: nn.Module, defense: HeatAndBlur | None = None, attack: "str | Attack" = "pgd",
                 attack_params: dict | None = None, iterations: int = 5, eps: float | None = None,
                 sigma: float = 1.0, threshold: str = "mean2std", top: float = 0.05, targeted: bool = False,
                 seed: int = 0, batch_size: int | None = None, restrict: str = "after",
                 through_defense: bool = False):
        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        if restrict not in RESTRICT:
            raise ValueError(f"unknown restrict {restrict!r}; valid: {', '.join(RESTRICT)}")
        if not isinstance(through_defense, bool):
            raise ValueError(f"through_defense must be True or False, got {through_defense!r}")
        if defense is None:
            defense = HeatAndBlur(model, sigma=sigma, threshold=threshold, top=top)
        elif defense.model is not model:
            raise ValueError("the heat-and-blur defense must defend the attacked model")
        rebuild = restrict == "during" or through_defense  # the inner attack depends on each iteration's map
        if isinstance(attack, str):
            from ..attacks import get_attack

            params = dict(attack_params or {})
            if rebuild and ("step_mask" in params or "batch_size" in params):
                raise ValueError("with restrict='during' or through_defense the heat-map is the inner attack's step "
                                 "mask and its batch is the whole batch: do not set step_mask or batch_size")
            self._inner = (attack, params)
            attack = get_attack(attack, model, targeted=targeted, **params)
        elif attack_params:
            raise ValueError("attack_params go to an attack given by name, not to a built one")
        elif rebuild:
            raise ValueError("restrict='during' and through_defense rebuild the inner attack in every iteration: "
                             "give it by name (attack='pgd', attack_params={...})")
        if attack.targeted != targeted:
            raise ValueError(f"the inner attack is {'targeted' if attack.targeted else 'untargeted'}, this one is not")
        if restrict == "during":
            if "step_mask" not in inspect.signature(type(attack).__init__).parameters:
                raise ValueError(f"restrict='during' needs an inner attack that takes a step mask (pgd, bim, fgsm, cw, ...), "
                                 f"not {attack.name!r}")
        self.defense, self.attack, self.iterations = defense, attack, iterations
        self.eps = None if eps is None else float(eps)
        self.restrict, self.through_defense = restrict, through_defense

    def inner_attack(self, mask: torch.Tensor) -> Attack:
        """The inner attack for one iteration whose current images have the binarised maps ``mask``."""
        if self.restrict != "during" and not self.through_defense:
            return self.attack
        from ..attacks import get_attack

        name, params = self._inner
        model = DefendedModel(self.defense, mask) if self.through_defense else self.model
        if self.restrict == "during":
            params = {**params, "step_mask": mask.float()}
        return get_attack(name, model, targeted=self.targeted, **params)

    def run(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> AdaptiveResult:
        """Algorithm 2 on a batch: the full record (defended and undefended predictions, iterations used)."""
        defense, iterations, eps = self.defense, self.iterations, self.eps
        dev = self.device
        x, y = x.to(dev), y.to(dev)
        target = None if target is None else target.to(dev)
        cur = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=dev)
        used = torch.full((len(x),), iterations, device=dev)
        for it in range(iterations):
            todo = (~done).nonzero().flatten()
            if len(todo) == 0:
                break
            xi = cur[todo]
            heat, _ = defense.heatmap(xi)
            m = defense.mask(heat)
            res = self.inner_attack(m)(xi, y[todo], None if target is None else target[todo])
            kept = res.x_adv.to(dev) if self.restrict == "none" else torch.where(m, res.x_adv.to(dev), xi)
            new = kept.clamp(0, 1)
            if eps is not None:
                new = torch.max(torch.min(new, x[todo] + eps), x[todo] - eps).clamp(0, 1)
            cur[todo] = new
            pred = defense.clean(new).pred
            fooled = pred == target[todo] if target is not None else pred != y[todo]
            done[todo[fooled]] = True
            used[todo[fooled]] = it + 1
        final = defense.clean(cur)
        with torch.no_grad():
            plain = self.model(cur).argmax(1)
        success = final.pred == target if target is not None else final.pred != y
        d = (cur - x).flatten(1)
        return AdaptiveResult(cur, success, plain != y if target is None else plain == target, final.pred, plain,
                              final.probs.gather(1, final.pred[:, None]).squeeze(1), used, d.abs().amax(1),
                              d.norm(dim=1), final.logits)

    def perturb(self, x, y, target):
        res = self.run(x, y, target)
        self._extras = {"defended_success": res.success, "iterations": res.iterations.float()}
        return res.x_adapt
