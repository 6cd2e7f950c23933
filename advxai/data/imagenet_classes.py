"""The 1,000 ImageNet-1k class names in the standard index order.

torchvision ships them with its weight descriptions (no download involved), so they are read from
there rather than kept in a second copy here.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_class_names() -> list[str]:
    from torchvision.models import ResNet50_Weights

    names = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(names) == 1000
    return names


def imagenet_class_index(name: str) -> int:
    """Index of a class by its name (exact, case-insensitive), e.g. ``'banana' -> 954``."""
    names = [n.lower() for n in imagenet_class_names()]
    key = name.strip().lower()
    if key not in names:
        import difflib

        hint = difflib.get_close_matches(key, names, n=3)
        raise ValueError(f"no ImageNet class named {name!r}" + (f"; close: {hint}" if hint else ""))
    return names.index(key)
