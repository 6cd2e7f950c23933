"""The arena's claims, measured on the matrix's records through :mod:`advxai.claims`.

The arena asks what no single paper measures, so each claim is one of the papers' premises or
findings carried into the common setting (the table :data:`PAPER_CLAIMS`, as data):

* ``aware_evades`` (one claim per attribution-based detector): an interpretation-aware attack (ADV²,
  AdvEdge) is flagged less often than PGD by a detector that reads a map -- the premise of the ADV²
  and AdvEdge papers. Quantity: the detection rate pooled over the interpretation-aware rows minus
  PGD's; the paper's side: ``< 0``; *not measured* when the detector flags PGD on at most
  :data:`NOTHING_LEFT` of its images (as for the adaptive claims: nothing left to evade).
* ``hb_adv2``: heat and blur gives back the true label of ADV² images (Brama & Grinshpoun's defense,
  asked of ADV², this chapter's question). Quantity: heat and blur's robust accuracy on the ADV²
  rows minus the undefended model's on the same images; ``> 0``.
* ``aid_flags``: AID's distilled decoder draws different maps on ADV² (RTS) inputs (Zhang et al.,
  Fig. 16), so the RTS / RTS^A distance flags them. Quantity: AID's detection rate on ADV² (RTS)
  minus its false-positive rate on the attacked images' clean versions; ``> 0``.
* ``adaptive`` (one claim per adaptive row): an attacker who knows the member evades it better than
  the attack it extends (Zhang et al. for ADV² against feature squeezing; this chapter's question for
  heat and blur, AID and adversarial training). Quantity: the member's number (detection rate or
  robust accuracy) on the adaptive row minus that on the base row; ``< 0``. When the base row's
  number is at most :data:`NOTHING_LEFT`, the claim is *not measured*: the plain attack already gets
  through and there is nothing left to evade.

Every claim is an inequality, because the papers give no number for these settings; the verdict rule
(:func:`advxai.claims.decide`) then asks the whole 95 % interval to lie on the paper's side, and an
interval across 0 is *inconclusive*. No tolerance is involved; ``NOTHING_LEFT`` (0.10, one tenth of
the rate scale) was fixed with the rule, before any run.

**Intervals.** Every quantity is a difference of rates pooled over cells of the matrix, and one image
appears in many cells (every row attacks the same images; the benign row holds their clean
versions), so neither Wilson's nor Newcombe's interval applies. The interval is a percentile
bootstrap over the attacked images (:func:`cluster_interval`): an image is drawn with all its cells,
and the pooled rates are recomputed on each resample; :func:`advxai.claims.estimate` then decides the
verdict. A detection rate rests on the attack's successful images only, so a resample can draw none
of them; unlike :func:`advxai.claims.bootstrap_interval`, which refuses an undefined resample, the
interval is then taken over the resamples where both rates exist, and the claim is *not measured*
when more than :data:`MAX_UNDEFINED` of them do not (the share left out is in the note).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .matrix import matrix

__all__ = ["PAPER_CLAIMS", "PaperClaim", "NOTHING_LEFT", "MAX_UNDEFINED", "weighted", "pooled", "cluster_interval", "cross_claims"]

NOTHING_LEFT = 0.10  # a base attack flagged (or resisted) on at most this share leaves an adaptive one nothing to show
RESAMPLES = 10_000
MAX_UNDEFINED = 0.10  # more resamples than this without a rate: too few images for an interval


@dataclass(frozen=True)
class PaperClaim:
    """One claim of the table: its id, its text (``{member}``, ``{row}``, ``{base}`` filled in), what
    the paper says (``paper``: an inequality on the quantity), the source, and the section of the
    chapter that shows it."""

    id: str
    text: str
    paper: str
    source: str
    section: str


PAPER_CLAIMS: dict[str, PaperClaim] = {c.id: c for c in (
    PaperClaim("aware_evades", "{member} flags interpretation-aware attacks (ADV², AdvEdge) less often than PGD",
               "< 0", "premise of ADV² (Zhang et al.) and AdvEdge (Abdukhamidov et al.): a benign-looking map "
               "escapes detectors that read maps", "aware"),
    PaperClaim("hb_adv2", "Heat and blur gives back the true label of ADV² images", "> 0",
               "Brama & Grinshpoun's defense restores labels of C&W, L-BFGS and Boundary images; asked of ADV²",
               "heat_and_blur"),
    PaperClaim("aid_flags", "AID: RTS^A draws different maps on ADV² (RTS) inputs, so the RTS/RTS^A distance flags "
               "them", "> 0", "Zhang et al., Fig. 16 (maps of RTS^A on ADV² inputs fairly distinguishable)", "aid"),
    PaperClaim("adaptive", "An attacker who knows {member} evades it: {row} against {base}", "< 0",
               "Zhang et al. (adaptive ADV² evades feature squeezing); asked of every member with an adaptive row",
               "adaptive"),
)}


def weighted(records, attacks: Sequence[str], member: str) -> float:
    """The mean of ``member``'s cells over ``attacks``, weighted by their numbers of images (NaN if none)."""
    cells = records[records.attack.isin(list(attacks)) & (records.member == member)]
    w, v = cells["n"].to_numpy(float), cells["value"].to_numpy(float)
    ok = (w > 0) & (v == v)
    return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")


