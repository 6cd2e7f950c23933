"""The papers' sampling: ``n`` images drawn at random, by seed, among those the model classifies correctly.

The draw is stratified over classes the way :meth:`ImageDataset.sample_indices` is: every class's
images in a seeded random order, classes visited round-robin in a seeded order, one image per class
per round. Only correctly classified images take a place, and images are classified lazily: a class's
next candidates are classified only when the round-robin needs its next correct image, in batches
across classes, so a large validation set is classified only as far as the draw needs (about
``n / accuracy`` images). The result depends on the seed and the model's predictions, not on the batch size.

``exclude`` keeps images out of the draw (the images a patch is trained on, say), and
:func:`sample_correct_pair` draws a disjoint evaluation and training set in one call.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..errors import EmptySelection

__all__ = ["CorrectSample", "FewerCorrect", "empty_classes", "require_class_images", "sample_correct",
           "sample_correct_pair", "select_correct", "stratified_order"]


class FewerCorrect(UserWarning):
    """Fewer correctly classified images exist than were asked for; the draw returns those it found."""


@dataclass
class CorrectSample:
    """A draw of correctly classified images and what it took to find them."""

    indices: torch.Tensor  # sorted dataset indices, all classified correctly
    requested: int
    looked_at: int  # images classified to find them
    correct_seen: int  # correct among those classified
    per_class: dict[int, int] = field(default_factory=dict)  # chosen images per class
    exhausted: bool = False  # every eligible image was classified

    @property
    def short(self) -> bool:
        return len(self.indices) < self.requested

    @property
    def accuracy(self) -> float:
        """Accuracy on the images classified (a seeded stratified sample, so an estimate of the split's)."""
        return self.correct_seen / self.looked_at if self.looked_at else float("nan")


def _class_queues(labels: torch.Tensor, num_classes: int, seed: int, stratified: bool) -> list[torch.Tensor]:
    """Each class's indices in seeded order, the classes in seeded visiting order (one queue unstratified).

    The generator is consumed exactly as :meth:`ImageDataset.sample_indices` consumes it, so the
    first ``n`` places of the round-robin are that method's draw.
    """
    g = torch.Generator().manual_seed(int(seed))
    if not stratified:
        return [torch.randperm(len(labels), generator=g)]
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    groups = [grp for grp in torch.split(order, counts) if len(grp)]
    queues = [grp[torch.randperm(len(grp), generator=g)] for grp in groups]
    visit = torch.randperm(len(queues), generator=g).tolist()
    return [queues[c] for c in visit]


def stratified_order(labels: torch.Tensor, num_classes: int, seed: int = 0) -> torch.Tensor:
    """Every index in the seeded round-robin order (``order[:n]``, sorted, is ``sample_indices(n)``)."""
    queues = _class_queues(torch.as_tensor(labels, dtype=torch.long), num_classes, seed, True)
    if not queues:
        return torch.zeros(0, dtype=torch.long)
    depth = max(len(q) for q in queues)
    grid = torch.full((len(queues), depth), -1, dtype=torch.long)
    for r, q in enumerate(queues):
        grid[r, :len(q)] = q
    flat = grid.t().reshape(-1)
    return flat[flat >= 0]


def _round_robin(found: list[list[int]], pending: list[bool], n: int) -> tuple[list[int], dict[int, int]]:
    """The first ``n`` places of the round-robin over the known correct images.

    Returns the chosen indices and, for every queue whose next correct image is not known yet but
    would take a place, how many more of its correct images the draw needs.
    """
    chosen, need, depth = [], {}, 0
    while len(chosen) + sum(need.values()) < n:
        progressed = False
        for q, known in enumerate(found):
            if len(chosen) + sum(need.values()) >= n:
                break
            if depth < len(known):
                chosen.append(known[depth])
                progressed = True
            elif pending[q]:
                need[q] = need.get(q, 0) + 1
                progressed = True
        if not progressed:
            break
        depth += 1
    return chosen, need


def _describe(model, dataset) -> tuple[str, str]:
    info = getattr(model, "info", None)
    return (getattr(info, "name", type(model).__name__),
            f"{getattr(dataset, 'name', 'data set')}/{getattr(dataset, 'split', '?')}")


def select_correct(dataset, model, n: int, seed: int = 0, *, exclude: Sequence[int] | torch.Tensor | None = None,
                   stratified: bool = True, batch_size: int = 64, classes: Sequence[int] | None = None) -> CorrectSample:
    """``n`` images of ``dataset`` that ``model`` classifies correctly, drawn by ``seed`` (see module doc).

    ``exclude``: indices never drawn. ``classes``: draw only from these classes (each must have
    images). Raises :class:`~advxai.errors.EmptySelection` when no eligible image is classified
    correctly; returns fewer than ``n`` (``short``) when fewer exist.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    model_name, data_name = _describe(model, dataset)
    info = getattr(model, "info", None)
    if info is not None:
        c_model, c_data = info.input_size[0], dataset.image_shape[0]
        if c_model != c_data:
            raise ValueError(f"{model_name} takes {c_model}-channel images, {data_name} has {c_data} channels")
        if info.num_classes < dataset.num_classes:
            raise ValueError(f"{model_name} predicts {info.num_classes} classes, {data_name} has {dataset.num_classes}: "
                             f"its labels are not the model's")
    labels = torch.as_tensor(dataset.labels, dtype=torch.long).cpu()
    eligible = torch.ones(len(labels), dtype=torch.bool)
    if exclude is not None:
        ex = torch.as_tensor(exclude, dtype=torch.long).reshape(-1)
        if len(ex) and (int(ex.min()) < 0 or int(ex.max()) >= len(labels)):
            raise IndexError(f"exclude holds indices outside {data_name} (size {len(labels)})")
        eligible[ex] = False
    if classes is not None:
        wanted = require_class_images(dataset, classes)
        eligible &= torch.isin(labels, wanted)
    queues = [q[eligible[q]] for q in _class_queues(labels, dataset.num_classes, seed, stratified)]
    queues = [q for q in queues if len(q)]
    cursor = [0] * len(queues)
    found: list[list[int]] = [[] for _ in queues]
    looked, correct_seen = 0, 0
    while True:
        pending = [cursor[q] < len(queues[q]) for q in range(len(queues))]
        chosen, need = _round_robin(found, pending, n)
        if not need:
            break
        # A queue that needs k more correct images has its next k classified (each gives at most one);
        # they are classified in cursor order, so every queue's found list keeps its seeded order.
        todo, owner = [], []
        for q, k in need.items():
            take = queues[q][cursor[q]:cursor[q] + k]
            cursor[q] += len(take)
            todo.append(take)
            owner += [q] * len(take)
        todo = torch.cat(todo)
        for start in range(0, len(todo), batch_size):
            idx = todo[start:start + batch_size]
            x = dataset.load_images(idx)  # images only: no annotation work
            pred, _ = model.predict(x, batch_size=batch_size)
            ok = (pred.cpu() == labels[idx]).tolist()
            looked += len(idx)
            correct_seen += sum(ok)
            for j, good in enumerate(ok):
                if good:
                    found[owner[start + j]].append(int(idx[j]))
    exhausted = all(cursor[q] >= len(queues[q]) for q in range(len(queues)))
    if not chosen:
        acc = f"{correct_seen / looked:.1%}" if looked else "n/a"
        why = (f"{model_name} classifies none of the {looked} {data_name} images it was shown correctly "
               f"(accuracy {acc}; {int(eligible.sum())} eligible of {len(labels)})")
        if not looked:
            why = f"{data_name} has no eligible image to classify ({len(labels)} images, all excluded or filtered)"
        raise EmptySelection(f"no correctly classified image to draw: {why}", reason="no correctly classified image")
    per_class: dict[int, int] = {}
    for i in chosen:
        per_class[int(labels[i])] = per_class.get(int(labels[i]), 0) + 1
    return CorrectSample(indices=torch.tensor(sorted(chosen), dtype=torch.long), requested=n, looked_at=looked,
                         correct_seen=correct_seen, per_class=per_class, exhausted=exhausted)


def sample_correct(dataset, model, n: int, seed: int = 0, *, exclude=None, stratified: bool = True,
                   batch_size: int = 64, classes: Sequence[int] | None = None) -> torch.Tensor:
    """Sorted indices of ``n`` correctly classified images (see :func:`select_correct`).

    When fewer exist it returns them all and warns (:class:`FewerCorrect`) with the counts; when
    none exist it raises :class:`~advxai.errors.EmptySelection`.
    """
    sample = select_correct(dataset, model, n, seed, exclude=exclude, stratified=stratified,
                            batch_size=batch_size, classes=classes)
    if sample.short:
        model_name, data_name = _describe(model, dataset)
        warnings.warn(f"{model_name} classifies only {len(sample.indices)} eligible {data_name} images correctly "
                      f"({sample.correct_seen} of {sample.looked_at}, accuracy {sample.accuracy:.1%}); "
                      f"asked for {n}, drawing those", FewerCorrect, stacklevel=2)
    return sample.indices


def sample_correct_pair(dataset, model, n_eval: int, n_train: int, seed: int = 0, *, stratified: bool = True,
                        batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eval, train)``: disjoint draws of correctly classified images.

    The evaluation set is drawn first, exactly as ``sample_correct(dataset, model, n_eval, seed)``
    would draw it, so the evaluated images do not depend on ``n_train``; the training set (for a
    universal patch, say) is then drawn from the rest with seed ``seed + 1``.
    """
    evaluated = sample_correct(dataset, model, n_eval, seed, stratified=stratified, batch_size=batch_size)
    train = sample_correct(dataset, model, n_train, seed + 1, exclude=evaluated, stratified=stratified,
                           batch_size=batch_size)
    return evaluated, train


def empty_classes(dataset, classes: Sequence[int] | None = None) -> list[int]:
    """The classes (all, or those given) with no image in ``dataset``."""
    counts = torch.bincount(torch.as_tensor(dataset.labels, dtype=torch.long), minlength=dataset.num_classes)
    wanted = range(dataset.num_classes) if classes is None else classes
    return [int(c) for c in wanted if counts[int(c)] == 0]


def require_class_images(dataset, classes: Sequence[int]) -> torch.Tensor:
    """``classes`` as a tensor, or :class:`~advxai.errors.EmptySelection` naming a class with no image."""
    wanted = torch.as_tensor(list(classes), dtype=torch.long).reshape(-1)
    if len(wanted) and (int(wanted.min()) < 0 or int(wanted.max()) >= dataset.num_classes):
        raise ValueError(f"classes must be in 0..{dataset.num_classes - 1} for {dataset.name}, got {wanted.tolist()}")
    empty = empty_classes(dataset, wanted.tolist())
    if empty:
        names = ", ".join(f"{c} ({dataset.classes[c]})" for c in empty[:5])
        raise EmptySelection(f"{dataset.name}/{dataset.split} has no image of class {names}"
                             f"{' and more' if len(empty) > 5 else ''}: a stratified draw cannot include it "
                             f"({len(dataset)} images in {dataset.num_classes - len(empty_classes(dataset))} "
                             f"non-empty classes)", reason="a class with no images")
    return wanted
