"""The book's table of what reproduced: every chapter's claims, read from its ``metrics.json``.

:func:`collect_claims` reads ``<folder>/<chapter>.metrics.json`` for each chapter (the layout
:func:`advxai.report.save_metrics` writes) and returns one row per headline claim: chapter, claim,
setting, the paper's number, ours, verdict, note and a link to the section that measured it. A
chapter without a metrics file is not an error: it gets one row with the verdict ``not run`` and
the command that runs it. :func:`chapter_status` gives one row per chapter (run or not, profile,
seconds, claims per verdict); :func:`to_html` renders the claims with working links.

Links land on sections: Jupyter Book 1 (Sphinx, through MyST) gives a heading the id docutils makes
from its text (:func:`anchor`: lower case, accents and superscripts folded to ASCII, every run of
other characters a hyphen, leading digits and hyphens dropped, so "## 1. Digits: FGSM" becomes
``digits-fgsm``). A claim's ``section`` may be that id, the heading's text, or a shortened
GitHub-style slug of it (``1-digits``); :func:`resolve_section` maps each onto the id of a heading
of the executed notebook beside the metrics file, and a section that matches no heading links to
the page itself rather than to an anchor that does not exist.

Claims carry ``n``, a 95 % ``interval``, a ``tolerance`` and where they were measured
(:mod:`advxai.claims`); files written before those fields existed still read, with ``n`` and the
interval missing and ``measured_at`` ``"unknown"``. :func:`trust_paragraph` writes the paragraph
"How far to trust this" from the collected claims: every number in it is counted from the records.
"""
from __future__ import annotations

import html
import json
import re
import statistics
import unicodedata
from pathlib import Path
from typing import Sequence

from . import claims as _claims

__all__ = ["collect_claims", "chapter_status", "verdict_counts", "to_html", "run_command", "NOT_RUN", "anchor",
           "headings", "resolve_section", "claim_rows", "trust_paragraph"]

NOT_RUN = "not run"
COLUMNS = ["chapter", "claim", "setting", "measured_at", "paper", "tolerance", "no_effect", "ours", "n", "interval",
           "verdict", "estimator", "note", "reason", "section", "link", "command"]


def run_command(chapter: str, profile: str = "quick", folder: str | Path | None = None) -> str:
    """The command that executes ``chapter`` into ``folder``."""
    short = chapter.split("_")[0]
    out = f" --output-dir {folder}" if folder is not None else ""
    return f"advxai run {short} --profile {profile}{out}"


def _read(folder: Path, chapter: str) -> dict | None:
    path = folder / f"{chapter}.metrics.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-run {run_command(chapter)}") from None
    if not isinstance(data, dict) or "claims" not in data:
        raise ValueError(f"{path} has no 'claims' list: not written by advxai.report.save_metrics")
    return data


def anchor(heading: str) -> str:
    """The id Jupyter Book 1 gives a section titled ``heading`` (docutils' ``make_id``, re-implemented so
    the package does not need docutils at run time; a test checks the two agree)."""
    text = unicodedata.normalize("NFKD", " ".join(str(heading).lower().split()))
    text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-z0-9]+", "-", text)
    return re.sub(r"^[-0-9]+|-+$", "", text)


def _slug(heading: str) -> str:
    """A GitHub-style slug that keeps leading digits ("1. Digits: x" -> "1-digits-x"), as chapters once wrote."""
    return re.sub(r"[^a-z0-9]+", "-", str(heading).lower()).strip("-")


def headings(notebook: str | Path) -> list[str]:
    """The section titles (markdown ``#`` lines) of an executed notebook, in order ([] if it is missing)."""
    path = Path(notebook)
    if not path.exists():
        return []
    cells = json.loads(path.read_text()).get("cells", [])
    out = []
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        src = cell.get("source", "")
        fence = False
        for line in (src if isinstance(src, str) else "".join(src)).splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fence = not fence
            m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                out.append(m.group(1))
    return out


def resolve_section(section: str, titles: Sequence[str]) -> str:
    """The id of the heading among ``titles`` that ``section`` names (its id, its text, or a leading part
    of its GitHub-style slug); ``""`` when none does (the link then goes to the page)."""
    if not section:
        return ""
    ids = [anchor(t) for t in titles]
    if section in ids:
        return section
    if anchor(section) in ids and any(t.strip().lower() == section.strip().lower() for t in titles):
        return anchor(section)
    for t, i in zip(titles, ids):
        slug = _slug(t)
        if slug == section or slug.startswith(section + "-"):
            return i
    return ""


def _link(chapter: str, section: str, titles: Sequence[str] | None = None) -> str:
    page = f"{chapter}.html"
    if titles is not None:
        section = resolve_section(section, titles)
    return f"{page}#{section}" if section else page


def collect_claims(folder: str | Path, chapters: Sequence[str], profile: str = "quick"):
    """One row per claim of every chapter in ``chapters`` (their metrics files in ``folder``)."""
    import pandas as pd

    folder = Path(folder)
    rows = []
    for ch in chapters:
        data = _read(folder, ch)
        if data is None:
            rows.append({**{c: None for c in COLUMNS}, "chapter": ch, "claim": "(chapter not run: no metrics file)",
                         "setting": "", "measured_at": "", "verdict": NOT_RUN, "estimator": "", "note": "",
                         "reason": "", "section": "", "link": "", "command": run_command(ch, profile, folder)})
            continue
        titles = headings(folder / f"{ch}.ipynb")
        # without the notebook the headings are unknown: each section is trusted as written
        rows.extend(claim_rows(ch, data.get("claims", []), titles if titles else None))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["n"] = df["n"].astype("Int64")  # whole numbers, missing where a record has none
    return df


def claim_rows(chapter: str, claims: Sequence, titles: Sequence[str] | None = None) -> list[dict]:
    """Summary rows for ``claims`` of ``chapter`` (:class:`advxai.claims.Claim` records or their JSON
    dicts, old ones without ``n``/``interval`` included), each linked to its section among the heading
    ``titles`` (see :func:`resolve_section`). A paper's inequality reads as text (``"> 0"``)."""
    rows = []
    for c in claims:
        if isinstance(c, _claims.Claim):
            c = c.to_dict()
        r = _claims.record(dict(c))
        paper = r["paper"]
        if isinstance(paper, dict):
            paper = _claims.paper_text(paper)
        section = r["section"]
        rows.append({"chapter": chapter, "claim": r["claim"], "setting": r["setting"], "measured_at": r["measured_at"],
                     "paper": paper, "tolerance": r["tolerance"], "no_effect": r["no_effect"], "ours": r["ours"],
                     "n": r["n"], "interval": None if r["interval"] is None else tuple(r["interval"]),
                     "verdict": r["verdict"], "estimator": r["estimator"], "note": r["note"], "reason": r["reason"],
                     "section": section, "link": _link(chapter, section, titles), "command": ""})
    return rows


def chapter_status(folder: str | Path, chapters: Sequence[str], profile: str = "quick"):
    """One row per chapter: whether it ran, its title, profile and seconds, and its claims per verdict."""
    import pandas as pd

    folder = Path(folder)
    rows = []
    for ch in chapters:
        data = _read(folder, ch)
        if data is None:
            rows.append({"chapter": ch, "title": "", "status": NOT_RUN, "profile": "", "seconds": None, "claims": 0,
                         **{v: 0 for v in _claims.VERDICTS}, "command": run_command(ch, profile, folder)})
            continue
        run = data.get("run", {})
        verdicts = [c.get("verdict") for c in data.get("claims", [])]
        seconds = run.get("seconds")
        if seconds is None and data.get("timings"):
            seconds = round(sum(v for v in data["timings"].values() if isinstance(v, (int, float))), 1)
        rows.append({"chapter": ch, "title": data.get("title", ""), "status": "run", "profile": run.get("profile", ""),
                     "seconds": seconds, "claims": len(verdicts), **{v: verdicts.count(v) for v in _claims.VERDICTS},
                     "command": ""})
    return pd.DataFrame(rows)


def verdict_counts(claims) -> dict[str, int]:
    """How many claims got each verdict (``not run`` rows counted as chapters)."""
    return {str(k): int(v) for k, v in claims["verdict"].value_counts().sort_index().items()}


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return html.escape(str(v))


def _missing(v) -> bool:
    """None, NaN or pandas' NA (an interval, a tuple, is never missing)."""
    if v is None:
        return True
    if isinstance(v, (tuple, list, str)):
        return False
    try:
        return bool(v != v)  # NaN
    except TypeError:  # pandas.NA: its comparisons give NA, whose truth value raises
        return True


def to_html(claims, caption: str = "") -> str:
    """The claims as an HTML table; the chapter column links to the section that measured each claim,
    a chapter that did not run shows its command. ``n`` and the interval show ``-`` where a record has
    none (files written before they existed)."""
    head = ["chapter", "claim", "setting", "measured at", "paper", "ours", "95 % interval", "n", "verdict", "note"]
    out = ['<table class="advxai-summary">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>")
    for _, r in claims.iterrows():
        short = html.escape(r["chapter"].split("_")[0])
        chapter = f'<a href="{html.escape(r["link"])}">{short}</a>' if r["link"] else short
        claim = _cell(r["claim"])
        if r["verdict"] == NOT_RUN:
            claim += f"<br><code>{html.escape(r['command'])}</code>"
        paper = r["paper"] if isinstance(r["paper"], str) else _claims.paper_text(
            None if _missing(r["paper"]) else r["paper"], None if _missing(r.get("tolerance")) else r.get("tolerance"))
        interval = r.get("interval")
        n = r.get("n")
        note = "; ".join(str(v) for v in (r.get("reason"), r.get("note")) if not _missing(v) and str(v))
        cells = [chapter, claim, _cell(r["setting"]), _cell(r.get("measured_at") or ""), html.escape(paper),
                 _cell(r["ours"]), html.escape(_claims.interval_text(None if _missing(interval) else interval)),
                 "-" if _missing(n) else str(int(n)), _cell(r["verdict"]), _cell(note)]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _plural(k: int, one: str, many: str | None = None) -> str:
    return f"{k} {one if k == 1 else (many or one + 's')}"


def _chapter_list(names) -> str:
    return ", ".join(str(c).split("_")[0] for c in names)


def trust_paragraph(claims, widest: int = 3) -> str:
    """The paragraph "How far to trust this" (markdown) for the rows of :func:`collect_claims`: how many
    claims, where they were measured, how many images they rest on, the widest intervals (named) and
    the verdicts. Every number is counted from ``claims``; nothing is typed in."""
    rows = [r for _, r in claims.iterrows()]
    not_run = [r["chapter"] for r in rows if r["verdict"] == NOT_RUN]
    rows = [r for r in rows if r["verdict"] != NOT_RUN]
    chapters = sorted({r["chapter"] for r in rows})
    out = [f"**How far to trust this.** The book checks {_plural(len(rows), 'claim')} from "
           f"{_plural(len(chapters), 'chapter')}"
           + (f" ({_plural(len(not_run), 'chapter')} not run here: {_chapter_list(not_run)})." if not_run else ".")]
    if not rows:
        return out[0]
    where = {k: sum(1 for r in rows if (r.get("measured_at") or "unknown") == k) for k in _claims.MEASURED_AT}
    parts = [f"{where['paper']} {'was' if where['paper'] == 1 else 'were'} measured at the paper's own setting "
             "(its data, model and sizes)",
             f"{where['paper data']} on the paper's data set with another model or at a smaller size",
             f"{where['stand-in']} on the embedded stand-ins"]
    sentence = "Of these, " + ", ".join(parts[:-1]) + ", and " + parts[-1]
    if where["unknown"]:
        sentence += (f"; {_plural(where['unknown'], 'claim comes', 'claims come')} from metrics files that do not "
                     "record where they were measured")
    out.append(sentence + ".")
    unmeasured = [r for r in rows if r["verdict"] == "not measured"]
    if unmeasured:
        reasons: dict[str, int] = {}
        for r in unmeasured:
            key = str(r.get("reason") or "no reason recorded")
            reasons[key] = reasons.get(key, 0) + 1
        top = max(reasons.items(), key=lambda kv: (kv[1], kv[0]))
        why = (top[0] if len(unmeasured) == 1 else
               f"{'all' if top[1] == len(unmeasured) else 'the most common reason, ' + str(top[1]) + ' of them'}: "
               f"{top[0]}")
        out.append(f"{_plural(len(unmeasured), 'claim')} could not be measured ({why}).")
    measured = [r for r in rows if r["verdict"] != "not measured"]
    sized = [int(r["n"]) for r in measured if not _missing(r.get("n"))]
    if sized:
        spread = f"from {min(sized)} to {max(sized)}" if min(sized) < max(sized) else f"all {min(sized)}"
        out.append(f"The measured claims rest on a median of {statistics.median(sized):g} images or pairs ({spread})"
                   + (f"; {_plural(len(measured) - len(sized), 'claim')} from older metrics files "
                      f"{'carries' if len(measured) - len(sized) == 1 else 'carry'} no n and no interval."
                      if len(sized) < len(measured) else "."))
    elif len(measured) == 1:
        out.append("The one measured claim records no n and no interval (a metrics file written before intervals "
                   "were kept).")
    elif measured:
        out.append(f"None of the {len(measured)} measured claims records its n or an interval (metrics files "
                   "written before intervals were kept).")
    spans = []
    for r in measured:
        iv = r.get("interval")
        if _missing(iv) or iv is None:
            continue
        lo, hi = float(iv[0]), float(iv[1])
        spans.append((hi - lo, r))
    if spans:
        spans.sort(key=lambda t: -t[0])
        named = [f"“{r['claim']}” ({str(r['chapter']).split('_')[0]}, {_claims.interval_text(r['interval'])})"
                 for _, r in spans[:widest]]
        out.append(f"The widest 95 % intervals, each in its claim's own units: {'; '.join(named)}.")
        banded = [(w, r) for w, r in spans if not _missing(r.get("tolerance")) and float(r["tolerance"]) > 0]
        if banded:
            loose = sum(1 for w, r in banded if w > 2 * float(r["tolerance"]))
            out.append(f"Value claims whose interval is wider than their whole tolerance band (twice the "
                       f"tolerance): {loose} of {len(banded)}; there the images allow numbers the paper would call "
                       "different, and the verdict says less than it seems.")
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in _claims.VERDICTS}
    other = sorted({r["verdict"] for r in rows} - set(_claims.VERDICTS))
    for v in other:
        counts[v] = sum(1 for r in rows if r["verdict"] == v)
    out.append("Verdicts: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + ".")
    return " ".join(out)
