"""Feature squeezing (Xu et al.): a detector of adversarial inputs, and ADV² adapted to evade it.

A *squeezer* removes detail an adversary may exploit; an input is flagged when the model's softmax
output changes much under squeezing: ``score(x) = max_k || f(x) - f(psi_k(x)) ||_1`` over the
squeezers ``psi_k``, compared with a threshold calibrated on benign inputs so that at most a stated
fraction of them (the false-positive rate, 5 % by default as in Xu et al.) is flagged
(:class:`FeatureSqueezing`, a :class:`~advxai.defenses.base.Detector`).

Squeezers (all batched torch functions of [B, C, H, W] images in [0, 1], differentiable where the
operation allows, so adaptive attacks can differentiate through them):

* ``bit_depth(x, bits)``: ``round(x (2^bits - 1)) / (2^bits - 1)`` (2 and 3 bits in Zhang et al.'s
  Table 4); its gradient is zero almost everywhere, hence the two-stage attack below;
* ``median_filter(x, size)``: the per-channel median over a ``size`` x ``size`` window (3x3 in the
  paper), borders padded by repeating the edge (for 3x3 this is scipy's ``mode="reflect"``);
* ``nl_means(x, search, patch, h)``: non-local means as OpenCV defines it (``11-3-4``: an 11x11
  search window, 3x3 patches, filter strength 4 grey levels): each pixel becomes the average of the
  pixels in its search window weighted by ``exp(-d^2 / h^2)``, ``d^2`` the mean squared difference
  between the two 3x3 patches over pixels and channels; borders are mirrored. One pass over the
  search offsets, all images at once.

Adaptive ADV² (Zhang et al.'s Algorithm 2):

* smoothing squeezers (median, non-local means): the ADV² objective gains ``w * l_sqz``, the
  cross-entropy between the predictions of the input and of its squeezed version
  (:class:`SqueezeLoss`), so the squeezed input is classified like the adversarial one;
* bit-depth reduction (no useful gradient): two stages. (i) PGD in the squeezed space: from
  ``psi(x)``, targeted sign steps of one quantisation level ``1 / (2^bits - 1)`` (the paper's
  ``1/2^i``), each followed by squeezing, keep ``x_+`` within ``plus_eps`` of ``x``; (ii) ADV² within the
  eps-ball of ``x`` with the extra term ``|| f(x') - f(x_+) ||_1`` (:class:`ProbabilityMatch`) so the
  adversarial input is classified as confidently as its squeezed counterpart.

:class:`AdaptiveADV2` (``get_attack("adaptive_adv2_fs", model, interpreter, squeezer)``) builds either, on
top of :func:`~advxai.attacks.adv2.make_adv2` (PGD-based ADV² for GRAD/CAM/RTS, the bilevel one for MASK).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..attacks.base import Attack
from ..attacks.objectives import AttackState
from .base import Detector, check_images

__all__ = ["bit_depth", "median_filter", "nl_means", "SQUEEZERS", "get_squeezer", "FeatureSqueezing",
           "SqueezeLoss", "ProbabilityMatch", "AdaptiveADV2", "PAPER_SQUEEZERS"]


# --------------------------------------------------------------------------------------------- squeezers

def bit_depth(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Reduce every value to ``2^bits`` levels in [0, 1]."""
    if not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an integer in [1, 8], got {bits!r}")
    levels = 2 ** bits - 1
    return torch.round(x * levels) / levels


