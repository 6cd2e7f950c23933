"""The arena itself: members calibrated once, every attack evaluated against every member, as tidy
records; the attack x member table and its heat-map."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..attacks.base import AttackResult
from ..defenses.base import Defense, Detector, as_scores, detection_rate

__all__ = ["Arena", "matrix", "plot_matrix", "auc"]


def auc(benign, adversarial) -> float:
    """ROC AUC of adversarial against benign scores (scikit-learn's; tied scores count half); NaN when
    either set is empty."""
    from sklearn.metrics import roc_auc_score

    b, a = as_scores(benign).numpy(), as_scores(adversarial).numpy()
    if len(b) == 0 or len(a) == 0:
        return float("nan")
    return float(roc_auc_score(np.concatenate([np.zeros(len(b)), np.ones(len(a))]), np.concatenate([b, a])))


class Arena:
    """Members calibrated once, then every attack evaluated against every member.

    ``Arena({"IG masking": CausalMasking(model), ...}, model)``; supervised detectors are fitted
    beforehand (``fit(x_benign, x_adversarial)`` on their own training images); ``calibrate(x)`` sets
    every detector's threshold on benign images disjoint from the attacked ones;
    ``evaluate({"PGD": result, ...}, x_benign, y_benign)`` returns a DataFrame.
    """

    def __init__(self, members: dict[str, Detector | Defense], model):
        if not members:
            raise ValueError("an arena needs at least one detector or defense")
        for label, m in members.items():
            if not isinstance(m, (Detector, Defense)):
                raise ValueError(f"member {label!r} is neither a Detector nor a Defense: {type(m).__name__}")
        self.members, self.model = dict(members), model
        self.calibrated = False

    def calibrate(self, x_calibration: torch.Tensor, progress: Callable[[str], Any] | None = None) -> "Arena":
        """Every detector's threshold at its false-positive rate on the benign ``x_calibration``."""
        for label, m in self.members.items():
            if progress:
                progress(label)
            if isinstance(m, Detector):
                if not m.fitted:
                    raise RuntimeError(f"member {label!r} is supervised and not fitted: fit it on its training images "
                                       f"(benign and adversarial) before the arena calibrates it")
                m.calibrate(x_calibration)
        self.calibrated = True
        return self

    def evaluate(self, attacks: dict[str, AttackResult], x_benign: torch.Tensor, y_benign: torch.Tensor,
                 adaptive: dict[str, str] | None = None, benign_index=None):
        """Tidy records, one per (attack, member), plus a ``benign`` row per member.

        Detectors: ``value`` is the detection rate on the attack's *successful* images (``n`` of them),
        ``auc`` the ROC AUC of the scores against the benign images; the benign row's value is the
        realised false-positive rate. Defenses: ``value`` is the robust accuracy on every attacked
        image (the benign row: clean accuracy). ``adaptive`` maps attack names to the member they adapt to.

        Each record also keeps what its value is the mean of, for intervals over images: ``hits`` (one
        0/1 per image counted: flagged, or labelled correctly) and ``images`` (which images those are:
        the attack's ``extras["index"]`` where it has one, else positions ``0..n-1``; the benign row's
        images are the attacked images' clean versions, ``benign_index``).
        """
        import pandas as pd

        if not self.calibrated:
            raise RuntimeError("calibrate the arena on benign calibration images first")
        adaptive = adaptive or {}
        y_benign = torch.as_tensor(y_benign).cpu()
        benign_ids = (np.arange(len(x_benign)) if benign_index is None
                      else torch.as_tensor(benign_index).cpu().numpy().astype(np.int64))
        ids = {name: _images(r) for name, r in attacks.items()}
        rows = []
        for label, m in self.members.items():
            if isinstance(m, Detector):
                benign_scores = m.score(x_benign)
                fpr = detection_rate(benign_scores, m.threshold)
                rows.append(dict(attack="benign", member=label, kind="detector", metric="false-positive rate",
                                 value=fpr, n=len(x_benign), auc=float("nan"), threshold=m.threshold,
                                 benign_rate=fpr, adaptive_to="", hits=_hits(benign_scores, m.threshold),
                                 images=benign_ids))
                for name, r in attacks.items():
                    ok = r.success.cpu()
                    s = m.score(r.x_adv[ok.to(r.x_adv.device)])
                    rows.append(dict(attack=name, member=label, kind="detector", metric="detection rate",
                                     value=detection_rate(s, m.threshold), n=int(ok.sum()), auc=auc(benign_scores, s),
                                     threshold=m.threshold, benign_rate=fpr, adaptive_to=adaptive.get(name, ""),
                                     hits=_hits(s, m.threshold), images=ids[name][ok.numpy()]))
            else:
                correct = (m.predict(x_benign) == y_benign).numpy().astype(float) if len(x_benign) else np.zeros(0)
                clean = float(correct.mean()) if len(correct) else float("nan")
                rows.append(dict(attack="benign", member=label, kind="defense", metric="clean accuracy", value=clean,
                                 n=len(x_benign), auc=float("nan"), threshold=float("nan"), benign_rate=clean,
                                 adaptive_to="", hits=correct, images=benign_ids))
                for name, r in attacks.items():
                    correct = (m.predict(r.x_adv) == r.y.cpu()).numpy().astype(float) if len(r) else np.zeros(0)
                    rows.append(dict(attack=name, member=label, kind="defense", metric="robust accuracy",
                                     value=float(correct.mean()) if len(correct) else float("nan"), n=len(r),
                                     auc=float("nan"), threshold=float("nan"), benign_rate=clean,
                                     adaptive_to=adaptive.get(name, ""), hits=correct, images=ids[name]))
        return pd.DataFrame(rows)


def _hits(scores, threshold: float) -> np.ndarray:
    """One 0/1 per score: above the threshold (the rule of :func:`~advxai.defenses.base.detection_rate`)."""
    return (as_scores(scores) > threshold).numpy().astype(float)


def _images(r: AttackResult) -> np.ndarray:
    """The data-set indices of a result's images (its ``extras["index"]``), else their positions."""
    index = r.extras.get("index") if r.extras else None
    if index is None or len(index) != len(r):
        return np.arange(len(r))
    return torch.as_tensor(index).cpu().numpy().astype(np.int64)


def matrix(records, value: str = "value"):
    """The attack x member table of ``value`` (rows and columns in the order they first appear)."""
    table = records.pivot(index="attack", columns="member", values=value)
    rows = list(dict.fromkeys(records["attack"]))
    cols = list(dict.fromkeys(records["member"]))
    return table.loc[rows, cols]


def plot_matrix(records, title: str = "", ax=None, cmap: str = "RdYlGn"):
    """The attack x member matrix as a heat-map: detectors (detection rate) then defenses (robust
    accuracy), each cell annotated; cells of an attack adapted to that member are outlined; the
    ``benign`` row (false-positive rate / clean accuracy) is printed without colour."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    table = matrix(records)
    kinds = records.drop_duplicates("member").set_index("member")["kind"]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.9 * table.shape[1], 0.8 + 0.38 * table.shape[0]))
    values = table.to_numpy(dtype=float)
    colours = values.copy()
    # the benign row holds false-positive rates and clean accuracies: numbers only, no colour (low is good there)
    colours[[i for i, a in enumerate(table.index) if a == "benign"], :] = np.nan
    ax.imshow(colours, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, "-" if v != v else f"{v:.2f}", ha="center", va="center", fontsize=7)
    adaptive = records[records["adaptive_to"].astype(bool)]
    for _, r in adaptive.iterrows():
        if r["member"] == r["adaptive_to"]:
            i, j = list(table.index).index(r["attack"]), list(table.columns).index(r["member"])
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="black"))
    n_det = int((kinds.loc[list(table.columns)] == "detector").sum())
    if 0 < n_det < table.shape[1]:
        ax.axvline(n_det - 0.5, color="black", lw=1.5)
    labels = [f"{c}\n({'detection' if kinds[c] == 'detector' else 'robust acc.'})" for c in table.columns]
    ax.set_xticks(range(table.shape[1]), labels, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(table.shape[0]), list(table.index), fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure
