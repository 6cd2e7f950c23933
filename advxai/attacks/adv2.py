"""ADV² (Zhang et al.): inputs that mislead a classifier *and* keep the interpretation an adversary chooses.

ADV² minimises, within an L-inf ball around the benign image ``x``,

    l_prd(f(x'), c_t) + lambda * l_int(g(x'; f), m_t)   (+ l_enc for RTS),

where ``g`` is the interpreter explaining the target class ``c_t`` and ``m_t`` the target map (by
default the benign map ``g(x; f)`` of the true class, so the adversarial input "looks" benign).
Here it is composed on the attack frameworks rather than written beside them:

* :class:`InterpretationLoss` is an objective term: the squared difference, per image, between the
  interpreter's map of the iterate (at the interpreter's native resolution: 7x7/8x8 CAM, the pooled
  GRAD map, the stride-4 RTS mask) and the target map, summed over the map (``reduction="sum"``, the
  paper's ``||g(x; f) - m_t||_2^2``) or averaged (``"mean"``, the authors' CAM and RTS scripts);
* :class:`EncoderLoss` is RTS's ``l_enc``: the cross-entropy of the RTS encoder's logits towards the
  target (when the classifier is its own encoder, as by default, it reuses the classifier's logits);
* :class:`SmoothedCrossEntropy` is the prediction loss with the paper's label smoothing: the target's
  soft label drawn from U(1 - rho, 1) per image and step, rho going linearly from 0.05 to 0.01;
* :class:`ADV2` is PGD with these terms, a **warm start** (plain targeted PGD steps first), weight
  schedules (:func:`piecewise` for GRAD, :func:`linear_ramp` for CAM's c -> 2c), and ``keep="best"``:
  per image, the iterate with the lowest interpretation loss among those classified as the target
  with probability above ``confidence``;
* :class:`ADV2Mask` attacks MASK, which is itself an optimisation, as the paper's bilevel problem
  (Algorithm 1): alternately Adam steps on the mask ``m`` (the follower) and steps on ``x`` (the
  leader) through an **unrolled look-ahead** of ``n_step`` differentiable Adam steps of ``m``, with the
  paper's two-stage update of ``x`` (a prediction step, then an interpretation step whose size is the
  largest, found by **binary search**, that keeps the target probability above ``confidence``) and a
  **periodic reset** of ``m`` to the map MASK computes on the current iterate (Adam state reset too);
* :class:`ADV2CW` adds the interpretation term to Carlini & Wagner's L2 attack.

:func:`make_adv2` builds the right class from an interpreter name (or object); :func:`adv2_settings`
gives a named set of settings per interpreter, its step counts scaled by a budget.

Target maps: ``attack(x, y, target, target_map=maps)`` takes maps at the interpreter's native
resolution or at the input's (then area-resampled to native), [N, 1, h, w]; anything else is an error
before any work starts. Without ``target_map`` the benign map of the true label is used.

Settings: the paper's tables and the authors' code
--------------------------------------------------

``adv2_settings(interpreter, budget, settings)``: ``settings="paper"`` follows the paper (Table 11,
"Parameter setting of PGD-based ADV²", and the text of its Appendix B1 and Sec. 3) wherever it
speaks, and the authors' code (github.com/alps-lab/adv2) where it is silent; ``settings="code"`` is
the authors' scripts as this package has run them (the default for now; its departures from those
scripts are marked below). ``budget`` scales the step counts of either: ``"full"`` 1, ``"quick"``
0.1, ``"smoke"`` 0.02 (``"paper"`` is the old name of ``"full"`` and still accepted, with a
deprecation warning). The dict's ``"source"`` entry names the settings. ResNet column of the tables;
``architecture="densenet"`` takes the DenseNet column where it differs. The paper gives no settings
for ADV² on C&W, so there are none here.

=================  ===============================  =================================  =============================
parameter          paper (Table 11; B1, Sec. 3)     authors' code                      ours: ``"paper"`` / ``"code"``
=================  ===============================  =================================  =============================
eps, step alpha    "eps = 0.031", "alpha = 1./255"  0.031, 1/255 (sign steps)          both: 0.031, 1/255
warm start         "a fixed number (e.g., 400) of   GRAD 300, CAM 400, RTS 300, MASK   both: the code's counts (MASK
                   update steps"; not in Table 11   400 (MASK on the C&W margin)       on the cross-entropy*)
GRAD iterations    "# iterations n_total" 800       704 = 301 + 201 + 101 + 101        800 / 704
GRAD lambda        "l_int coefficient" 0.007        0.001, 0.004, 0.01, 0.05 for       0.007 on the sum / the code's
                                                    those steps, on the summed error   x 3136 on the mean (equal at
                                                                                       224 px)
GRAD smoothing     rho "from 0.05 to 0.01"          soft label 0.95 (or none)          both: rho 0.05 -> 0.01
GRAD kept iterate  (not stated)                     lowest l_int with p_t > 0.8,       both: the same, checked every
                                                    checked every 10 steps             step
CAM iterations     1200                             1200                               1200 / 1200
CAM lambda         0.204 (Q4: 0.02)                 c 5 -> 10 on the 7x7 mean error    0.204 on the sum / 5 -> 10 on
                                                    (10 / 49 = 0.204 summed)           the mean
RTS iterations     1200                             1000                               1200 / 1000
RTS lambda_1       0.002 (Q4: 0.006; DenseNet       c 5 -> 10 on the 56x56 mean error  0.002 (DenseNet 0.008) on the
                   0.008)                           (5 / 3136 = 0.0016 summed)         sum / 5 constant on the mean*
RTS lambda_2       "l_prd coefficient" 0.1          0.1 x the encoder's cross-entropy  0.1 / 0.1
MASK iterations    1000                             1000                               1000 / 1000
MASK n_step        4                                4 plain + 4 unrolled Adam steps    4 + 4 / 4 + 4
MASK n_reset       50                               50                                 50 / 50
MASK alpha_max     0.08                             0.08 (0.04 after 900 iterations)   0.08 along the L2-normalised
                                                    along the L2-normalised gradient   gradient / eps along the
                                                                                       L-inf-normalised one*
MASK n_bs          12                               10                                 12 / 12*
MASK kappa         "a certain threshold"            target logit margin > 10           p_t > 0.8 / p_t > 0.8*
Grad-CAM           no row (Table 10 has results)    (CAM's scripts)                    CAM's row / CAM's settings
=================  ===============================  =================================  =============================

(* where ``"code"`` departs from the authors' code; kept so earlier results repeat.)

How the tables are read, where they are ambiguous:

* **n_total counts the ADV² iterations after the warm start.** The paper describes the warm start as
  a separate stage ("first running a fixed number (e.g., 400) of update steps of the regular
  adversarial attack and then resuming the ADV² update steps") and the tables' counts equal the
  code's joint-stage counts wherever the code fixes one (CAM 1200, MASK 1000; StAdv: CAM and RTS
  600); the warm start's own length comes from the code, as the tables do not give it.
* **lambda weighs the summed squared error over the native map at 224 px** (the paper's
  ``l_int = ||g(x; f) - m_t||_2^2``: 49 terms for CAM, 3136 for GRAD and RTS). The code's numbers
  agree: Table 11's CAM 0.204 is the CAM script's final weight 10 on the 7x7 *mean* divided by 49,
  RTS's 0.002 is about 5 / 3136, and the GRAD script sums already (its weights 0.001-0.05 bracket
  0.007). Table 12 the same way (see :mod:`advxai.attacks.stadv`, which also measures it). So
  ``settings="paper"`` uses ``reduction="sum"`` with the tables' lambda.
* **Other resolutions**: the sum runs over the native map of the input at hand (64 px: 16x16 GRAD
  and RTS, 8x8 CAM), so at a smaller input the same lambda meets fewer terms. For the paper's
  weight per map pixel instead, pass ``lam = lambda * N_224 / N`` (``N_224`` = 49 for CAM, 3136 for
  GRAD and RTS; ``N`` the map's pixel count here). Measured on the quick profile's shapes_resnet
  (64 px, 16 images, quick budget): the L1 distance of the adversarial map to the benign one, over
  PGD's, is 0.72 / 0.75 (CAM, ``"paper"`` / ``"code"``), 0.69 / 0.50 (GRAD), 0.79 / 0.59 (RTS), at
  the same success rate as PGD but GRAD ``"code"``'s (0.69 against 0.81).
* **alpha_max has no unit in the paper**: the code's unit is the L2 length of the step along the
  L2-normalised gradient (``search_norm="l2"``); ``"code"`` keeps this package's earlier L-inf
  normalisation with ``alpha_max = eps``.

Other deviations from the authors' code, stated: the best iterate is checked at every step (theirs
every 10); the MASK attack recomputes MASK at each reset with ``reset_iterations`` Adam steps started
from the current mask rather than from scratch.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F

from .base import Attack, check_budget
from .cw import CW
from .gradient import PGD, MaskLike, project
from .objectives import AttackState, Objective, PredictionLoss, Weight, margin

__all__ = ["InterpretationLoss", "EncoderLoss", "SmoothedCrossEntropy", "ADV2", "ADV2Mask", "ADV2CW", "make_adv2",
           "adv2_settings", "piecewise", "linear_ramp", "resolve_interpreter", "native_shape", "INTERPRETER_NAMES",
           "placement_mask_steps", "WARM_FRACTION", "ADV2_SETTINGS", "SETTINGS_NAMES", "DEFAULT_SETTINGS", "BUDGETS",
           "REDUCTIONS", "SEARCH_NORMS"]

INTERPRETER_NAMES = ("grad", "cam", "gradcam", "rts", "mask")


# --------------------------------------------------------------------------------------------- schedules

def piecewise(values: Sequence[float], lengths: Sequence[int]) -> Weight:
    """A step-dependent weight: ``values[k]`` for ``lengths[k]`` steps each (the last value after that).

    The lengths are relative: they are rescaled to the attack's number of steps, so the GRAD
    schedule keeps its shape when a profile shortens the attack."""
    if len(values) != len(lengths) or not values or min(lengths) <= 0:
        raise ValueError("piecewise needs as many positive lengths as values")
    total = float(sum(lengths))
    bounds = [sum(lengths[:k + 1]) / total for k in range(len(lengths))]
    values = [float(v) for v in values]

    def weight(step: int, steps: int) -> float:
        frac = (step + 0.5) / max(1, steps)
        for b, v in zip(bounds, values):
            if frac < b:
                return v
        return values[-1]

    weight.describe = f"piecewise({values}, {list(lengths)})"  # type: ignore[attr-defined]
    return weight


def linear_ramp(start: float, end: float) -> Weight:
    """A weight growing linearly from ``start`` to ``end`` over the attack (CAM's c -> 2c)."""
    start, end = float(start), float(end)

    def weight(step: int, steps: int) -> float:
        return start + (end - start) * (step + 1) / max(1, steps)

    weight.describe = f"linear_ramp({start}, {end})"  # type: ignore[attr-defined]
    return weight


# --------------------------------------------------------------------------------------------- interpreters

def resolve_interpreter(model, interpreter, **settings):
    """An interpreter object from a name (with settings) or the object itself."""
    from ..interpreters import INTERPRETERS, Interpreter

    if isinstance(interpreter, Interpreter):
        if settings:
            raise ValueError("interpreter settings are given with an interpreter name, not with an interpreter object")
        if interpreter.model is not model:
            raise ValueError("the interpreter explains another model than the one attacked")
        return interpreter
    if isinstance(interpreter, str):
        return INTERPRETERS.get(interpreter, model, **settings)
    raise ValueError(f"interpreter must be a name ({', '.join(INTERPRETERS.names())}) or an Interpreter, "
                     f"got {interpreter!r}")


def _is_mask(interpreter) -> bool:
    from ..interpreters import Mask

    return isinstance(interpreter, Mask)


def native_shape(interpreter, x: torch.Tensor) -> tuple[int, int, int]:
    """The shape (1, h, w) of one native map of ``interpreter`` for images like ``x``."""
    if _is_mask(interpreter):
        return (1, interpreter.mask_size, interpreter.mask_size)
    with torch.no_grad():
        expl = interpreter.explain(x[:1], create_graph=False)
    return tuple(expl.extras["native"].shape[1:])


def _native_maps(interpreter, x: torch.Tensor, cls: torch.Tensor, create_graph: bool) -> torch.Tensor:
    if _is_mask(interpreter):
        return 1 - interpreter.optimise(x, cls)[0]
    return interpreter.explain(x, target=cls, create_graph=create_graph).extras["native"]


def check_target_map(target_map: torch.Tensor, n: int, native: tuple[int, int, int],
                     input_hw: tuple[int, int]) -> torch.Tensor:
    """Target maps [n, 1, h, w] at native or input resolution -> native resolution; else a clear error."""
    if not isinstance(target_map, torch.Tensor):
        raise ValueError(f"target_map must be a tensor, got {type(target_map).__name__}")
    shape = tuple(target_map.shape)
    at_native = shape == (n, *native)
    at_input = shape == (n, 1, *input_hw)
    if not (at_native or at_input):
        raise ValueError(f"target maps must be [{n}, {native[0]}, {native[1]}, {native[2]}] (the interpreter's native "
                         f"resolution) or [{n}, 1, {input_hw[0]}, {input_hw[1]}] (the input's), got {list(shape)}")
    if not torch.isfinite(target_map).all():
        raise ValueError("target maps must be finite")
    maps = target_map.float()
    if at_input and not at_native:
        maps = F.adaptive_avg_pool2d(maps, native[-2:])
    return maps


# --------------------------------------------------------------------------------------------- terms

REDUCTIONS = ("mean", "sum")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)} (the squared map error averaged or "
                         f"summed over the native map's pixels), got {reduction!r}")
    return reduction