def median_filter(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Per-channel median over ``size`` x ``size`` windows (edge-replicated borders; for an even size the
    window reaches one pixel further right/down, and the lower median is taken)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if size == 1:
        return x
    b, c, h, w = x.shape
    lo, hi = (size - 1) // 2, size // 2
    padded = F.pad(x, (lo, hi, lo, hi), mode="replicate")
    patches = F.unfold(padded.reshape(b * c, 1, h + size - 1, w + size - 1), size)  # [B*C, size*size, H*W]
    return patches.median(dim=1).values.view(b, c, h, w)


def nl_means(x: torch.Tensor, search: int = 11, patch: int = 3, h: float = 4 / 255, cutoff: float | None = None
             ) -> torch.Tensor:
    """Non-local means (OpenCV's definition): ``search`` x ``search`` window, ``patch`` x ``patch`` patches,
    weights ``exp(-d^2 / h^2)`` with ``d^2`` the mean squared patch difference over pixels and channels.
    ``cutoff`` (optional) drops weights with ``d^2 / h^2`` above it (scikit-image uses 5)."""
    if search % 2 == 0 or patch % 2 == 0 or search < 1 or patch < 1:
        raise ValueError(f"search window and patch must be odd sizes, got {search} and {patch}")
    if not h > 0:
        raise ValueError(f"h must be positive, got {h!r}")
    b, c, height, width = x.shape
    d, r = search // 2, patch // 2
    pad = d + r
    mode = "reflect" if pad < min(height, width) else "replicate"
    xp = F.pad(x, (pad, pad, pad, pad), mode=mode)
    centre = xp[..., d:d + height + 2 * r, d:d + width + 2 * r]
    num = torch.zeros_like(x)
    den = x.new_zeros(b, 1, height, width)
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            shifted = xp[..., d + dy:d + dy + height + 2 * r, d + dx:d + dx + width + 2 * r]
            dist = (centre - shifted).pow(2).mean(1, keepdim=True)
            dist = F.avg_pool2d(dist, patch, stride=1) / (h * h)
            weight = torch.exp(-dist)
            if cutoff is not None:
                weight = torch.where(dist > cutoff, torch.zeros_like(weight), weight)
            num = num + weight * shifted[..., r:r + height, r:r + width]
            den = den + weight
    return num / den


@dataclass(frozen=True)
class Squeezer:
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    kind: str  # "bit_depth" (no gradient) or "smoothing"
    description: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


SQUEEZERS: dict[str, Squeezer] = {
    "bit_depth_1": Squeezer("bit_depth_1", lambda x: bit_depth(x, 1), "bit_depth", "1-bit depth"),
    "bit_depth_2": Squeezer("bit_depth_2", lambda x: bit_depth(x, 2), "bit_depth", "2-bit depth"),
    "bit_depth_3": Squeezer("bit_depth_3", lambda x: bit_depth(x, 3), "bit_depth", "3-bit depth"),
    "bit_depth_4": Squeezer("bit_depth_4", lambda x: bit_depth(x, 4), "bit_depth", "4-bit depth"),
    "median_2x2": Squeezer("median_2x2", lambda x: median_filter(x, 2), "smoothing", "2x2 median filter"),
    "median_3x3": Squeezer("median_3x3", lambda x: median_filter(x, 3), "smoothing", "3x3 median filter"),
    "nl_means_11_3_4": Squeezer("nl_means_11_3_4", lambda x: nl_means(x, 11, 3, 4 / 255), "smoothing",
                                "non-local means, 11x11 search, 3x3 patch, h = 4/255"),
    "nl_means_13_3_2": Squeezer("nl_means_13_3_2", lambda x: nl_means(x, 13, 3, 2 / 255), "smoothing",
                                "non-local means, 13x13 search, 3x3 patch, h = 2/255"),
}
PAPER_SQUEEZERS = ("bit_depth_2", "bit_depth_3", "median_3x3", "nl_means_11_3_4")  # Zhang et al.'s Table 4


def get_squeezer(name: str | Squeezer) -> Squeezer:
    if isinstance(name, Squeezer):
        return name
    if name not in SQUEEZERS:
        raise ValueError(f"unknown squeezer {name!r}; valid: {', '.join(SQUEEZERS)}")
    return SQUEEZERS[name]


# --------------------------------------------------------------------------------------------- the detector

class FeatureSqueezing(Detector):
    """The detector: per-squeezer L1 distances of softmax outputs, and their maximum (Xu et al.'s joint
    detection) as the score.

    Nothing to fit; ``calibrate(x_benign)`` sets the threshold at the ``fpr`` (5 % by default, as Xu
    et al.) of benign images; ``detect(x)`` flags ``score > threshold``. :meth:`squeezer_scores` gives
    each squeezer's distance.
    """

    name = "feature_squeezing"

    def __init__(self, model, squeezers: Sequence[str] = PAPER_SQUEEZERS, fpr: float = 0.05,
                 batch_size: int = 64):
        if not squeezers:
            raise ValueError("feature squeezing needs at least one squeezer")
        super().__init__(model, fpr, batch_size)
        self.squeezers = [get_squeezer(s) for s in squeezers]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.squeezers]

    @torch.no_grad()
    def squeezer_scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{squeezer: ||f(x) - f(psi(x))||_1 [B]}`` plus ``"joint"`` (their maximum, the score), float32 on the CPU."""
        check_images(x, self.name)
        dev = self.device
        out: dict[str, list] = {s.name: [] for s in self.squeezers}
        for start in range(0, len(x), self.batch_size):
            xb = x[start:start + self.batch_size].to(dev)
            p = self.model(xb).softmax(1)
            for s in self.squeezers:
                out[s.name].append((p - self.model(s(xb)).softmax(1)).abs().sum(1).cpu())
        res = {k: torch.cat(v) if v else torch.zeros(0) for k, v in out.items()}
        res["joint"] = torch.stack([res[s.name] for s in self.squeezers]).amax(0)
        return res

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        return self.squeezer_scores(x)["joint"]

    def __repr__(self) -> str:
        return f"FeatureSqueezing({', '.join(self.names)}, fpr={self.fpr}, threshold={self.threshold})"


# --------------------------------------------------------------------------------------------- adaptive ADV²

class SqueezeLoss:
    """``l_sqz``: cross-entropy between the softmax output of the input (the soft label) and that of its
    squeezed version, per image (low when the squeezer leaves the prediction alone)."""

    def __init__(self, model, squeezer):
        self.model, self.squeezer = model, get_squeezer(squeezer)
        if self.squeezer.kind != "smoothing":
            raise ValueError(f"{self.squeezer.name} has no useful gradient; bit-depth reduction is evaded with the "
                             f"two-stage attack (AdaptiveADV2 picks it)")

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        logits = state.logits if state.logits is not None else self.model(x_adv)
        p = logits.softmax(1)
        return -(p * self.model(self.squeezer(x_adv)).log_softmax(1)).sum(1)

    def __repr__(self) -> str:
        return f"SqueezeLoss({self.squeezer.name})"


class ProbabilityMatch:
    """``|| f(x') - p_+ ||_1`` per image, ``p_+`` the probability vectors set per batch by the attack."""

    def __init__(self):
        self.reference: torch.Tensor | None = None

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        if self.reference is None or len(self.reference) != len(x_adv):
            raise RuntimeError("ProbabilityMatch has no reference probabilities for this batch")
        return (state.logits.softmax(1) - self.reference).abs().sum(1)

    def __repr__(self) -> str:
        return "ProbabilityMatch()"


class AdaptiveADV2(Attack):
    """ADV² against ``interpreter`` adapted to feature squeezing (see the module docstring), registered as
    ``"adaptive_adv2_fs"``: wraps an ADV² attack built with the extra term, and for bit depth first
    searches ``x_+`` in the squeezed space.

    ``squeezer``: the squeezer evaded, by name, or the :class:`FeatureSqueezing` detector attacked
    (one with a single squeezer). ``budget`` and ``adv2_params`` go to
    :func:`~advxai.attacks.adv2.make_adv2`."""

    name = "adaptive_adv2_fs"
    modes = ("targeted",)

    def __init__(self, model, interpreter="grad", squeezer: "str | Squeezer | FeatureSqueezing" = "median_3x3",
                 sqz_weight: float = 1.0, plus_steps: int = 20, plus_eps: float | None = None,
                 budget: str | None = None, targeted: bool = True, seed: int = 0, batch_size: int | None = None,
                 **adv2_params):
        from ..attacks.adv2 import make_adv2

        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        if isinstance(squeezer, FeatureSqueezing):
            if len(squeezer.squeezers) != 1:
                raise ValueError(f"adaptive ADV² evades one squeezer; the detector has {len(squeezer.squeezers)} "
                                 f"({', '.join(squeezer.names)}): pass the squeezer's name")
            squeezer = squeezer.squeezers[0]
        self.squeezer = get_squeezer(squeezer)
        if not (isinstance(sqz_weight, (int, float)) and sqz_weight >= 0):
            raise ValueError(f"sqz_weight must be >= 0, got {sqz_weight!r}")
        if self.squeezer.kind == "bit_depth":
            self.term = ProbabilityMatch()
        else:
            self.term = SqueezeLoss(model, self.squeezer)
        terms = list(adv2_params.pop("terms", ())) + [(float(sqz_weight), self.term)]
        self.inner = make_adv2(model, interpreter, budget=budget, terms=terms, seed=seed, **adv2_params)
        self.interpreter = self.inner.interpreter
        self.bits = int(self.squeezer.name.rsplit("_", 1)[1]) if self.squeezer.kind == "bit_depth" else None
        self.plus_steps = plus_steps
        self.plus_eps = float(plus_eps) if plus_eps is not None else None

    def squeezed_adversary(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Stage (i): targeted sign steps of one quantisation level in the squeezed space."""
        step = 1.0 / (2 ** self.bits - 1)
        radius = self.plus_eps if self.plus_eps is not None else max(self.inner.eps, step)
        x_plus = self.squeezer(x)
        for _ in range(self.plus_steps):
            xr = x_plus.detach().requires_grad_(True)
            loss = F.cross_entropy(self.model(xr), target, reduction="sum")
            g, = torch.autograd.grad(loss, xr)
            moved = (xr.detach() - step * g.sign()).clamp(x - radius, x + radius).clamp(0, 1)
            x_plus = self.squeezer(moved)
        return x_plus.detach()

    def perturb(self, x, y, target):
        if isinstance(self.term, ProbabilityMatch):
            x_plus = self.squeezed_adversary(x, target)
            with torch.no_grad():
                self.term.reference = self.model(x_plus).softmax(1)
            self._extras = {"x_plus_success": (self.model(x_plus).argmax(1) == target).detach()}
        try:
            return self.inner.perturb(x, y, target)
        finally:
            if isinstance(self.term, ProbabilityMatch):
                self.term.reference = None