def pooled(records, attacks: Sequence[str], member: str, universe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image of ``universe``: how many of its cells (rows ``attacks`` x ``member``) count, and how
    many of those hit (flagged or labelled correctly). Their sums give :func:`weighted`'s pooled rate."""
    pos = {int(i): k for k, i in enumerate(universe)}
    hits, count = np.zeros(len(universe)), np.zeros(len(universe))
    cells = records[records.attack.isin(list(attacks)) & (records.member == member)]
    for _, cell in cells.iterrows():
        where = np.array([pos[int(i)] for i in cell["images"]], dtype=np.int64)
        np.add.at(hits, where, np.asarray(cell["hits"], dtype=float))
        np.add.at(count, where, 1.0)
    return hits, count


def _rate(hits: np.ndarray, count: np.ndarray) -> np.ndarray:
    den = count.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, hits.sum(axis=-1) / np.where(den > 0, den, 1), np.nan)


def cluster_interval(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], seed: int = 0,
                     n_resamples: int = RESAMPLES, confidence: float = 0.95,
                     max_undefined: float = MAX_UNDEFINED) -> tuple[float, tuple[float, float], float] | None:
    """``(rate(a) - rate(b), 95 % interval, share of resamples left out)``: each of ``a``, ``b`` is
    ``(hits, count)`` per image of one universe (:func:`pooled`); the percentile bootstrap resamples
    images, each with all its cells. A resample that draws none of the images a rate rests on (the
    attack's successful ones) leaves that rate undefined; such resamples are left out, i.e. the
    interval is conditional on both rates existing, and the share left out is returned for the note.
    None when a rate has no image, or when more than ``max_undefined`` of the resamples are undefined
    (too few images for an interval)."""
    (ha, ca), (hb, cb) = (tuple(np.asarray(v, dtype=float) for v in pair) for pair in (a, b))
    point = float(_rate(ha, ca) - _rate(hb, cb))
    if point != point or len(ha) < 2:
        return None
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, n_resamples, 1000):
        idx = rng.integers(0, len(ha), size=(min(1000, n_resamples - start), len(ha)))
        stats.append(_rate(ha[idx], ca[idx]) - _rate(hb[idx], cb[idx]))
    values = np.concatenate(stats)
    defined = values[~np.isnan(values)]
    undefined = 1 - len(defined) / len(values)
    if undefined > max_undefined:
        return None
    alpha = 1 - confidence
    lo, hi = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return point, (float(lo), float(hi)), float(undefined)


