"""The multi-interpreter detector (Abdukhamidov et al., AdvEdge paper, Tables V and VI).

An attack such as ADV² or AdvEdge makes the *targeted* interpreter's map of the adversarial input
look benign; a second (and third) interpreter need not agree. The detector reads the maps of two
or three interpreters together:

1. **stack**: the maps ``[N, 1, H, W]`` of k interpreters become one k-channel image ``[N, k, H, W]``;
   with ``product=True`` (the paper's "second case", two interpreters) the pixel-wise product of the
   two maps is added as a third channel;
2. **features**: a frozen, pretrained feature extractor turns each stacked image into a vector;
3. **gradient boosting** on those vectors, fitted on balanced benign / adversarial sets, decides
   benign (0) or adversarial (1). Accuracy on a balanced held-out set is the paper's number.

The paper's extractor is an ImageNet VGG-16 whose first and last layers were replaced and retrained
for 2-channel input. Here the extractor is any of the study's models, used frozen and without
retraining: :class:`ModelFeatures` feeds each map channel on its own (a grey image repeated over
the model's colour channels, resized to its input size, as one usually transfers a colour model to
grey images) and average-pools the model's last convolutional feature map to a small grid, then
concatenates the channels' vectors. Two reasonable choices:

* ``efficientnet_lite0`` (real ImageNet weights): the closest stand-in for the paper's ImageNet
  VGG-16; 224 px inputs, so it costs about 30 ms per map on two CPU cores;
* ``shapes_resnet`` / ``shapes_densenet``: trained here on the shapes images at 64 px, the maps'
  own resolution on the embedded data; a hundredth of the cost. Use the one that is *not* attacked
  when both are in play, so the detector does not share the attacked model's weights.

:class:`PixelFeatures` (the maps themselves, average-pooled) is the baseline that says whether the
pretrained features help at all.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..runtime import module_device
from .base import Detector, as_scores, check_images

__all__ = ["stack_maps", "ModelFeatures", "PixelFeatures", "MultiInterpreterDetector", "DetectionScore",
           "detection_scores", "balanced_split", "explain_all", "BOOSTERS"]

BOOSTERS = ("gb", "hist")

MapsLike = Sequence[torch.Tensor] | torch.Tensor


def _as_map(m: torch.Tensor, i: int) -> torch.Tensor:
    m = torch.as_tensor(m)
    if m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[1] != 1:
        raise ValueError(f"map {i}: attribution maps must be [N, 1, H, W] or [N, H, W], got {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise ValueError(f"map {i}: attribution maps contain NaN or infinite values")
    return m.detach().float().cpu()


def stack_maps(maps: MapsLike, product: bool = False) -> torch.Tensor:
    """k attribution maps of the same N images -> one k-channel image per input, [N, k (+1), H, W].

    ``maps``: a sequence of [N, 1, H, W] (or [N, H, W]) tensors, one per interpreter, or an already
    stacked [N, k, H, W] tensor. ``product=True`` appends the pixel-wise product of exactly two maps.
    Maps of different sizes are an error (resize them first, e.g. with
    :func:`advxai.interpreters.upsample_to`): stacking them would pair unrelated pixels.
    """
    if isinstance(maps, torch.Tensor):
        if maps.dim() != 4:
            raise ValueError(f"stacked maps must be [N, k, H, W], got {tuple(maps.shape)}")
        maps = list(maps.split(1, dim=1))
    maps = [_as_map(m, i) for i, m in enumerate(maps)]
    if not maps:
        raise ValueError("the detector needs the maps of at least one interpreter")
    sizes = [tuple(m.shape[-2:]) for m in maps]
    if len(set(sizes)) > 1:
        raise ValueError(f"cannot combine attribution maps of different sizes {sizes}; resize them to one size "
                         f"first (advxai.interpreters.upsample_to)")
    counts = [len(m) for m in maps]
    if len(set(counts)) > 1:
        raise ValueError(f"the maps must describe the same images: got {counts} maps per interpreter")
    if product:
        if len(maps) != 2:
            raise ValueError(f"product=True multiplies exactly two maps into a third channel, got {len(maps)} maps")
        maps = maps + [maps[0] * maps[1]]
    return torch.cat(maps, 1)


class PixelFeatures:
    """The stacked maps themselves, average-pooled to ``size`` x ``size`` and flattened (a baseline)."""

    def __init__(self, size: int = 16):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.size = size

    def __call__(self, stacked: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(stacked.float(), self.size).flatten(1)

    def __repr__(self) -> str:
        return f"PixelFeatures(size={self.size})"


class ModelFeatures:
    """A frozen classifier's convolutional features of each map channel, pooled and concatenated.

    Every channel of the stacked maps is treated as a grey image in [0, 1]: repeated over the
    model's input channels, resized (bilinear) to the model's input size, passed through the model
    up to its last convolutional feature map (``info.cam_layer``), average-pooled to ``pool`` x
    ``pool`` and flattened; the channels' vectors are concatenated ([N, k * K * pool^2]). With
    ``pool=1`` on a GAP model this is the penultimate feature vector. Batched, no gradients.
    """

    def __init__(self, model, pool: int = 2, batch_size: int = 64):
        info = getattr(model, "info", None)
        if info is None:
            raise ValueError("ModelFeatures needs one of the study's models (a Classifier with ModelInfo); "
                             "for another network pass any callable [N, k, H, W] -> [N, D] as the extractor")
        if not isinstance(pool, int) or pool < 1:
            raise ValueError(f"pool must be a positive integer, got {pool!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model, self.pool, self.batch_size = model, pool, batch_size

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    @torch.no_grad()
    def __call__(self, stacked: torch.Tensor) -> torch.Tensor:
        c, h, w = self.model.info.input_size
        n, k = stacked.shape[:2]
        # every channel of every image becomes one grey "image": [N * k, 1, H, W]
        grey = stacked.float().reshape(n * k, 1, *stacked.shape[-2:])
        out = []
        for s in range(0, len(grey), self.batch_size):
            xb = grey[s:s + self.batch_size].to(self.device)
            if tuple(xb.shape[-2:]) != (h, w):
                xb = F.interpolate(xb, size=(h, w), mode="bilinear", align_corners=False)
            _, a = self.model.feature_maps(xb.expand(-1, c, -1, -1))
            out.append(F.adaptive_avg_pool2d(a, self.pool).flatten(1).cpu())
        return torch.cat(out).reshape(n, -1)

    def __repr__(self) -> str:
        return f"ModelFeatures({self.model.info.name}, pool={self.pool})"


@dataclass
class DetectionScore:
    """How the detector did on a benign and an adversarial set (adversarial = the positive class)."""

    accuracy: float  # correct decisions / all inputs (the paper's number, on balanced sets)
    balanced_accuracy: float  # mean of the two per-class rates (= accuracy when the sets are balanced)
    benign_accuracy: float  # benign inputs called benign (true negative rate)
    adversarial_accuracy: float  # adversarial inputs called adversarial (true positive rate, detection rate)
    auc: float  # area under the ROC curve of the adversarial probability
    n_benign: int
    n_adversarial: int

    def as_row(self) -> dict:
        return asdict(self)


def detection_scores(p_benign, p_adversarial, threshold: float = 0.5) -> DetectionScore:
    """Scores from the adversarial probabilities of benign and adversarial inputs (flagged when > threshold)."""
    from sklearn.metrics import roc_auc_score

    pb = np.asarray(p_benign, dtype=float).ravel()
    pa = np.asarray(p_adversarial, dtype=float).ravel()
    if len(pb) == 0 or len(pa) == 0:
        raise ValueError(f"scoring needs benign and adversarial inputs, got {len(pb)} and {len(pa)}")
    tnr = float(np.mean(pb <= threshold))
    tpr = float(np.mean(pa > threshold))
    accuracy = (tnr * len(pb) + tpr * len(pa)) / (len(pb) + len(pa))
    labels = np.concatenate([np.zeros(len(pb)), np.ones(len(pa))])
    auc = float(roc_auc_score(labels, np.concatenate([pb, pa])))
    return DetectionScore(accuracy=float(accuracy), balanced_accuracy=(tnr + tpr) / 2, benign_accuracy=tnr,
                          adversarial_accuracy=tpr, auc=auc, n_benign=len(pb), n_adversarial=len(pa))


def balanced_split(n_benign: int, n_adversarial: int, test_fraction: float = 0.3, seed: int = 0):
    """Balanced train/test indices: ``(benign_train, benign_test, adversarial_train, adversarial_test)``.

    The larger set is subsampled to the size of the smaller one (adversarial sets usually keep only
    successful attacks), then each set is split with the same ``test_fraction``, so both the
    training and the test set hold as many benign as adversarial inputs. Seeded, deterministic.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n = min(int(n_benign), int(n_adversarial))
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n - n_test < 1:
        raise ValueError(f"{n_benign} benign and {n_adversarial} adversarial inputs leave {n} per class: too few "
                         f"for a train and a test part at test_fraction={test_fraction}")
    g = torch.Generator().manual_seed(int(seed))
    parts = []
    for total in (n_benign, n_adversarial):
        chosen = torch.randperm(int(total), generator=g)[:n]
        parts += [chosen[n_test:].sort().values, chosen[:n_test].sort().values]
    return tuple(parts)


