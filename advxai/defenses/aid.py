"""AID: adversarial interpretation distillation (Zhang et al., section 5 and Appendix A5), for RTS.

RTS predicts a saliency mask in one forward pass, so its decoder can be retrained with adversarial
inputs in the loop. AID alternates between two losses on the decoder's parameters ``theta``:

* ``l_int(theta)``: the RTS training objective (Eq. 22 = Eq. 8 of the paper) on benign training
  images, so benign maps stay what RTS is meant to produce;
* ``l_aid(theta) = -|| g(x; theta) - g(A(x); theta) ||_1`` (Eq. 23), the negative per-pixel L1 distance
  between the map of a benign input (for its class) and the map of its ADV² counterpart (for the
  adversarial class), ADV² being run against the *current* decoder at every round. Minimising it
  makes the maps of adversarial inputs differ from the benign ones, so a changed prediction shows
  in the interpretation: the prediction-interpretation gap ADV² exploits is narrowed.

Each of ``rounds`` rounds crafts ADV² examples (PGD-based, with the encoder loss) for a fresh batch
of correctly classified training images against the current decoder, then takes ``steps_per_round``
pairs of decoder steps (one on ``l_int``, one on ``aid_weight * l_aid``). The distilled decoder is
cached under ``$ADVXAI_CACHE/rts_aid`` keyed by the classifier, the starting RTS decoder, every
setting and the training precision (bfloat16 mixed precision for the rounds, ADV² included, where the
hardware computes it natively, as for every training here:
:func:`~advxai.models.training.training_precision`); :func:`aid_rts` returns it as an
:class:`~advxai.interpreters.rts.RTS` interpreter (RTS^A).

Zhang et al. show that RTS^A draws almost the maps of RTS on benign inputs and different ones on
ADV² inputs; :class:`AIDDetector` turns that into a detector (the per-pixel distance between the two
maps of the predicted class, :func:`map_disagreement`), and :class:`AdaptiveAID` (the attack
``"adaptive_aid"``) is ADV² against RTS^A that also pulls the two maps together (:class:`MapAgreement`).
:func:`trained_rts` builds the decoders these use from the training budgets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from ..attacks.adv2 import ADV2, adv2_settings
from ..interpreters.rts import RTS, alternatives, model_digest, rts_objective
from ..models.training import autocast, check_precision, training_precision
from ..runtime import cached
from .base import Detector

__all__ = ["AIDConfig", "train_aid", "aid_rts", "aid_loss", "trained_rts", "map_disagreement", "MapAgreement",
           "AIDDetector", "AdaptiveAID"]


@dataclass(frozen=True)
class AIDConfig:
    """AID training settings (part of the cache key)."""

    rounds: int = 8
    steps_per_round: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    aid_weight: float = 1.0
    eps: float = 0.031
    alpha: float = 1 / 255
    attack_warm_steps: int = 10
    attack_steps: int = 20
    attack_lam: float = 5.0
    attack_enc_weight: float = 0.1
    seed: int = 0

    def __post_init__(self):
        for name in ("rounds", "steps_per_round", "batch_size", "attack_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0 or not self.aid_weight >= 0:
            raise ValueError("lr must be positive and aid_weight non-negative")


BUDGETS = {"full": AIDConfig(), "smoke": AIDConfig(rounds=2, steps_per_round=3, batch_size=8, attack_warm_steps=3,
                                                    attack_steps=4)}


def aid_loss(rts: RTS, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 23 per image [B]: minus the per-pixel L1 distance between the benign map (class ``y``) and the
    adversarial map (class ``target``), differentiable in the decoder's parameters."""
    benign, _ = rts.masks(x, y)
    adversarial, _ = rts.masks(x_adv, target)
    return -(benign - adversarial).abs().flatten(1).mean(1)


