"""What every detector and every defense of the study shares: one protocol each.

A **detector** scores inputs and flags the suspicious ones::

    det.fit(x_benign, x_adversarial)        # learn what the detector learns (supervised ones need both)
    det.calibrate(x_calibration, fpr=0.05)  # the threshold, on other benign images
    det.score(x)                            # [B] float64, higher = more suspicious
    det.detect(x)                           # [B] bool: score > threshold

``fit`` returns the detector. Most detectors learn nothing from data (feature squeezing, causal
masking, ...): their ``fit`` is a no-op and they are ready to calibrate once built. A supervised
detector (``supervised = True``) scores nothing before it is fitted. The threshold comes from
``calibrate`` alone: :func:`threshold_at_fpr` of the calibration images' scores, so at most ``fpr``
of them are flagged. The calibration images must not be images the detector was fitted on (a
detector scores its own training images too kindly); ``calibrate`` refuses any such image.

A **defense** relabels inputs: ``predict(x)`` -> [B] labels, and where it works by cleaning the
input first, ``purify(x)`` -> the cleaned images (``predict`` then classifies them).

Both work in batches of ``batch_size`` on the device of their model, and take images [B, C, H, W]
in [0, 1] from any device; scores and labels come back on the CPU.
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn as nn

from ..runtime import module_device

__all__ = ["Detector", "Defense", "Undefended", "threshold_at_fpr", "detection_rate", "check_fpr", "check_images",
           "as_scores"]


def check_fpr(fpr: float) -> float:
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 <= fpr < 1:
        raise ValueError(f"fpr (the share of benign inputs a detector may flag) must be in [0, 1), got {fpr!r}")
    return float(fpr)


def check_images(x: torch.Tensor, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"{who}: images must be a [B, C, H, W] tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{who}: images must be in [0, 1] (got [{x.min():.3f}, {x.max():.3f}])")


def as_scores(scores) -> torch.Tensor:
    """Scores as a flat float64 CPU tensor (exact for float32 input); NaN is an error."""
    s = torch.as_tensor(scores).detach().double().cpu().flatten()
    if torch.isnan(s).any():
        raise ValueError("detector scores contain NaN")
    return s


def threshold_at_fpr(benign_scores, fpr: float = 0.05) -> float:
    """The smallest threshold ``t`` among the benign scores with ``mean(benign > t) <= fpr``.

    Flagging ``score > t`` then flags at most ``fpr`` of these benign inputs, and as many as
    possible: with continuous scores exactly ``floor(fpr * n)`` of them. Tied scores (a binary
    detector) can make the realised rate lower than ``fpr``; it is never higher."""
    fpr = check_fpr(fpr)
    s = as_scores(benign_scores)
    if len(s) == 0:
        raise ValueError("a threshold needs at least one benign score")
    values = torch.unique(s)  # sorted ascending
    above = (s[None, :] > values[:, None]).double().mean(1)  # share flagged at each candidate threshold
    ok = torch.nonzero(above <= fpr + 1e-12).flatten()
    return float(values[ok[0]])  # the largest value always qualifies (nothing is above it)


def detection_rate(scores, threshold: float) -> float:
    """Share of ``scores`` above ``threshold`` (NaN for no inputs)."""
    s = as_scores(scores)
    return (s > threshold).double().mean().item() if len(s) else float("nan")


def _fingerprints(x: torch.Tensor) -> set[bytes]:
    """One digest per image (its exact values), to recognise the same image again."""
    flat = x.detach().to("cpu", torch.float32).contiguous().flatten(1).numpy()
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat}


class Detector:
    """Base class: subclasses set ``name`` and implement ``_score`` on one batch already on the model's
    device (or override :meth:`score`); supervised ones also override :meth:`fit`."""

    kind = "detector"
    supervised = False
    name = "detector"

    def __init__(self, model: nn.Module, fpr: float = 0.05, batch_size: int = 64):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model, self.fpr, self.batch_size = model, check_fpr(fpr), batch_size
        self.threshold: float | None = None
        self.benign_calibration_rate: float | None = None
        self.fitted = not self.supervised
        self._fit_images: set[bytes] = set()

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    # -- to implement ---------------------------------------------------------------------------
    def _score(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- the protocol ---------------------------------------------------------------------------
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """One score per image [B] (float64, CPU; higher = more suspicious), in batches on the model's device."""
        check_images(x, self.name)
        self._need_fit()
        if len(x) == 0:
            return torch.zeros(0, dtype=torch.float64)
        dev = self.device
        return torch.cat([as_scores(self._score(x[s:s + self.batch_size].to(dev)))
                          for s in range(0, len(x), self.batch_size)])

    def fit(self, benign: torch.Tensor, adversarial: torch.Tensor | None = None) -> "Detector":
        """Learn from benign (and adversarial) images; a detector that learns nothing accepts and ignores them."""
        return self

    def calibrate(self, x: torch.Tensor, fpr: float | None = None) -> "Detector":
        """Set the threshold so that at most ``fpr`` (default: the detector's own) of the benign images ``x``
        are flagged. ``x`` must hold none of the images the detector was fitted on."""
        if fpr is not None:
            self.fpr = check_fpr(fpr)
        check_images(x, self.name)
        if len(x) < 2:
            raise ValueError(f"{self.name}: calibrate the threshold on at least two benign images, got {len(x)}")
        if self._fit_images:
            shared = len(_fingerprints(x) & self._fit_images)
            if shared:
                raise ValueError(f"{self.name}: {shared} of the {len(x)} calibration images were used to fit the "
                                 f"detector; calibrate on benign images it has not seen")
        s = self.score(x)
        self.threshold = threshold_at_fpr(s, self.fpr)
        self.benign_calibration_rate = detection_rate(s, self.threshold)
        return self

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """[B] bool: the images scoring above the calibrated threshold."""
        if self.threshold is None:
            raise RuntimeError(f"{self.name}: not calibrated; call calibrate(x_benign_calibration, fpr) first "
                               f"(the threshold comes from benign images)")
        return self.score(x) > self.threshold

    def detection_rate(self, x: torch.Tensor) -> float:
        """The share of ``x`` flagged (NaN for no images)."""
        flags = self.detect(x)
        return flags.double().mean().item() if len(flags) else float("nan")

    # -- for subclasses -------------------------------------------------------------------------
    def _need_fit(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{self.name}: not fitted; call fit(x_benign, x_adversarial) first")

    def _fitted_on(self, *image_sets: torch.Tensor) -> None:
        """Record the images a fit learned from (so calibration cannot reuse them) and mark the detector fitted;
        the threshold of an earlier calibration no longer applies."""
        self._fit_images = set().union(*(_fingerprints(x) for x in image_sets if x is not None and len(x)))
        self.fitted = True
        self.threshold = self.benign_calibration_rate = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fpr={self.fpr}, threshold={self.threshold})"


