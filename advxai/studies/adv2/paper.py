"""The paper's claims as data, and this run's claims built from the studies' per-image results.

Every number the paper states that this chapter measures is in :data:`PAPER` (ResNet-50 and
DenseNet-169 columns where the paper gives both); :func:`build_claims` turns the studies' per-image
results into :mod:`advxai.claims` records, one per claim x model measured, so that
:func:`advxai.claims.decide` decides every verdict.

How tolerances were chosen (before any result was looked at), as data in :data:`TOLERANCE`:

* **rates** (attack success, localisation error, detection rates and their differences): 0.10. The
  paper gives no run-to-run spread; its rates rest on 1,000 images, so their own sampling error is
  about 0.01-0.03, and the tolerance stands for what a change of data, model and sizes may move;
* **ratios of mean map distances** (ADV² over PGD, Δ_t over Δ_b, the transfer ratio): 0.10. The
  paper prints distances to two decimals (.01-.50); its ratios carry rounding errors up to about
  0.05 (RTS: .01/.22 is anything from 0.02 to 0.07), doubled;
* **confidence** (probability of the target class): 0.10, as for rates;
* **inequalities** (IoU above 0.5, StAdv-based ADV² below StAdv, GRAD the hardest interpreter,
  AID's effects) take no tolerance: the bound is the paper's own.

No-effect references: 0 for a success rate (the images are classified correctly, so without an
attack none is in the target class) and for every difference; 1 for a ratio of ADV²'s distance to
PGD's (ADV² no better than PGD) and for Δ_t/Δ_b (the map as close to the target as to the benign
map). The localisation error and the transfer ratio have none: the paper's value is itself a
baseline (an interpreter's quality; "no better than PGD").

What is shown but not claimed: Proposition 1's inequality ``l_prd <= ||Δm||_1`` holds by
construction (IG's completeness makes ``sum(Δm) = l_prd``, and a sum is at most the sum of its
absolute values), so checking it would only check the quadrature; the chapter shows it as an
illustration. What the proposition is invoked for, in the paper's section 5 ("Attack Robustness"),
is an empirical statement that can fail: ADV² fools GRAD least of the four interpreters (its
ADV²/PGD distance ratio is the largest); that is claimed, per model.
"""
from __future__ import annotations

import numpy as np

from ... import claims as C
from .setup import LABEL

__all__ = ["PAPER", "TOLERANCE", "SECTIONS", "column", "setting", "build_claims"]

TOLERANCE = {"rate": 0.10, "ratio": 0.10, "confidence": 0.10}

