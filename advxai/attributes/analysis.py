"""Which attributes explain a (mis)classification, and how far predicted attributes move (Gulshad et al. §4.2-4.3).

**Selection for grounding** (their Eqs. 16-17). For a clean image classified correctly, the most
discriminative attributes are those whose predicted value Z exceeds the value the *other* class
(the one the adversarial image goes to) has most:  q = argmax_i (Z^i_{n,y_n} - φ(y)^i);  for its
adversarial image, those that exceed the *correct* class's value most:  p = argmax_i (Ẑ^i_{n,y} -
φ(y_n)^i).  :func:`select_attributes` returns the top ``k`` indices of ``z - phi_other`` per image
(the paper uses 50 of CUB's 312).

**Distances** (their Eqs. 8-15, Fig. 5 a-d), computed on the attributes whose predicted value
changes most between clean and adversarial images (the top 20 %, :func:`changed_attribute_mask`):

========  ===================================================  =====================================
panel      d1                                                   d2
========  ===================================================  =====================================
(a)        ||Z_{n,y_n} - Ẑ_{n,y}||  clean vs adversarial        ||φ(y_n) - φ(y)||  the two classes
(b)        ||Ẑ^AT_{n,y_n} - Ẑ_{n,y}||  adv. with vs without AT  ||φ(y_n) - φ(y)||
(c)        ||Ẑ_{n,y} - φ(y)||  adversarial vs its wrong class   ||Ẑ_{n,y} - φ(y_n)||  vs the true class
(d)        ||Ẑ^AT_{n,y} - φ(y)||  as (c), with AT               ||Ẑ^AT_{n,y} - φ(y_n)||
========  ===================================================  =====================================

Here y_n is the true class and y the (wrong) class the adversarial image is assigned to; Eq. 11's
"Ẑ_{n,n}" in the extracted text is Ẑ_{n,y} (the sentence around it says so). Each panel keeps
only the images its subscripts name: (a) clean correct and adversarial wrong; (b) adversarial
correct with AT and wrong without; (c) adversarial wrong; (d) adversarial wrong with AT.
"""
from __future__ import annotations

import torch

__all__ = ["select_attributes", "changed_attribute_mask", "masked_distance", "attribute_distances", "PANELS"]

PANELS = {
    "a": "clean vs adversarial (no AT): d1 = |Z - Ẑ|, d2 = |φ(y_n) - φ(y)|",
    "b": "adversarial with vs without AT: d1 = |Ẑ_AT - Ẑ|, d2 = |φ(y_n) - φ(y)|",
    "c": "adversarial (no AT): d1 = |Ẑ - φ(y)|, d2 = |Ẑ - φ(y_n)|",
    "d": "adversarial with AT: d1 = |Ẑ_AT - φ(y)|, d2 = |Ẑ_AT - φ(y_n)|",
}


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"{names} must be two [B, E] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def select_attributes(z: torch.Tensor, phi_other: torch.Tensor, k: int) -> torch.Tensor:
    """Eqs. 16-17: per image, the ``k`` attribute indices with the largest ``z - phi_other``, best first [B, k].

    ``z``: predicted attributes [B, E]; ``phi_other``: the class attribute vector each is compared with
    [B, E] (the adversarial class's for a clean image, the true class's for an adversarial one).
    """
    _check_pair(z, phi_other, "predicted and class attributes")
    if not isinstance(k, int) or not 1 <= k <= z.shape[1]:
        raise ValueError(f"k must be an integer in [1, {z.shape[1]}], got {k!r}")
    return (z - phi_other.to(z.device)).topk(k, dim=1).indices


