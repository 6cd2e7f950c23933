"""Interpretation-robust training (Boopathy et al., 2020; the AdvEdge paper's Eqs. 20-21), against CAM.

**The discrepancy** (Eq. 20, Boopathy et al.'s 2-class interpretation discrepancy): for a benign
input ``x`` of label ``y`` and a perturbed ``x'``,

    D(x, x') = 1/2 ( ||I(x, y) - I(x', y)||_1 + ||I(x, y') - I(x', y')||_1 )

where ``I(x, c)`` is the CAM map of class ``c`` and ``y'`` the class the model ranks first at
``x'`` among the classes other than ``y`` (the class an attack pushes towards; once the attack
flips the label it is the new prediction). Including the second class is what makes the measure
"proper": an attack that changes the prediction must move the maps of the two classes it swaps,
so it cannot hide. Maps are CAM's min-max normalised native maps (8x8 on the shapes models, 7x7
on the digits models) and the L1 norm is divided by the number of pixels, so ``D`` lies in [0, 1]
and reads like :func:`advxai.map_metrics.map_l1`.

**The min-max training** (Eq. 21): with ``x' = argmax_{||x' - x||_inf <= eps} D(x, x')`` found by PGD
on the discrepancy (the package's PGD, its objective replaced by ``-D``: an interpretation attack
that only cares about the maps),

    min_theta  E[ CE(f_theta(x), y) + lambda * D_theta(x, x') ]

The outer gradient flows through the maps of both ``x`` and ``x'`` (``x'`` itself is held fixed,
as in adversarial training). ``lambda = 0`` with no inner attack is normal training with the very
same loop, data, schedule and seed, so the two are compared on equal terms.

**Evaluation**: accuracy under ordinary PGD and Kendall's tau (:func:`advxai.map_metrics.kendall_tau`)
between the benign and the worst-case-discrepancy CAM maps, against eps (the paper's Table VII).

Models are cached (``$ADVXAI_CACHE/robust_models``) keyed by the architecture, data, every training
setting, this module's training code, the device type and the training precision: bfloat16 mixed
precision (the inner attack and the forward passes) where the hardware computes it natively, as for
every training here (:func:`~advxai.models.training.training_precision`); evaluation runs in fp32.
"""
from __future__ import annotations

import hashlib
import inspect
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..attacks.base import check_budget
from ..attacks.gradient import PGD
from ..attacks.objectives import AttackState, Objective
from ..interpreters.base import minmax_normalize
from ..map_metrics import kendall_tau
from ..models.base import Classifier, ModelInfo
from ..runtime import cached, resolve_device

__all__ = ["cam_class_maps", "second_class", "discrepancy", "DiscrepancyTerm", "InterpretationPGD",
           "worst_case_discrepancy", "RobustTrainConfig", "fit_interpretation_robust", "train_model",
           "robustness_curve", "robustness_records", "kendall_tau", "METHODS"]

METHODS = ("normal", "robust")
CODE_VERSION = 1


# --------------------------------------------------------------------------- the discrepancy