class TargetMapsSlot:
    """The target maps of an interpretation term: set per batch by the ADV² attacks (:meth:`set_target`),
    else the benign maps that ``benign()`` computes; either way held in ``state.cache[key]`` for the
    whole attack of a batch."""

    _pending: torch.Tensor | None = None

    def set_target(self, maps: torch.Tensor | None) -> None:
        self._pending = maps

    def _held_target(self, state: AttackState, key: str, benign) -> torch.Tensor:
        if key not in state.cache:
            if self._pending is not None:
                if len(self._pending) != len(state.x):
                    raise ValueError(f"{len(self._pending)} target maps for a batch of {len(state.x)} images")
                maps = self._pending
            else:
                maps = benign()
            state.cache[key] = maps.detach().to(state.x.device, state.x.dtype)
        return state.cache[key]


class InterpretationLoss(TargetMapsSlot):
    """``l_int``: ``(g(x') - m_t)^2`` at the interpreter's native resolution, per image, averaged over the
    map's pixels (``reduction="mean"``) or summed (``"sum"``: the paper's ``||g(x') - m_t||_2^2``, for which
    its tables give lambda).

    The map of the iterate explains the target class (untargeted: the current prediction). The
    target maps come from :meth:`set_target` (per batch, set by the ADV² attacks) or, if none were
    set, are the benign maps of the true labels, computed once per batch. ``state.cache["l_int"]``
    keeps the last value (the ADV² attacks keep their best iterate by it).
    """

    def __init__(self, interpreter, reduction: str = "mean"):
        if not interpreter.differentiable:
            raise ValueError(f"{interpreter.name} is not differentiable with respect to its input; ADV² on "
                             f"PGD, C&W or StAdv needs a differentiable interpreter (MASK has its own bilevel attack)")
        self.interpreter = interpreter
        self.reduction = check_reduction(reduction)
        self._pending = None

    def target_maps(self, state: AttackState) -> torch.Tensor:
        def benign():
            with torch.no_grad():
                return _native_maps(self.interpreter, state.x, state.y, False)

        return self._held_target(state, "target_map", benign)

    def maps(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        cls = state.target if state.targeted else state.logits.argmax(1).detach()
        return _native_maps(self.interpreter, x_adv, cls, True)

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        target = self.target_maps(state)
        sq = (self.maps(x_adv, state) - target).pow(2).flatten(1)
        loss = sq.sum(1) if self.reduction == "sum" else sq.mean(1)
        state.cache["l_int"] = loss.detach()
        return loss

    def __repr__(self) -> str:
        return f"InterpretationLoss({self.interpreter.name}, reduction={self.reduction!r})"


class EncoderLoss:
    """RTS's ``l_enc``: cross-entropy of the RTS encoder's logits towards the target class, per image."""

    def __init__(self, rts):
        if not hasattr(rts, "encoder"):
            raise ValueError(f"the encoder loss applies to RTS, not to {getattr(rts, 'name', rts)!r}")
        self.rts = rts

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        if not state.targeted:
            raise ValueError("the encoder loss needs a target class")
        own = self.rts.encoder is self.rts.model and state.logits is not None
        logits = state.logits if own else self.rts.encoder(x_adv)
        return F.cross_entropy(logits, state.target, reduction="none")

    def __repr__(self) -> str:
        return "EncoderLoss(rts)"


class SmoothedCrossEntropy:
    """Targeted cross-entropy against soft labels: the target gets ``u ~ U(1 - rho, 1)``, every other
    class ``(1 - u) / (K - 1)``; ``rho`` goes linearly from ``rho_start`` to ``rho_end`` over the steps.
    Draws are seeded by ``(seed, step)``, so runs repeat exactly."""

    def __init__(self, rho_start: float = 0.05, rho_end: float = 0.01, seed: int = 0):
        for name, v in (("rho_start", rho_start), ("rho_end", rho_end)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        self.rho_start, self.rho_end, self.seed = float(rho_start), float(rho_end), int(seed)

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        if not state.targeted:
            raise ValueError("label smoothing here is for targeted attacks")
        logits = state.logits
        k = logits.shape[1]
        frac = state.step / max(1, state.steps - 1)
        rho = self.rho_start + (self.rho_end - self.rho_start) * frac
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + state.step)
        u = 1 - rho * torch.rand(len(logits), generator=g)
        u = u.to(logits.device, logits.dtype)
        soft = ((1 - u) / (k - 1))[:, None].expand(-1, k).clone()
        soft.scatter_(1, state.target[:, None], u[:, None])
        return -(soft * logits.log_softmax(1)).sum(1)

    def __repr__(self) -> str:
        return f"SmoothedCrossEntropy({self.rho_start} -> {self.rho_end})"


# --------------------------------------------------------------------------------------------- target maps per batch

class _TargetMaps:
    """Lets ``attack(x, y, target, target_map=...)`` hand each batch its slice of the target maps."""

    _maps: torch.Tensor | None = None
    _cursor: int = 0

    def __call__(self, x, y, target=None, target_map=None):
        self._maps, self._cursor = None, 0
        if target_map is not None:
            if x.dim() != 4:
                raise ValueError(f"{self.name}: images must be [B, C, H, W], got shape {tuple(x.shape)}")
            native = native_shape(self.interpreter, x.to(self.device))
            self._maps = check_target_map(target_map, len(x), native, tuple(x.shape[-2:]))
        try:
            return super().__call__(x, y, target)
        finally:
            self._maps = None

    def _next_maps(self, n: int, device) -> torch.Tensor | None:
        if self._maps is None:
            return None
        maps = self._maps[self._cursor:self._cursor + n].to(device)
        self._cursor += n
        return maps


def _check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0 <= confidence < 1):
        raise ValueError(f"confidence must be in [0, 1), got {confidence!r}")
    return float(confidence)


