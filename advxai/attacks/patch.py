"""Universal targeted patches: the Adversarial Patch (Brown et al., 2017) and LaVAN (Karmon et al., 2018).

Both learn one patch of pixels that, pasted onto any image, makes the model predict a chosen
class. They differ in how the patch is placed while it is learned:

* :class:`AdversarialPatch` (Brown et al.) learns by *expectation over transformations*: every
  training image receives the patch at a random location, a random scale and a random rotation,
  so the patch keeps working wherever and however it is pasted. The patch may be a circle (their
  choice) or a square. ``size`` is the fraction of the image's pixels the patch covers at scale 1;
  ``scale=(lo, hi)`` draws the covered fraction uniformly from ``[lo * size, hi * size]``.
* :class:`LaVAN` (Karmon et al.) learns a small square patch that only moves: a random location
  (``location="random"``) or one fixed place (``location=(row, col)``, the top-left pixel), no
  scaling or rotation.

Training minimises the cross-entropy towards the target class, averaged over a mini-batch of
training images, each with its own random placement (one forward and backward pass per step for
the whole batch); the patch is updated by Adam (or SGD) and clipped to [0, 1] after each step.

Usage::

    attack = AdversarialPatch(model, target_class=954, size=0.25).fit(train_images)
    attack.fit_cached(train_images)                  # the same, learned once and then read from the cache
    x_patched = attack.apply(x)                       # random placement, seeded
    result = attack(x, y)                            # an AttackResult; success = prediction is the target

Placement is rendered with an affine sampling grid (``grid_sample``): pixels under the patch are
replaced, every other pixel is left exactly as it was, and the patched image stays in [0, 1].
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .base import Attack, AttackResult

__all__ = ["PatchAttack", "AdversarialPatch", "LaVAN", "Placement"]

SHAPES = ("circle", "square")
OPTIMIZERS = ("adam", "sgd")


class Placement(dict):
    """Where and how the patch lands on each image of a batch: ``center`` [B, 2] (row, col in pixels,
    from the image's top-left corner), ``area`` [B] (fraction of the image's pixels the unclipped
    patch covers) and ``angle`` [B] (degrees, counter-clockwise)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


class PatchAttack(Attack):
    """What both patch attacks share: the patch, its placement, training and the attack call.

    Parameters: ``target_class`` (the class the patch asks for), ``size`` (fraction of the image's
    pixels covered at scale 1), ``shape`` (``"circle"`` or ``"square"``), ``scale`` (range of area
    multipliers drawn while training), ``max_angle`` (rotations drawn from ``[-max_angle, max_angle]``
    degrees while training), ``location`` (``"random"`` or a fixed top-left ``(row, col)``), ``steps``,
    ``lr``, ``optimizer`` (``"adam"`` | ``"sgd"``), ``train_batch`` (images per step), ``seed``.
    """

    name = "patch"
    modes = ("targeted",)

    def __init__(self, model, target_class: int, size: float = 0.25, shape: str = "circle",
                 scale: Sequence[float] = (1.0, 1.0), max_angle: float = 0.0,
                 location: str | Sequence[int] = "random", steps: int = 500, lr: float = 0.05,
                 optimizer: str = "adam", train_batch: int = 16, targeted: bool = True, seed: int = 0,
                 batch_size: int | None = None):
        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        k = self.num_classes()
        if isinstance(target_class, bool) or not isinstance(target_class, int) or target_class < 0 or (
                k is not None and target_class >= k):
            raise ValueError(f"{self.name}: target_class must be a class index in [0, {k}), got {target_class!r}")
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 < size < 1:
            raise ValueError(f"{self.name}: size (the fraction of the image the patch covers) must be in (0, 1), "
                             f"got {size!r}")
        if shape not in SHAPES:
            raise ValueError(f"{self.name}: shape must be one of {SHAPES}, got {shape!r}")
        scale = tuple(float(s) for s in scale)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"{self.name}: scale must be (lo, hi) with 0 < lo <= hi, got {scale!r}")
        if not 0 <= max_angle <= 180:
            raise ValueError(f"{self.name}: max_angle must be in [0, 180] degrees, got {max_angle!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"{self.name}: optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{self.name}: steps must be a positive integer, got {steps!r}")
        if not isinstance(train_batch, int) or train_batch < 1:
            raise ValueError(f"{self.name}: train_batch must be a positive integer, got {train_batch!r}")
        if not lr > 0:
            raise ValueError(f"{self.name}: lr must be positive, got {lr!r}")
        self.target_class, self.size, self.shape, self.scale = int(target_class), float(size), shape, scale
        self.max_angle, self.steps, self.lr, self.optimizer = float(max_angle), steps, float(lr), optimizer
        self.train_batch = train_batch
        self.location = self._check_location(location)
        self.patch: torch.Tensor | None = None  # [C, s, s] in [0, 1] once fitted
        self.history: dict[str, list[float]] = {"loss": [], "target_rate": []}
        info = getattr(model, "info", None)
        if info is not None:  # the model's input size is known: a patch too large fails here, before training
            self._check_fits(tuple(info.input_size[1:]), self.size * self.scale[1])

    # -- geometry --------------------------------------------------------------------------------
    def side(self, area: float | torch.Tensor, hw: tuple[int, int]) -> float | torch.Tensor:
        """Side length in pixels of the patch's bounding square when it covers ``area`` of an H x W image."""
        pixels = area * hw[0] * hw[1]
        if self.shape == "circle":  # pi r^2 = pixels, side = 2 r
            return 2 * (pixels / math.pi) ** 0.5
        return pixels ** 0.5

    def _check_fits(self, hw: tuple[int, int], area: float) -> None:
        side = float(self.side(area, hw))
        if side > min(hw) + 1e-6:
            raise ValueError(f"{self.name}: a {self.shape} patch covering {area:.1%} of a {hw[0]}x{hw[1]} image is "
                             f"{side:.1f} px wide, larger than the image; use a smaller size or scale")

    def _check_location(self, location):
        if isinstance(location, str):
            if location != "random":
                raise ValueError(f"{self.name}: location must be 'random' or a (row, col) top-left pixel, "
                                 f"got {location!r}")
            return location
        loc = tuple(int(v) for v in location)
        if len(loc) != 2 or min(loc) < 0:
            raise ValueError(f"{self.name}: a fixed location is a (row, col) pair of non-negative pixels, "
                             f"got {location!r}")
        return loc

    def placement(self, n: int, hw: tuple[int, int], generator: torch.Generator, train: bool = False,
                  area: float | None = None, location=None, angle: float | None = None) -> Placement:
        """Draw a placement for ``n`` images (on the CPU, from ``generator``).

        While training, the area multiplier and the angle are random within ``scale`` and
        ``max_angle``; otherwise the area is ``area`` (default ``size``) and the angle ``angle``
        (default 0). The location is random (the whole unrotated patch inside the image) unless
        ``location`` (or the attack's fixed location) gives the top-left pixel."""
        h, w = hw
        if train:
            lo, hi = self.scale
            areas = self.size * (lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64))
            angles = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * self.max_angle
        else:
            a = self.size if area is None else area
            if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 1:
                raise ValueError(f"{self.name}: area must be in (0, 1), got {a!r}")
            areas = torch.full((n,), float(a), dtype=torch.float64)
            angles = torch.full((n,), float(angle or 0.0), dtype=torch.float64)
        self._check_fits(hw, float(areas.max()))
        sides = torch.as_tensor(self.side(areas, hw))
        loc = self.location if location is None else self._check_location(location)
        if loc == "random":
            # the top-left corner uniformly over the positions that keep the unrotated box inside
            top = torch.rand(n, generator=generator, dtype=torch.float64) * (h - sides)
            left = torch.rand(n, generator=generator, dtype=torch.float64) * (w - sides)
        else:
            if loc[0] + float(sides.max()) > h + 1e-6 or loc[1] + float(sides.max()) > w + 1e-6:
                raise ValueError(f"{self.name}: a {float(sides.max()):.1f} px patch at top-left {loc} does not fit "
                                 f"in a {h}x{w} image")
            top = torch.full((n,), float(loc[0]), dtype=torch.float64)
            left = torch.full((n,), float(loc[1]), dtype=torch.float64)
        center = torch.stack([top + sides / 2, left + sides / 2], 1)
        return Placement(center=center, area=areas, angle=angles, side=sides)

    def render(self, patch: torch.Tensor, placement: Placement, hw: tuple[int, int]):
        """The patch drawn on an H x W canvas per image, and the boolean mask of the pixels it covers.

        An affine grid maps every canvas pixel into the patch's own coordinates ([-1, 1] on each
        side), through the inverse of the placement's rotation and scale; the mask is where those
        coordinates fall inside the square or the unit circle. Differentiable in ``patch``."""
        h, w = hw
        dev, dt = patch.device, patch.dtype
        n = len(placement["area"])
        half = (placement["side"] / 2).to(dev, torch.float64)
        theta_rad = placement["angle"].to(dev, torch.float64) * math.pi / 180
        cos, sin = torch.cos(theta_rad), torch.sin(theta_rad)
        # canvas pixel centres, relative to the patch centre, in pixels (x to the right, y down)
        ys = torch.arange(h, device=dev, dtype=torch.float64) + 0.5
        xs = torch.arange(w, device=dev, dtype=torch.float64) + 0.5
        cy = placement["center"][:, 0].to(dev, torch.float64).view(n, 1, 1)
        cx = placement["center"][:, 1].to(dev, torch.float64).view(n, 1, 1)
        dy, dx = ys.view(1, h, 1) - cy, xs.view(1, 1, w) - cx
        # rotate the canvas offset by -angle (the inverse of turning the patch counter-clockwise on screen)
        c, s, r = cos.view(n, 1, 1), sin.view(n, 1, 1), half.view(n, 1, 1)
        u = (c * dx - s * dy) / r
        v = (s * dx + c * dy) / r
        if self.shape == "circle":
            mask = u * u + v * v <= 1.0
        else:
            mask = (u.abs() <= 1.0) & (v.abs() <= 1.0)
        grid = torch.stack([u, v], -1).to(dt)  # grid_sample wants (x, y) in [-1, 1]
        canvas = F.grid_sample(patch.unsqueeze(0).expand(n, -1, -1, -1), grid, mode="bilinear",
                               padding_mode="border", align_corners=False)
        return canvas, mask.unsqueeze(1)

    def paste(self, x: torch.Tensor, patch: torch.Tensor, placement: Placement) -> torch.Tensor:
        canvas, mask = self.render(patch.to(x.device, x.dtype), placement, tuple(x.shape[-2:]))
        return torch.where(mask, canvas, x)

    # -- training --------------------------------------------------------------------------------
    def init_patch(self, channels: int, side: int, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(channels, side, side, generator=generator)

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        target = torch.full((len(logits),), self.target_class, device=logits.device)
        return F.cross_entropy(logits, target)

    def _check_images(self, images: torch.Tensor, what: str) -> None:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) == 0:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"{self.name}: {what} must be a non-empty [N, C, H, W] tensor, got {shape}")
        if images.min() < 0 or images.max() > 1:
            raise ValueError(f"{self.name}: {what} must be in [0, 1] (got [{images.min():.3f}, {images.max():.3f}])")
        if self.patch is not None and images.shape[1] != self.patch.shape[0]:
            raise ValueError(f"{self.name}: {what} have {images.shape[1]} channels, the patch has {self.patch.shape[0]}")

    def fit(self, images: torch.Tensor, steps: int | None = None, progress: bool = False) -> "PatchAttack":
        """Learn the patch on ``images`` [N, C, H, W] in [0, 1] (a mini-batch of ``train_batch`` drawn per
        step, each image with its own random placement). Returns the attack itself; the per-step loss
        and the fraction of the mini-batch predicted as the target are in ``history``."""
        self._check_images(images, "training images")
        steps = self.steps if steps is None else steps
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{self.name}: steps must be a positive integer, got {steps!r}")
        hw = tuple(images.shape[-2:])
        self._check_fits(hw, self.size * self.scale[1])
        g = self.generator(self.device)
        dev = self.device
        # stored at the resolution of the largest area drawn, so rendering only ever shrinks it
        side = int(math.ceil(float(self.side(self.size * self.scale[1], hw))))
        patch = self.init_patch(images.shape[1], side, g).to(dev).requires_grad_(True)
        opt = (torch.optim.Adam([patch], lr=self.lr) if self.optimizer == "adam"
               else torch.optim.SGD([patch], lr=self.lr, momentum=0.9))
        history = {"loss": [], "target_rate": []}
        bar = range(steps)
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(bar, desc=f"training {self.name} patch (target {self.target_class})", leave=False)
        with torch.enable_grad():
            for _ in bar:
                idx = torch.randint(len(images), (self.train_batch,), generator=g)
                xb = images[idx].to(dev)
                placement = self.placement(len(xb), hw, g, train=True)
                logits = self.model(self.paste(xb, patch, placement))
                loss = self.loss(logits)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    patch.clamp_(0, 1)
                history["loss"].append(float(loss.detach()))
                history["target_rate"].append(float((logits.argmax(1) == self.target_class).float().mean()))
        self.patch = patch.detach()
        self.history = history
        return self

    def settings(self) -> dict:
        """Everything besides the model and the images that determines the learned patch."""
        return {"target_class": self.target_class, "size": self.size, "shape": self.shape, "scale": list(self.scale),
                "max_angle": self.max_angle, "location": self.location, "steps": self.steps, "lr": self.lr,
                "optimizer": self.optimizer, "train_batch": self.train_batch, "seed": self.seed}

    def fit_cached(self, images: torch.Tensor, progress: bool = False) -> "PatchAttack":
        """:meth:`fit`, or the patch learned before from the same start: stored under
        ``$ADVXAI_CACHE/patches``, keyed by the attack's :meth:`settings`, a digest of the model's
        weights, a digest of the training images, a digest of the patch code and the device type (a
        GPU's arithmetic differs in the last bits). The training history comes back with the patch."""
        import hashlib

        from ..runtime import cached, code_digest, model_digest

        self._check_images(images, "training images")
        # digested once here: the cache hashes every tensor in a key each time it reads the key
        pixels = hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        info = getattr(self.model, "info", None)
        spec = {"name": f"{self.name}-{getattr(info, 'name', type(self.model).__name__)}-{self.target_class}",
                "attack": self.name, "settings": self.settings(), "model_digest": model_digest(self.model),
                "images": pixels, "image_shape": list(images.shape), "code": code_digest(self),
                "device_type": self.device.type}

        def build():
            self.fit(images, progress=progress)
            return {"patch": self.patch.cpu(), "loss": torch.tensor(self.history["loss"]),
                    "target_rate": torch.tensor(self.history["target_rate"])}

        payload = cached("patches", spec, build)
        self.set_patch(payload["patch"])
        self.history = {k: payload[k].tolist() for k in ("loss", "target_rate")}
        return self

    # -- using the patch -------------------------------------------------------------------------
    def _need_patch(self) -> torch.Tensor:
        if self.patch is None:
            raise RuntimeError(f"{self.name}: the patch is not learned yet; call fit(images) first "
                               f"(or set_patch(tensor))")
        return self.patch

    def set_patch(self, patch: torch.Tensor) -> "PatchAttack":
        """Use a patch learned before (for instance loaded from the cache) instead of fitting one."""
        if not isinstance(patch, torch.Tensor) or patch.dim() != 3 or patch.shape[1] != patch.shape[2]:
            raise ValueError(f"{self.name}: a patch is a [C, s, s] tensor")
        if patch.min() < 0 or patch.max() > 1:
            raise ValueError(f"{self.name}: patch values must be in [0, 1]")
        self.patch = patch.detach().to(self.device)
        return self

    @torch.no_grad()
    def apply(self, x: torch.Tensor, area: float | None = None, location=None, angle: float | None = None,
              seed: int | None = None, return_placement: bool = False):
        """Paste the learned patch onto ``x``: covering ``area`` (default ``size``), at ``location``
        (default: the attack's; ``"random"`` draws one per image from ``seed``, default the attack's
        seed), turned by ``angle`` degrees (default 0)."""
        patch = self._need_patch()
        self._check_images(x, "images")
        g = torch.Generator().manual_seed(self.seed if seed is None else int(seed))
        placement = self.placement(len(x), tuple(x.shape[-2:]), g, area=area, location=location, angle=angle)
        out = self.paste(x, patch, placement)
        return (out, placement) if return_placement else out

    def __call__(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> AttackResult:
        """Paste the patch (placements drawn from the attack's seed) and report the result: success means
        the prediction is the target class. ``target`` may be omitted; when given it must be the target."""
        self._need_patch()
        y = torch.as_tensor(y, dtype=torch.long)
        if target is None:
            target = torch.full_like(y, self.target_class)
        target = torch.as_tensor(target, dtype=torch.long)
        if target.numel() and bool((target != self.target_class).any()):
            raise ValueError(f"{self.name}: this patch targets class {self.target_class}; other targets need "
                             f"another patch")
        self._call_seed = 0
        return super().__call__(x, y, target)

    def perturb(self, x, y, target):
        # each batch draws its placements from its own stream, so batching does not change them
        seed = self.seed * 1_000_003 + self._call_seed
        self._call_seed += 1
        x_adv, placement = self.apply(x, seed=seed, return_placement=True)
        self._extras = {"center": placement["center"].float(), "area": placement["area"].float()}
        return x_adv


class AdversarialPatch(PatchAttack):
    """Brown et al.'s adversarial patch: a circle (or square) learned with expectation over random
    location, scale and rotation. Defaults: a circle covering 25 % of the image at scale 1, scales
    0.7-1.3 of that area, rotations up to 22.5 degrees either way, Adam with step 0.05."""

    name = "patch"

    def __init__(self, model, target_class: int, size: float = 0.25, shape: str = "circle",
                 scale: Sequence[float] = (0.7, 1.3), max_angle: float = 22.5, steps: int = 500, lr: float = 0.05,
                 optimizer: str = "adam", train_batch: int = 16, targeted: bool = True, seed: int = 0,
                 batch_size: int | None = None):
        super().__init__(model, target_class, size=size, shape=shape, scale=scale, max_angle=max_angle,
                         location="random", steps=steps, lr=lr, optimizer=optimizer, train_batch=train_batch,
                         targeted=targeted, seed=seed, batch_size=batch_size)


class LaVAN(PatchAttack):
    """Karmon et al.'s localised and visible adversarial noise: a small square patch learned at random
    locations (``location="random"``) or at one fixed top-left pixel, with no scaling or rotation.
    ``size`` is the fraction of the image covered (50 x 50 on a 299 x 299 image is 0.028)."""

    name = "lavan"

    def __init__(self, model, target_class: int, size: float = 0.028, location: str | Sequence[int] = "random",
                 steps: int = 500, lr: float = 0.05, optimizer: str = "adam", train_batch: int = 16,
                 targeted: bool = True, seed: int = 0, batch_size: int | None = None):
        super().__init__(model, target_class, size=size, shape="square", scale=(1.0, 1.0), max_angle=0.0,
                         location=location, steps=steps, lr=lr, optimizer=optimizer, train_batch=train_batch,
                         targeted=targeted, seed=seed, batch_size=batch_size)
