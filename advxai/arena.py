"""The arena: every attack of the study against every detector and defense, on the same images.

Two kinds of members, one interface each:

* a :class:`Detector` gives every input a **score** (higher = more suspicious). ``fit(x_benign)``
  sets its threshold on benign inputs so that at most ``fpr`` of them are flagged
  (:func:`threshold_at_fpr`); ``detect(x)`` flags ``score > threshold``. Its number in the arena is
  the **detection rate**: the share of successful adversarial inputs flagged. A supervised detector
  (the multi-interpreter one) also needs adversarial inputs to learn from: ``fit(x_benign, x_adv)``.
* a :class:`Defense` relabels inputs (``predict``); its number is the **robust accuracy**: the share
  of attacked inputs it gives their true label.

Members by name (:data:`DETECTORS`, :func:`get_member`):

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

:class:`Arena` fits the members once (benign calibration images, and for supervised detectors a
training attack's images) and :meth:`Arena.evaluate` returns tidy records, one row per attack x
member; :func:`matrix` pivots them into the attack x member table the chapter draws.

:func:`craft` turns an :class:`ArenaAttack` (a name and plain settings) into adversarial images,
through :func:`advxai.attacks.adversarial_set` (so sets cached by other chapters are reused) or,
for what the attack store cannot build by name (universal patches, adaptive attacks), through the
same cache with its own key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from .attacks.base import AttackResult, perturbation_norms
from .registry import Registry

__all__ = ["threshold_at_fpr", "detection_rate", "Detector", "Defense", "IGMasking", "FeatureSqueezingDetector",
           "HeatAndBlurChange", "MultiInterpreter", "SJEDisagreement", "AIDDetector", "arena_rts", "map_disagreement",
           "MapAgreement", "Undefended", "HeatAndBlurDefense",
           "RobustModel", "DETECTORS", "get_member", "Arena", "matrix", "ArenaAttack", "craft", "as_result",
           "study_attacks", "plot_matrix"]


# --------------------------------------------------------------------------------------------- thresholds

def _scores(scores) -> torch.Tensor:
    s = torch.as_tensor(scores).detach().double().cpu().flatten()
    if torch.isnan(s).any():
        raise ValueError("detector scores contain NaN")
    return s


def _check_fpr(fpr: float) -> float:
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 <= fpr < 1:
        raise ValueError(f"fpr (the share of benign inputs a detector may flag) must be in [0, 1), got {fpr!r}")
    return float(fpr)


def threshold_at_fpr(benign_scores, fpr: float = 0.05) -> float:
    """The smallest threshold ``t`` among the benign scores with ``mean(benign > t) <= fpr``.

    Flagging ``score > t`` then flags at most ``fpr`` of these benign inputs, and as many as
    possible: with continuous scores exactly ``floor(fpr * n)`` of them. Tied scores (a binary
    detector) can make the realised rate lower than ``fpr``; it is never higher."""
    fpr = _check_fpr(fpr)
    s = _scores(benign_scores)
    if len(s) == 0:
        raise ValueError("a threshold needs at least one benign score")
    values = torch.unique(s)  # sorted ascending
    above = (s[None, :] > values[:, None]).double().mean(1)  # share flagged at each candidate threshold
    ok = torch.nonzero(above <= fpr + 1e-12).flatten()
    return float(values[ok[0]])  # the largest value always qualifies (nothing is above it)


def detection_rate(scores, threshold: float) -> float:
    """Share of ``scores`` above ``threshold`` (NaN for no inputs)."""
    s = _scores(scores)
    return (s > threshold).double().mean().item() if len(s) else float("nan")


def _auc(benign, adversarial) -> float:
    b, a = _scores(benign).numpy(), _scores(adversarial).numpy()
    if len(b) == 0 or len(a) == 0:
        return float("nan")
    # probability that an adversarial score exceeds a benign one (ties count half): the ROC AUC
    greater = (a[:, None] > b[None, :]).mean()
    ties = (a[:, None] == b[None, :]).mean()
    return float(greater + 0.5 * ties)


def _device(model) -> torch.device:
    try:
        return next(model.buffers()).device
    except StopIteration:
        return next(model.parameters()).device


def _check_images(x: torch.Tensor, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"{who}: images must be a [B, C, H, W] tensor")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{who}: images must be in [0, 1]")


# --------------------------------------------------------------------------------------------- members

class Detector:
    """Scores inputs (higher = more suspicious); a threshold fitted on benign inputs at ``fpr``."""

    kind = "detector"
    supervised = False
    name = "detector"

    def __init__(self, model, fpr: float = 0.05, batch_size: int = 64):
        self.model, self.fpr, self.batch_size = model, _check_fpr(fpr), int(batch_size)
        self.threshold: float | None = None
        self.benign_calibration_rate: float | None = None

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """One score per image [B] (float64, CPU), computed in batches on the model's device."""
        _check_images(x, self.name)
        if len(x) == 0:
            return torch.zeros(0, dtype=torch.float64)
        dev = _device(self.model)
        return torch.cat([_scores(self._score(x[s:s + self.batch_size].to(dev)))
                          for s in range(0, len(x), self.batch_size)])

    def fit(self, x_benign: torch.Tensor, x_adversarial: torch.Tensor | None = None) -> "Detector":
        if len(x_benign) < 2:
            raise ValueError(f"{self.name}: fit the threshold on at least two benign images")
        s = self.scores(x_benign)
        self.threshold = threshold_at_fpr(s, self.fpr)
        self.benign_calibration_rate = detection_rate(s, self.threshold)
        return self

    def _need_fit(self) -> float:
        if self.threshold is None:
            raise RuntimeError(f"{self.name}: call fit(x_benign) first (the threshold comes from benign inputs)")
        return self.threshold

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(x) > self._need_fit()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fpr={self.fpr}, threshold={self.threshold})"