# The paper's numbers by column: "resnet" (ResNet-50) and "densenet" (DenseNet-169).
PAPER = {
    # Table 2 (ResNet only; "consistent with [10], with slight variation due to the underlying DNNs")
    "localisation error": {"resnet": {"GRAD": 0.431, "CAM": 0.438, "MASK": 0.452, "RTS": 0.342}},
    # Table 3: ADV²'s attack success rate and misclassification confidence
    "asr": {"resnet": {"GRAD": 1.00, "CAM": 1.00, "MASK": 0.98, "RTS": 1.00},
            "densenet": {"GRAD": 1.00, "CAM": 1.00, "MASK": 0.96, "RTS": 1.00}},
    "confidence": {"resnet": {"GRAD": 0.99, "CAM": 1.00, "MASK": 0.99, "RTS": 1.00},
                   "densenet": {"GRAD": 0.98, "CAM": 1.00, "MASK": 0.98, "RTS": 1.00}},
    # Table 13: L1 of PGD's and ADV²'s maps to the benign maps (P, A)
    "l1": {"resnet": {"GRAD": (0.10, 0.04), "CAM": (0.22, 0.05), "MASK": (0.28, 0.09), "RTS": (0.22, 0.01)},
           "densenet": {"GRAD": (0.11, 0.05), "CAM": (0.31, 0.04), "MASK": (0.27, 0.09), "RTS": (0.26, 0.02)}},
    # Fig. 6 and its text: "ADV² achieves IoU scores above 0.5 across all the interpreters"
    "iou": "> 0.5",
    # Table 4 (ResNet, RTS): detection rates of PGD, basic ADV² (A) and adaptive ADV² (A*)
    "squeezing": {"bit_depth_2": (0.923, 0.940, 0.294), "bit_depth_3": (0.727, 0.883, 0.139),
                  "median_3x3": (0.973, 0.990, 0.034), "nl_means_11_3_4": (0.523, 0.753, 0.294)},
    # Figs. 9-10: StAdv-based ADV²'s maps "much more similar to the benign cases" than StAdv's
    "stadv": "< 1",
    # Table 10 (Grad-CAM, ResNet): ASR and L1 of PGD and ADV²
    "gradcam": {"asr": 1.00, "l1": (0.22, 0.07)},
    # Tables 6 and 8: ASR with random patch / random class targets; Table 7: Δ_b, Δ_t (random patch)
    "random patch asr": {"GRAD": 1.00, "CAM": 1.00, "MASK": 0.99, "RTS": 1.00},
    "random class asr": {"GRAD": 1.00, "CAM": 1.00, "MASK": 1.00, "RTS": 1.00},
    "random patch l1": {"GRAD": (0.16, 0.10), "CAM": (0.50, 0.04), "MASK": (0.42, 0.15), "RTS": (0.49, 0.07)},
    # Fig. 13: a random-class ADV² map is close to its target, far from the benign map
    "random class": "< 1",
    # Table 9: off-diagonal L1 over PGD's in the same columns (2.77 / 2.46)
    "transfer": 1.13,
    # Section 5 "Attack Robustness" (Figs. 5-6, Table 13): GRAD's ADV²/PGD ratio minus the largest other one
    # (ResNet .40 - .32, DenseNet .45 - .33)
    "grad hardest": "> 0",
    # Figs. 15-16 and their text
    "aid adversarial": "> 0", "aid benign": "< 0.05", "aid noise": "> 0",
}

# the ids Jupyter Book gives the chapter's headings (an en dash in a range is dropped: "Figs. 5–6" -> "figs-56")
SECTIONS = {
    "localisation": "how-well-do-the-interpreters-localise-their-table-2",
    "effectiveness": "attack-effectiveness-pgd-vs-adv2-their-table-3",
    "distance": "how-close-are-adversarial-maps-to-benign-ones-their-figs-56-and-table-13",
    "squeezing": "does-adv2-evade-feature-squeezing-their-tables-45",
    "stadv": "adv2-on-a-spatial-transformation-their-figs-910",
    "gradcam": "adv2-against-grad-cam-their-appendix-a1-table-10",
    "random": "targets-the-classifier-does-not-imply-random-patches-and-random-classes-their-tables-68-figs-1113",
    "transfer": "do-adv2-inputs-transfer-between-interpreters-their-table-9",
    "proposition": "proposition-1-and-why-grad-resists-adv2",
    "aid": "adversarial-interpretation-distillation-aid-their-figs-1516",
}


def column(model: str) -> str:
    """The paper's column a model stands for: DenseNet-169 for a DenseNet, ResNet-50 otherwise."""
    return "densenet" if "densenet" in model else "resnet"


def setting(model: str, dataset: str, detail: str = "", n_paper: int | None = 1000) -> C.Setting:
    """Where a claim on ``model`` is measured, against the paper's ImageNet model of the same column."""
    col = column(model)
    return C.Setting("ImageNet, " + ("DenseNet-169" if col == "densenet" else "ResNet-50"), data=dataset, model=model,
                     paper_data="imagenet", paper_model="densenet169" if col == "densenet" else "resnet50",
                     paper_n=n_paper, detail=detail)


def _paper_value(table: dict, model: str, key: str):
    """The paper's number for ``key`` in the model's column (ResNet's where the paper gives only that)."""
    col = column(model)
    return table.get(col, table["resnet"])[key], col in table


