"""The Boundary attack (Brendel, Rauber & Bethge, 2018): decision-based, untargeted, L2.

It needs only the model's decisions (labels), never its gradients or scores:

1. start from an adversarial point: uniform noise, redrawn until the model mislabels it, then
   moved toward the image by a binary search along the straight line, so it sits on the boundary;
2. repeat: from the current adversarial point ``x'`` at distance ``d = ||x - x'||``,
   - an orthogonal step: a Gaussian direction made orthogonal to ``x - x'``, scaled to
     ``delta * d``, then projected back onto the sphere of radius ``d`` around ``x``;
   - a step toward the image, shrinking the distance by the fraction ``epsilon``;
   the candidate (clipped to [0, 1]) replaces ``x'`` when it is still adversarial and closer;
3. adapt the two step sizes per image from the success rates over the last ``window`` trials:
   ``delta`` grows by 1.5 when more than half of the orthogonal steps stayed adversarial and
   shrinks when fewer than a fifth did; ``epsilon`` likewise from the full candidates.

Every image in the batch runs in lock step: one model call per step for the orthogonal
candidates and one for the full candidates. ``extras["l2_start"]`` holds each image's distance
after the initial binary search, ``extras["queries"]`` the number of model calls per image.
"""
from __future__ import annotations

import torch

from .base import Attack

__all__ = ["Boundary"]


class Boundary(Attack):
    name = "boundary"
    modes = ("untargeted",)

    def __init__(self, model, steps: int = 1000, spherical_step: float = 1e-2, source_step: float = 1e-2,
                 init_attempts: int = 100, search_steps: int = 25, window: int = 30, adapt_every: int = 10,
                 seed: int = 0, batch_size: int | None = None, targeted: bool = False):
        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        for name, value in (("steps", steps), ("init_attempts", init_attempts), ("search_steps", search_steps),
                            ("window", window), ("adapt_every", adapt_every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, value in (("spherical_step", spherical_step), ("source_step", source_step)):
            if not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        self.steps, self.spherical_step, self.source_step = steps, float(spherical_step), float(source_step)
        self.init_attempts, self.search_steps = init_attempts, search_steps
        self.window, self.adapt_every = window, adapt_every

    @torch.no_grad()
    def _is_adv(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model(x).argmax(1) != y

    @torch.no_grad()
    def _start(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Adversarial uniform noise per image, then a binary search toward ``x`` along the line."""
        n = len(x)
        start = torch.rand(x.shape, generator=g).to(x)
        found = self._is_adv(start, y)
        for _ in range(self.init_attempts - 1):
            if found.all():
                break
            fresh = torch.rand(x.shape, generator=g).to(x)
            start = torch.where(found.view(-1, 1, 1, 1), start, fresh)
            found = self._is_adv(start, y)
        lo = torch.zeros(n, device=x.device)  # blend weight toward the noise: lo not adversarial, hi adversarial
        hi = torch.ones(n, device=x.device)
        for _ in range(self.search_steps):
            mid = (lo + hi) / 2
            cand = (1 - mid.view(-1, 1, 1, 1)) * x + mid.view(-1, 1, 1, 1) * start
            adv = self._is_adv(cand, y)
            hi = torch.where(adv, mid, hi)
            lo = torch.where(adv, lo, mid)
        return (1 - hi.view(-1, 1, 1, 1)) * x + hi.view(-1, 1, 1, 1) * start, found

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        g = self.generator(x.device)
        n = len(x)
        view = (-1,) + (1,) * (x.dim() - 1)
        adv, found = self._start(x, y, g)
        l2_start = torch.where(found, (adv - x).flatten(1).norm(dim=1), torch.zeros(n, device=x.device))
        delta = torch.full((n,), self.spherical_step, device=x.device)
        eps = torch.full((n,), self.source_step, device=x.device)
        sph_hist = torch.zeros(n, self.window, device=x.device)
        src_hist = torch.zeros(n, self.window, device=x.device)
        queries = torch.full((n,), self.init_attempts + self.search_steps, device=x.device)
        for step in range(self.steps):
            with torch.no_grad():
                direction = x - adv
                dist = direction.flatten(1).norm(dim=1).clamp(min=1e-12)
                unit = direction / dist.view(view)
                # orthogonal step on the sphere of radius dist around x
                noise = torch.randn(x.shape, generator=g).to(x)
                noise = noise - (noise * unit).flatten(1).sum(1).view(view) * unit
                noise = noise / noise.flatten(1).norm(dim=1).clamp(min=1e-12).view(view) * (delta * dist).view(view)
                sph = x - (direction - noise) / torch.sqrt(1 + delta ** 2).view(view)
                sph = sph.clamp(0, 1)
                # step toward the image: the new distance is (1 - eps) times the old one
                new_dir = x - sph
                new_dist = new_dir.flatten(1).norm(dim=1).clamp(min=1e-12)
                move = ((new_dist - (1 - eps) * dist).clamp(min=0) / new_dist).view(view)
                cand = (sph + move * new_dir).clamp(0, 1)
                sph_ok = self._is_adv(sph, y)
                cand_ok = self._is_adv(cand, y)
                cand_dist = (x - cand).flatten(1).norm(dim=1)
                accept = cand_ok & (cand_dist < dist) & found
                adv = torch.where(accept.view(view), cand, adv)
                queries += 2 * found
                slot = step % self.window
                sph_hist[:, slot] = sph_ok.float()
                src_hist[:, slot] = cand_ok.float()
                if (step + 1) % self.adapt_every == 0 and step + 1 >= self.window:
                    p_sph, p_src = sph_hist.mean(1), src_hist.mean(1)
                    delta = torch.where(p_sph > 0.5, delta * 1.5, torch.where(p_sph < 0.2, delta / 1.5, delta))
                    eps = torch.where(p_src > 0.5, eps * 1.5, torch.where(p_src < 0.2, eps / 1.5, eps))
                    eps = eps.clamp(max=0.5)
                    delta = delta.clamp(max=1.0)
        adv = torch.where(found.view(view), adv, x)  # no adversarial start: the image comes back unchanged
        self._extras = {"l2_start": l2_start, "queries": queries}
        return adv