def explain_all(interpreters: Sequence, x: torch.Tensor, batch_size: int = 64) -> list[torch.Tensor]:
    """The maps [N, 1, H, W] of every interpreter on ``x`` (each explaining the model's prediction), on the CPU."""
    out = []
    for interp in interpreters:
        maps = [interp(x[s:s + batch_size]).maps.detach().cpu() for s in range(0, len(x), batch_size)]
        out.append(torch.cat(maps))
    return out


class MultiInterpreterDetector(Detector):
    """Stacked attribution maps -> frozen features -> gradient boosting; the score is the booster's
    probability that an input is adversarial. A supervised detector.

    ``extractor``: any callable [N, k, H, W] -> [N, D] (:class:`ModelFeatures`, :class:`PixelFeatures`);
    ``interpreters``: the :class:`~advxai.interpreters.Interpreter` objects whose maps are stacked, in
    order (all of one model); ``booster``: ``"gb"`` (scikit-learn's GradientBoostingClassifier, as the
    paper) or ``"hist"`` (HistGradientBoostingClassifier, faster on thousands of inputs); ``product``:
    add the product of two maps as a third channel; extra keywords go to the booster.

    On images: ``fit(x_benign, x_adversarial)`` computes the maps itself and trains the booster on as
    many benign as adversarial images (the larger set subsampled, seeded); ``calibrate(x)`` on other
    benign images sets the threshold; ``score``/``detect`` as every detector.

    On maps already computed (one tensor per interpreter, the same interpreters in the same order;
    no ``interpreters`` needed): ``fit_maps(benign_maps, adversarial_maps)`` on balanced sets (see
    :func:`balanced_split`), ``predict_proba(maps)``, and ``evaluate_maps`` for the paper's
    :class:`DetectionScore` at probability 0.5.
    """

    name = "multi_interpreter"
    supervised = True

    def __init__(self, extractor: Callable[[torch.Tensor], torch.Tensor], interpreters: Sequence = (),
                 booster: str = "gb", product: bool = False, seed: int = 0, fpr: float = 0.05, batch_size: int = 64,
                 **booster_params):
        if booster not in BOOSTERS:
            raise ValueError(f"unknown booster {booster!r}; valid: {', '.join(BOOSTERS)}")
        if not callable(extractor):
            raise ValueError("extractor must be a callable [N, k, H, W] -> [N, D] (e.g. ModelFeatures(model))")
        interpreters = list(interpreters)
        models = {id(i.model) for i in interpreters}
        if len(models) > 1:
            raise ValueError("the interpreters must explain one model")
        super().__init__(interpreters[0].model if interpreters else None, fpr, batch_size)
        self.interpreters = interpreters
        self.extractor, self.booster, self.product, self.seed = extractor, booster, product, int(seed)
        self.booster_params = booster_params
        self.channels: int | None = None
        self.map_size: tuple[int, int] | None = None
        self._clf = None

    def _new_classifier(self):
        from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

        cls = GradientBoostingClassifier if self.booster == "gb" else HistGradientBoostingClassifier
        return cls(random_state=self.seed, **self.booster_params)

    def _stacked_features(self, maps: MapsLike) -> tuple[torch.Tensor, np.ndarray]:
        stacked = stack_maps(maps, self.product)
        if self.channels is not None and (stacked.shape[1], tuple(stacked.shape[-2:])) != (self.channels, self.map_size):
            raise ValueError(f"the detector was fitted on {self.channels}-channel maps of {self.map_size}, got "
                             f"{stacked.shape[1]} channels of {tuple(stacked.shape[-2:])}")
        feats = torch.as_tensor(self.extractor(stacked)).float()
        if feats.dim() != 2 or len(feats) != len(stacked):
            raise ValueError(f"the extractor must return [N, D] = [{len(stacked)}, D], got {tuple(feats.shape)}")
        return stacked, feats.cpu().numpy()

    def features(self, maps: MapsLike) -> np.ndarray:
        """The extractor's feature vectors [N, D] of the stacked maps."""
        return self._stacked_features(maps)[1]

    # -- on images ------------------------------------------------------------------------------
    def _need_interpreters(self) -> None:
        if not self.interpreters:
            raise ValueError(f"{self.name} was built without interpreters, so it works on maps (fit_maps, "
                             f"predict_proba); build it with interpreters=[...] to use it on images")

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps [N, 1, H, W] of every interpreter on ``x`` (each explaining the model's prediction), CPU."""
        self._need_interpreters()
        return explain_all(self.interpreters, x.to(self.device), self.batch_size)

    def fit(self, benign: torch.Tensor, adversarial: torch.Tensor | None = None) -> "MultiInterpreterDetector":
        """Train the booster on the maps of as many benign as adversarial images (the larger set subsampled)."""
        self._need_interpreters()
        if adversarial is None:
            raise ValueError(f"{self.name} is supervised: fit(x_benign, x_adversarial) needs adversarial images too")
        check_images(benign, self.name)
        check_images(adversarial, self.name)
        if len(benign) < 1 or len(adversarial) < 1:
            raise ValueError(f"{self.name}: fitting needs benign and adversarial images, got {len(benign)} and "
                             f"{len(adversarial)}")
        g = torch.Generator().manual_seed(self.seed)
        k = min(len(benign), len(adversarial))
        xb = benign[torch.randperm(len(benign), generator=g)[:k]]
        xa = adversarial[torch.randperm(len(adversarial), generator=g)[:k]]
        self.fit_maps(self.maps(xb), self.maps(xa))
        self._fitted_on(xb, xa)
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The booster's probability that each image is adversarial [B] (float64, CPU)."""
        check_images(x, self.name)
        self._need_interpreters()
        self._need_fit()
        if len(x) == 0:
            return torch.zeros(0, dtype=torch.float64)
        return as_scores(self.predict_proba(self.maps(x)))

    # -- on maps --------------------------------------------------------------------------------
    def fit_maps(self, benign: MapsLike, adversarial: MapsLike) -> "MultiInterpreterDetector":
        """Train the booster on balanced sets of maps (one tensor per interpreter each)."""
        self.channels = self.map_size = None  # refitting starts afresh
        stacked, fb = self._stacked_features(benign)
        self.channels, self.map_size = stacked.shape[1], tuple(stacked.shape[-2:])
        try:
            fa = self.features(adversarial)  # must match the benign maps' channels and size
            if len(fb) != len(fa):
                raise ValueError(f"fit wants balanced sets, got {len(fb)} benign and {len(fa)} adversarial inputs; "
                                 f"subsample with balanced_split")
        except ValueError:
            self.channels = self.map_size = None
            raise
        clf = self._new_classifier()
        clf.fit(np.concatenate([fb, fa]), np.concatenate([np.zeros(len(fb)), np.ones(len(fa))]))
        self._clf = clf
        self._fitted_on()
        return self

    def predict_proba(self, maps: MapsLike) -> np.ndarray:
        """The probability that each input is adversarial, [N]."""
        if self._clf is None:
            raise RuntimeError(f"{self.name}: not fitted; call fit(x_benign, x_adversarial) or "
                               f"fit_maps(benign_maps, adversarial_maps) first")
        return self._clf.predict_proba(self.features(maps))[:, 1]

    def evaluate_maps(self, benign: MapsLike, adversarial: MapsLike) -> DetectionScore:
        """The paper's scores on held-out maps (flagged at probability > 0.5)."""
        return detection_scores(self.predict_proba(benign), self.predict_proba(adversarial))

    def __repr__(self) -> str:
        return (f"MultiInterpreterDetector({self.extractor!r}, interpreters={[i.name for i in self.interpreters]}, "
                f"booster={self.booster!r}, product={self.product}, seed={self.seed})")