class Defense:
    """Relabels inputs; measured by robust accuracy (the true label recovered)."""

    kind = "defense"
    supervised = False
    name = "defense"

    def __init__(self, model, batch_size: int = 64):
        self.model, self.batch_size = model, int(batch_size)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.name)
        if len(x) == 0:
            return torch.zeros(0, dtype=torch.long)
        dev = _device(self.model)
        return torch.cat([self._predict(x[s:s + self.batch_size].to(dev)).cpu()
                          for s in range(0, len(x), self.batch_size)])

    def fit(self, x_benign: torch.Tensor, x_adversarial: torch.Tensor | None = None) -> "Defense":
        return self  # nothing to calibrate

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if len(x) == 0:
            return float("nan")
        return (self.predict(x) == torch.as_tensor(y).cpu()).double().mean().item()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IGMasking(Detector):
    """Jha et al.'s causal masking: ``rho`` is the smallest masked fraction of top positive IG pixels
    that changes the label (chapter 1); the score is ``-rho`` (a label that never changes up to
    ``max_delta`` scores ``-(max_delta + epsilon)``)."""

    name = "ig_masking"

    def __init__(self, model, fpr: float = 0.05, epsilon: float = 0.01, max_delta: float = 0.3,
                 fraction_of: str = "positive", ig_steps: int = 16, batch_size: int = 32):
        from .defenses.causal_masking import CausalMasking

        super().__init__(model, fpr, batch_size)
        self.masking = CausalMasking(model, epsilon=epsilon, max_delta=max_delta, fraction_of=fraction_of,
                                     steps=ig_steps, batch_size=batch_size)

    def _score(self, x):
        rho = self.masking.analyse(x).rho.double()
        floor = self.masking.max_delta + self.masking.epsilon
        return -torch.where(torch.isinf(rho), torch.full_like(rho, floor), rho)


class FeatureSqueezingDetector(Detector):
    """Feature squeezing's joint score (the largest L1 distance over the squeezers)."""

    name = "feature_squeezing"

    def __init__(self, model, fpr: float = 0.05, squeezers: Sequence[str] = ("bit_depth_3", "median_3x3"),
                 batch_size: int = 64):
        from .defenses.feature_squeezing import FeatureSqueezing

        super().__init__(model, fpr, batch_size)
        self.squeezing = FeatureSqueezing(model, squeezers=list(squeezers), fpr=max(self.fpr, 1e-6),
                                          batch_size=batch_size)

    def _score(self, x):
        return self.squeezing.scores(x)["joint"]


class HeatAndBlurChange(Detector):
    """Heat-and-blur as a squeezer: the L1 distance between the softmax of the input and of its cleaned
    version (a changed label moves it by up to 2)."""

    name = "heat_and_blur_change"

    def __init__(self, model, fpr: float = 0.05, sigma: float = 1.0, threshold: str = "mean2std",
                 batch_size: int = 32):
        from .defenses.heat_and_blur import HeatAndBlur

        super().__init__(model, fpr, batch_size)
        self.defense = HeatAndBlur(model, sigma=sigma, threshold=threshold, batch_size=batch_size)

    def _score(self, x):
        with torch.no_grad():
            p = self.model(x).softmax(1)
        return (p - self.defense(x).probs).abs().sum(1)


