"""What the arena's matrix shows, computed from it: the families of attacks per member, heat and blur
on the interpretation-aware attacks, what each adaptive attack gains, and the chapter's generated
paragraphs (every number in them read off the results, none typed in)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .claims import weighted
from .members import LABELS
from .study import Attacks, Matrix, Members

__all__ = ["FAMILIES", "AWARE", "family_rows", "Reading", "read_matrix", "extra_rows_text", "conclusions", "pct"]

# the attack families compared per member, by attack name (rows that did not run are left out)
FAMILIES = {
    "plain gradient (FGSM, PGD)": ["fgsm", "pgd"],
    "optimisation (C&W, DeepFool, L-BFGS)": ["cw", "deepfool", "lbfgs"],
    "decision-based / spatial (Boundary, StAdv)": ["boundary", "stadv"],
    "universal patches (patch, LaVAN)": ["patch", "lavan"],
    "interpretation-aware (ADV², AdvEdge, AdvEdge+)": ["adv2_cam", "adv2_grad", "adv2_mask", "adv2_rts", "advedge_cam",
                                                        "advedge_plus_cam"],
}
AWARE = "interpretation-aware (ADV², AdvEdge, AdvEdge+)"


def pct(v: float) -> str:
    """A rate as a whole percentage, ``-`` when missing."""
    return "-" if v != v else f"{v:.0%}"


def family_rows(attacks: Attacks) -> dict[str, list[str]]:
    """``{family: [row labels]}`` over every family (rows that did not run included)."""
    return {fam: [attacks.labels[k] for k in keys] for fam, keys in FAMILIES.items()}


@dataclass
class Reading:
    """The families table, heat and blur on the interpretation-aware attacks (and PGD), and the
    observations, one line each."""

    families: dict[str, list[str]]
    family_table: pd.DataFrame
    heat_and_blur_rows: list[dict]
    observations: list[str]

    @property
    def heat_and_blur(self) -> pd.DataFrame:
        return pd.DataFrame(self.heat_and_blur_rows)

    @property
    def aware(self) -> list[str]:
        return self.families[AWARE]


def read_matrix(matrix: Matrix, attacks: Attacks, members: Members, margin: float = 0.1) -> Reading:
    """Families per member (means weighted by images), each detector on the interpretation-aware
    attacks against PGD (a difference of at least ``margin`` counts as seeing them less or more),
    heat and blur on the fooled images, and each adaptive attack's cell against its base attack's."""
    table, records = matrix.table, matrix.records
    families = family_rows(attacks)
    fam_rows = []
    for fam, names in families.items():
        names = [n for n in names if n in table.index]
        if names:
            fam_rows.append({"family": fam, **{m: weighted(records, names, m) for m in table.columns}})
    family_table = pd.DataFrame(fam_rows)
    aware = [n for n in families[AWARE] if n in table.index]
    pgd = attacks.labels["pgd"]
    observations = []
    if pgd in table.index and aware:
        by_family = family_table.set_index("family")
        for d in members.labels_of("detector"):
            plain, inter = table.loc[pgd, d], by_family.loc[AWARE, d]
            verdict = ("sees them less" if inter < plain - margin else "sees them more" if inter > plain + margin
                       else "sees them about as well")
            observations.append(f"{d}: PGD detected {plain:.0%}, interpretation-aware attacks {inter:.0%} -> {verdict}")
    hb_rows = []
    hb_label = LABELS["heat_and_blur"]
    if hb_label in members.members:
        hb = members.members[hb_label]
        for name in [n for n in aware + [pgd] if n in attacks.results]:
            r = attacks.results[name]
            xs = r.x_adv[r.success]
            if len(xs) == 0:
                continue
            cleaned = hb.predict(xs)
            row = {"attack": name, "fooled images": len(xs),
                   "true label restored": (cleaned == r.y[r.success].cpu()).float().mean().item()}
            if r.target is not None:
                row["still the attacker's target"] = (cleaned == r.target[r.success].cpu()).float().mean().item()
            hb_rows.append(row)
        for row in hb_rows:
            if row["attack"] in aware:
                kept = row.get("still the attacker's target", float("nan"))
                observations.append(f"heat and blur on {row['attack']}: true label restored on "
                                    f"{row['true label restored']:.0%} of {row['fooled images']} fooled images, "
                                    f"target kept on {kept:.0%}")
    for adv_name, (member, base) in attacks.adaptive_to.items():
        col = LABELS[member]
        if adv_name in table.index and col in table.columns and base in table.index:
            cell, ref = table.loc[adv_name, col], table.loc[base, col]
            what = "detection rate" if members.kind(col) == "detector" else "robust accuracy"
            gain = ("the adaptive attack does better against it" if cell < ref - 1e-9 else
                    "the adaptive attack gains nothing against it")
            observations.append(f"{adv_name}, {col} column: {what} {cell:.0%} against {ref:.0%} for the "
                                f"non-adaptive {base} -> {gain}")
    weak = [f"{name} ({int(r.success.sum())}/{len(r)})" for name, r in attacks.results.items()
            if r.success.float().mean() < 0.5]
    if weak:
        observations.append("rows resting on few successful images (detection rates are over these only): "
                            + ", ".join(weak))
    return Reading(families, family_table, hb_rows, observations)


def extra_rows_text(matrix: Matrix, attacks: Attacks, members: Members) -> str:
    """The paragraph on the rows and columns chapters 3 and 5 add (ADV² against MASK and RTS, AID and
    its adaptive attacks, adversarial training), as Markdown."""
    L, cell, fooled = attacks.labels, matrix.cell, attacks.fooled
    table = matrix.table
    det_names = [c for c in table.columns if members.kind(c) == "detector"]
    text = []
    for row in (L["adv2_mask"], L["adv2_rts"]):
        if row in table.index:
            flags = ", ".join(f"{d} {pct(cell(row, d))}" for d in det_names)
            line = (f"**{row}** fooled {fooled(row)} images; the detectors flag {flags} of them (PGD: "
                    + ", ".join(pct(cell(L["pgd"], d)) for d in det_names) + " in the same order)")
            if LABELS["heat_and_blur"] in table.columns:
                line += f"; heat and blur labels {pct(cell(row, LABELS['heat_and_blur']))} of all its images correctly"
            text.append(line)
    A = LABELS["aid"]
    if A in table.columns:
        base, fpr_aid = cell(L["adv2_rts"], A), cell("benign", A)
        reacts = ("the distilled decoder does react to ADV²: its maps move away from RTS's" if base >= fpr_aid + 0.1
                  else "at this distillation budget the two maps stay about as close on ADV² images as on benign ones")
        text.append(f"**AID** flags {pct(base)} of the fooled ADV² (RTS) images and {pct(cell(L['pgd'], A))} of PGD's, "
                    f"at {pct(fpr_aid)} of the attacked images' clean versions: {reacts}. ADV² run against RTS^A "
                    f"itself is flagged on {pct(cell(L['adv2_rts_aid'], A))} of its {fooled(L['adv2_rts_aid'])} fooled "
                    f"images, and ADV² that also pulls the RTS and RTS^A maps together on "
                    f"{pct(cell(L['adaptive_aid'], A))} ({fooled(L['adaptive_aid'])})")
    T = LABELS["adversarial_training"]
    if T in table.columns and L["pgd"] in table.index:
        text.append(f"**Adversarial training** labels correctly {pct(cell(L['pgd'], T))} of the PGD images crafted on "
                    f"the plain model (transfer) and {pct(cell(L.get('pgd_at'), T))} of those crafted against the "
                    f"trained model itself (white-box), at a clean accuracy of {pct(cell('benign', T))}; the undefended "
                    f"model keeps {pct(cell(L['pgd'], LABELS['undefended']))} of the transferred PGD images")
    return ". ".join(t for t in text if t) + "." if text else "(none of these rows or columns ran)"


def conclusions(matrix: Matrix, members: Members, fpr: float) -> list[str]:
    """What this run measured, in three lines: the strongest and weakest detector, the stealthiest
    attack, and the defenses' mean robust accuracy."""
    table = matrix.table
    det_cols = [c for c in table.columns if members.kind(c) == "detector"]
    def_cols = [c for c in table.columns if members.kind(c) == "defense" and c != LABELS["undefended"]]
    attack_rows = [a for a in table.index if a != "benign"]
    # detection rates exist only for attacks with successful images
    detected_rows = [a for a in attack_rows if det_cols and not table.loc[a, det_cols].isna().all()]
    out = []
    if det_cols and detected_rows:
        per_det = table.loc[detected_rows, det_cols].mean()
        best = per_det.idxmax()
        out.append(f"the strongest detector at {fpr:.0%} benign FPR is {best} (mean detection rate "
                   f"{per_det[best]:.0%} over the {len(detected_rows)} attacks with successful images); the weakest "
                   f"is {per_det.idxmin()} ({per_det.min():.0%})")
        flagged = table.loc[detected_rows, det_cols].max(axis=1)
        stealthy = flagged.idxmin()
        out.append(f"the stealthiest attack is {stealthy}: no detector flags more than {flagged[stealthy]:.0%} of it")
    thresholds = members.table.set_index("member")
    for d in det_cols:  # a detector that flags nothing: say why, from its threshold and calibration
        if detected_rows and not (table.loc[detected_rows, d].fillna(0) > 0).any():
            flagged, t = thresholds.loc[d, "benign flagged (calibration)"], thresholds.loc[d, "threshold"]
            tied = flagged is not None and flagged == flagged and flagged < fpr / 2
            out.append(f"{d} flags none of the attacks' images" + (
                f": its threshold ({t:.3g}) is the score most benign calibration images share, so it flags "
                f"{flagged:.0%} of them instead of {fpr:.0%}, and nothing scores above it" if tied else ""))
    if def_cols and attack_rows:
        per_def = table.loc[attack_rows, def_cols].mean()
        undefended = LABELS["undefended"]
        out.append("mean robust accuracy over the attacks: " + ", ".join(f"{c} {v:.0%}" for c, v in per_def.items())
                   + (f" (undefended {table.loc[attack_rows, undefended].mean():.0%}; clean accuracy "
                      if undefended in table.columns else " (clean accuracy ")
                   + ", ".join(f"{c} {table.loc['benign', c]:.0%}" for c in def_cols) + ")")
    return out
