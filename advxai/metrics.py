"""Metrics shared by the chapters (attack success, map distances, IoU, NDCG, SSIM, ...).

Every function is batched: it takes tensors with a leading batch dimension and returns one value
per image, so chapters can aggregate them as they need.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["accuracy", "ssim", "noise_rate"]


def accuracy(logits_or_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy from logits [B, K] or predicted labels [B]."""
    pred = logits_or_pred.argmax(1) if logits_or_pred.dim() == 2 else logits_or_pred
    return (pred.cpu() == y.cpu()).float().mean().item()


# --------------------------------------------------------------------------- image similarity


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity per image [B] (Wang et al. 2004), averaged over channels and pixels.

    A Gaussian window (11 taps, sigma 1.5) over the valid region, population statistics: the same
    numbers as ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`` and ``pytorch_msssim.ssim``.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two [B, C, H, W] batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images of {tuple(x.shape[-2:])} are smaller than the {win_size}-pixel SSIM window")
    c = x.shape[1]
    g = _gaussian_window(win_size, sigma, x.device, x.dtype)
    wx = g.view(1, 1, 1, -1).expand(c, 1, 1, win_size)
    wy = g.view(1, 1, -1, 1).expand(c, 1, win_size, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def noise_rate(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM(x_adv, x)`` per image: the share of structure the perturbation changed."""
    return 1.0 - ssim(x_adv, x)


# --------------------------------------------------------------------------- ranking quality (NDCG)

COVERAGE_RULES = ("within", "reach")


def _check_coverage(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} (the share of probability the scored classes cover) must be in (0, 1], got {value!r}")
    return float(value)


def coverage_count(probs: torch.Tensor, coverage: float, rule: str = "within") -> torch.Tensor:
    """How many top classes are scored, per image [B] (the paper's K1 / K2).

    ``"within"`` (Eq. 3): the largest ``k`` whose top-``k`` probabilities sum to at most ``coverage``;
    when the top class alone exceeds it (the paper's ``K = 0``) the top class is still scored, so
    ``K >= 1`` and the ideal DCG is never zero. ``"reach"``: the smallest ``k`` whose top-``k``
    probabilities reach ``coverage`` (the class that crosses it is included).
    """
    if rule not in COVERAGE_RULES:
        raise ValueError(f"unknown coverage rule {rule!r}; valid: {', '.join(COVERAGE_RULES)}")
    _check_coverage("coverage", coverage)
    cum = probs.sort(1, descending=True).values.cumsum(1)
    tol = 1e-6  # cumulative sums of float32 probabilities; a coverage of 1 must count every class
    if rule == "within":
        k = (cum <= coverage + tol).sum(1)
    else:
        k = (cum < coverage - tol).sum(1) + 1
    return k.clamp(min=1, max=probs.shape[1])


def ndcg_relevance(benign_logits: torch.Tensor, coverage: float = 0.99, rule: str = "within") -> torch.Tensor:
    """Eq. 3: graded relevance per class [B, K] from the benign prediction.

    The top ``K1`` classes get ``l_j / sum_{i <= K1} l_i``, the others 0. Negative logits, which the
    formula does not foresee (they would flip signs or blow up the ratio), count as 0:
    ``l_j^+ / sum_{i <= K1} l_i^+``, which is the paper's value whenever the scored logits are
    positive. When no scored logit is positive, the scored classes' probabilities are used instead
    (``p_j / sum_{i <= K1} p_i``, the same ranking), so relevances always lie in [0, 1] and the top
    class's is positive.
    """
    logits = benign_logits.detach().float()
    probs = logits.softmax(1)
    k1 = coverage_count(probs, coverage, rule)
    order = logits.argsort(1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(logits.shape[1], device=logits.device).expand_as(order))
    scored = (rank < k1[:, None]).float()
    pos = logits.clamp(min=0) * scored
    total = pos.sum(1, keepdim=True)
    by_prob = probs * scored / (probs * scored).sum(1, keepdim=True)
    return torch.where(total > 0, pos / total.clamp(min=1e-30), by_prob)


def dcg(relevance_in_rank_order: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 5: ``sum_{j <= k} (2^R_j - 1) / log2(1 + j)`` per image (the log's base cancels in NDCG)."""
    r = relevance_in_rank_order[:, :k]
    j = torch.arange(1, r.shape[1] + 1, device=r.device, dtype=r.dtype)
    return ((2 ** r - 1) / torch.log2(1 + j)).sum(1)


def ndcg(benign_logits: torch.Tensor, logits: torch.Tensor, k: int | list[int] = 5, coverage_b: float = 0.99,
         coverage_a: float = 0.99, rule: str = "within") -> torch.Tensor:
    """NDCG@k of a prediction (adversarial or cleaned) against its benign counterpart (Eqs. 3-7).

    The benign logits grade the classes (:func:`ndcg_relevance`, coverage ``coverage_b``); the other
    prediction's ranking gets, at each of its top ``K2`` ranks (coverage ``coverage_a``), the benign
    relevance of the class it put there (Eq. 4), zero below; DCG@k of that ranking is divided by the
    benign ranking's own (ideal) DCG@k. Values lie in [0, 1]; 1 means the same top classes in the
    same order. Returns [B] for one ``k``, [B, len(k)] for a list.
    """
    if benign_logits.shape != logits.shape or benign_logits.dim() != 2:
        raise ValueError(f"ndcg needs two [B, K] logit tensors of one shape, got {tuple(benign_logits.shape)} "
                         f"and {tuple(logits.shape)}")
    _check_coverage("coverage_b", coverage_b)
    _check_coverage("coverage_a", coverage_a)
    ks = [k] if isinstance(k, int) else list(k)
    n_classes = logits.shape[1]
    if not ks or any((not isinstance(v, int)) or v < 1 or v > n_classes for v in ks):
        raise ValueError(f"k must be integers in [1, {n_classes}], got {k!r}")
    rel_b = ndcg_relevance(benign_logits, coverage_b, rule)
    ideal = rel_b.sort(1, descending=True).values
    other = logits.detach().float()
    k2 = coverage_count(other.softmax(1), coverage_a, rule)
    order = other.argsort(1, descending=True)
    rel_a = rel_b.gather(1, order)
    rel_a = rel_a * (torch.arange(n_classes, device=other.device)[None] < k2[:, None])
    out = torch.stack([dcg(rel_a, v) / dcg(ideal, v) for v in ks], 1)
    return out[:, 0] if isinstance(k, int) else out


__all__ += ["COVERAGE_RULES", "coverage_count", "ndcg_relevance", "dcg", "ndcg"]