def _col_note(found: bool) -> str:
    return "" if found else "the paper gives ResNet-50's value only"


def _two_stage_ratio(frame, name, iname):
    sub = frame[(frame.model == name) & (frame.interpreter == LABEL[iname])]
    return (sub[sub.attack == "ADV²"]["L1"].to_numpy(), sub[sub.attack == "PGD"]["L1"].to_numpy())


def _grad_hardest(frame, name, inames, setting_, seed):
    """GRAD's ADV²/PGD L1 ratio minus the largest such ratio among the other interpreters, with a paired
    bootstrap over images (the same images are attacked for every interpreter)."""
    text = "ADV² fools GRAD least: its ADV²/PGD map-distance ratio exceeds every other interpreter's (difference)"
    if "grad" not in inames or len(inames) < 2:
        return C.not_measured(text, setting_, "needs GRAD and at least one other interpreter",
                              paper=PAPER["grad hardest"], section=SECTIONS["proposition"])
    sub = frame[frame.model == name]
    arrays = []
    for i in inames:
        cell = sub[sub.interpreter == LABEL[i]]
        arrays += [cell[cell.attack == "ADV²"]["L1"].to_numpy(), cell[cell.attack == "PGD"]["L1"].to_numpy()]
    g = inames.index("grad")

    def stat(*draws):
        ratios = [draws[2 * k].mean(-1) / np.maximum(draws[2 * k + 1].mean(-1), 1e-12) for k in range(len(inames))]
        others = np.max([r for k, r in enumerate(ratios) if k != g], axis=0)
        return ratios[g] - others

    n = len(arrays[0])
    if n < 2:
        return C.not_measured(text, setting_, "fewer than two attacked images", paper=PAPER["grad hardest"],
                              n=n, section=SECTIONS["proposition"])
    point = float(stat(*[a[None, :] for a in arrays])[0])
    lo, hi = C.bootstrap_interval(arrays, stat, paired=True, seed=seed)
    return C.estimate(text, setting_, point, (min(lo, point), max(hi, point)), n, paper=PAPER["grad hardest"],
                      estimator="paired bootstrap over images of the difference of ratios of means",
                      section=SECTIONS["proposition"])


def _transfer(tr, inames, setting_, seed):
    text = ("ADV² inputs do not transfer between interpreters: off-diagonal L1 over PGD's in the same columns "
            "(Table 9)")
    off = [(r, c) for r in inames for c in inames if r != c]
    if not off:
        return C.not_measured(text, setting_, "needs two interpreters at least", paper=PAPER["transfer"],
                              tolerance=TOLERANCE["ratio"], section=SECTIONS["transfer"])
    arrays = [tr.per_image[(r, c)].numpy() for r, c in off] + [tr.per_image[("PGD", c)].numpy() for _, c in off]
    k = len(off)

    def stat(*draws):
        num = np.sum([d.mean(-1) for d in draws[:k]], axis=0)
        den = np.sum([d.mean(-1) for d in draws[k:]], axis=0)
        return num / np.maximum(den, 1e-12)

    n = len(arrays[0])
    if n < 2:
        return C.not_measured(text, setting_, "fewer than two attacked images", paper=PAPER["transfer"],
                              tolerance=TOLERANCE["ratio"], n=n, section=SECTIONS["transfer"])
    point = float(stat(*[a[None, :] for a in arrays])[0])
    lo, hi = C.bootstrap_interval(arrays, stat, paired=True, seed=seed)
    return C.estimate(text, setting_, point, (min(lo, point), max(hi, point)), n, paper=PAPER["transfer"],
                      tolerance=TOLERANCE["ratio"], estimator="paired bootstrap over images of a ratio of sums of means",
                      section=SECTIONS["transfer"])