# --------------------------------------------------------------------------------------------- ADV² on PGD

class ADV2(_TargetMaps, PGD):
    """ADV² against a differentiable interpreter (GRAD, CAM, Grad-CAM, RTS), on the PGD framework.

    ``lam`` weighs ``l_int`` (a constant or a schedule ``(step, steps) -> weight``) with ``reduction``
    ``"mean"`` or ``"sum"`` over the map (see :class:`InterpretationLoss`), ``enc_weight`` the encoder
    loss (RTS only), ``terms`` adds further weighted terms (an adaptive attack's), ``warm_steps`` plain
    targeted PGD steps (from the benign image) come first, ``label_smoothing=(rho_start, rho_end)``
    switches the prediction loss to :class:`SmoothedCrossEntropy`, ``keep="best"`` returns per image
    the iterate of lowest ``l_int`` (of lowest objective when extra ``terms`` are given) that the
    model gives the target with probability above ``confidence``. ``source`` names where the settings
    come from (:func:`adv2_settings` fills it in); it changes nothing.
    """

    name = "adv2"
    modes = ("targeted",)

    def __init__(self, model, interpreter="grad", eps: float = 0.031, alpha: float = 1 / 255, steps: int = 100,
                 warm_steps: int = 50, lam: Weight = 1.0, enc_weight: float = 0.0, prd_weight: float = 1.0,
                 label_smoothing: tuple[float, float] | None = None, keep: str = "best", confidence: float = 0.8,
                 interpreter_settings: dict | None = None, step_mask: MaskLike = None, targeted: bool = True,
                 terms: Sequence[tuple[Weight, object]] = (), seed: int = 0, batch_size: int | None = None,
                 mask_steps: int | None = None, reduction: str = "mean",
                 source: str | None = None):
        check_budget("eps", eps)
        check_budget("alpha", alpha)
        interp = resolve_interpreter(model, interpreter, **(interpreter_settings or {}))
        if _is_mask(interp):
            raise ValueError("MASK is not differentiable with respect to its input: use ADV2Mask (make_adv2 picks it)")
        term = InterpretationLoss(interp, reduction)  # checks differentiability
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, norm="linf", random_start=False, targeted=targeted,
                         keep=keep, step_mask=step_mask, seed=seed, batch_size=batch_size, mask_steps=mask_steps)
        if not isinstance(warm_steps, int) or warm_steps < 0:
            raise ValueError(f"warm_steps must be a non-negative integer, got {warm_steps!r}")
        if enc_weight and not hasattr(interp, "encoder"):
            raise ValueError(f"enc_weight applies to RTS only, not to {interp.name}")
        self.interpreter, self.term = interp, term
        self.warm_steps, self.lam, self.enc_weight, self.prd_weight = warm_steps, lam, float(enc_weight), float(prd_weight)
        self.label_smoothing, self.confidence = label_smoothing, _check_confidence(confidence)
        self.reduction, self.source = reduction, source
        prediction = (SmoothedCrossEntropy(*label_smoothing, seed=seed) if label_smoothing
                      else PredictionLoss("ce"))
        objective_terms: list = [(self.prd_weight, prediction), (lam, term)]
        if enc_weight:
            objective_terms.append((self.enc_weight, EncoderLoss(interp)))
        self.objective = Objective(objective_terms + list(terms))
        self.extra_terms = list(terms)

    def warm_start(self, x, y, target):
        if self.warm_steps == 0:
            return x.clone()
        warm = PGD(self.model, eps=self.eps, alpha=self.alpha, steps=self.warm_steps, random_start=False,
                   targeted=True, step_mask=self.step_mask, seed=self.seed)
        return warm.perturb(x, y, target)

    def perturb(self, x, y, target, x_init=None):
        self.term.set_target(self._next_maps(len(x), x.device))
        try:
            start = self.warm_start(x, y, target) if x_init is None else x_init
            return super().perturb(x, y, target, x_init=start)
        finally:
            self.term.set_target(None)

    def _succeeds(self, state: AttackState) -> torch.Tensor:
        probs = state.logits.detach().softmax(1)
        p_t = probs.gather(1, state.target[:, None]).squeeze(1)
        return (probs.argmax(1) == state.target) & (p_t > self.confidence)

    def _track_best(self, x_adv, loss, state, best, best_loss):
        # the interpretation loss alone, or the whole objective when extra terms (an adaptive attack's) count too
        score = loss.detach() if self.extra_terms else state.cache.get("l_int", loss.detach())
        return super()._track_best(x_adv, score, state, best, best_loss)


