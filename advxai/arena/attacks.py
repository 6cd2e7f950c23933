"""The arena's attacks: every attack of the study by short name (:func:`study_attacks`), each an
:class:`ArenaAttack` (a registered attack's name and plain settings), turned into adversarial images
by :func:`craft`: through :func:`advxai.attacks.adversarial_set` (so sets cached by other chapters are
reused) or, for what the attack store cannot build by name (universal patches, adaptive attacks),
through the engine's :func:`~advxai.engine.map_attack` with its own key: every row is a map over shards
of the images, cached per shard, on the local engine or a Ray cluster."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..attacks.base import AttackResult, perturbation_norms
from ..runtime import module_device

__all__ = ["KINDS", "ADV2_BUDGETS", "ArenaAttack", "study_attacks", "adv2_source", "adaptive_rows", "craft",
           "as_result", "AppliedPatch", "AIDAttackFactory"]

KINDS = ("store", "patch", "edges", "adaptive_fs", "adaptive_hb", "rts", "robust")
# the arena's attack budget -> ADV²'s (advxai.attacks.adv2.BUDGETS): the paper's step counts are ADV²'s "full"
ADV2_BUDGETS = {"smoke": "smoke", "quick": "quick", "paper": "full"}


@dataclass
class ArenaAttack:
    """One row of the arena: a registered attack (``attack``) with plain settings.

    ``kind``: ``"store"`` (built by :func:`advxai.attacks.adversarial_set`), ``"patch"`` (a universal
    patch learned on training images, then pasted), ``"edges"`` (ADV² with AdvEdge's step weights or
    AdvEdge+'s mask computed from the benign images: ``edges`` = ``"advedge"`` | ``"advedge+"``),
    ``"adaptive_fs"`` (the registered attack ``"adaptive_adv2_fs"``, ADV² adapted to feature squeezing;
    ``params`` go to it, ``attack`` is ``"adv2"``), ``"adaptive_hb"`` (the registered attack
    ``"adaptive_hb"``, heat-and-blur's Algorithm 2, with the registered ``attack`` as its inner attack;
    ``params``: ``iterations``, ``sigma``, ``threshold``, ``eps`` and the inner attack's settings, ``eps``
    included), ``"rts"`` (ADV² against an RTS decoder built by :func:`~advxai.defenses.aid.trained_rts`:
    ``params`` ``rts_steps``, ``rts_batch``, ``aid`` (``None``: RTS; an AID budget: RTS^A, the
    registered attack ``"adaptive_aid"``) and ``match_weight`` (> 0, with ``match_with="control"``, adds
    :class:`~advxai.defenses.aid.MapAgreement` between RTS^A and AID's control: the adaptive attack on
    the AID detector), the rest to ADV²), ``"robust"`` (the registered ``attack`` white-box against the
    adversarially trained copy of the model: ``params["robust"]`` holds
    :func:`~advxai.defenses.adversarial_training.robust_model`'s ``eps``
    and settings, the rest go to the attack).
    ``max_images``: attack only the first so many of the images (for the costly attacks).
    ``adapts_to``: for an adaptive attack, the arena member (by name) it is built to evade, and
    ``extends``: the study attack (by key) it adapts; neither is part of what is cached.
    """

    label: str
    attack: str
    params: dict = field(default_factory=dict)
    targeted: bool = False
    kind: str = "store"
    edges: str | None = None
    max_images: int | None = None
    adapts_to: str | None = None
    extends: str | None = None

    def __post_init__(self):
        from ..attacks import ATTACKS

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
        if self.adapts_to is not None:
            from .members import MEMBERS

            MEMBERS.check(self.adapts_to)


def study_attacks(budget: str = "quick", eps: float = 8 / 255, num_classes: int = 10, seed: int = 0,
                  squeezer: str = "median_3x3", sqz_weight: float = 10.0, hb_iterations: int = 3,
                  hb_sigma: float = 1.0, mask: dict | None = None, mask_images: int | None = 4,
                  rts_steps: int | None = None, rts_batch: int | None = None, aid_budget: str = "full",
                  aid_match_weight: float = 10.0, robust: dict | None = None,
                  adv2_settings: str = "paper", aid_batch: int | None = None,
                  aid_rounds: int | None = None, adv2_warm_steps: int | None = None,
                  adv2_steps: int | None = None) -> dict[str, ArenaAttack]:
    """The study's attacks by short name, at an L-inf budget ``eps`` where they have one; step counts
    scaled by ``budget`` (``smoke`` | ``quick`` | ``paper``). Four adaptive attacks: ADV² (CAM) adapted
    to the feature-squeezing ``squeezer`` (``adaptive_adv2_fs``), PGD inside heat-and-blur's
    Algorithm 2 (``adaptive_hb``), ADV² against RTS^A that also makes RTS agree with RTS^A
    (``adaptive_aid``, weight ``aid_match_weight``) and PGD against the adversarially trained model
    (``pgd_at``, only when ``robust`` gives that model's ``eps`` and settings). Each adaptive attack names
    the member it adapts to and the attack it extends (:func:`adaptive_rows`).

    ADV² against MASK is the bilevel attack; ``mask`` overrides its budget's settings (e.g.
    ``steps``, ``reset_every``, ``reset_iterations``, ``interpreter_settings={"iterations": 60}``) and
    ``mask_images`` limits it to the first images. ADV² against RTS uses RTS trained with the model's
    training budget (``rts_steps`` steps of ``rts_batch`` images where given); RTS^A that decoder
    distilled with AID at ``aid_budget`` (``aid_batch`` images a batch and ``aid_rounds`` rounds where
    given).

    Every ADV² row (on CAM, GRAD, MASK and RTS, AdvEdge's, the adaptive ones) starts from
    :func:`~advxai.attacks.adv2.adv2_settings` with ``adv2_settings`` (``"paper"``: Zhang et al.'s
    Tables 11 and 12; ``"code"``: the authors' scripts) at ADV²'s own budget for the arena's: ``paper``
    is ADV²'s ``full`` (its step counts), ``quick`` and ``smoke`` keep their names. ``adv2_warm_steps``
    and ``adv2_steps``, where given, replace the budget's warm-start and ADV² step counts in every
    ADV² row but the one against MASK (``mask`` sets its own)."""
    from ..attacks.adv2 import check_settings_name

    if budget not in ("smoke", "quick", "paper"):
        raise ValueError(f"budget must be smoke, quick or paper, got {budget!r}")
    check_settings_name(adv2_settings)
    f = {"smoke": 0.1, "quick": 1.0, "paper": 10.0}[budget]
    adv2_budget = ADV2_BUDGETS[budget]
    for name, value, low in (("adv2_warm_steps", adv2_warm_steps, 0), ("adv2_steps", adv2_steps, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{name} must be None or an integer of at least {low}, got {value!r}")
    adv2 = {"budget": adv2_budget, "settings": adv2_settings, "eps": eps,
            # only where given, so the sets cached at the budget's step counts keep their keys
            **{k: v for k, v in (("warm_steps", adv2_warm_steps), ("steps", adv2_steps)) if v is not None}}

    def n(k: int) -> int:
        return max(2, int(round(k * f)))

    if aid_budget not in ("smoke", "full"):
        raise ValueError(f"aid_budget must be smoke or full, got {aid_budget!r}")
    rts = {**adv2, "seed": seed, "rts_steps": rts_steps, "rts_batch": rts_batch,
           # AID's sizes only where given, so the sets cached without them keep their keys
           **{k: v for k, v in (("aid_batch", aid_batch), ("aid_rounds", aid_rounds)) if v is not None}}

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
        "adv2_cam": ArenaAttack("ADV² (CAM)", "adv2", {"interpreter": "cam", **adv2}, targeted=True),
        "adv2_grad": ArenaAttack("ADV² (GRAD)", "adv2", {"interpreter": "grad", **adv2},
                                 targeted=True),
        "advedge_cam": ArenaAttack("AdvEdge (CAM)", "adv2", {"interpreter": "cam", **adv2},
                                   targeted=True, kind="edges", edges="advedge"),
        "advedge_plus_cam": ArenaAttack("AdvEdge+ (CAM)", "adv2", {"interpreter": "cam", **adv2},
                                        targeted=True, kind="edges", edges="advedge+"),
        "adaptive_adv2_fs": ArenaAttack("adaptive ADV² (CAM) vs FS", "adv2",
                                        {"interpreter": "cam", "squeezer": squeezer, "sqz_weight": float(sqz_weight),
                                         **adv2}, targeted=True, kind="adaptive_fs",
                                        adapts_to="feature_squeezing", extends="adv2_cam"),
        "adaptive_hb": ArenaAttack("PGD in Algorithm 2 vs H&B", "pgd",
                                   {"eps": eps, "steps": n(10), "alpha": 2.5 * eps / n(10), "seed": seed,
                                    "iterations": int(hb_iterations), "sigma": float(hb_sigma)}, kind="adaptive_hb",
                                   adapts_to="heat_and_blur", extends="pgd"),
        "adv2_mask": ArenaAttack("ADV² (MASK)", "adv2", {"interpreter": "mask", **adv2, "seed": seed,
                                                        **(mask or {})},
                                 targeted=True, max_images=mask_images),
        "adv2_rts": ArenaAttack("ADV² (RTS)", "adv2", {**rts, "aid": None}, targeted=True, kind="rts"),
        "adv2_rts_aid": ArenaAttack("ADV² (RTS^A)", "adv2", {**rts, "aid": aid_budget}, targeted=True, kind="rts",
                                    adapts_to="aid", extends="adv2_rts"),
        "adaptive_aid": ArenaAttack("adaptive ADV² vs AID", "adv2",
                                    {**rts, "aid": aid_budget, "match_weight": float(aid_match_weight),
                                     "match_with": "control"},
                                    targeted=True, kind="rts", adapts_to="aid", extends="adv2_rts"),
        **({"pgd_at": ArenaAttack("PGD vs adv. training", "pgd",
                                  {"eps": eps, "steps": n(20), "alpha": 2.5 * eps / n(20), "seed": seed,
                                   "robust": dict(robust)}, kind="robust", adapts_to="adversarial_training",
                                  extends="pgd")} if robust is not None else {}),
    }


def adv2_source(specs: dict[str, ArenaAttack]) -> str:
    """The line naming the settings the ADV² rows of ``specs`` start from (``"source"`` of
    :func:`~advxai.attacks.adv2.adv2_settings`, for CAM: the lines differ by interpreter only in a note)."""
    from ..attacks.adv2 import adv2_settings

    spec = next((s for s in specs.values() if s.attack == "adv2" and "settings" in s.params), None)
    if spec is None:
        return "no ADV² row"
    return adv2_settings("cam", spec.params["budget"], spec.params["settings"])["source"]


def as_result(model, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
              extras: dict | None = None) -> AttackResult:
    """An :class:`AttackResult` for images made elsewhere (e.g. heat-and-blur's adaptive attack)."""
    dev = module_device(model)
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
    """The adversarial images of ``spec`` on images ``index`` of ``dataset`` against ``model``.

    Every row is a map over shards of the images on the current engine (:mod:`advxai.engine`), each
    shard cached under a key that holds the attack, its settings and the weights' digest of every
    network it uses (the model, the RTS decoders, the adversarially trained copy), so a run resumes
    where it stopped and a Ray cluster can share the work. What is learned once for a whole row (a
    universal patch, an RTS decoder, a robust model) is built here, on the driver, never in a shard."""
    from ..attacks import adversarial_set
    from ..attacks.edges import edge_step_mask
    from ..data import get_dataset
    from ..models import get_model
    from ..runtime import resolve_device

    index = torch.as_tensor(index, dtype=torch.long).cpu()
    if spec.max_images is not None:
        index = index[:spec.max_images]
    common = dict(model=model, dataset=dataset, index=index, split=split, train_budget=train_budget, device=device)
    if spec.kind == "store":
        result = adversarial_set(spec.attack, targeted=spec.targeted, target_seed=seed, **common, **spec.params)
    elif spec.kind == "edges":
        x = get_dataset(dataset, split=split).batch(index).x
        mask = edge_step_mask(x, spec.edges)
        result = adversarial_set(spec.attack, targeted=spec.targeted, target_seed=seed, step_mask=mask, **common,
                                 **spec.params)
    else:
        dev = resolve_device(device)
        net = get_model(model, device=str(dev), train_budget=train_budget)
        if spec.kind == "patch":
            return _craft_patch(spec, net, model, dataset, index, split, train_budget, dev, seed, patch_images)
        result = _craft_adaptive(spec, net, model, dataset, index, split, train_budget, dev, seed)
    # which data-set images the rows are: claims resample images, and one image appears in several rows
    if isinstance(result, AttackResult):
        result.extras["index"] = index.clone()
    return result


class AppliedPatch:
    """Builds a universal patch attack by name with its learned ``patch`` set: what a shard needs to
    paste it (picklable; its description names the patch by a digest of its pixels)."""

    def __init__(self, name: str, params: dict, patch: torch.Tensor):
        from ..attacks import ATTACKS

        ATTACKS.check(name)
        self.name, self.params, self.patch = name, dict(params), patch.detach().cpu()

    def __call__(self, model, **more):
        from ..attacks import ATTACKS

        return ATTACKS.get(self.name, model, **self.params, **more).set_patch(self.patch)

    def describe(self) -> dict:
        import hashlib

        pixels = hashlib.sha256(self.patch.contiguous().numpy().tobytes()).hexdigest()[:16]
        return {"attack": self.name, "params": self.params, "patch": pixels}


def _craft_patch(spec: ArenaAttack, net, model: str, dataset: str, index: torch.Tensor, split: str,
                 train_budget: str, dev: torch.device, seed: int, patch_images: int) -> AttackResult:
    """A universal patch: learned once on training images (cached), then pasted on the test images (a
    map over shards). Images of the patch's target class are left out: they cannot be "fooled" into it."""
    from ..attacks import ATTACKS
    from ..data import get_dataset
    from ..engine import map_attack
    from ..runtime import cached, model_digest

    params = {"seed": seed, **spec.params}
    attack = ATTACKS.get(spec.attack, net, **params)
    key = {"name": f"{spec.attack}-{model}-{dataset}", "params": spec.params, "model": model,
           "model_digest": model_digest(net), "train_budget": train_budget, "dataset": dataset,
           "images": int(patch_images), "seed": seed, "device_type": dev.type}

    def learn() -> dict:
        train = get_dataset(dataset, split="train")
        images = train.load_images(torch.arange(min(int(patch_images), len(train))))
        return {"patch": attack.fit(images.to(dev)).patch.cpu()}

    patch = cached("patches", key, learn)["patch"]
    data = get_dataset(dataset, split=split)
    index = index[data.labels[index] != attack.target_class]
    result = map_attack(AppliedPatch(spec.attack, params, patch), net, None, data.labels[index], key={
        "name": f"{spec.attack}-applied-{model}-{dataset}", "model": model, "train_budget": train_budget,
        "dataset": dataset, "split": split}, index=index, load=lambda idx: {"x": data.batch(idx).x},
        desc=f"{spec.label} on {model}/{dataset}")
    if isinstance(result, AttackResult):
        result.extras["index"] = index.clone()
    return result


def adaptive_rows(specs: dict[str, ArenaAttack]) -> dict[str, tuple[str, str]]:
    """``{label: (member name, label of the attack it extends)}`` for the adaptive attacks among ``specs``."""
    return {s.label: (s.adapts_to, specs[s.extends].label) for s in specs.values()
            if s.adapts_to is not None and s.extends in specs}


class AIDAttackFactory:
    """Builds the registered ``"adaptive_aid"`` attack on the AID detector's two decoders, given as
    objects (``rts_aid``, ``control``), so they reach a shard through the engine, trained once on the
    driver (picklable; described like :class:`~advxai.engine.AttackFactory`)."""

    def __init__(self, params: dict):
        self.params = dict(params)

    def __call__(self, model, rts_aid, control, **more):
        from ..attacks import ATTACKS
        from ..defenses.aid import AIDDetector

        return ATTACKS.get("adaptive_aid", model, detector=AIDDetector(model, rts=control, rts_aid=rts_aid),
                           **self.params, **more)

    def describe(self) -> dict:
        return {"attack": "adaptive_aid", "params": self.params}


def _craft_adaptive(spec: ArenaAttack, net, model: str, dataset: str, index: torch.Tensor, split: str,
                    train_budget: str, dev: torch.device, seed: int) -> AttackResult:
    """The study's adaptive attacks (and ADV² against RTS, and PGD against the robust model): registered
    attacks built from the spec's plain settings, mapped over shards of the images like the attack
    store's sets (same cache kind, own key)."""
    from ..attacks.store import random_targets
    from ..data import get_dataset
    from ..engine import map_attack

    data = get_dataset(dataset, split=split)
    y = data.labels[index]
    target = random_targets(y, net.info.num_classes, seed) if spec.targeted else None
    factory, attacked, objects = _adaptive_attack(spec, net, model, train_budget, dev, seed)
    key = {"name": f"{spec.kind}-{spec.attack}-{model}-{dataset}", "kind": spec.kind, "attack": spec.attack,
           "params": spec.params, "model": model, "train_budget": train_budget, "dataset": dataset, "split": split,
           "targeted": spec.targeted, "target_seed": seed}
    return map_attack(factory, attacked, None, y, target, key=key, index=index, objects=objects,
                      load=lambda idx: {"x": data.batch(idx).x}, desc=f"{spec.label} on {model}/{dataset}")


def _adaptive_attack(spec: ArenaAttack, net, model: str, train_budget: str, dev: torch.device, seed: int):
    """``(factory, attacked model, objects)`` of an adaptive (or RTS, or robust-model) arena row: what
    :func:`~advxai.engine.map_attack` needs. Decoders and the robust model are built (or loaded) here."""
    from ..engine import AttackFactory

    params = dict(spec.params)
    if spec.kind == "rts":
        from ..defenses.aid import trained_rts

        steps, batch = params.pop("rts_steps"), params.pop("rts_batch")
        aid, weight = params.pop("aid", None), float(params.pop("match_weight", 0.0))
        match_with = params.pop("match_with", None)
        if weight > 0 and (aid is None or match_with != "control"):
            raise ValueError("match_weight needs aid (an AID budget) and match_with='control': the term pulls RTS^A's "
                             "map towards its control's, the pair the AID detector compares")
        budget = params.pop("budget", "quick")
        sizes = dict(aid_batch=params.pop("aid_batch", None), aid_rounds=params.pop("aid_rounds", None))
        if aid is None:  # plain ADV² against the budget's RTS decoder (settings from params: paper or code)
            return (AttackFactory("adv2", {"budget": budget, **params}), net,
                    {"interpreter": trained_rts(net, steps, batch, train_budget=train_budget)})
        # RTS^A, and AID's control, which only the agreement term reads (match_weight > 0)
        build = dict(aid_budget=aid, train_budget=train_budget, **sizes)
        objects = {"rts_aid": trained_rts(net, steps, batch, **build),
                   "control": trained_rts(net, steps, batch, control=True, **build)}
        return AIDAttackFactory({"match_weight": weight, "budget": budget, **params}), net, objects
    if spec.kind == "robust":
        from ..defenses.adversarial_training import robust_model

        config = dict(params.pop("robust"))
        robust = robust_model(model, config.pop("eps"), train_budget=train_budget, device=str(dev), **config)
        if spec.targeted:
            params["targeted"] = True
        return AttackFactory(spec.attack, params), robust, {}
    if spec.kind == "adaptive_fs":
        return AttackFactory("adaptive_adv2_fs", {"interpreter": params.pop("interpreter", "cam"),
                                                  "squeezer": params.pop("squeezer", "median_3x3"), "seed": seed,
                                                  **params}), net, {}
    # adaptive_hb: the inner attack keeps every setting but Algorithm 2's own (eps bounds both)
    iterations = int(params.pop("iterations", 5))
    sigma, threshold = params.pop("sigma", 1.0), params.pop("threshold", "mean2std")
    return AttackFactory("adaptive_hb", {"attack": spec.attack, "attack_params": params, "iterations": iterations,
                                         "eps": params.get("eps"), "sigma": sigma, "threshold": threshold,
                                         "targeted": spec.targeted}), net, {}
