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
cached under ``$ADVXAI_CACHE/rts_aid`` keyed by the classifier, the starting RTS decoder and every
setting; :func:`aid_rts` returns it as an :class:`~advxai.interpreters.rts.RTS` interpreter (RTS^A).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..interpreters.rts import RTS, alternatives, model_digest, rts_objective
from ..runtime import cached

__all__ = ["AIDConfig", "train_aid", "aid_rts", "aid_loss"]


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


def train_aid(rts: RTS, config: AIDConfig = AIDConfig(), dataset=None, progress: bool = True) -> dict:
    """Distil ``rts`` (its decoder is copied, not changed); returns the new decoder's state dict and the
    history of both losses per round."""
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

    rounds = range(config.rounds)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc=f"AID for RTS on {model.info.name}", leave=False)
    for _ in rounds:
        # adversarial inputs against the current decoder (correctly classified images only)
        x, y = next_batch(2 * config.batch_size)
        with torch.no_grad():
            keep = model(x).argmax(1) == y
        x, y = x[keep][:config.batch_size], y[keep][:config.batch_size]
        if len(x) == 0:
            continue
        target = random_targets(y, k, seed=int(torch.randint(0, 2 ** 31 - 1, (1,), generator=g))).to(dev)
        student.decoder.eval().requires_grad_(False)
        attack = ADV2(model, student, eps=config.eps, alpha=config.alpha, warm_steps=config.attack_warm_steps,
                      steps=config.attack_steps, lam=config.attack_lam, enc_weight=config.attack_enc_weight,
                      confidence=0.0, seed=config.seed)
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
            mask, _ = student.masks(xb, cls)
            l_int = rts_objective(model, xb, mask, cls, (~fake).to(dev), alt, rts.config).mean()
            opt.zero_grad()
            l_int.backward()
            opt.step()
            # l_aid on this round's adversarial inputs
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
            progress: bool = True) -> RTS:
    """RTS^A: ``rts`` distilled with AID (trained on first use, then loaded from the cache)."""
    if train_budget not in BUDGETS:
        raise ValueError(f"train_budget must be one of {sorted(BUDGETS)}, got {train_budget!r}")
    if not isinstance(rts, RTS):
        raise ValueError(f"AID applies to the RTS interpreter, got {type(rts).__name__}")
    config = config or BUDGETS[train_budget]
    model = rts.model
    spec = {"name": f"rts-aid-{model.info.name}", "version": 1, "model": model_digest(model),
            "decoder": model_digest(rts.decoder), "layers": rts.layers, "rts_config": asdict(rts.config),
            "aid_config": asdict(config), "device": model.device.type,
            "dataset": None if dataset is None else f"{getattr(dataset, 'name', 'custom')}-{len(dataset)}"}
    payload = cached("rts_aid", spec, lambda: train_aid(rts, config, dataset=dataset, progress=progress))
    distilled = RTS(model, encoder=rts.encoder if rts.encoder is not model else None, layers=rts.layers,
                    config=rts.config, payload=payload)
    distilled.aid_history = payload.get("aid_history", {})
    distilled.name = "rts_aid"
    return distilled