def cross_claims(records, *, universe, setting, aware: Sequence[str], attribution_detectors: Sequence[str],
                 adv2: Sequence[str], adaptive: Sequence[tuple[str, str, str]] = (), pgd: str = "PGD",
                 heat_and_blur: str = "heat and blur", undefended: str = "undefended", aid: str = "AID",
                 adv2_rts: str = "ADV² (RTS)", sections: dict[str, str] | None = None, seed: int = 0,
                 n_resamples: int = RESAMPLES):
    """The arena's claims (:class:`advxai.claims.Claim`, see the module docstring), measured on
    ``records`` (:meth:`Arena.evaluate`, with their per-image ``hits`` and ``images``) over the attacked
    images ``universe``. ``setting``: a :class:`advxai.claims.Setting`. A claim whose rows or columns
    did not run is *not measured*, with the reason. ``sections`` maps the table's section keys to anchors."""
    from .. import claims as C

    sections = sections or {}
    universe = np.asarray(universe, dtype=np.int64)
    table = matrix(records)
    rows, cols = set(table.index), set(table.columns)
    out = []

    def claim(key: str, quantity, text: str, note: str, what: str):
        spec = PAPER_CLAIMS[key]
        kw = dict(paper=spec.paper, section=sections.get(spec.section, ""), note=note)
        if quantity is None:
            return C.not_measured(text, setting, f"{what}, or too few images for an interval (more than "
                                  f"{MAX_UNDEFINED:.0%} of the resamples draw none of a rate's images)", **kw)
        point, (lo, hi), undefined = quantity
        if undefined > 0:
            kw["note"] = f"{note}; {undefined:.1%} of the resamples drew no image of a rate and are left out"
        if not lo <= point <= hi:  # a percentile interval can miss a skewed point estimate: widen it to hold it
            lo, hi = min(lo, point), max(hi, point)
            kw["note"] += "; interval widened to hold the estimate"
        return C.estimate(text, setting, point, (lo, hi), len(universe), estimator=(
            f"difference of pooled rates, bootstrap over the {len(universe)} attacked images (an image with all "
            f"its cells), {n_resamples} resamples, seed {seed}"), **kw)

    def diff(rows_a, member_a, rows_b, member_b):
        return cluster_interval(pooled(records, rows_a, member_a, universe),
                                pooled(records, rows_b, member_b, universe), seed=seed, n_resamples=n_resamples)

    aware = [a for a in aware if a in rows]
    for d in attribution_detectors:
        text = PAPER_CLAIMS["aware_evades"].text.format(member=d)
        if d not in cols or not aware or pgd not in rows:
            out.append(C.not_measured(text, setting, "its column, PGD or every interpretation-aware row did not run",
                                      paper="< 0", section=sections.get("aware", "")))
            continue
        ref = float(table.loc[pgd, d])
        if ref == ref and ref <= NOTHING_LEFT:
            out.append(C.not_measured(text, setting, f"{d} flags PGD on {ref:.2f} <= {NOTHING_LEFT} of its images: "
                                      "nothing left to evade", paper="< 0", section=sections.get("aware", "")))
            continue
        note = (f"detection rate {weighted(records, aware, d):.2f} (pooled over {', '.join(aware)}) vs PGD "
                f"{ref:.2f}")
        out.append(claim("aware_evades", diff(aware, d, [pgd], d), text, note, "no successful image in a row"))
    adv2 = [a for a in adv2 if a in rows]
    text = PAPER_CLAIMS["hb_adv2"].text
    if adv2 and heat_and_blur in cols and undefended in cols:
        note = (f"robust accuracy {weighted(records, adv2, heat_and_blur):.2f} vs undefended "
                f"{weighted(records, adv2, undefended):.2f}; rows: {', '.join(adv2)}")
        out.append(claim("hb_adv2", diff(adv2, heat_and_blur, adv2, undefended), text, note, "no ADV² image"))
    else:
        out.append(C.not_measured(text, setting, "heat and blur, the undefended model or every ADV² row did not run",
                                  paper="> 0", section=sections.get("heat_and_blur", "")))
    text = PAPER_CLAIMS["aid_flags"].text
    if aid in cols and adv2_rts in rows:
        note = (f"detection rate {table.loc[adv2_rts, aid]:.2f}, benign false-positive rate "
                f"{table.loc['benign', aid]:.2f}")
        out.append(claim("aid_flags", diff([adv2_rts], aid, ["benign"], aid), text, note,
                         "no successful ADV² (RTS) image"))
    else:
        out.append(C.not_measured(text, setting, "the AID column or the ADV² (RTS) row did not run", paper="> 0",
                                  section=sections.get("aid", "")))
    for row, base, member in adaptive:
        text = PAPER_CLAIMS["adaptive"].text.format(member=member, row=row, base=base)
        if row not in rows or base not in rows or member not in cols:
            out.append(C.not_measured(text, setting, "its row, its base row or its column did not run", paper="< 0",
                                      section=sections.get("adaptive", "")))
            continue
        ref = float(table.loc[base, member])
        if ref == ref and ref <= NOTHING_LEFT:
            out.append(C.not_measured(text, setting, f"{base} already gets through ({ref:.2f} <= {NOTHING_LEFT}): "
                                      "nothing left to evade", paper="< 0", section=sections.get("adaptive", "")))
            continue
        note = f"{row} {table.loc[row, member]:.2f} vs {base} {ref:.2f}"
        out.append(claim("adaptive", diff([row], member, [base], member), text, note, "no successful image in a row"))
    return out