def train_aid(rts: RTS, config: AIDConfig = AIDConfig(), dataset=None, progress: bool = True,
              precision: str = "fp32") -> dict:
    """Distil ``rts`` (its decoder is copied, not changed); returns the new decoder's state dict and the
    history of both losses per round. ``precision``: ``"bf16"`` runs each round (the ADV² examples and
    the decoder's losses) under bfloat16 autocast."""
    check_precision(precision)
    from ..attacks.adv2 import ADV2
    from ..attacks.store import random_targets
    from ..data import get_dataset

    model = rts.model
    dev = model.device
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    if dataset is None:
        name = model.info.dataset
        kwargs = {"n": 2000} if name == "shapes" else {}
        dataset = get_dataset(name, split="train", **kwargs)
    # a working copy of the interpreter whose decoder is trained
    student = RTS(model, encoder=rts.encoder if rts.encoder is not model else None, layers=rts.layers,
                  config=rts.config, payload=rts.state_dict_payload())
    student.decoder.requires_grad_(True).train()
    opt = torch.optim.Adam(student.decoder.parameters(), lr=config.lr)
    k = model.info.num_classes
    h = model.info.input_size[-1]
    order = torch.randperm(len(dataset), generator=g)
    cursor = 0
    history = {"l_int": [], "l_aid": [], "adv_success": []}

    def next_batch(n):
        nonlocal cursor
        idx = order[(torch.arange(n) + cursor) % len(dataset)]
        cursor += n
        b = dataset.batch(idx)
        return b.x.to(dev), b.y.to(dev)

    def correct_batch(n):
        xs, ys, seen = [], [], 0
        while sum(len(v) for v in ys) < n and seen < len(dataset):
            xb, yb = next_batch(min(2 * n, len(dataset)))
            seen += len(xb)
            with torch.no_grad():
                keep = model(xb).argmax(1) == yb
            xs.append(xb[keep])
            ys.append(yb[keep])
        x, y = torch.cat(xs)[:n], torch.cat(ys)[:n]
        if len(x) == 0:
            raise ValueError(f"AID: {model.info.name} classifies none of the {len(dataset)} training images of "
                             f"{getattr(dataset, 'name', 'the data set')} correctly, so ADV² has nothing to attack")
        return x, y

    rounds = range(config.rounds)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc=f"AID for RTS on {model.info.name}", leave=False)

    for _ in rounds:
        # adversarial inputs against the current decoder, on correctly classified images only: batches
        # are drawn until ``batch_size`` of them are found or the whole training set has been seen
        x, y = correct_batch(config.batch_size)
        target = random_targets(y, k, seed=int(torch.randint(0, 2 ** 31 - 1, (1,), generator=g))).to(dev)
        student.decoder.eval().requires_grad_(False)
        attack = ADV2(model, student, eps=config.eps, alpha=config.alpha, warm_steps=config.attack_warm_steps,
                      steps=config.attack_steps, lam=config.attack_lam, enc_weight=config.attack_enc_weight,
                      confidence=0.0, seed=config.seed)
        with autocast(precision, dev):
            adv = attack(x, y, target)
        history["adv_success"].append(adv.success_rate)
        student.decoder.train().requires_grad_(True)
        x_adv = adv.x_adv.detach()
        for _ in range(config.steps_per_round):
            # l_int on fresh benign images (real classes; the fake-class rule of RTS training kept)
            xb, yb = next_batch(config.batch_size)
            fake = torch.rand(len(xb), generator=g) < rts.config.fake_fraction
            other = (yb.cpu() + torch.randint(1, k, (len(xb),), generator=g)) % k
            cls = torch.where(fake, other, yb.cpu()).to(dev)
            alt = alternatives(xb, g, 10.0 * h / 224, rts.config.alternatives)
            with autocast(precision, dev):
                mask, _ = student.masks(xb, cls)
                l_int = rts_objective(model, xb, mask, cls, (~fake).to(dev), alt, rts.config).mean()
            opt.zero_grad()
            l_int.backward()
            opt.step()
            # l_aid on this round's adversarial inputs
            with autocast(precision, dev):
                l_aid = aid_loss(student, x, y, x_adv, target).mean()
            opt.zero_grad()
            (config.aid_weight * l_aid).backward()
            opt.step()
            history["l_int"].append(l_int.item())
            history["l_aid"].append(l_aid.item())
    student.decoder.eval().requires_grad_(False)
    payload = student.state_dict_payload()
    payload["aid_history"] = history
    return payload


