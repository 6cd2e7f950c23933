"""How fragile a classifier is: the success of plain targeted PGD on correctly classified images.

Every attack the book compares (ADV², AdvEdge, the adaptive attacks of the arena) is measured
against plain PGD. On ImageNet models targeted PGD at eps = 8/255 succeeds on every image, so a
stand-in model must do the same, or a comparison with it measures the model's robustness instead
of the attack. :func:`targeted_pgd_success` is that measurement, with the attack as the chapters
run it (L-inf, no random start, steps of ``alpha``, a random target class per image), except that an
image stops at the first step that reaches its target (PGD's ``early_stop``): the question is
whether the budget lets PGD get there, and the photographs' EfficientNet, 0.2 s a step, gets there
in 2-5 steps of the 160.

The attacks sit above the models in the package's layers, so they are imported when the function
runs, not when this module loads.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["FragilityResult", "targeted_pgd_success"]


@dataclass
class FragilityResult:
    """Targeted PGD on ``n`` correctly classified images: ``count`` of them reached their target."""

    model: str
    count: int
    n: int
    rate: float
    interval: tuple[float, float]  # Wilson 95 % interval of the rate
    eps: float
    alpha: float
    steps: int
    records: "object" = field(repr=False)  # pandas DataFrame, one row per attacked image

    def as_row(self) -> dict:
        return {"model": self.model, "attacked": self.n, "reached target": self.count, "success rate": self.rate,
                "95% interval": f"[{self.interval[0]:.3f}, {self.interval[1]:.3f}]", "eps": self.eps,
                "alpha": self.alpha, "steps": self.steps}


def targeted_pgd_success(model, dataset, n: int, *, eps: float = 8 / 255, alpha: float = 1 / 255, steps: int = 160,
                         seed: int = 0, batch_size: int = 64) -> FragilityResult:
    """Targeted L-inf PGD (no random start) on ``n`` correctly classified images of ``dataset``.

    ``model``: a :class:`~advxai.models.Classifier` (inputs in [0, 1]); ``dataset``: an image data
    set of the model's classes. The images are ``n`` correctly classified ones drawn by ``seed``
    (:func:`advxai.data.sample_correct`: stratified over classes; fewer, with a warning, when fewer
    exist); each gets a target class drawn uniformly among the others (also from
    ``seed``). An image stops moving at the first step at which the model predicts its target. Returns
    the count and rate of images whose prediction became the target, a 95 % interval, and one record
    per image (index, label, target, prediction, target probability, L-inf size of the perturbation,
    both where it stopped).
    """
    import pandas as pd

    from ..attacks import random_targets
    from ..engine import AttackFactory, map_attack  # the engine sits above models: imported on use
    from ..claims import wilson
    from ..data import sample_correct

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    k = model.info.num_classes
    if dataset.num_classes != k:
        raise ValueError(f"the data set has {dataset.num_classes} classes and the model {k}: "
                         f"measure a model on the data set it classifies")
    # the papers' draw of correctly classified images (stratified over classes); it warns when
    # fewer than n exist and raises when none do
    index = sample_correct(dataset, model, n, seed=seed, batch_size=batch_size)
    b = dataset.batch(index)
    target = random_targets(b.y, k, seed=seed)
    # through the engine: cached (the key holds the model's weights' digest, PGD's code digest and a
    # digest of the images), so a re-run of chapter 0 loads it, and sharded on a cluster
    factory = AttackFactory("pgd", {"targeted": True, "eps": eps, "alpha": alpha, "steps": steps,
                                    "random_start": False, "batch_size": batch_size, "early_stop": True})
    res = map_attack(factory, model, b.x, b.y, target, index=index,
                     key={"name": f"fragility-pgd-{model.info.name}", "dataset": getattr(dataset, "name", "custom"),
                          "split": getattr(dataset, "split", None), "target_seed": seed},
                     desc=f"targeted PGD on {model.info.name}")
    with torch.no_grad():
        probs = torch.cat([model(res.x_adv[s:s + batch_size]).softmax(1)
                           for s in range(0, len(index), batch_size)]).cpu()
    success = res.success.cpu()
    records = pd.DataFrame({
        "index": index.tolist(), "y": b.y.tolist(), "target": target.tolist(), "pred": res.pred.cpu().tolist(),
        "success": success.tolist(), "target_prob": probs.gather(1, target.view(-1, 1)).flatten().tolist(),
        "linf": res.linf.cpu().tolist(),
    })
    count = int(success.sum())
    return FragilityResult(model=model.info.name, count=count, n=len(index), rate=count / len(index),
                           interval=tuple(wilson(count, len(index))), eps=float(eps), alpha=float(alpha),
                           steps=steps, records=records)