# --------------------------------------------------------------------------------------------- ADV² against MASK

SEARCH_NORMS = ("linf", "l2")


class ADV2Mask(_TargetMaps, PGD):
    """ADV² against MASK: the bilevel attack (Algorithm 1) with multistep look-ahead, the adaptive
    step and the periodic reset. Each of ``steps`` iterations:

    1. MASK's follower: ``n_step`` Adam steps on ``l_map(m; x')`` (a running Adam state, reset with ``m``);
    2. a prediction step on ``x'``: a sign step of ``alpha`` on the targeted cross-entropy plus any extra
       ``terms`` (the first of the paper's two-stage update);
    3. the look-ahead: ``n_step`` differentiable Adam steps ``m_1 .. m_n`` from ``m`` on ``l_map(.; x')``;
       ``l_int = sum_j mean((1 - m_j) - m_t)^2`` is differentiated with respect to ``x'``;
    4. the interpretation step: along the gradient normalised to unit L-inf norm (``search_norm="linf"``:
       ``alpha_max`` bounds the largest pixel change) or unit L2 norm over the image (``"l2"``, the
       authors' code: ``alpha_max`` bounds the step's length), of the largest size in ``(0, alpha_max]``
       (binary search, ``search_steps`` halvings) that keeps the target's probability above
       ``confidence`` (no move when none does);
    5. every ``reset_every`` iterations (and first), ``m`` is recomputed by MASK on the current ``x'``
       (``reset_iterations`` Adam steps) and the Adam state reset.

    ``warm_steps`` plain targeted PGD steps (cross-entropy) come first. (The authors' code warms up on
    the C&W margin; a margin clipped at 0 leaves the target barely above 50 %, below any useful
    ``confidence``, so the interpretation step would never be taken.) The iterate kept per image is the one
    of lowest ``l_int`` (of the look-ahead maps) with the target above ``confidence``.
    """

    name = "adv2"
    modes = ("targeted",)

    def __init__(self, model, interpreter="mask", eps: float = 0.031, alpha: float = 1 / 255, steps: int = 100,
                 warm_steps: int = 50, n_step: int = 4, reset_every: int = 50, reset_iterations: int | None = None,
                 alpha_max: float | None = None, search_steps: int = 12, confidence: float = 0.8,
                 interpreter_settings: dict | None = None, step_mask: MaskLike = None, targeted: bool = True,
                 terms: Sequence[tuple[Weight, object]] = (), seed: int = 0, batch_size: int | None = None,
                 mask_steps: int | None = None, search_norm: str = "linf", source: str | None = None):
        check_budget("eps", eps)
        check_budget("alpha", alpha)
        if search_norm not in SEARCH_NORMS:
            raise ValueError(f"search_norm must be one of {', '.join(SEARCH_NORMS)}, got {search_norm!r}")
        interp = resolve_interpreter(model, interpreter, **(interpreter_settings or {}))
        if not _is_mask(interp):
            raise ValueError(f"ADV2Mask attacks the MASK interpreter, got {interp.name}")
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, norm="linf", random_start=False, targeted=targeted,
                         loss="ce", keep="best", step_mask=step_mask, seed=seed, batch_size=batch_size,
                         mask_steps=mask_steps)
        for name, v in (("warm_steps", warm_steps), ("n_step", n_step), ("reset_every", reset_every),
                        ("search_steps", search_steps)):
            if not isinstance(v, int) or v < (0 if name == "warm_steps" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'warm_steps' else 'positive'} "
                                 f"integer, got {v!r}")
        self.interpreter = interp
        self.objective = Objective([(1.0, PredictionLoss("ce")), *terms])  # the prediction step's objective
        self.warm_steps, self.n_step, self.reset_every, self.search_steps = warm_steps, n_step, reset_every, search_steps
        self.reset_iterations = reset_iterations or interp.iterations
        self.alpha_max = check_budget("alpha_max", alpha_max) if alpha_max is not None else self.eps
        self.confidence = _check_confidence(confidence)
        self.search_norm, self.source = search_norm, source

    # -- pieces --------------------------------------------------------------------------------------
    def _target_prob(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x).softmax(1).gather(1, target[:, None]).squeeze(1)

    def _lookahead(self, x_adv, m, adam, target, shifts):
        """``(l_int per image, grad wrt x')`` through ``n_step`` unrolled Adam steps of ``m``."""
        from ..interpreters.mask import adam_step

        interp = self.interpreter
        x_adv = x_adv.detach().requires_grad_(True)
        alt = interp.alternative(x_adv)
        mj, st = m.detach().requires_grad_(True), adam
        l_int = torch.zeros(len(x_adv), device=x_adv.device)
        for shift in shifts:
            lmap = interp.objective(mj, x_adv, alt, target, shift)
            g, = torch.autograd.grad(lmap.sum(), mj, create_graph=True)
            mj, st = adam_step(mj, g, st, interp.lr)
            l_int = l_int + ((1 - mj) - self._t_native).pow(2).flatten(1).mean(1)
        grad, = torch.autograd.grad(l_int.sum(), x_adv)
        return l_int.detach(), grad

    def _search(self, x_adv, x, direction, target):
        """Per image, the largest step in (0, alpha_max] along ``-direction`` keeping p_t > confidence."""
        n = len(x_adv)
        shape = (-1, 1, 1, 1)

        def ok(size):
            cand = project(x_adv - size.view(shape) * direction, x, self.eps, "linf")
            return self._target_prob(cand, target) > self.confidence

        hi = torch.full((n,), self.alpha_max, device=x.device)
        lo = torch.zeros(n, device=x.device)
        full = ok(hi)
        for _ in range(self.search_steps):
            mid = (lo + hi) / 2
            good = ok(mid)
            lo, hi = torch.where(good, mid, lo), torch.where(good, hi, mid)
        size = torch.where(full, torch.full_like(lo, self.alpha_max), lo)
        return project(x_adv - size.view(shape) * direction, x, self.eps, "linf"), size

    # -- the attack ------------------------------------------------------------------------------------
    def perturb(self, x, y, target, x_init=None):
        from ..interpreters.mask import AdamState, adam_step

        interp = self.interpreter
        given = self._next_maps(len(x), x.device)
        if given is None:
            given = 1 - interp.optimise(x, y)[0]  # the benign map of the true class
        self._t_native = given.detach().to(x.device, x.dtype)
        state = AttackState(x=x, y=y, target=target, steps=self.steps)
        if x_init is not None:
            x_adv = project(x_init.detach().to(x.device), x, self.eps, "linf")
        elif self.warm_steps:
            warm = PGD(self.model, eps=self.eps, alpha=self.alpha, steps=self.warm_steps, random_start=False,
                       targeted=True, loss="ce", step_mask=self.step_mask, seed=self.seed)
            x_adv = warm.perturb(x, y, target)
        else:
            x_adv = x.clone()
        from .gradient import report_empty_mask, resolve_mask

        mask = resolve_mask(self.step_mask, x)
        empty = report_empty_mask(self, mask, len(x), self.mask_steps is None or self.mask_steps >= self.steps)
        # the prediction step: cross-entropy (keeps raising the target's probability, which the search needs)
        # plus any extra terms (an adaptive attack's)
        prediction = self.objective
        best, best_loss = x_adv.clone(), torch.full((len(x),), float("inf"), device=x.device)
        sizes = []
        all_shifts = interp.shifts(self.steps * 2 * self.n_step, seed=self.seed + 7)
        m, adam = None, None
        all_mask = mask
        for it in range(self.steps):
            state.step = it
            mask = all_mask if (self.mask_steps is None or it < self.mask_steps) else None
            if it % self.reset_every == 0:  # periodic reset: MASK's own map of the current iterate
                m = interp.optimise(x_adv, target, m=m, iterations=self.reset_iterations, seed=self.seed + it)[0]
                adam = AdamState.zeros_like(m)
            shifts = all_shifts[2 * self.n_step * it: 2 * self.n_step * (it + 1)]
            # 1. the follower: plain Adam steps on l_map(m; x')
            alt = interp.alternative(x_adv)
            for shift in shifts[:self.n_step]:
                m = m.detach().requires_grad_(True)
                g, = torch.autograd.grad(interp.objective(m, x_adv, alt, target, shift).sum(), m)
                with torch.no_grad():
                    m, adam = adam_step(m.detach(), g, adam, interp.lr)
            # 2. the prediction step
            xr = x_adv.detach().requires_grad_(True)
            state.logits = self.model(xr)
            g, = torch.autograd.grad(prediction(xr, state).sum(), xr)
            x_adv = project(xr.detach() - self.alpha * self.step_direction(g, mask), x, self.eps, "linf")
            # 3. the look-ahead and 4. the searched interpretation step
            l_int, g = self._lookahead(x_adv, m, adam.detach(), target, shifts[self.n_step:])
            if mask is not None:
                g = g * mask
            norm = g.flatten(1).norm(dim=1) if self.search_norm == "l2" else g.flatten(1).abs().amax(1)
            direction = g / norm.clamp_min(1e-12).view(-1, 1, 1, 1)
            x_adv, size = self._search(x_adv, x, direction, target)
            sizes.append(size.mean().item())
            # keep the best confident iterate (l_int was measured before the step; re-measure cheaply by
            # the look-ahead's value, which is what the step tried to lower)
            p_t = self._target_prob(x_adv, target)
            better = (p_t > self.confidence) & (l_int < best_loss)
            best = torch.where(better.view(-1, 1, 1, 1), x_adv, best)
            best_loss = torch.where(better, l_int, best_loss)
        self._extras = {"l_int": best_loss.detach()}
        if empty is not None:
            self._extras["mask_empty"] = empty
        self.step_sizes = sizes
        return torch.where(torch.isinf(best_loss).view(-1, 1, 1, 1), x_adv, best).detach()


