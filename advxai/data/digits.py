"""``digits``: scikit-learn's 1,797 real handwritten digits, shaped like MNIST.

The originals are 8x8 images with 17 grey levels (UCI optdigits). Each is scaled bilinearly to
20x20 and centred in a 28x28 frame, as MNIST centres its digits in a 20x20 box with a 4-pixel
margin, so MNIST-sized models and budgets apply. The train/test split is fixed: stratified,
80 % / 20 %, seed 0 (1,438 / 359 images: 20 % of each class, rounded).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import InMemoryImageDataset

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def _split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test.extend(idx[: int(round(TEST_FRACTION * len(idx)))])
    test = np.sort(np.asarray(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return {"train": train, "test": test, "all": np.arange(len(labels))}


def load_digits_dataset(split: str = "test") -> InMemoryImageDataset:
    from sklearn.datasets import load_digits

    raw = load_digits()
    labels = raw.target.astype(np.int64)
    splits = _split_indices(labels)
    if split not in splits:
        raise ValueError(f"digits has splits {sorted(splits)}, not {split!r}")
    idx = splits[split]
    small = torch.tensor(raw.images[idx], dtype=torch.float32).unsqueeze(1) / 16.0
    inner = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False).clamp_(0, 1)
    images = F.pad(inner, (4, 4, 4, 4))
    return InMemoryImageDataset(
        name="digits",
        split=split,
        classes=[str(d) for d in range(10)],
        labels=torch.tensor(labels[idx]),
        images=(images * 255).round().to(torch.uint8),
        info={
            "source": "sklearn.datasets.load_digits (UCI optdigits, 8x8, 17 grey levels)",
            "preprocessing": "bilinear 8x8 -> 20x20, zero-padded to 28x28",
            "split": f"stratified {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%}, seed {SPLIT_SEED}",
        },
    )