def aid_rts(rts: RTS, config: AIDConfig | None = None, train_budget: str = "full", dataset=None,
            progress: bool = True, precision: str | None = None) -> RTS:
    """RTS^A: ``rts`` distilled with AID (trained on first use, then loaded from the cache).

    ``precision``: the training precision (``"auto"``, ``"bf16"``, ``"fp32"``; default
    ``$ADVXAI_TRAIN_PRECISION``, else auto: bf16 where native), part of the cache key."""
    if train_budget not in BUDGETS:
        raise ValueError(f"train_budget must be one of {sorted(BUDGETS)}, got {train_budget!r}")
    if not isinstance(rts, RTS):
        raise ValueError(f"AID applies to the RTS interpreter, got {type(rts).__name__}")
    config = config or BUDGETS[train_budget]
    model = rts.model
    precision = training_precision(model.device, precision)
    spec = {"name": f"rts-aid-{model.info.name}", "version": 2, "model": model_digest(model),
            "decoder": model_digest(rts.decoder), "layers": rts.layers, "rts_config": asdict(rts.config),
            "aid_config": asdict(config), "device": model.device.type, "precision": precision,
            "dataset": None if dataset is None else f"{getattr(dataset, 'name', 'custom')}-{len(dataset)}"}
    payload = cached("rts_aid", spec, lambda: train_aid(rts, config, dataset=dataset, progress=progress,
                                                      precision=precision))
    distilled = RTS(model, encoder=rts.encoder if rts.encoder is not model else None, layers=rts.layers,
                    config=rts.config, payload=payload)
    distilled.aid_history = payload.get("aid_history", {})
    distilled.name = "rts_aid"
    return distilled


# --------------------------------------------------------------------------------------------- as a detector


def trained_rts(model, steps: int | None = None, batch_size: int | None = None, aid_budget: str | None = None,
                control: bool = False, train_budget: str = "full", aid_batch: int | None = None,
                aid_rounds: int | None = None) -> RTS:
    """The RTS interpreter of ``model`` with the ``train_budget``'s decoder training (as chapter 3 trains
    it, so its cached decoder is reused; ``steps`` / ``batch_size`` override it), or, with ``aid_budget``
    (``"smoke"`` | ``"full"``), RTS^A: that decoder distilled with AID (:func:`aid_rts`, cached).

    ``control=True`` (with ``aid_budget``) gives AID's control instead: the same decoder trained by the
    same schedule on the same batches with the AID term's weight at zero, i.e. RTS trained as long as
    RTS^A. A short-trained RTS keeps changing under the extra ``l_int`` steps of AID, so only this
    control shows what the AID term alone changed. ``aid_batch`` / ``aid_rounds`` override the AID
    budget's images per batch and rounds (sizes; the cache key holds the resulting configuration)."""
    from ..interpreters.rts import BUDGETS as RTS_BUDGETS

    if train_budget not in RTS_BUDGETS:
        raise ValueError(f"train_budget must be one of {sorted(RTS_BUDGETS)}, got {train_budget!r}")
    config = RTS_BUDGETS[train_budget]
    config = replace(config, steps=int(steps or config.steps), batch_size=int(batch_size or config.batch_size))
    rts = RTS(model, config=config, progress=False)
    if aid_budget is None:
        return rts
    if aid_budget not in BUDGETS:
        raise ValueError(f"aid_budget must be one of {sorted(BUDGETS)}, got {aid_budget!r}")
    config = BUDGETS[aid_budget]
    sizes = {k: v for k, v in (("batch_size", aid_batch), ("rounds", aid_rounds)) if v is not None}
    config = replace(config, **sizes, **({"aid_weight": 0.0} if control else {}))  # AIDConfig checks the sizes
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
    score is :func:`map_disagreement` between RTS and RTS^A for the class the model predicts. Nothing
    to fit (the decoders are trained when built).

    ``rts`` / ``rts_aid``: interpreters, or ``None`` to build them with :func:`trained_rts`
    (``rts_steps``, ``rts_batch``, ``aid_budget``, ``train_budget``, ``aid_batch``, ``aid_rounds``); the
    default ``rts`` is AID's control (RTS trained as long as RTS^A, without the AID term), so that
    benign maps agree as the paper's do."""

    name = "aid"

    def __init__(self, model, fpr: float = 0.05, rts=None, rts_aid=None, rts_steps: int | None = None,
                 rts_batch: int | None = None, aid_budget: str = "full", train_budget: str = "full",
                 batch_size: int = 32, aid_batch: int | None = None, aid_rounds: int | None = None):
        super().__init__(model, fpr, batch_size)
        build = dict(aid_budget=aid_budget, train_budget=train_budget, aid_batch=aid_batch, aid_rounds=aid_rounds)
        self.rts = rts if rts is not None else trained_rts(model, rts_steps, rts_batch, control=True, **build)
        self.rts_aid = rts_aid if rts_aid is not None else trained_rts(model, rts_steps, rts_batch, **build)
        for who, interp in (("rts", self.rts), ("rts_aid", self.rts_aid)):
            if not hasattr(interp, "masks") or interp.model is not model:
                raise ValueError(f"{who} must be an RTS interpreter of the detector's model")

    @torch.no_grad()
    def _score(self, x):
        pred = self.model(x).argmax(1)
        return map_disagreement(self.rts, self.rts_aid, x, pred)