class Defense:
    """Base class: subclasses set ``name`` and implement ``_predict`` (labels of one batch on the model's
    device) or ``_purify`` (cleaned images of one batch; ``predict`` then classifies them with ``model``)."""

    kind = "defense"
    supervised = False
    name = "defense"

    def __init__(self, model: nn.Module, batch_size: int = 64):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model, self.batch_size = model, batch_size

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    def _purify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} relabels inputs without cleaning them (it has predict, not purify)")

    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._purify(x)).argmax(1)

    def _batched(self, fn, x: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
        check_images(x, self.name)
        if len(x) == 0:
            return empty
        dev = self.device
        return torch.cat([fn(x[s:s + self.batch_size].to(dev)).cpu() for s in range(0, len(x), self.batch_size)])

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The defended classifier's labels [B] (CPU)."""
        return self._batched(self._predict, x, torch.zeros(0, dtype=torch.long))

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        """The cleaned images (CPU), for a defense that cleans its input."""
        return self._batched(self._purify, x, x.detach().cpu().clone())

    def fit(self, benign: torch.Tensor, adversarial: torch.Tensor | None = None) -> "Defense":
        return self  # the study's defenses are built ready (a trained model is trained when built)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The share of ``x`` labelled ``y`` (NaN for no images)."""
        if len(x) == 0:
            return float("nan")
        return (self.predict(x) == torch.as_tensor(y).cpu()).double().mean().item()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Undefended(Defense):
    """The model itself: the baseline every defense is compared with."""

    name = "undefended"

    @torch.no_grad()
    def _predict(self, x):
        return self.model(x).argmax(1)
