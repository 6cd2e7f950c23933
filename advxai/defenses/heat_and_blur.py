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

The defense costs two forward passes and one LRP pass per image, all batched.

:func:`adaptive_attack` is the paper's Algorithm 2: an attacker who knows the defense runs an
attack, keeps its perturbation only on the pixels of the (current) binarised heat-map, clips to the
allowed range and repeats until the defended classifier is fooled or ``iterations`` run out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..interpreters import Interpreter, get_interpreter
from ..interpreters.ops import gaussian_blur
from ..map_metrics import binarize_topk

__all__ = ["HeatAndBlur", "CleanResult", "binarize", "mask_iou", "check_sigma", "adaptive_attack", "AdaptiveResult",
           "THRESHOLDS"]

THRESHOLDS = ("mean2std", "topk")


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


class HeatAndBlur:
    """Algorithm 1 on a classifier; ``defense(x)`` returns a :class:`CleanResult`.

    ``interpreter`` is a registered interpreter name (default ``"lrp"``, deep Taylor decomposition)
    or an :class:`~advxai.interpreters.Interpreter`; ``interpreter_settings`` go to it by name.
    """

    def __init__(self, model: nn.Module, sigma: float = 1.0, threshold: str = "mean2std", k: float = 2.0,
                 top: float = 0.05, interpreter: str | Interpreter = "lrp", batch_size: int = 64,
                 **interpreter_settings):
        self.model = model
        self.sigma = check_sigma(sigma)
        if threshold not in THRESHOLDS:
            raise ValueError(f"unknown binarisation {threshold!r}; valid: {', '.join(THRESHOLDS)}")
        if not (isinstance(top, (int, float)) and 0 < top <= 1):
            raise ValueError(f"top (the kept fraction of pixels) must be in (0, 1], got {top!r}")
        if not (isinstance(k, (int, float)) and math.isfinite(k)):
            raise ValueError(f"k (standard deviations above the mean) must be a number, got {k!r}")
        self.threshold, self.k, self.top, self.batch_size = threshold, float(k), float(top), int(batch_size)
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

    def __call__(self, x: torch.Tensor, sigmas: list[float] | None = None) -> CleanResult | list[CleanResult]:
        """Clean ``x`` (in batches). With ``sigmas``, one result per sigma from a single heat-map pass."""
        if x.dim() != 4:
            raise ValueError(f"images must be [B, C, H, W], got {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"images must be in [0, 1] (got [{x.min():.3f}, {x.max():.3f}])")
        sig = [self.sigma] if sigmas is None else [check_sigma(s) for s in sigmas]
        dev = next(self.model.buffers()).device
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

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The defended classifier's labels."""
        return self(x).pred


def _concat(parts: list[CleanResult]) -> CleanResult:
    def cat(name):
        return torch.cat([getattr(p, name) for p in parts])

    return CleanResult(cat("x_clean"), cat("blurred"), cat("mask"), cat("heat"), cat("pred_input"), cat("pred"),
                       cat("probs"), cat("logits"), dict(parts[0].extras))


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


def adaptive_attack(defense: HeatAndBlur, attack, x: torch.Tensor, y: torch.Tensor, iterations: int = 5,
                    target: torch.Tensor | None = None, eps: float | None = None) -> AdaptiveResult:
    """Algorithm 2 against ``defense`` with ``attack`` (an :class:`~advxai.attacks.Attack`).

    Each iteration attacks the current image, copies the attack's pixels only where the current
    image's binarised heat-map is on, clips to [0, 1] (and, with ``eps``, to the L-inf ball of
    radius ``eps`` around the original, so the total perturbation keeps the attack's budget), and
    stops for the images the defended classifier now mislabels (or labels ``target``).
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    dev = next(defense.model.buffers()).device
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
        res = attack(xi, y[todo], None if target is None else target[todo])
        heat, _ = defense.heatmap(xi)
        m = defense.mask(heat)
        new = torch.where(m, res.x_adv.to(dev), xi).clamp(0, 1)
        if eps is not None:
            new = torch.max(torch.min(new, x[todo] + eps), x[todo] - eps).clamp(0, 1)
        cur[todo] = new
        pred = defense(new).pred
        fooled = pred == target[todo] if target is not None else pred != y[todo]
        done[todo[fooled]] = True
        used[todo[fooled]] = it + 1
    final = defense(cur)
    with torch.no_grad():
        plain = defense.model(cur).argmax(1)
    success = final.pred == target if target is not None else final.pred != y
    d = (cur - x).flatten(1)
    return AdaptiveResult(cur, success, plain != y if target is None else plain == target, final.pred, plain,
                          final.probs.gather(1, final.pred[:, None]).squeeze(1), used, d.abs().amax(1), d.norm(dim=1),
                          final.logits)