def changed_attribute_mask(z_clean: torch.Tensor, z_adv: torch.Tensor, fraction: float = 0.2,
                           scope: str = "image") -> torch.Tensor:
    """Boolean [B, E]: the ``fraction`` of attributes whose predicted value changes most, clean vs adversarial.

    ``scope="image"`` picks them per image; ``"global"`` picks one set for all images (by the mean
    absolute change), a reading of the paper's "top 20 % of the attributes" that it does not rule out.
    """
    _check_pair(z_clean, z_adv, "clean and adversarial attributes")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if scope not in ("image", "global"):
        raise ValueError(f"scope must be 'image' or 'global', got {scope!r}")
    change = (z_clean - z_adv).abs()
    e = change.shape[1]
    k = max(1, int(round(fraction * e)))
    mask = torch.zeros_like(change, dtype=torch.bool)
    if scope == "image":
        mask.scatter_(1, change.topk(k, dim=1).indices, True)
    elif len(change):
        mask[:, change.mean(0).topk(k).indices] = True
    return mask


def masked_distance(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distance per image [B] over the attributes where ``mask`` is true (all when None)."""
    _check_pair(a, b, "the two attribute vectors")
    d = a - b.to(a.device)
    if mask is not None:
        if mask.shape != a.shape:
            raise ValueError(f"mask must be {tuple(a.shape)}, got {tuple(mask.shape)}")
        d = d * mask.to(a.device, a.dtype)
    return d.norm(dim=1)


def attribute_distances(panel: str, phi: torch.Tensor, y: torch.Tensor, *, z_clean: torch.Tensor | None = None,
                        z_adv: torch.Tensor, pred_adv: torch.Tensor, pred_clean: torch.Tensor | None = None,
                        z_adv_at: torch.Tensor | None = None, pred_adv_at: torch.Tensor | None = None,
                        z_clean_at: torch.Tensor | None = None, fraction: float = 0.2, scope: str = "image") -> dict[str, torch.Tensor]:
    """d1 and d2 of one panel of Fig. 5 for the images that panel selects.

    ``phi`` [K, E] normalised class attributes; ``y`` true labels; ``z_*`` predicted attributes of the
    clean / adversarial / adversarial-with-AT images and ``pred_*`` the SJE classes of the same images.
    The attribute mask (the ``fraction`` that change most) compares clean with adversarial images for
    (a) and (c), adversarial images without and with AT for (b), and clean with adversarial images of
    the adversarially trained model (``z_clean_at``) for (d). Returns ``d1``, ``d2`` and
    ``index`` (positions of the kept images), each [M].
    """
    if panel not in PANELS:
        raise ValueError(f"panel must be one of {sorted(PANELS)}, got {panel!r}")
    y = y.to(z_adv.device)
    wrong = pred_adv.to(y.device) != y  # the adversarial image's class y differs from y_n
    if panel in ("a", "c"):
        if z_clean is None or pred_clean is None:
            raise ValueError(f"panel {panel} needs the clean images' attributes and classes")
        keep = (pred_clean.to(y.device) == y) & wrong if panel == "a" else wrong
        mask = changed_attribute_mask(z_clean, z_adv, fraction, scope)
    else:
        if z_adv_at is None or pred_adv_at is None:
            raise ValueError(f"panel {panel} needs the adversarially trained model's attributes and classes")
        pred_at = pred_adv_at.to(y.device)
        if panel == "b":
            keep = (pred_at == y) & wrong
            mask = changed_attribute_mask(z_adv_at, z_adv, fraction, scope)
        else:
            if z_clean_at is None:
                raise ValueError("panel d needs the adversarially trained model's clean attributes (z_clean_at)")
            keep = pred_at != y
            mask = changed_attribute_mask(z_clean_at, z_adv_at, fraction, scope)
    phi = phi.to(z_adv.device)
    # the wrong class y of each image: the adversarial prediction (with AT in panel d)
    y_wrong = pred_adv_at.to(y.device) if panel == "d" else pred_adv.to(y.device)
    if panel == "a":
        d1 = masked_distance(z_clean, z_adv, mask)
        d2 = masked_distance(phi[y], phi[y_wrong], mask)
    elif panel == "b":
        d1 = masked_distance(z_adv_at, z_adv, mask)
        d2 = masked_distance(phi[y], phi[y_wrong], mask)
    else:
        z = z_adv if panel == "c" else z_adv_at
        d1 = masked_distance(z, phi[y_wrong], mask)
        d2 = masked_distance(z, phi[y], mask)
    index = keep.nonzero().flatten()
    return {"d1": d1[index], "d2": d2[index], "index": index}