class AdaptiveAID(ADV2):
    """ADV² against RTS^A (the attacker knows the distilled decoder), registered as ``"adaptive_aid"``;
    with ``match_weight > 0`` the objective also minimises :func:`map_disagreement` between the AID
    detector's two decoders (:class:`MapAgreement`), the detector's own score.

    ``detector``: the :class:`AIDDetector` attacked (its ``rts`` and ``rts_aid``), or ``None`` to build
    the decoders with :func:`trained_rts` (``rts_steps``, ``rts_batch``, ``aid_budget``, ``train_budget``;
    AID's control only when the term needs it). ``budget`` and ``settings`` (``"paper"``: Table 11;
    ``"code"``: the authors' scripts; None: ADV²'s default) start from ADV²'s settings for RTS
    (:func:`~advxai.attacks.adv2.adv2_settings`); ``adv2_params`` override them."""

    name = "adaptive_aid"

    def __init__(self, model, detector: AIDDetector | None = None, match_weight: float = 0.0, budget: str = "quick",
                 rts_steps: int | None = None, rts_batch: int | None = None, aid_budget: str = "full",
                 train_budget: str = "full", settings: str | None = None, **adv2_params):
        if isinstance(match_weight, bool) or not isinstance(match_weight, (int, float)) or match_weight < 0:
            raise ValueError(f"match_weight must be >= 0, got {match_weight!r}")
        if detector is not None and detector.model is not model:
            raise ValueError("the AID detector must watch the attacked model")
        build = dict(aid_budget=aid_budget, train_budget=train_budget)
        rts_aid = detector.rts_aid if detector is not None else trained_rts(model, rts_steps, rts_batch, **build)
        terms = []
        if match_weight > 0:
            control = detector.rts if detector is not None else trained_rts(model, rts_steps, rts_batch,
                                                                            control=True, **build)
            terms = [(float(match_weight), MapAgreement(control, rts_aid))]
        from ..attacks.adv2 import DEFAULT_SETTINGS

        # RTS^A keeps RTS's settings
        preset = adv2_settings("rts", budget, DEFAULT_SETTINGS if settings is None else settings)
        preset.update(adv2_params)
        super().__init__(model, rts_aid, terms=list(preset.pop("terms", ())) + terms, **preset)
        self.match_weight = float(match_weight)