# --------------------------------------------------------------------------------------------- ADV² on C&W

class ADV2CW(_TargetMaps, CW):
    """Carlini & Wagner's L2 attack with ADV²'s interpretation term: ``||x' - x||² + c f(x') + lam l_int``
    (``l_int`` averaged or summed over the map by ``reduction``). The paper gives no settings for it."""

    name = "adv2_cw"

    def __init__(self, model, interpreter="grad", lam: Weight = 1.0, c: float = 1e-1, kappa: float = 0.0,
                 steps: int = 200, lr: float = 1e-2, binary_search_steps: int = 3, abort_early: bool = True,
                 keep: str = "objective", targeted: bool = True, interpreter_settings: dict | None = None,
                 step_mask: MaskLike = None, seed: int = 0, batch_size: int | None = None,
                 mask_steps: int | None = None, reduction: str = "mean"):
        interp = resolve_interpreter(model, interpreter, **(interpreter_settings or {}))
        term = InterpretationLoss(interp, reduction)
        super().__init__(model, c=c, kappa=kappa, steps=steps, lr=lr, binary_search_steps=binary_search_steps,
                         abort_early=abort_early, targeted=targeted, terms=[(lam, term)], step_mask=step_mask,
                         keep=keep, seed=seed, batch_size=batch_size, mask_steps=mask_steps)
        self.interpreter, self.term, self.lam = interp, term, lam

    def perturb(self, x, y, target, x_init=None):
        self.term.set_target(self._next_maps(len(x), x.device))
        try:
            return super().perturb(x, y, target, x_init=x_init)
        finally:
            self.term.set_target(None)


