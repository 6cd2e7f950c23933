"""MASK: meaningful perturbation (Fong & Vedaldi), the perturbation-guided interpreter of ADV².

A keep-mask ``m`` in [0, 1] at a coarse resolution (1 keeps a pixel, 0 replaces it) is upsampled
and smoothed to ``M`` and blends the image with a perturbed copy ``A`` (a strong blur, or noise):
``phi(x; M) = M x + (1 - M) A``. MASK finds the smallest deletion that destroys the class score:

* ``formulation="basic"`` (Eq. 9 of Zhang et al.): ``p_c(phi(x; M)) + l1 |1 - m|_1``;
* ``formulation="refined"`` (Eq. 16, the default): adds ``tv * TV_beta(m)`` and takes the expectation
  over random translations (``jitter`` pixels) of the image under the mask.

``p_c`` is the softmax probability of the explained class; ``m`` starts at 0.5 and is optimised with
Adam (learning rate 0.1), clipped to [0, 1] after every step. The attribution map is the deleted
region ``1 - M`` (high where deleting matters), in [0, 1] without further normalisation;
``extras["native"]`` is ``1 - m`` at the mask's resolution.

Defaults follow the authors' settings for 224-pixel ImageNet images (28x28 mask, blur sigma 10,
4-pixel jitter, l1 = 1e-4 and tv = 1e-2 summed over a 28x28 mask, beta = 3, 300 iterations) and
scale with the input size: the mask is H/8 on a side, sigma and jitter scale with H/224, and the
l1 and tv coefficients are rescaled by (28*28)/(mask pixels) so a coarser mask keeps the balance.

MASK is itself an optimisation, so it is not differentiable with respect to the input; ADV²
attacks it through the bilevel procedure in :mod:`advxai.attacks.adv2`, which reuses
:meth:`Mask.objective`, :meth:`Mask.initial_state` and :func:`adam_step` from here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Explanation, Interpreter
from .ops import gaussian_blur, shift_images, total_variation

__all__ = ["Mask", "AdamState", "adam_step", "MaskTask", "mask_maps"]

FORMULATIONS = ("basic", "refined")
PERTURBATIONS = ("blur", "noise")
REFERENCE_PIXELS = 28 * 28


@dataclass
class AdamState:
    """Per-element Adam moments for a batch of masks (t counts the steps taken)."""

    m1: torch.Tensor
    m2: torch.Tensor
    t: int = 0

    @staticmethod
    def zeros_like(p: torch.Tensor) -> "AdamState":
        return AdamState(torch.zeros_like(p), torch.zeros_like(p), 0)

    def detach(self) -> "AdamState":
        return AdamState(self.m1.detach(), self.m2.detach(), self.t)


def adam_step(p: torch.Tensor, grad: torch.Tensor, state: AdamState, lr: float, betas=(0.9, 0.999),
              eps: float = 1e-8, low: float = 0.0, high: float = 1.0) -> tuple[torch.Tensor, AdamState]:
    """One Adam step, then clipping into [low, high]. Pure: differentiable with respect to ``grad`` (and
    through it to whatever ``grad`` depends on) when ``grad`` carries a graph, which the unrolled
    look-ahead of ADV² against MASK uses."""
    b1, b2 = betas
    t = state.t + 1
    m1 = b1 * state.m1 + (1 - b1) * grad
    m2 = b2 * state.m2 + (1 - b2) * grad * grad
    m1_hat = m1 / (1 - b1 ** t)
    m2_hat = m2 / (1 - b2 ** t)
    p = (p - lr * m1_hat / (m2_hat.sqrt() + eps)).clamp(low, high)
    return p, AdamState(m1, m2, t)


class Mask(Interpreter):
    name = "mask"
    differentiable = False

    def __init__(self, model, iterations: int = 300, lr: float = 0.1, mask_size: int | None = None,
                 l1: float = 1e-4, tv: float = 1e-2, tv_beta: float = 3.0, jitter: int | None = None,
                 blur_sigma: float | None = None, mask_sigma: float | None = None, perturbation: str = "blur",
                 noise_std: float = 0.2, formulation: str = "refined", seed: int = 0):
        super().__init__(model)
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        for name, v in (("lr", lr), ("l1", l1), ("tv", tv), ("tv_beta", tv_beta), ("noise_std", noise_std)):
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v!r}")
        self.iterations, self.lr, self.l1, self.tv, self.tv_beta = iterations, lr, l1, tv, tv_beta
        self.perturbation, self.noise_std, self.formulation, self.seed = perturbation, noise_std, formulation, seed
        size = getattr(getattr(model, "info", None), "input_size", None)
        h = size[-1] if size else 224
        self.mask_size = mask_size or max(4, h // 8)
        self.jitter = jitter if jitter is not None else round(4 * h / 224)
        self.blur_sigma = blur_sigma if blur_sigma is not None else 10.0 * h / 224
        self.mask_sigma = mask_sigma if mask_sigma is not None else 5.0 * h / 224
        self.scale = REFERENCE_PIXELS / self.mask_size ** 2

    # -- the pieces ADV² reuses -------------------------------------------------------------------
    def upsample(self, m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The coarse keep-mask [B, 1, s, s] -> the smooth blending mask M at image size."""
        big = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        return gaussian_blur(big, self.mask_sigma).clamp(0, 1)

    def alternative(self, x: torch.Tensor) -> torch.Tensor:
        """The perturbed image A that replaces the deleted pixels (deterministic for a given seed)."""
        if self.perturbation == "blur":
            return gaussian_blur(x, self.blur_sigma)
        g = torch.Generator().manual_seed(self.seed + 1)
        return (x + self.noise_std * torch.randn(x.shape, generator=g).to(x.device, x.dtype)).clamp(0, 1)

    def shifts(self, iterations: int | None = None, seed: int | None = None) -> list[tuple[int, int]]:
        """The random translations (one per iteration) of the refined formulation."""
        n = iterations or self.iterations
        if self.formulation == "basic" or self.jitter == 0:
            return [(0, 0)] * n
        g = torch.Generator().manual_seed(self.seed if seed is None else seed)
        d = torch.randint(-self.jitter, self.jitter + 1, (n, 2), generator=g)
        return [(int(a), int(b)) for a, b in d]

    def objective(self, m: torch.Tensor, x: torch.Tensor, alt: torch.Tensor, target: torch.Tensor,
                  shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """``l_map(m; x)`` per image [B]: class probability of the blend plus the mask's regularisers.
        Differentiable in ``m`` and in ``x`` (and ``alt``)."""
        big = self.upsample(m, tuple(x.shape[-2:]))
        xs, alts = shift_images(x, *shift), shift_images(alt, *shift)
        blend = big * xs + (1 - big) * alts
        p = self.model(blend).softmax(1).gather(1, target[:, None]).squeeze(1)
        loss = p + self.l1 * self.scale * (1 - m).abs().flatten(1).sum(1)
        if self.formulation == "refined" and self.tv > 0:
            loss = loss + self.tv * self.scale * total_variation(m, self.tv_beta)
        return loss

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 1, self.mask_size, self.mask_size), 0.5, device=x.device, dtype=x.dtype)

    def optimise(self, x: torch.Tensor, target: torch.Tensor, m: torch.Tensor | None = None,
                 iterations: int | None = None, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run Adam on ``l_map`` from ``m`` (default 0.5 everywhere); returns ``(m, final loss [B])``."""
        x = x.detach()
        alt = self.alternative(x)
        m = (self.initial_state(x) if m is None else m.detach().clone())
        state = AdamState.zeros_like(m)
        loss = None
        for shift in self.shifts(iterations, seed):
            m.requires_grad_(True)
            loss = self.objective(m, x, alt, target, shift)
            grad, = torch.autograd.grad(loss.sum(), m)
            with torch.no_grad():
                m, state = adam_step(m.detach(), grad, state, self.lr)
        return m.detach(), loss.detach()

    def to_maps(self, m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Attribution maps (deleted region) at image size from keep-masks."""
        return 1 - self.upsample(m, size)

    # -- the interpreter ---------------------------------------------------------------------------
    def attribute(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool) -> Explanation:
        m, loss = self.optimise(x, target)
        maps = self.to_maps(m, tuple(x.shape[-2:]))
        return Explanation(maps=maps.detach(), raw=m, target=target, logits=None,
                           extras={"native": 1 - m, "keep_mask": m, "loss": loss})


# --------------------------------------------------------------------------- MASK maps over shards


class MaskTask:
    """One shard of MASK maps (picklable: the settings travel, the model comes as an object)."""

    def __init__(self, settings: dict):
        self.settings = dict(settings)

    def __call__(self, shard: dict, model) -> dict:
        e = Mask(model, **self.settings).attribute(shard["x"], shard["target"], False)
        return {"maps": e.maps, "keep_mask": e.extras["keep_mask"], "loss": e.extras["loss"]}


def mask_maps(model, x: torch.Tensor, target: torch.Tensor, *, key: dict | None = None, index=None, engine=None,
              shard_size: int | None = None, cache: bool = True, **settings) -> Explanation:
    """MASK's maps of ``x`` for classes ``target``, optimised over shards of images on the current
    engine (or ``engine``), each shard cached: ``Mask(model, **settings).explain(x, target)`` for
    many images, resumable and spread over a cluster. With the blur perturbation (the default) each
    image's optimisation involves that image only; the noise perturbation draws its noise for the
    whole shard, so there the shard size is part of the result.

    The cache key holds the settings, the model's weights' digest, this module's code digest and a
    digest of each shard's images and classes; ``key`` may add a description (the data set, say)
    and ``index`` names the images (data-set indices) in the shard keys.
    """
    from ..engine import current
    from ..runtime import code_digest, model_digest, module_device

    probe = Mask(model, **settings)  # bad settings fail here, on the driver, before any shard is sent
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    name = getattr(getattr(model, "info", None), "name", "model")
    job_key = {"name": f"mask-{name}", **dict(key or {}), "settings": settings, "model_digest": model_digest(model),
               "code": code_digest(probe), "device_type": module_device(model).type}
    eng = engine if engine is not None else current()
    out = eng.map(MaskTask(settings), {"x": x, "target": target}, key=job_key, index=index, objects={"model": model},
                  shard_size=shard_size, kind="mask_maps", desc=f"MASK maps on {name}", cache=cache)
    dev = module_device(model)
    m = out["keep_mask"].to(dev)
    return Explanation(maps=out["maps"].to(dev), raw=m, target=target.to(dev), logits=None,
                       extras={"native": 1 - m, "keep_mask": m, "loss": out["loss"].to(dev)})