def _class_maps(model: Classifier, a: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Min-max normalised CAM maps [B, K, h, w] of the classes [B, K] from the feature map ``a`` [B, C, h, w]."""
    raw = torch.einsum("bkc,bchw->bkhw", model.classifier.weight[classes], a)
    b, k, h, w = raw.shape
    return minmax_normalize(raw.reshape(b * k, 1, h, w)).reshape(b, k, h, w)


def cam_class_maps(model: Classifier, x: torch.Tensor, classes: torch.Tensor):
    """``(maps, logits)``: the min-max normalised native CAM maps [B, K, h, w] of the classes [B, K], from one forward.

    The same maps as the ``cam`` interpreter's ``extras["native"]`` (one class per call there),
    here for several classes at once and differentiable w.r.t. both input and weights.
    """
    logits, a = model.feature_maps(x)
    return _class_maps(model, a, classes), logits


def second_class(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The highest-scoring class other than ``y``, per image."""
    other = logits.detach().clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return other.argmax(1)


def _discrepancy_from_features(model, a_benign, a_adv, logits_adv, y) -> torch.Tensor:
    classes = torch.stack([y, second_class(logits_adv, y)], 1)
    return (_class_maps(model, a_benign, classes) - _class_maps(model, a_adv, classes)).abs().mean((2, 3)).mean(1)


def discrepancy(model: Classifier, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Boopathy et al.'s 2-class CAM discrepancy ``D(x, x_adv)`` per image [B], in [0, 1]."""
    logits_adv, a_adv = model.feature_maps(x_adv)
    _, a = model.feature_maps(x)
    return _discrepancy_from_features(model, a, a_adv, logits_adv, y)


class DiscrepancyTerm:
    """An objective term for the attack frameworks: ``D(state.x, x_adv)`` per image (to be maximised).

    The benign feature map is computed once per attack (kept in ``state.cache``). Inside
    :class:`InterpretationPGD` the adversarial feature map is the one the framework's own forward
    pass produced (captured by a hook), so each step costs one forward and one backward pass; used
    elsewhere, the term runs its own forward pass.
    """

    def __init__(self, model: Classifier):
        self.model = model
        self.captured: torch.Tensor | None = None  # the feature map of the framework's last forward pass

    def __call__(self, x_adv: torch.Tensor, state: AttackState) -> torch.Tensor:
        captured, self.captured = self.captured, None  # read before the benign pass below overwrites it
        if "benign_features" not in state.cache:
            with torch.no_grad():
                state.cache["benign_features"] = self.model.feature_maps(state.x)[1]
        if captured is not None and state.logits is not None and len(captured) == len(x_adv):
            logits, a = state.logits, captured
        else:
            logits, a = self.model.feature_maps(x_adv)
        return _discrepancy_from_features(self.model, state.cache["benign_features"], a, logits, state.y)

    def __repr__(self) -> str:
        return "DiscrepancyTerm(cam, 2-class)"


class InterpretationPGD(PGD):
    """PGD that maximises the 2-class CAM discrepancy alone within the eps-ball (the inner maximisation).

    The prediction loss is not part of its objective: the attack goes wherever the maps change most.
    Untargeted only; ``success`` in its result still means "the label changed".
    """

    name = "interpretation_pgd"
    modes = ("untargeted",)

    def __init__(self, model: Classifier, eps: float = 8 / 255, alpha: float | None = None, steps: int = 10,
                 random_start: bool = True, seed: int = 0, batch_size: int | None = None, reuse_forward: bool = True):
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start, seed=seed,
                         batch_size=batch_size)
        self.term = DiscrepancyTerm(model)
        self.reuse_forward = reuse_forward
        self.objective = Objective([(-1.0, self.term)])  # PGD descends: -D ascends D

    def perturb(self, x, y, target, x_init=None):
        if not self.reuse_forward:
            return super().perturb(x, y, target, x_init=x_init)

        def capture(_module, _inputs, out):
            self.term.captured = out

        handle = self.model.cam_module.register_forward_hook(capture)
        try:
            return super().perturb(x, y, target, x_init=x_init)
        finally:
            handle.remove()
            self.term.captured = None


def worst_case_discrepancy(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10,
                           alpha: float | None = None, seed: int = 0, batch_size: int | None = None):
    """``(x_adv, D)``: the PGD estimate of ``argmax D(x, .)`` in the L-inf ball and its discrepancy per image."""
    attack = InterpretationPGD(model, eps=eps, alpha=alpha, steps=steps, seed=seed, batch_size=batch_size)
    x_adv = attack(x, y).x_adv
    dev = next(model.buffers()).device
    d = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size or len(x)):
            sl = slice(s, s + (batch_size or len(x)))
            d.append(discrepancy(model, x[sl].to(dev), x_adv[sl].to(dev), y[sl].to(dev)).cpu())
    return x_adv, torch.cat(d)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class RobustTrainConfig:
    """Settings of normal (``lam=0``) and interpretation-robust training; every field keys the cache."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 4e-3
    weight_decay: float = 5e-4
    eps: float = 8 / 255  # the inner maximisation's L-inf budget
    steps: int = 5  # PGD steps of the inner maximisation
    alpha: float | None = None  # PGD step; None: 2.5 * eps / steps
    lam: float = 1.0  # lambda of Eq. 21, the weight of the worst-case discrepancy
    seed: int = 0

    def check(self) -> "RobustTrainConfig":
        for name in ("epochs", "batch_size", "steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        check_budget("eps", self.eps)
        if self.alpha is not None:
            check_budget("alpha", self.alpha)
        if not (isinstance(self.lam, (int, float)) and self.lam >= 0):
            raise ValueError(f"lam (the weight of the discrepancy) must be >= 0, got {self.lam!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        return self


def fit_interpretation_robust(model: Classifier, x_train: torch.Tensor, y_train: torch.Tensor,
                              cfg: RobustTrainConfig, method: str = "robust", desc: str = "training",
                              precision: str = "fp32") -> dict:
    """Train ``model`` (a Classifier; its weights are trained in place) normally or robustly; returns the history.

    Deterministic under ``cfg.seed``: the shuffle of every epoch and the attack's random starts come
    from generators seeded by ``(seed, epoch, batch)``. AdamW with a one-cycle schedule, as the
    embedded models are trained. ``precision``: ``"bf16"`` runs the inner attack and the forward passes
    under bfloat16 autocast (the weights, the optimiser and the backward pass's accumulation stay fp32).
    """
    from ..models.training import autocast, check_precision, fast_layout

    check_precision(precision)
    if method not in METHODS:
        raise ValueError(f"unknown training method {method!r}; valid: {', '.join(METHODS)}")
    cfg.check()
    robust = method == "robust" and cfg.lam > 0
    dev = next(model.buffers()).device
    net = model.net
    net.requires_grad_(True)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = (len(x_train) + cfg.batch_size - 1) // cfg.batch_size
    total = cfg.epochs * per_epoch
    if total >= 10:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.25)
    else:  # one-cycle needs a few steps per phase; a handful of steps runs at the constant rate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    attack = InterpretationPGD(model, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps) if robust else None

    history = []
    with fast_layout(net):
        for epoch in tqdm(range(cfg.epochs), desc=desc, leave=False):
            g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            order = torch.randperm(len(x_train), generator=g)
            t0, totals = time.time(), {"ce": 0.0, "discrepancy": 0.0, "correct": 0}
            for i, s in enumerate(range(0, len(order), cfg.batch_size)):
                idx = order[s:s + cfg.batch_size]
                xb, yb = x_train[idx].to(dev), y_train[idx].to(dev)
                if robust:
                    # inner maximisation on the model as it stands, in eval mode (BatchNorm statistics frozen)
                    model.eval()
                    attack.seed = cfg.seed * 100_003 + epoch * 1_000 + i
                    with torch.enable_grad(), autocast(precision, dev):
                        x_adv = attack.perturb(xb, yb, None).detach().to(xb.dtype)
                    model.train()
                    # one forward of benign and adversarial images together: BatchNorm sees both
                    both = torch.cat([xb, x_adv])
                    with autocast(precision, dev):
                        logits_both, a_both = model.feature_maps(both)
                        n_b = len(xb)
                        # the second class is the one the adversarial input ranks first after y (Eq. 20)
                        d = _discrepancy_from_features(model, a_both[:n_b], a_both[n_b:], logits_both[n_b:], yb)
                        logits = logits_both[:n_b]
                        ce = F.cross_entropy(logits, yb)
                        loss = ce + cfg.lam * d.mean()
                    totals["discrepancy"] += d.detach().sum().item()
                else:
                    model.train()
                    with autocast(precision, dev):
                        logits = model(xb)
                        ce = F.cross_entropy(logits, yb)
                    loss = ce
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                totals["ce"] += ce.detach().item() * len(idx)
                totals["correct"] += (logits.detach().argmax(1) == yb).sum().item()
            n = len(order)
            history.append({"epoch": epoch, "ce": totals["ce"] / n, "train_accuracy": totals["correct"] / n,
                            "discrepancy": totals["discrepancy"] / n if robust else float("nan"),
                            "seconds": time.time() - t0})
    model.eval()
    net.requires_grad_(False)
    return {"history": history}


def _code_digest(arch=None) -> str:
    """Editing the training code (or the architectures) retrains the cached models."""
    from ..models import small

    import sys

    # the whole module (the training loop, the discrepancy, the attack) and the architectures; one defined
    # outside ``small`` (the wide ResNets) adds its own module, so the others' digests stay as they were
    text = inspect.getsource(sys.modules[__name__]) + inspect.getsource(small)
    if arch is not None and arch.__module__ != small.__name__:
        text += inspect.getsource(sys.modules[arch.__module__])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def train_model(arch: str = "digits_cnn", method: str = "robust", cfg: RobustTrainConfig | None = None,
                n_train: int | None = None, device: str = "auto", arch_options: dict | None = None,
                precision: str | None = None) -> Classifier:
    """One of the study's architectures trained here normally or interpretation-robustly (cached).

    ``arch``: an architecture the package trains (``digits_cnn``, ``digits_vgg``, ``shapes_resnet``,
    ``shapes_densenet``, ``cifar10_wrn`` ...), trained on its own data set with its normalisation;
    ``arch_options``: keywords of its constructor (a wide ResNet's ``depth`` and ``width``);
    ``n_train``: the first ``n_train`` images of a seeded stratified sample of the training split
    (None: all); ``precision``: the training precision (``"auto"``, ``"bf16"``, ``"fp32"``; default
    ``$ADVXAI_TRAIN_PRECISION``, else auto: bf16 where native). The returned Classifier records its test
    accuracy and training history in ``info``.
    """
    from ..models.embedded import TRAINED, _load_split
    from ..models.training import evaluate, training_precision

    if arch not in TRAINED:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(TRAINED)}")
    if method not in METHODS:
        raise ValueError(f"unknown training method {method!r}; valid: {', '.join(METHODS)}")
    if n_train is not None and (isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1):
        raise ValueError(f"n_train must be None (the whole training split) or a positive integer, got {n_train!r}")
    cfg = (cfg or RobustTrainConfig()).check()
    spec = TRAINED[arch]
    options = dict(arch_options or {})
    dev = resolve_device(device)
    precision = training_precision(dev, precision)
    settings = asdict(cfg)
    if method == "normal":  # the inner attack's settings do not exist for normal training
        for name in ("eps", "steps", "alpha", "lam"):
            settings.pop(name)
    key = {"name": f"{arch}-{method}", "version": CODE_VERSION, "code": _code_digest(spec.arch), "arch": arch,
           "dataset": spec.dataset, "method": method, "n_train": n_train, "config": settings, "mean": spec.mean,
           "std": spec.std, "trained_on": dev.type, "precision": precision}
    if options:  # only when given, so the keys of models trained before this option existed stay valid
        key["arch_options"] = options
    train = _load_split(spec.dataset, "train", n_train)
    test = _load_split(spec.dataset, "test")
    index = train.sample_indices(n_train, seed=cfg.seed) if n_train and n_train < len(train) else torch.arange(len(train))

    def make() -> Classifier:
        try:
            net = spec.arch(num_classes=train.num_classes, **options) if spec.dataset == "shapes" else \
                spec.arch(train.num_classes, train.image_shape[0], **options)
        except TypeError as exc:
            raise ValueError(f"{arch} does not take the options {sorted(options)} ({exc})") from None
        info = ModelInfo(
            name=f"{arch}_{method}", dataset=spec.dataset, input_size=tuple(test.image_shape),
            class_names=list(test.classes), mean=spec.mean, std=spec.std,
            cam_layer="cam" if hasattr(net, "cam") else "layer3", feature_layer="head.pool",
            classifier_layer="head.fc", architecture=spec.description + (f" ({options})" if options else ""),
            weights=f"{method} training here on {spec.dataset}" + (
                f" (interpretation-robust: lambda={cfg.lam}, eps={cfg.eps:.4f}, {cfg.steps} PGD steps)"
                if method == "robust" else ""))
        return Classifier(net, info).to(dev)

    def build() -> dict:
        torch.manual_seed(cfg.seed)
        model = make()
        x_train = train.load_images(index)
        out = fit_interpretation_robust(model, x_train, train.labels[index], cfg, method,
                                        desc=f"{method} training {arch}", precision=precision)
        acc = evaluate(model, test.load_images(torch.arange(len(test))), test.labels, device=dev)
        return {"state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()},
                "history": out["history"], "test_accuracy": acc}

    payload = cached("robust_models", key, build)
    model = make()
    model.net.load_state_dict(payload["state_dict"])
    model.info.test_accuracy = float(payload["test_accuracy"])
    model.info.notes = {"history": payload["history"], "method": method, "config": settings, "n_train": n_train}
    return model.eval()


def robustness_records(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                       steps: int = 10, seed: int = 0, batch_size: int | None = None) -> list[dict]:
    """Per eps, the per-image values behind the paper's Table VII: ``correct`` (bool [N], the label kept under
    untargeted PGD; at eps = 0 the clean prediction), ``tau`` (float [N], Kendall's tau-b between the benign
    native CAM map of the true class and that of the input found by the worst-case-discrepancy PGD; NaN
    for a constant map; 1 at eps = 0) and ``discrepancy`` (float [N], 0 at eps = 0)."""
    dev = next(model.buffers()).device
    records = []
    for eps in eps_values:
        eps = float(eps)
        if eps == 0:
            with torch.no_grad():
                pred = torch.cat([model(x[s:s + 256].to(dev)).argmax(1).cpu() for s in range(0, len(x), 256)])
            correct, taus, d = pred == y.cpu(), torch.ones(len(x)), torch.zeros(len(x))
        else:
            res = PGD(model, eps=eps, steps=steps, seed=seed, batch_size=batch_size)(x, y)
            correct = ~res.success.cpu()
            x_int, d = worst_case_discrepancy(model, x, y, eps, steps=steps, seed=seed, batch_size=batch_size)
            with torch.no_grad():
                cls = y.to(dev)[:, None]
                m0, _ = cam_class_maps(model, x.to(dev), cls)
                m1, _ = cam_class_maps(model, x_int.to(dev), cls)
            taus = kendall_tau(m0, m1).cpu()
        records.append({"eps": eps, "correct": correct, "tau": taus.float(), "discrepancy": d.cpu().float()})
    return records


def robustness_curve(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                     steps: int = 10, seed: int = 0, batch_size: int | None = None, label: str = "",
                     records: list[dict] | None = None) -> list[dict]:
    """The paper's Table VII for one model: per eps, accuracy under PGD and Kendall's tau of CAM maps.

    Accuracy: ordinary L-inf PGD on the cross-entropy (random start, ``steps`` steps). Interpretation:
    Kendall's tau-b between the benign native CAM map of the true class and that of the input found by
    the worst-case-discrepancy PGD, averaged over images (NaN maps, from constant maps, are skipped).
    ``eps = 0`` gives the clean accuracy and tau = 1. One record per eps; ``records`` (from
    :func:`robustness_records`) are summarised instead of measured again.
    """
    records = records if records is not None else robustness_records(model, x, y, eps_values, steps, seed, batch_size)
    rows = []
    for r in records:
        taus, ok = r["tau"], torch.isfinite(r["tau"])
        tau = 1.0 if r["eps"] == 0 else (taus[ok].mean().item() if ok.any() else float("nan"))
        # 1 - (share fooled) at eps > 0, as the accuracy was always computed (the same value to the last bit)
        acc = r["correct"].float().mean().item() if r["eps"] == 0 else 1.0 - (~r["correct"]).float().mean().item()
        rows.append({"model": label or model.info.name, "eps": r["eps"], "accuracy": acc,
                     "kendall_tau": tau, "discrepancy": 0.0 if r["eps"] == 0 else r["discrepancy"].mean().item(),
                     "n": len(x)})
    return rows