# --------------------------------------------------------------------------------------------- settings

# Settings by name, then interpreter (ResNet column of the paper's Table 11; see the module docstring
# for the table, the authors' code beside it, and how the ambiguous entries are read).
SETTINGS_NAMES = ("paper", "code")
DEFAULT_SETTINGS = "code"  # the values this package ran before the paper's were separated from the code's
ARCHITECTURES = ("resnet", "densenet")
BUDGETS = {"full": 1.0, "quick": 0.1, "smoke": 0.02}
RENAMED_BUDGETS = {"paper": "full"}  # old name -> new name

_CAM_CODE = dict(warm_steps=400, steps=1200, lam=("ramp", 5.0, 10.0), reduction="mean", confidence=0.0)
_CAM_PAPER = dict(warm_steps=400, steps=1200, lam=0.204, reduction="sum", confidence=0.0)
ADV2_SETTINGS: dict[str, dict[str, dict]] = {
    "paper": {
        "grad": dict(warm_steps=300, steps=800, lam=0.007, reduction="sum", label_smoothing=(0.05, 0.01),
                     confidence=0.8),
        "cam": _CAM_PAPER,
        "gradcam": _CAM_PAPER,  # Table 11 has no Grad-CAM row: CAM's
        "rts": dict(warm_steps=300, steps=1200, lam=0.002, enc_weight=0.1, reduction="sum", confidence=0.0),
        "mask": dict(warm_steps=400, steps=1000, n_step=4, reset_every=50, alpha_max=0.08, search_norm="l2",
                     search_steps=12, confidence=0.8),
    },
    "code": {
        # the GRAD script sums its 56x56 squared error; these weights are its own times 56*56 on the mean
        "grad": dict(warm_steps=300, steps=704, lam=("piecewise", [0.001 * 3136, 0.004 * 3136, 0.01 * 3136,
                                                                   0.05 * 3136], [301, 201, 101, 101]),
                     reduction="mean", label_smoothing=(0.05, 0.01), confidence=0.8),
        "cam": _CAM_CODE,
        "gradcam": _CAM_CODE,
        "rts": dict(warm_steps=300, steps=1000, lam=5.0, enc_weight=0.1, reduction="mean", confidence=0.0),
        "mask": dict(warm_steps=400, steps=1000, n_step=4, reset_every=50, search_steps=12, confidence=0.8),
    },
}
# The DenseNet column, where it differs from the ResNet one.
DENSENET_COLUMN = {"paper": {"rts": dict(lam=0.008)}, "code": {}}
SOURCES = {
    "paper": "paper: Zhang et al., Table 11 ({column} column) and Appendix B1{note}; warm-start lengths from the "
             "authors' code",
    "code": "code: the authors' scripts (alps-lab/adv2) as this package runs them, with the departures listed in "
            "advxai.attacks.adv2{note}",
}


