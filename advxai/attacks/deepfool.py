"""DeepFool (Moosavi-Dezfooli et al., 2016), L2, untargeted.

At each iteration the classifier is linearised around the current image; for each of the
``candidates`` classes ranked highest on the benign image, the distance to that class's linearised
boundary is ``|z_k - z_0| / ||grad(z_k - z_0)||_2`` (class 0 being the benign prediction). The image
moves onto the nearest boundary (plus 1e-4 for numerical safety); the accumulated step is scaled by
``1 + overshoot`` from the benign image and clipped to [0, 1]. An image stops moving as soon as its
prediction differs from its label; the loop ends when every image has, or after ``steps``.
"""
from __future__ import annotations

import torch

from .base import Attack

__all__ = ["DeepFool"]


class DeepFool(Attack):
    name = "deepfool"
    modes = ("untargeted",)

    def __init__(self, model, steps: int = 50, overshoot: float = 0.02, candidates: int = 10, seed: int = 0,
                 batch_size: int | None = None, targeted: bool = False):
        super().__init__(model, targeted=targeted, seed=seed, batch_size=batch_size)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not (isinstance(overshoot, (int, float)) and overshoot >= 0):
            raise ValueError(f"overshoot must be >= 0, got {overshoot!r}")
        if not isinstance(candidates, int) or candidates < 2:
            raise ValueError(f"candidates must be an integer >= 2, got {candidates!r}")
        self.steps, self.overshoot, self.candidates = steps, float(overshoot), candidates

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        n = len(x)
        with torch.no_grad():
            logits = self.model(x)
        k = min(self.candidates, logits.shape[1])
        classes = logits.argsort(dim=1, descending=True)[:, :k]  # class 0: the benign prediction
        x_adv = x.clone()
        total = torch.zeros_like(x)
        iterations = torch.zeros(n, dtype=torch.long, device=x.device)
        # Only the images still classified as their label are computed on (the model is in eval mode, so
        # an image's step does not depend on the others in the batch): a finished image costs nothing more.
        live = torch.arange(n, device=x.device)
        for _ in range(self.steps):
            xg = x_adv[live].detach().requires_grad_(True)
            logits = self.model(xg)
            going = logits.argmax(1) == y[live]
            if not going.any():
                break
            rows = torch.arange(len(live), device=x.device)
            cls = classes[live]
            z0 = logits[rows, cls[:, 0]]
            diffs, grads = [], []
            for j in range(1, k):
                diff = logits[rows, cls[:, j]] - z0
                g, = torch.autograd.grad(diff.sum(), xg, retain_graph=j < k - 1)
                diffs.append(diff.detach())
                grads.append(g)
            diffs = torch.stack(diffs, 1)  # [B, k-1]
            grads = torch.stack(grads, 1)  # [B, k-1, C, H, W]
            gnorm = grads.flatten(2).norm(dim=2)
            distance = diffs.abs() / (gnorm + 1e-8)
            best = distance.argmin(1)
            dist = distance[rows, best] + 1e-4
            g = grads[rows, best]
            step = (dist / (g.flatten(1).norm(dim=1) + 1e-8)).view(-1, 1, 1, 1) * g
            with torch.no_grad():
                live = live[going]
                total[live] += step[going]
                x_adv[live] = (x[live] + (1 + self.overshoot) * total[live]).clamp(0, 1)
                iterations[live] += 1
        self._extras = {"iterations": iterations}
        return x_adv.detach()