def build_claims(study, *, eff, top_k: float, loc=None, sq=None, stadv=None, gc=None, rt=None, tr=None, aid=None,
                 seed: int = 0) -> list:
    """This run's claims, one per claim of :data:`PAPER` x model measured (see the module's docstring)."""
    out = []
    ds, frame, inames = study.dataset, eff.frame, list(study.interpreters)
    r_tol, q_tol, c_tol = TOLERANCE["rate"], TOLERANCE["ratio"], TOLERANCE["confidence"]
    for name in study.models:
        where = setting(name, ds, f"{len(study.images[name][0])} images, {study.attack_budget} step budget")
        if loc is not None and not loc.empty:
            for iname in inames:
                rows = loc[(loc.model == name) & (loc.interpreter == LABEL[iname])]
                p, found = _paper_value(PAPER["localisation error"], name, LABEL[iname])
                out.append(C.rate(f"{LABEL[iname]}: localisation error (Table 2)", setting(name, ds, "localisation"),
                                  ~rows["correct"].to_numpy(bool), paper=p, tolerance=r_tol,
                                  section=SECTIONS["localisation"], note=_col_note(found)))
        for iname in inames:
            key = LABEL[iname]
            cell = frame[(frame.model == name) & (frame.interpreter == key)]
            adv = cell[cell.attack == "ADV²"]
            p, found = _paper_value(PAPER["asr"], name, key)
            out.append(C.rate(f"ADV² against {key}: attack success rate (Table 3)", where, adv["success"].to_numpy(bool),
                              paper=p, tolerance=r_tol, no_effect=0.0, section=SECTIONS["effectiveness"],
                              note=_col_note(found)))
            p, found = _paper_value(PAPER["confidence"], name, key)
            out.append(C.mean(f"ADV² against {key}: misclassification confidence (Table 3)", where,
                              adv["confidence"].to_numpy(), paper=p, tolerance=c_tol, seed=seed,
                              section=SECTIONS["effectiveness"], note=_col_note(found)))
            (pp, pa), found = _paper_value(PAPER["l1"], name, key)
            a, b = _two_stage_ratio(frame, name, iname)
            out.append(C.ratio(f"{key}: ADV²'s maps are closer to the benign maps than PGD's (L1 ratio ADV²/PGD; "
                               f"paper {pp:.2f} → {pa:.2f}, Table 13)", where, a, b, paper=round(pa / pp, 3),
                               tolerance=q_tol, seed=seed, section=SECTIONS["distance"], note=_col_note(found)))
            out.append(C.mean(f"{key}: IoU of ADV²'s maps with the benign maps (top {top_k:.0%}; Fig. 6)", where,
                              adv[f"IoU@{top_k:g}"].to_numpy(), paper=PAPER["iou"], seed=seed,
                              section=SECTIONS["distance"]))
        out.append(_grad_hardest(frame, name, inames, where, seed))
    if sq is not None:
        where = setting(sq.model, ds, f"RTS, {len(study.images[sq.model][0])} images, benign FPR {sq.fpr:.0%}")
        for s_name, (p_pgd, p_a, p_astar) in PAPER["squeezing"].items():
            if (s_name, "PGD") not in sq.flags:
                continue
            f = {who: sq.flags[(s_name, who)].numpy().astype(bool) for who in ("PGD", "RTS-A", "RTS-A*")}
            out.append(C.difference_of_rates(f"{s_name}: basic ADV² is detected as often as PGD (detection rate A − P, "
                                             f"Table 4)", where, f["RTS-A"], f["PGD"], paper=round(p_a - p_pgd, 3),
                                             tolerance=r_tol, section=SECTIONS["squeezing"]))
            out.append(C.difference_of_rates(f"{s_name}: adaptive ADV² is detected far less than basic ADV² "
                                             f"(detection rate A* − A, Table 4)", where, f["RTS-A*"], f["RTS-A"],
                                             paper=round(p_astar - p_a, 3), tolerance=r_tol,
                                             section=SECTIONS["squeezing"]))
    for st in (stadv or {}).values():
        for iname, n in st.images.items():
            key = LABEL[iname]
            where = setting(st.model, ds, f"{n} images, {st.steps[iname]} Adam steps")
            cell = st.frame[st.frame.interpreter == key]
            out.append(C.ratio(f"{key}: StAdv-based ADV²'s maps are closer to the benign maps than StAdv's (L1 ratio, "
                               f"Figs. 9-10)", where, cell[cell.attack == "StAdv ADV²"]["L1"].to_numpy(),
                               cell[cell.attack == "StAdv"]["L1"].to_numpy(), paper=PAPER["stadv"], seed=seed,
                               section=SECTIONS["stadv"]))
    if gc is not None:
        where = setting(gc.model, ds, "Grad-CAM")
        adv, pgd = gc.frame[gc.frame.attack == "ADV² (A)"], gc.frame[gc.frame.attack == "PGD (P)"]
        out.append(C.rate("ADV² against Grad-CAM: attack success rate (Table 10)", where, adv["success"].to_numpy(bool),
                          paper=PAPER["gradcam"]["asr"], tolerance=r_tol, no_effect=0.0, section=SECTIONS["gradcam"]))
        pp, pa = PAPER["gradcam"]["l1"]
        out.append(C.ratio(f"Grad-CAM: ADV²'s maps are closer to the benign maps than PGD's (L1 ratio; paper {pp:.2f} → "
                           f"{pa:.2f}, Table 10)", where, adv["L1"].to_numpy(), pgd["L1"].to_numpy(),
                           paper=round(pa / pp, 3), tolerance=q_tol, seed=seed, section=SECTIONS["gradcam"]))
    if rt is not None:
        where = setting(rt.model, ds, "random target maps")
        for key in rt.frame["interpreter"].unique():
            for kind, table in (("random patch", "Table 6"), ("random class", "Table 8")):
                cell = rt.frame[(rt.frame.interpreter == key) & (rt.frame.targets == kind)]
                out.append(C.rate(f"{key}: ADV² with {kind} target maps fools the classifier ({table})", where,
                                  cell["success"].to_numpy(bool), paper=PAPER[f"{kind} asr"][key], tolerance=r_tol,
                                  no_effect=0.0, section=SECTIONS["random"]))
            cell = rt.frame[(rt.frame.interpreter == key) & (rt.frame.targets == "random patch")]
            p_b, p_t = PAPER["random patch l1"][key]
            out.append(C.ratio(f"{key}: a random-patch ADV² map is closer to its target than to the benign map "
                               f"(Δ_t/Δ_b; paper {p_t:.2f}/{p_b:.2f}, Table 7)", where, cell["Δ_t L1"].to_numpy(),
                               cell["Δ_b L1"].to_numpy(), paper=round(p_t / p_b, 3), tolerance=q_tol, seed=seed,
                               section=SECTIONS["random"]))
            cell = rt.frame[(rt.frame.interpreter == key) & (rt.frame.targets == "random class")]
            out.append(C.ratio(f"{key}: a random-class ADV² map is closer to its target than to the benign map "
                               f"(Δ_t/Δ_b, Fig. 13)", where, cell["Δ_t L1"].to_numpy(), cell["Δ_b L1"].to_numpy(),
                               paper=PAPER["random class"], seed=seed, section=SECTIONS["random"]))
    if tr is not None:
        out.append(_transfer(tr, inames, setting(tr.model, ds, "transfer"), seed))
    if aid is not None:
        where = setting(aid.model, ds, f"AID budget {aid.budget}")
        f = aid.adv_frame
        l1 = {who: f[f.interpreter == who]["L1 benign vs ADV²"].to_numpy() for who in ("RTS^A", "RTS^0 (control)")}
        out.append(C.paired_difference("AID: ADV² can no longer keep the benign map on RTS^A (L1 benign vs ADV² map, "
                                       "RTS^A − its control RTS^0; Fig. 16)", where, l1["RTS^A"],
                                       l1["RTS^0 (control)"], paper=PAPER["aid adversarial"], seed=seed,
                                       section=SECTIONS["aid"]))
        gap = f[f.interpreter == "RTS^A"]["benign L1 to RTS^0"].to_numpy()
        out.append(C.mean("AID: RTS^A behaves almost identically to RTS on benign inputs (L1 between the benign maps "
                          "of RTS^A and its control RTS^0)", where, gap, paper=PAPER["aid benign"], seed=seed,
                          section=SECTIONS["aid"], note="the paper's ADV² maps it calls close are at L1 .01-.09"))
        nf = aid.noise_frame
        a = nf[nf.interpreter == "RTS^A"]["L1"].to_numpy()
        c = nf[nf.interpreter == "RTS^0 (control)"]["L1"].to_numpy()
        out.append(C.paired_difference("AID: RTS^A's maps react more than its control's when noise changes the "
                                       "prediction (L1 clean vs noisy, RTS^A − RTS^0; Fig. 15)", where, a, c,
                                       paper=PAPER["aid noise"], seed=seed, section=SECTIONS["aid"],
                                       empty="no noise level changed a prediction",
                                       note="images pooled over noise kinds and levels"))
    return out


def verdict_counts(claims: list) -> dict[str, int]:
    """How many claims got each verdict (every verdict listed, in the rule's order)."""
    return {v: sum(c.verdict == v for c in claims) for v in C.VERDICTS}


def reading(*, table13, rt=None, tr=None, p1=None, aid=None, models=(), interpreters=()) -> str:
    """The section 5 findings of this run in sentences (Markdown bullets), computed from its tables."""
    lines = []
    for name in models:
        sub = table13[table13.model == name].pivot(index="interpreter", columns="attack", values="L1")
        ratios = (sub["ADV²"] / sub["PGD"]).dropna()
        if len(ratios):
            order = ", ".join(f"{k} {v:.2f}" for k, v in ratios.sort_values(ascending=False).items())
            lines.append(f"* ADV²'s maps, as a fraction of PGD's distance to the benign map, on {name}: {order}. "
                         + ("GRAD is the hardest to fool, as the paper argues." if ratios.idxmax() == "GRAD" else
                            f"{ratios.idxmax()}, not GRAD, is the hardest to fool here."))
    if rt is not None and len(rt.table):
        patch = rt.table[rt.table.targets == "random patch"]
        klass = rt.table[rt.table.targets == "random class"]
        lines.append(f"* Random targets: ADV² fooled the classifier on {patch['ASR'].mean():.0%} (random patch) and "
                     f"{klass['ASR'].mean():.0%} (random class) of the images. Its map came closer to the random patch "
                     f"than to the benign map for {int((patch['Δ_t L1'] < patch['Δ_b L1']).sum())} of {len(patch)} "
                     f"interpreters (paper: all four), and closer to the other class's map for "
                     f"{int((klass['Δ_t L1'] < klass['Δ_b L1']).sum())} of {len(klass)}.")
    if tr is not None and len(interpreters) > 1:
        t = tr.table.set_index("crafted against")
        keys = [LABEL[i] for i in interpreters]
        diag = np.mean([t.loc[k, k] for k in keys])
        pgd = np.mean([t.loc["PGD", k] for k in keys])
        off = [(r, c) for r in keys for c in keys if r != c]
        ratio = sum(t.loc[r, c] for r, c in off) / max(1e-12, sum(t.loc["PGD", c] for _, c in off))
        lines.append(f"* Transfer: on the interpreter it was crafted against, an ADV² map is at L1 {diag:.3f} from the "
                     f"benign map (PGD's: {pgd:.3f}); on the others at {ratio:.2f} times PGD's distance (paper 1.13: "
                     f"{'no better than PGD, as in the paper' if ratio > 0.9 else 'closer than PGD: some transfer'}).")
    if p1 is not None and len(p1):
        lines.append(f"* Proposition 1's bound held for {p1['holds'].mean():.0%} of the inputs, as it must; the rise of "
                     f"the target probability was on average {p1['ratio'].mean():.2f} of the IG map's change, so the "
                     f"bound {'is loose' if p1['ratio'].mean() < 0.5 else 'is fairly tight'} here.")
    if aid is not None:
        a = aid.adv_table.set_index("interpreter")
        nt = aid.noise_table.pivot(index=["noise", "target error"], columns="interpreter",
                                   values="L1 (prediction changed)")
        sens = float((nt["RTS^A"] - nt["RTS^0 (control)"]).mean())
        lines.append(f"* AID: ADV²'s maps are at L1 {a.loc['RTS^A', 'L1 benign vs ADV²']:.3f} from the benign maps on "
                     f"RTS^A, {a.loc['RTS^0 (control)', 'L1 benign vs ADV²']:.3f} on its control RTS^0 and "
                     f"{a.loc['RTS', 'L1 benign vs ADV²']:.3f} on RTS (ADV² fooled the classifier on "
                     f"{a.loc['RTS^A', 'ADV² ASR']:.0%}, {a.loc['RTS^0 (control)', 'ADV² ASR']:.0%} and "
                     f"{a.loc['RTS', 'ADV² ASR']:.0%}); RTS^A's benign maps differ from the control's by L1 "
                     f"{aid.benign_gap:.3f}; "
                     + (f"where noise changed the label, RTS^A's maps moved by {sens:+.3f} (L1) relative to the "
                        f"control's." if np.isfinite(sens) else "no noise level changed a label here."))
    return "\n".join(lines)