def check_settings_name(settings: str, valid: Sequence[str] = SETTINGS_NAMES, what: str = "ADV²") -> str:
    if settings not in valid:
        raise ValueError(f"unknown {what} settings {settings!r}; valid: {', '.join(valid)}")
    return settings


def check_architecture(architecture: str) -> str:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture (the column of the paper's tables) must be one of {', '.join(ARCHITECTURES)}, "
                         f"got {architecture!r}")
    return architecture


def resolve_budget(budget: str) -> str:
    """The budget's current name; ``"paper"`` (the old name of ``"full"``) still works, with a warning."""
    if budget in RENAMED_BUDGETS:
        new = RENAMED_BUDGETS[budget]
        warnings.warn(f"budget={budget!r} is now budget={new!r}: it scales the step counts of whichever settings "
                      f"are chosen; settings='paper' or 'code' chooses them", DeprecationWarning, stacklevel=3)
        return new
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)} (step counts x "
                         f"{', '.join(str(v) for v in BUDGETS.values())}), got {budget!r}")
    return budget


def scale_steps(n: int, budget: str) -> int:
    """A step count scaled by a budget (at least 3; a stage of 0 steps stays absent)."""
    return max(3, int(round(n * BUDGETS[budget]))) if n > 0 else 0


def _weight(spec):
    if isinstance(spec, tuple) and spec and spec[0] == "piecewise":
        return piecewise(spec[1], spec[2])
    if isinstance(spec, tuple) and spec and spec[0] == "ramp":
        return linear_ramp(spec[1], spec[2])
    return spec