class SJEDisagreement(Detector):
    """SJE against softmax on the same network (chapter 5's SJE, new here as a detector).

    SJE reads the network's penultimate features, so an attack on the softmax head also moves what
    SJE sees, but through a different (attribute) classifier. The score is how much more SJE's best
    class is compatible with the features than the softmax's label:
    ``max_k F(x, k) - F(x, argmax softmax)``, 0 when they agree, positive when they disagree.
    ``sje``: a fitted :class:`~advxai.attributes.SJE`, or ``None`` to fit one on ``n_train`` training
    images of ``dataset`` (a data set with class attribute vectors)."""

    name = "sje_disagreement"

    def __init__(self, model, fpr: float = 0.05, sje=None, dataset: str = "shapes", n_train: int = 1000,
                 epochs: int = 5, lr: float = 0.01, seed: int = 0, batch_size: int = 128):
        super().__init__(model, fpr, batch_size)
        if sje is None:
            from .attributes import SJEConfig
            from .attributes.study import fit_sje
            from .data import get_dataset

            train = get_dataset(dataset, split="train")
            index = torch.arange(min(int(n_train), len(train)))
            sje, _ = fit_sje(model, train, index, SJEConfig(epochs=epochs, lr=lr, batch_size=1, seed=seed))
        self.sje = sje

    @torch.no_grad()
    def predictions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(softmax label, SJE label)`` of a batch."""
        logits, (f,) = self.model.forward_with(x, [self.model.info.feature_layer])
        return logits.argmax(1).cpu(), self.sje.predict(f.flatten(1)).cpu()

    @torch.no_grad()
    def _score(self, x):
        logits, (f,) = self.model.forward_with(x, [self.model.info.feature_layer])
        comp = self.sje.compatibility(f.flatten(1))
        soft = logits.argmax(1).to(comp.device)
        return comp.max(1).values - comp.gather(1, soft[:, None]).squeeze(1)


def arena_rts(model, steps: int | None = None, batch_size: int | None = None, aid_budget: str | None = None,
              control: bool = False, train_budget: str = "full"):
    """The RTS interpreter of ``model`` with the ``train_budget``'s decoder training (as chapter 3 trains
    it, so its cached decoder is reused; ``steps`` / ``batch_size`` override it), or, with ``aid_budget``
    (``"smoke"`` | ``"full"``), RTS^A: that decoder distilled with AID (:func:`advxai.defenses.aid.aid_rts`,
    cached).

    ``control=True`` (with ``aid_budget``) gives AID's control instead: the same decoder trained by the
    same schedule on the same batches with the AID term's weight at zero, i.e. RTS trained as long as
    RTS^A. A short-trained RTS keeps changing under the extra ``l_int`` steps of AID, so only this
    control shows what the AID term alone changed."""
    from dataclasses import replace

    from .interpreters import RTS
    from .interpreters.rts import BUDGETS as RTS_BUDGETS

    if train_budget not in RTS_BUDGETS:
        raise ValueError(f"train_budget must be one of {sorted(RTS_BUDGETS)}, got {train_budget!r}")
    config = RTS_BUDGETS[train_budget]
    config = replace(config, steps=int(steps or config.steps), batch_size=int(batch_size or config.batch_size))
    rts = RTS(model, config=config, progress=False)
    if aid_budget is None:
        return rts
    from .defenses.aid import BUDGETS, aid_rts

    if aid_budget not in BUDGETS:
        raise ValueError(f"aid_budget must be one of {sorted(BUDGETS)}, got {aid_budget!r}")
    config = replace(BUDGETS[aid_budget], aid_weight=0.0) if control else BUDGETS[aid_budget]
    return aid_rts(rts, config=config, train_budget=aid_budget, progress=False)


def map_disagreement(rts, rts_aid, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """Per image [B]: the mean per-pixel L1 distance between the RTS and the RTS^A masks of class ``cls``
    (at the decoders' native resolution; differentiable in ``x``)."""
    a, _ = rts.masks(x, cls)
    b, _ = rts_aid.masks(x, cls)
    return (a - b).abs().flatten(1).mean(1)


class MapAgreement:
    """An attack term for an attacker who knows the AID detector: :func:`map_disagreement` of the iterate
    for the class it is pushed to (the target; untargeted: the current prediction), per image."""

    def __init__(self, rts, rts_aid):
        self.rts, self.rts_aid = rts, rts_aid

    def __call__(self, x_adv: torch.Tensor, state) -> torch.Tensor:
        cls = state.target if state.targeted else state.logits.argmax(1).detach()
        return map_disagreement(self.rts, self.rts_aid, x_adv, cls)

    def __repr__(self) -> str:
        return "MapAgreement(rts, rts_aid)"


class AIDDetector(Detector):
    """AID as a detector (Zhang et al., section 5 and Appendix A5). RTS^A, the RTS decoder distilled with
    AID, keeps RTS's maps on benign inputs but is trained to draw different ones on ADV² inputs, so the
    score is :func:`map_disagreement` between RTS and RTS^A for the class the model predicts.
    ``rts`` / ``rts_aid``: interpreters, or ``None`` to build them with :func:`arena_rts`
    (``rts_steps``, ``rts_batch``, ``aid_budget``, ``train_budget``); the default ``rts`` is AID's control (RTS trained
    as long as RTS^A, without the AID term), so that benign maps agree as the paper's do."""

    name = "aid"

    def __init__(self, model, fpr: float = 0.05, rts=None, rts_aid=None, rts_steps: int | None = None,
                 rts_batch: int | None = None, aid_budget: str = "full", train_budget: str = "full", batch_size: int = 32):
        super().__init__(model, fpr, batch_size)
        build = dict(aid_budget=aid_budget, train_budget=train_budget)
        self.rts = rts if rts is not None else arena_rts(model, rts_steps, rts_batch, control=True, **build)
        self.rts_aid = rts_aid if rts_aid is not None else arena_rts(model, rts_steps, rts_batch, **build)
        for who, interp in (("rts", self.rts), ("rts_aid", self.rts_aid)):
            if not hasattr(interp, "masks") or interp.model is not model:
                raise ValueError(f"{who} must be an RTS interpreter of the detector's model")

    @torch.no_grad()
    def _score(self, x):
        pred = self.model(x).argmax(1)
        return map_disagreement(self.rts, self.rts_aid, x, pred)


class MultiInterpreter(Detector):
    """The multi-interpreter detector (chapter 4): maps of ``interpreters`` stacked, features of a frozen
    ``extractor`` model (or the pooled maps themselves), gradient boosting. Supervised:
    ``learn(x_benign, x_adversarial)`` trains the booster (balanced sets), then ``fit(x_benign)`` sets
    the threshold on benign images it has not seen. ``fit(x_benign, x_adversarial)`` on a detector
    that has not learned yet does both: it learns on half of the benign images and as many
    adversarial ones, and sets the threshold on the other half."""

    name = "multi_interpreter"
    supervised = True

    def __init__(self, model, fpr: float = 0.05, interpreters: Sequence[str] = ("grad", "cam"), extractor=None,
                 product: bool = False, booster: str = "gb", seed: int = 0, batch_size: int = 64, **booster_params):
        from .defenses.multi_interpreter import ModelFeatures, MultiInterpreterDetector, PixelFeatures
        from .interpreters import get_interpreter

        super().__init__(model, fpr, batch_size)
        if not interpreters:
            raise ValueError("the multi-interpreter detector needs at least one interpreter")
        self.interpreters = [get_interpreter(n, model) for n in interpreters]
        self.interpreter_names = list(interpreters)
        feats = PixelFeatures() if extractor is None else ModelFeatures(extractor)
        booster_params.setdefault("n_estimators", 100)
        self.detector = MultiInterpreterDetector(feats, booster=booster, product=product, seed=seed, **booster_params)
        self.seed = int(seed)

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        from .defenses.multi_interpreter import explain_all

        return explain_all(self.interpreters, x.to(_device(self.model)), self.batch_size)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.name)
        if len(x) == 0:
            return torch.zeros(0, dtype=torch.float64)
        return torch.as_tensor(self.detector.predict_proba(self.maps(x)), dtype=torch.float64)

    @property
    def learned(self) -> bool:
        return self.detector._clf is not None

    def learn(self, x_benign: torch.Tensor, x_adversarial: torch.Tensor) -> "MultiInterpreter":
        """Train the booster on as many benign as adversarial images (the larger set subsampled)."""
        if len(x_benign) < 1 or len(x_adversarial) < 1:
            raise ValueError(f"{self.name}: learning needs benign and adversarial images")
        g = torch.Generator().manual_seed(self.seed)
        k = min(len(x_benign), len(x_adversarial))
        xb = x_benign[torch.randperm(len(x_benign), generator=g)[:k]]
        xa = x_adversarial[torch.randperm(len(x_adversarial), generator=g)[:k]]
        self.detector.fit(self.maps(xb), self.maps(xa))
        return self

    def fit(self, x_benign: torch.Tensor, x_adversarial: torch.Tensor | None = None) -> "MultiInterpreter":
        if x_adversarial is None:
            if not self.learned:
                raise ValueError(f"{self.name} is supervised: learn(x_benign, x_adversarial) first, or "
                                 f"fit(x_benign, x_adversarial) with adversarial images")
            return super().fit(x_benign)
        if len(x_benign) < 4:
            raise ValueError(f"{self.name}: fit on at least four benign images (half learn, half set the threshold)")
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(x_benign), generator=g)
        learn, calib = order[: len(order) // 2], order[len(order) // 2:]
        self.learn(x_benign[learn], x_adversarial)
        s = self.scores(x_benign[calib])
        self.threshold = threshold_at_fpr(s, self.fpr)
        self.benign_calibration_rate = detection_rate(s, self.threshold)
        return self


class Undefended(Defense):
    name = "undefended"

    @torch.no_grad()
    def _predict(self, x):
        return self.model(x).argmax(1)


class HeatAndBlurDefense(Defense):
    """Algorithm 1 of Brama & Grinshpoun: classify the heat-and-blurred input."""

    name = "heat_and_blur"

    def __init__(self, model, sigma: float = 1.0, threshold: str = "mean2std", batch_size: int = 32):
        from .defenses.heat_and_blur import HeatAndBlur

        super().__init__(model, batch_size)
        self.defense = HeatAndBlur(model, sigma=sigma, threshold=threshold, batch_size=batch_size)

    def _predict(self, x):
        return self.defense(x).pred


class RobustModel(Defense):
    """A PGD adversarially trained copy of the model (chapter 5's :func:`robust_model`, cached) labels the
    inputs. Images crafted against the plain model measure transfer to the robust copy; the white-box
    attack on the copy itself is an arena attack of kind ``"robust"`` (the same settings, so the same
    cached model)."""

    name = "adversarial_training"

    def __init__(self, model, eps: float = 0.025, robust=None, train_budget: str = "full", batch_size: int = 64,
                 **config):
        if robust is None:
            from .defenses.adversarial_training import robust_model

            robust = robust_model(model.info.name, eps, train_budget=train_budget, device=str(_device(model)),
                                  **config)
        super().__init__(robust, batch_size)
        self.eps = eps

    @torch.no_grad()
    def _predict(self, x):
        return self.model(x).argmax(1)


DETECTORS = Registry("arena member")
DETECTORS.register("ig_masking", "detector: IG causal masking (Jha et al.), score -rho")(IGMasking)
DETECTORS.register("feature_squeezing", "detector: feature squeezing (Xu et al.), joint L1 score")(FeatureSqueezingDetector)
DETECTORS.register("heat_and_blur_change", "detector: L1 between softmax of x and of heat-and-blur(x)")(HeatAndBlurChange)
DETECTORS.register("multi_interpreter", "detector: stacked interpreter maps + gradient boosting (supervised)")(MultiInterpreter)
DETECTORS.register("sje_disagreement", "detector: SJE vs softmax on the same features")(SJEDisagreement)
DETECTORS.register("aid", "detector: L1 between the RTS and the AID-distilled RTS^A maps (Zhang et al.)")(AIDDetector)
DETECTORS.register("undefended", "defense: the model itself (baseline robust accuracy)")(Undefended)
DETECTORS.register("heat_and_blur", "defense: heat-and-blur cleaning (Brama & Grinshpoun, Algorithm 1)")(HeatAndBlurDefense)
DETECTORS.register("adversarial_training", "defense: a PGD adversarially trained copy of the model")(RobustModel)


def get_member(name: str, model, **settings) -> Detector | Defense:
    """The arena member ``name`` on ``model`` (unknown names fail with the valid ones)."""
    return DETECTORS.get(name, model, **settings)


# --------------------------------------------------------------------------------------------- the arena

class Arena:
    """Members fitted once, then every attack evaluated against every member.

    ``Arena({"IG masking": IGMasking(model), ...}, model)``; ``fit(x_calibration, x_train_adversarial)``
    (benign images disjoint from the attacked ones; the training attack's images for supervised
    detectors); ``evaluate({"PGD": result, ...}, x_benign, y_benign)`` returns a DataFrame.
    """

    def __init__(self, members: dict[str, Detector | Defense], model):
        if not members:
            raise ValueError("an arena needs at least one detector or defense")
        for label, m in members.items():
            if not isinstance(m, (Detector, Defense)):
                raise ValueError(f"member {label!r} is neither a Detector nor a Defense: {type(m).__name__}")
        self.members, self.model = dict(members), model
        self.fitted = False

    def fit(self, x_calibration: torch.Tensor, x_train_adversarial: torch.Tensor | None = None,
            progress: Callable[[str], Any] | None = None) -> "Arena":
        for label, m in self.members.items():
            if progress:
                progress(label)
            m.fit(x_calibration, x_train_adversarial if m.supervised else None)
        self.fitted = True
        return self

    def evaluate(self, attacks: dict[str, AttackResult], x_benign: torch.Tensor, y_benign: torch.Tensor,
                 adaptive: dict[str, str] | None = None):
        """Tidy records, one per (attack, member), plus a ``benign`` row per member.

        Detectors: ``value`` is the detection rate on the attack's *successful* images (``n`` of them),
        ``auc`` the ROC AUC of the scores against the benign images; the benign row's value is the
        realised false-positive rate. Defenses: ``value`` is the robust accuracy on every attacked
        image (the benign row: clean accuracy). ``adaptive`` maps attack names to the member they adapt to.
        """
        import pandas as pd

        if not self.fitted:
            raise RuntimeError("fit the arena on benign calibration images first")
        adaptive = adaptive or {}
        y_benign = torch.as_tensor(y_benign).cpu()
        rows = []
        for label, m in self.members.items():
            if isinstance(m, Detector):
                benign_scores = m.scores(x_benign)
                fpr = detection_rate(benign_scores, m.threshold)
                rows.append(dict(attack="benign", member=label, kind="detector", metric="false-positive rate",
                                 value=fpr, n=len(x_benign), auc=float("nan"), threshold=m.threshold,
                                 benign_rate=fpr, adaptive_to=""))
                for name, r in attacks.items():
                    x_adv = r.x_adv[r.success.to(r.x_adv.device)]
                    s = m.scores(x_adv)
                    rows.append(dict(attack=name, member=label, kind="detector", metric="detection rate",
                                     value=detection_rate(s, m.threshold), n=len(x_adv), auc=_auc(benign_scores, s),
                                     threshold=m.threshold, benign_rate=fpr, adaptive_to=adaptive.get(name, "")))
            else:
                clean = m.accuracy(x_benign, y_benign)
                rows.append(dict(attack="benign", member=label, kind="defense", metric="clean accuracy", value=clean,
                                 n=len(x_benign), auc=float("nan"), threshold=float("nan"), benign_rate=clean,
                                 adaptive_to=""))
                for name, r in attacks.items():
                    rows.append(dict(attack=name, member=label, kind="defense", metric="robust accuracy",
                                     value=m.accuracy(r.x_adv, r.y.cpu()), n=len(r), auc=float("nan"),
                                     threshold=float("nan"), benign_rate=clean, adaptive_to=adaptive.get(name, "")))
        return pd.DataFrame(rows)


def matrix(records, value: str = "value"):
    """The attack x member table of ``value`` (rows and columns in the order they first appear)."""
    table = records.pivot(index="attack", columns="member", values=value)
    rows = list(dict.fromkeys(records["attack"]))
    cols = list(dict.fromkeys(records["member"]))
    return table.loc[rows, cols]


# --------------------------------------------------------------------------------------------- attacks

KINDS = ("store", "patch", "edges", "adaptive_fs", "adaptive_hb", "rts", "robust")


@dataclass
class ArenaAttack:
    """One row of the arena: a registered attack (``attack``) with plain settings.

    ``kind``: ``"store"`` (built by :func:`advxai.attacks.adversarial_set`), ``"patch"`` (a universal
    patch learned on training images, then pasted), ``"edges"`` (ADV² with AdvEdge's step weights or
    AdvEdge+'s mask computed from the benign images: ``edges`` = ``"advedge"`` | ``"advedge+"``),
    ``"adaptive_fs"`` (ADV² adapted to feature squeezing, :func:`~advxai.defenses.feature_squeezing.adaptive_adv2`;
    ``params`` go to it, ``attack`` is ``"adv2"``), ``"adaptive_hb"`` (heat-and-blur's Algorithm 2,
    :func:`~advxai.defenses.heat_and_blur.adaptive_attack`, with the registered ``attack`` as its inner
    attack; ``params``: ``iterations``, ``sigma``, ``threshold``, ``eps`` and the inner attack's settings),
    ``"rts"`` (ADV² against an RTS decoder built by :func:`arena_rts`: ``params`` ``rts_steps``,
    ``rts_batch``, ``aid`` (``None``: RTS; an AID budget: RTS^A) and ``match_weight`` (> 0, with
    ``match_with="control"``, adds :class:`MapAgreement` between RTS^A and AID's control: the adaptive
    attack on the AID detector), the rest to
    :func:`~advxai.attacks.make_adv2`), ``"robust"`` (the registered ``attack`` white-box against the
    adversarially trained copy of the model: ``params["robust"]`` holds :func:`robust_model`'s ``eps``
    and settings, the rest go to the attack).
    ``max_images``: attack only the first so many of the images (for the costly attacks).
    """

    label: str
    attack: str
    params: dict = field(default_factory=dict)
    targeted: bool = False
    kind: str = "store"
    edges: str | None = None
    max_images: int | None = None

    def __post_init__(self):
        from .attacks import ATTACKS

        ATTACKS.check(self.attack)
        if self.kind not in KINDS:
            raise ValueError(f"unknown arena attack kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if self.kind == "edges" and self.edges not in ("advedge", "advedge+"):
            raise ValueError(f"edges must be 'advedge' or 'advedge+', got {self.edges!r}")
        if self.max_images is not None and (isinstance(self.max_images, bool) or not isinstance(self.max_images, int)
                                            or self.max_images < 1):
            raise ValueError(f"max_images must be a positive integer or None, got {self.max_images!r}")
        if self.kind == "robust" and not isinstance(self.params.get("robust"), dict):
            raise ValueError("a 'robust' attack needs params['robust']: the adversarially trained model's eps and settings")


def study_attacks(budget: str = "quick", eps: float = 8 / 255, num_classes: int = 10, seed: int = 0,
                  squeezer: str = "median_3x3", sqz_weight: float = 10.0, hb_iterations: int = 3,
                  hb_sigma: float = 1.0, mask: dict | None = None, mask_images: int | None = 4,
                  rts_steps: int | None = None, rts_batch: int | None = None, aid_budget: str = "full", aid_match_weight: float = 10.0,
                  robust: dict | None = None) -> dict[str, ArenaAttack]:
    """The study's attacks by short name, at an L-inf budget ``eps`` where they have one; step counts
    scaled by ``budget`` (``smoke`` | ``quick`` | ``paper``). Four adaptive attacks: ADV² (CAM) adapted
    to the feature-squeezing ``squeezer`` (``adaptive_adv2_fs``), PGD inside heat-and-blur's
    Algorithm 2 (``adaptive_hb``), ADV² against RTS^A that also makes RTS agree with RTS^A
    (``adaptive_aid``, weight ``aid_match_weight``) and PGD against the adversarially trained model
    (``pgd_at``, only when ``robust`` gives that model's ``eps`` and settings).

    ADV² against MASK is the bilevel attack; ``mask`` overrides its budget's settings (e.g.
    ``steps``, ``reset_every``, ``reset_iterations``, ``interpreter_settings={"iterations": 60}``) and
    ``mask_images`` limits it to the first images. ADV² against RTS uses RTS trained with the model's
    training budget (``rts_steps`` steps of ``rts_batch`` images where given); RTS^A that decoder
    distilled with AID at ``aid_budget``."""
    if budget not in ("smoke", "quick", "paper"):
        raise ValueError(f"budget must be smoke, quick or paper, got {budget!r}")
    f = {"smoke": 0.1, "quick": 1.0, "paper": 10.0}[budget]

    def n(k: int) -> int:
        return max(2, int(round(k * f)))

    if aid_budget not in ("smoke", "full"):
        raise ValueError(f"aid_budget must be smoke or full, got {aid_budget!r}")
    rts = {"budget": budget, "eps": eps, "seed": seed, "rts_steps": rts_steps, "rts_batch": rts_batch}

    target = (seed + 1) % num_classes  # the class the universal patches ask for
    return {
        "fgsm": ArenaAttack("FGSM", "fgsm", {"eps": eps}),
        "pgd": ArenaAttack("PGD", "pgd", {"eps": eps, "steps": n(20), "alpha": 2.5 * eps / n(20), "seed": seed}),
        "cw": ArenaAttack("C&W", "cw", {"c": 0.1, "steps": n(50), "lr": 0.01, "binary_search_steps": n(3)}),
        "deepfool": ArenaAttack("DeepFool", "deepfool", {"steps": n(30), "overshoot": 0.02}),
        "patch": ArenaAttack("patch", "patch", {"target_class": target, "size": 0.25, "steps": n(100)},
                             targeted=True, kind="patch"),
        "lavan": ArenaAttack("LaVAN", "lavan", {"target_class": target, "size": 0.03, "steps": n(100)},
                             targeted=True, kind="patch"),
        "lbfgs": ArenaAttack("L-BFGS", "lbfgs", {"search_steps": n(3), "max_iter": n(30)}, targeted=True),
        "boundary": ArenaAttack("Boundary", "boundary", {"steps": n(200), "seed": seed}),
        "stadv": ArenaAttack("StAdv", "stadv", {"steps": n(50)}),
        "adv2_cam": ArenaAttack("ADV² (CAM)", "adv2", {"interpreter": "cam", "budget": budget, "eps": eps}, targeted=True),
        "adv2_grad": ArenaAttack("ADV² (GRAD)", "adv2", {"interpreter": "grad", "budget": budget, "eps": eps},
                                 targeted=True),
        "advedge_cam": ArenaAttack("AdvEdge (CAM)", "adv2", {"interpreter": "cam", "budget": budget, "eps": eps},
                                   targeted=True, kind="edges", edges="advedge"),
        "advedge_plus_cam": ArenaAttack("AdvEdge+ (CAM)", "adv2", {"interpreter": "cam", "budget": budget, "eps": eps},
                                        targeted=True, kind="edges", edges="advedge+"),
        "adaptive_adv2_fs": ArenaAttack("adaptive ADV² (CAM) vs FS", "adv2",
                                        {"interpreter": "cam", "squeezer": squeezer, "sqz_weight": float(sqz_weight),
                                         "budget": budget, "eps": eps}, targeted=True, kind="adaptive_fs"),
        "adaptive_hb": ArenaAttack("PGD in Algorithm 2 vs H&B", "pgd",
                                   {"eps": eps, "steps": n(10), "alpha": 2.5 * eps / n(10), "seed": seed,
                                    "iterations": int(hb_iterations), "sigma": float(hb_sigma)}, kind="adaptive_hb"),
        "adv2_mask": ArenaAttack("ADV² (MASK)", "adv2", {"interpreter": "mask", "budget": budget, "eps": eps,
                                                        "seed": seed, **(mask or {})},
                                 targeted=True, max_images=mask_images),
        "adv2_rts": ArenaAttack("ADV² (RTS)", "adv2", {**rts, "aid": None}, targeted=True, kind="rts"),
        "adv2_rts_aid": ArenaAttack("ADV² (RTS^A)", "adv2", {**rts, "aid": aid_budget}, targeted=True, kind="rts"),
        "adaptive_aid": ArenaAttack("adaptive ADV² vs AID", "adv2",
                                    {**rts, "aid": aid_budget, "match_weight": float(aid_match_weight),
                                     "match_with": "control"},
                                    targeted=True, kind="rts"),
        **({"pgd_at": ArenaAttack("PGD vs adv. training", "pgd",
                                  {"eps": eps, "steps": n(20), "alpha": 2.5 * eps / n(20), "seed": seed,
                                   "robust": dict(robust)}, kind="robust")} if robust is not None else {}),
    }


def as_result(model, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
              extras: dict | None = None) -> AttackResult:
    """An :class:`AttackResult` for images made elsewhere (e.g. heat-and-blur's adaptive attack)."""
    dev = _device(model)
    with torch.no_grad():
        probs = model(x_adv.to(dev)).softmax(1)
    conf, pred = probs.max(1)
    y = torch.as_tensor(y).to(dev)
    success = pred == target.to(dev) if target is not None else pred != y
    norms = perturbation_norms(x_adv.to(dev), x.to(dev))
    return AttackResult(x_adv.to(dev), success, pred, conf, y, None if target is None else target.to(dev),
                        norms["linf"], norms["l2"], norms["l0"], extras or {})


def craft(spec: ArenaAttack, model: str, dataset: str, index, *, split: str = "test", train_budget: str = "full",
          device: str = "auto", seed: int = 0, patch_images: int = 256) -> AttackResult:
    """The adversarial images of ``spec`` on images ``index`` of ``dataset`` against ``model`` (cached)."""
    from .attacks import ATTACKS, adversarial_set
    from .attacks.edges import edge_step_mask
    from .attacks.store import _from_payload, _to_payload
    from .data import get_dataset
    from .models import get_model
    from .runtime import cached, resolve_device

    index = torch.as_tensor(index, dtype=torch.long).cpu()
    if spec.max_images is not None:
        index = index[:spec.max_images]
    common = dict(model=model, dataset=dataset, index=index, split=split, train_budget=train_budget, device=device)
    if spec.kind == "store":
        return adversarial_set(spec.attack, targeted=spec.targeted, target_seed=seed, **common, **spec.params)
    if spec.kind == "edges":
        x = get_dataset(dataset, split=split).batch(index).x
        mask = edge_step_mask(x, spec.edges)
        return adversarial_set(spec.attack, targeted=spec.targeted, target_seed=seed, step_mask=mask, **common,
                               **spec.params)
    dev = resolve_device(device)
    net = get_model(model, device=str(dev), train_budget=train_budget)
    if spec.kind in ("adaptive_fs", "adaptive_hb", "rts", "robust"):
        return _craft_adaptive(spec, net, model, dataset, index, split, train_budget, dev, seed)
    # a universal patch: learned once on training images (cached), then pasted on the test images
    attack = ATTACKS.get(spec.attack, net, seed=seed, **spec.params)
    key = {"name": f"{spec.attack}-{model}-{dataset}", "params": spec.params, "model": model,
           "train_budget": train_budget, "dataset": dataset, "images": int(patch_images), "seed": seed,
           "device_type": dev.type}

    def learn() -> dict:
        train = get_dataset(dataset, split="train")
        images = train.load_images(torch.arange(min(int(patch_images), len(train))))
        return {"patch": attack.fit(images.to(dev)).patch.cpu()}

    attack.set_patch(cached("patches", key, learn)["patch"])
    batch = get_dataset(dataset, split=split).batch(index)
    keep = batch.y != attack.target_class  # an image of the target class cannot be "fooled" into it
    index, x, y = index[keep], batch.x[keep], batch.y[keep]
    spec_key = {**key, "name": f"{spec.attack}-applied-{model}-{dataset}", "index": index, "split": split}
    payload = cached("adversarial", spec_key, lambda: _to_payload(attack(x, y)))
    return _from_payload(payload, dev)



def _craft_adaptive(spec: ArenaAttack, net, model: str, dataset: str, index: torch.Tensor, split: str,
                    train_budget: str, dev: torch.device, seed: int) -> AttackResult:
    """The study's adaptive attacks, cached like the attack store's sets (same kind, own key)."""
    from .attacks import ATTACKS
    from .attacks.store import _from_payload, _to_payload, random_targets
    from .data import get_dataset
    from .runtime import cached

    key = {"name": f"{spec.kind}-{spec.attack}-{model}-{dataset}", "kind": spec.kind, "attack": spec.attack,
           "params": spec.params, "model": model, "train_budget": train_budget, "dataset": dataset, "split": split,
           "index": index, "targeted": spec.targeted, "target_seed": seed, "device_type": dev.type}

    def build() -> dict:
        batch = get_dataset(dataset, split=split).batch(index)
        x, y = batch.x.to(dev), batch.y.to(dev)
        target = random_targets(batch.y, net.info.num_classes, seed).to(dev) if spec.targeted else None
        params = dict(spec.params)
        if spec.kind == "rts":
            return _to_payload(_adv2_rts(net, params, train_budget)(x, y, target))
        if spec.kind == "robust":
            from .defenses.adversarial_training import robust_model

            config = dict(params.pop("robust"))
            robust = robust_model(model, config.pop("eps"), train_budget=train_budget, device=str(dev), **config)
            if spec.targeted:
                params["targeted"] = True
            return _to_payload(ATTACKS.get(spec.attack, robust, **params)(x, y, target))
        if spec.kind == "adaptive_fs":
            from .defenses.feature_squeezing import adaptive_adv2

            interpreter = params.pop("interpreter", "cam")
            squeezer = params.pop("squeezer", "median_3x3")
            return _to_payload(adaptive_adv2(net, interpreter, squeezer, seed=seed, **params)(x, y, target))
        from .defenses.heat_and_blur import HeatAndBlur, adaptive_attack

        iterations = int(params.pop("iterations", 5))
        sigma, threshold = params.pop("sigma", 1.0), params.pop("threshold", "mean2std")
        eps = params.get("eps")
        inner = ATTACKS.get(spec.attack, net, targeted=spec.targeted, **params)
        res = adaptive_attack(HeatAndBlur(net, sigma=sigma, threshold=threshold), inner, x, y, iterations=iterations,
                              target=target, eps=eps)
        out = as_result(net, x, res.x_adapt, y, target,
                        extras={"defended_success": res.success, "iterations": res.iterations.float()})
        return _to_payload(out)

    return _from_payload(cached("adversarial", key, build), dev)


def _adv2_rts(net, params: dict, train_budget: str = "full"):
    """ADV² against RTS or RTS^A (``params["aid"]``), with the detector's map agreement as a further term
    when ``params["match_weight"]`` > 0."""
    from .attacks.adv2 import ADV2, adv2_settings

    params = dict(params)
    steps, batch = params.pop("rts_steps"), params.pop("rts_batch")
    aid, weight = params.pop("aid", None), float(params.pop("match_weight", 0.0))
    match_with = params.pop("match_with", None)
    if weight > 0 and (aid is None or match_with != "control"):
        raise ValueError("match_weight needs aid (an AID budget) and match_with='control': the term pulls RTS^A's "
                         "map towards its control's, the pair the AID detector compares")
    settings = adv2_settings("rts", params.pop("budget", "quick"))  # RTS^A keeps RTS's settings
    settings.update(params)
    interp = arena_rts(net, steps, batch, aid, train_budget=train_budget)
    # the pair the AID detector compares: RTS^A and its control
    terms = [(weight, MapAgreement(arena_rts(net, steps, batch, aid, control=True,
                                                                 train_budget=train_budget), interp))] if weight > 0 else []
    return ADV2(net, interp, terms=terms, **settings)


def plot_matrix(records, title: str = "", ax=None, cmap: str = "RdYlGn"):
    """The attack x member matrix as a heat-map: detectors (detection rate) then defenses (robust
    accuracy), each cell annotated; cells of an attack adapted to that member are outlined; the
    ``benign`` row (false-positive rate / clean accuracy) is printed without colour."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    table = matrix(records)
    kinds = records.drop_duplicates("member").set_index("member")["kind"]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.9 * table.shape[1], 0.8 + 0.38 * table.shape[0]))
    values = table.to_numpy(dtype=float)
    colours = values.copy()
    # the benign row holds false-positive rates and clean accuracies: numbers only, no colour (low is good there)
    colours[[i for i, a in enumerate(table.index) if a == "benign"], :] = np.nan
    ax.imshow(colours, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, "-" if v != v else f"{v:.2f}", ha="center", va="center", fontsize=7)
    adaptive = records[records["adaptive_to"].astype(bool)]
    for _, r in adaptive.iterrows():
        if r["member"] == r["adaptive_to"]:
            i, j = list(table.index).index(r["attack"]), list(table.columns).index(r["member"])
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="black"))
    n_det = int((kinds.loc[list(table.columns)] == "detector").sum())
    if 0 < n_det < table.shape[1]:
        ax.axvline(n_det - 0.5, color="black", lw=1.5)
    labels = [f"{c}\n({'detection' if kinds[c] == 'detector' else 'robust acc.'})" for c in table.columns]
    ax.set_xticks(range(table.shape[1]), labels, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(table.shape[0]), list(table.index), fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


# --------------------------------------------------------------------------------------------- claims

def _weighted(records, attacks: Sequence[str], member: str) -> float:
    """The mean of ``member``'s cells over ``attacks``, weighted by their numbers of images (NaN if none)."""
    cells = records[records.attack.isin(list(attacks)) & (records.member == member)]
    w, v = cells["n"].to_numpy(float), cells["value"].to_numpy(float)
    ok = (w > 0) & (v == v)
    return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")


def cross_claims(records, *, aware: Sequence[str], attribution_detectors: Sequence[str], adv2: Sequence[str],
                 adaptive: Sequence[tuple[str, str, str]] = (), pgd: str = "PGD", heat_and_blur: str = "heat and blur",
                 undefended: str = "undefended", aid: str = "AID", adv2_rts: str = "ADV² (RTS)",
                 margin: float = 0.1, setting: str = "", sections: dict[str, str] | None = None):
    """The arena's own claims (a list of :class:`advxai.report.Claim`), each computed from ``records``
    (:meth:`Arena.evaluate`); a claim whose rows or columns are absent is left out.

    * the interpretation-aware attacks ``aware`` evade the ``attribution_detectors``: *reproduced* when
      every one of them flags them at least ``margin`` less often than ``pgd``, *same direction* when
      their mean does, else *not reproduced*;
    * heat and blur removes ADV²'s effect (rows ``adv2``): *reproduced* when its robust accuracy is at
      least 0.5 and ``margin`` above the undefended model's, *same direction* when only above;
    * AID flags ``adv2_rts`` images: *reproduced* at a detection rate of 0.5 or more, *same direction*
      when above its benign false-positive rate by ``margin``;
    * per ``(adaptive row, base row, member)``: the adaptive attack lowers the member's number (detection
      rate or robust accuracy) by at least ``margin`` against the base attack: *reproduced*; lower: *same
      direction*; *not measured* when the base attack's number is already below ``margin`` (nothing left
      to evade).
    ``sections`` maps ``"aware"``, ``"heat_and_blur"``, ``"aid"``, ``"adaptive"`` to the section anchors."""
    from .report import Claim

    sections = sections or {}
    table = matrix(records)
    rows, cols = set(table.index), set(table.columns)
    claims = []
    aware = [a for a in aware if a in rows]
    dets = [d for d in attribution_detectors if d in cols]
    if aware and dets and pgd in rows:
        ours = {d: (_weighted(records, aware, d), table.loc[pgd, d]) for d in dets}
        lower = [d for d, (a, p) in ours.items() if a <= p - margin]
        mean_a = sum(a for a, _ in ours.values()) / len(ours)
        mean_p = sum(p for _, p in ours.values()) / len(ours)
        verdict = ("reproduced" if len(lower) == len(dets) else "same direction" if mean_a <= mean_p - margin
                   else "not reproduced")
        claims.append(Claim(
            "An interpretation-aware attack (ADV², AdvEdge) evades the attribution-based detectors better than PGD",
            setting, "evades (ADV², AdvEdge papers)", round(mean_a, 3), verdict, sections.get("aware", ""),
            note=f"mean detection rate {mean_a:.2f} vs PGD {mean_p:.2f}; " +
                 "; ".join(f"{d} {a:.2f} vs {p:.2f}" for d, (a, p) in ours.items())))
    adv2 = [a for a in adv2 if a in rows]
    if adv2 and heat_and_blur in cols and undefended in cols:
        hb, base = _weighted(records, adv2, heat_and_blur), _weighted(records, adv2, undefended)
        verdict = ("reproduced" if hb >= 0.5 and hb >= base + margin else "same direction" if hb > base
                   else "not reproduced")
        claims.append(Claim("Heat and blur removes ADV²'s effect (robust accuracy on ADV² images)", setting,
                            "removes (question of this chapter)", round(hb, 3), verdict,
                            sections.get("heat_and_blur", ""),
                            note=f"undefended {base:.2f}; rows: {', '.join(adv2)}"))
    if aid in cols and adv2_rts in rows:
        rate, fpr = table.loc[adv2_rts, aid], table.loc["benign", aid] if "benign" in rows else float("nan")
        verdict = ("reproduced" if rate >= 0.5 else "same direction" if rate >= fpr + margin else "not reproduced")
        claims.append(Claim("AID: RTS^A draws different maps on ADV² (RTS) inputs, so the RTS/RTS^A distance flags them",
                            setting, "maps fairly distinguishable (Zhang et al., Fig. 16)", round(float(rate), 3),
                            verdict, sections.get("aid", ""), note=f"benign false-positive rate {fpr:.2f}"))
    for row, base, member in adaptive:
        if row not in rows or base not in rows or member not in cols:
            continue
        cell, ref = float(table.loc[row, member]), float(table.loc[base, member])
        if cell != cell or ref != ref:
            continue
        if ref < margin:  # the plain attack already gets through: nothing is left for the adaptive one to show
            verdict, note = "not measured", f"{base} already at {ref:.2f}"
        else:
            verdict = "reproduced" if cell <= ref - margin else "same direction" if cell < ref else "not reproduced"
            note = f"{base}: {ref:.2f}"
        claims.append(Claim(f"An attacker who knows {member} evades it: {row} against {base}", setting,
                            "adaptive attacks evade (Zhang et al.; Brama & Grinshpoun)", round(cell, 3), verdict,
                            sections.get("adaptive", ""), note=note))
    return claims