__all__ += ["verdict_counts", "reading"]


def metrics(*, localisation, table3, table13, squeezing, stadv_table, gradcam, random_targets, transfer, p1_table,
            aid, verdicts) -> dict:
    """The chapter's headline numbers for its metrics file (the summary chapter reads them)."""
    rec = {"localisation": localisation, "table3": table3, "table13": table13, "feature_squeezing": squeezing.table,
           "stadv": stadv_table, "gradcam": gradcam.table, "random_targets": random_targets.table,
           "transfer": transfer.table, "proposition1": p1_table, "aid_noise": aid.noise_table,
           "aid_adv2": aid.adv_table}
    return {**{k: v.to_dict("records") for k, v in rec.items()}, "aid_benign_gap": aid.benign_gap,
            "verdicts": verdicts}


__all__ += ["metrics"]


def squeezing_reading(sq) -> str:
    """What feature squeezing did in this run (their Table 4), in two sentences computed from its table."""
    t = sq.table.set_index("squeezer")
    gap = (t["RTS-A"] - t["PGD"]).abs()
    paper = {s: abs(a - p) for s, (p, a, _) in PAPER["squeezing"].items()}
    text = (f"Basic ADV² and PGD were flagged at rates at most {gap.max():.0%} apart ({gap.idxmax()}; the paper's "
            f"Table 4: at most {max(paper.values()):.0%}, {max(paper, key=paper.get)}), with benign images flagged "
            f"at {t['benign'].min():.0%}-{t['benign'].max():.0%}.")
    seen = t[t["RTS-A"] > t["benign"]]
    if len(seen):
        text += (" Where a squeezer flagged basic ADV² above its benign rate, the adaptive attack moved the rate "
                 + ", ".join(f"from {r['RTS-A']:.0%} to {r['RTS-A*']:.0%} ({s})" for s, r in seen.iterrows()) + ".")
    unseen = [s for s in t.index if s not in seen.index]
    if unseen:
        names = " and ".join([", ".join(unseen[:-1]), unseen[-1]] if len(unseen) > 1 else unseen)
        text += (f" {names} flagged basic ADV² no more often than benign images, which leaves the adaptive attack "
                 "nothing to evade there: Table 4's drop cannot show.")
    return text


__all__ += ["squeezing_reading"]