def adv2_settings(interpreter: str, budget: str = "full", settings: str = DEFAULT_SETTINGS,
                  architecture: str = "resnet") -> dict:
    """ADV²-on-PGD settings for ``interpreter``: ``settings="paper"`` (Table 11) or ``"code"`` (the authors'
    scripts; the default for now), the ``architecture`` column of the table, step counts scaled by the
    budget (``"full"`` 1, ``"quick"`` 0.1, ``"smoke"`` 0.02; at least 3 steps a stage). The dict holds
    the attack's keyword arguments and ``"source"``, a line naming the settings (the attacks take it,
    so the dict can be passed on whole). eps = 0.031 and steps of 1/255 are the attacks' defaults."""
    check_settings_name(settings)
    check_architecture(architecture)
    table = ADV2_SETTINGS[settings]
    if interpreter not in table:
        raise ValueError(f"no ADV² settings for {interpreter!r}; known: {', '.join(table)}")
    budget = resolve_budget(budget)
    s = dict(table[interpreter])
    if architecture == "densenet":
        s.update(DENSENET_COLUMN[settings].get(interpreter, {}))
    for key in ("warm_steps", "steps"):
        s[key] = scale_steps(s[key], budget)
    if interpreter == "mask":
        s["reset_every"] = max(2, int(round(s["reset_every"] * max(BUDGETS[budget], 0.1))))
    note = ""
    if settings == "paper":
        note = ("; alpha_max along the L2-normalised gradient (the code's unit)" if interpreter == "mask" else
                "; lambda on the summed squared map error") + ("; Grad-CAM takes CAM's row" if interpreter == "gradcam"
                                                                else "")
    s["source"] = SOURCES[settings].format(column="DenseNet" if architecture == "densenet" else "ResNet",
                                           note=note) + f"; budget {budget}"
    return s


WARM_FRACTION = 0.3  # C&W and StAdv have no warm-start stage: "warm start" means this first share of their steps


def placement_mask_steps(placement: str, steps: int, mask_steps: int | None = None,
                         warm_stage: bool = False) -> int | None:
    """``mask_steps`` for an attack whose step mask applies ``placement="throughout"`` (None: every step) or
    ``"warm_start"`` only. With a warm-start stage of its own (ADV² on PGD, MASK's bilevel attack) that stage
    is the one restricted (0 steps of the joint stage); otherwise the first ``mask_steps`` steps are (by
    default :data:`WARM_FRACTION` of ``steps``, at least one)."""
    from .edges import EDGE_PLACEMENTS

    if placement not in EDGE_PLACEMENTS:
        raise ValueError(f"unknown edge placement {placement!r}; valid: {', '.join(EDGE_PLACEMENTS)}")
    if placement == "throughout":
        if mask_steps is not None:
            raise ValueError("mask_steps limits the step mask to the first steps: it goes with "
                             "edge_placement='warm_start', not 'throughout'")
        return None
    if warm_stage:
        if mask_steps not in (None, 0):
            raise ValueError("with a warm-start stage of its own, edge_placement='warm_start' restricts that stage "
                             "only; mask_steps cannot also be given")
        return 0
    return mask_steps if mask_steps is not None else max(1, int(round(WARM_FRACTION * steps)))


def make_adv2(model, interpreter="grad", budget: str | None = None, framework: str = "pgd",
              edge_placement: str = "throughout", settings: str | None = None, architecture: str = "resnet",
              **params) -> Attack:
    """ADV² against ``interpreter`` (a name or an object): :class:`ADV2Mask` for MASK, :class:`ADV2` otherwise
    (``framework="cw"``: :class:`ADV2CW`). With ``budget`` or ``settings`` (PGD only) it starts from
    :func:`adv2_settings` (``settings`` ``"paper"`` or ``"code"``, by default :data:`DEFAULT_SETTINGS`;
    ``budget`` by default ``"full"``); explicit ``params`` override them. Weights may be given as
    ``("piecewise", values, lengths)`` or ``("ramp", a, b)`` so they stay plain values (what the attack
    store needs). The paper gives no settings for ADV² on C&W: ``settings`` with ``framework="cw"`` is
    an error (``budget`` is ignored there).

    ``edge_placement`` says where a ``step_mask`` (AdvEdge, AdvEdge+) applies: ``"throughout"`` (the
    AdvEdge paper: every step) or ``"warm_start"`` (the AdvEdge authors' code: only the warm-start stage
    of ADV² on PGD / MASK; on C&W, which has none, the first ``mask_steps`` iterations, by default
    :data:`WARM_FRACTION` of them). MASK on C&W is :class:`~advxai.attacks.mask_lookahead.ADV2MaskCW`."""
    from ..interpreters import Interpreter

    name = interpreter.name if isinstance(interpreter, Interpreter) else interpreter
    if framework not in ("pgd", "cw"):
        raise ValueError(f"framework must be 'pgd' or 'cw', got {framework!r}")
    if framework == "cw" and settings is not None:
        raise ValueError("the paper gives no settings for ADV² on C&W: pass its parameters (lam, c, steps, lr, "
                         "reduction ...) instead of settings")
    if framework == "cw" and name == "mask":  # no gradient through MASK: the look-ahead term instead
        from .mask_lookahead import make_adv2_mask

        return make_adv2_mask(model, interpreter, "cw", edge_placement=edge_placement, **params)
    preset = {}
    if framework == "pgd" and (budget is not None or settings is not None):
        preset = adv2_settings(name, "full" if budget is None else budget,
                               DEFAULT_SETTINGS if settings is None else settings, architecture)
    preset.update(params)
    if "lam" in preset:
        preset["lam"] = _weight(preset["lam"])
    preset["mask_steps"] = placement_mask_steps(edge_placement, preset.get("steps", 200 if framework == "cw" else 100),
                                                preset.get("mask_steps"), warm_stage=framework == "pgd")
    if framework == "cw":
        return ADV2CW(model, interpreter, **preset)
    if name == "mask":
        return ADV2Mask(model, interpreter, **preset)
    return ADV2(model, interpreter, **preset)


def make_adv2_cw(model, interpreter="grad", **params) -> Attack:
    """ADV² on Carlini & Wagner's L2 attack (see :class:`ADV2CW`)."""
    return make_adv2(model, interpreter, framework="cw", **params)
