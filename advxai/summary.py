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
"""
from __future__ import annotations

import html
import json
import re
import unicodedata
from pathlib import Path
from typing import Sequence

__all__ = ["collect_claims", "chapter_status", "verdict_counts", "to_html", "run_command", "NOT_RUN", "anchor",
           "headings", "resolve_section", "claim_rows"]

NOT_RUN = "not run"
COLUMNS = ["chapter", "claim", "setting", "paper", "ours", "verdict", "note", "section", "link", "command"]


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
            rows.append({"chapter": ch, "claim": "(chapter not run: no metrics file)", "setting": "", "paper": None,
                         "ours": None, "verdict": NOT_RUN, "note": "", "section": "", "link": "",
                         "command": run_command(ch, profile, folder)})
            continue
        titles = headings(folder / f"{ch}.ipynb")
        # without the notebook the headings are unknown: each section is trusted as written
        rows.extend(claim_rows(ch, data.get("claims", []), titles if titles else None))
    return pd.DataFrame(rows, columns=COLUMNS)


def claim_rows(chapter: str, claims: Sequence[dict], titles: Sequence[str] | None = None) -> list[dict]:
    """Summary rows for ``claims`` (dicts with the fields of :class:`advxai.report.Claim`) of ``chapter``,
    each linked to its section among the heading ``titles`` (see :func:`resolve_section`)."""
    rows = []
    for c in claims:
        section = c.get("section", "")
        rows.append({"chapter": chapter, "claim": c.get("claim", ""), "setting": c.get("setting", ""),
                     "paper": c.get("paper"), "ours": c.get("ours"), "verdict": c.get("verdict", "not measured"),
                     "note": c.get("note", ""), "section": section, "link": _link(chapter, section, titles),
                     "command": ""})
    return rows


def chapter_status(folder: str | Path, chapters: Sequence[str], profile: str = "quick"):
    """One row per chapter: whether it ran, its title, profile and seconds, and its claims per verdict."""
    import pandas as pd

    from .report import VERDICTS

    folder = Path(folder)
    rows = []
    for ch in chapters:
        data = _read(folder, ch)
        if data is None:
            rows.append({"chapter": ch, "title": "", "status": NOT_RUN, "profile": "", "seconds": None, "claims": 0,
                         **{v: 0 for v in VERDICTS}, "command": run_command(ch, profile, folder)})
            continue
        run = data.get("run", {})
        verdicts = [c.get("verdict") for c in data.get("claims", [])]
        seconds = run.get("seconds")
        if seconds is None and data.get("timings"):
            seconds = round(sum(v for v in data["timings"].values() if isinstance(v, (int, float))), 1)
        rows.append({"chapter": ch, "title": data.get("title", ""), "status": "run", "profile": run.get("profile", ""),
                     "seconds": seconds, "claims": len(verdicts), **{v: verdicts.count(v) for v in VERDICTS},
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


def to_html(claims, caption: str = "") -> str:
    """The claims as an HTML table; the chapter column links to the section that measured each claim,
    a chapter that did not run shows its command."""
    head = ["chapter", "claim", "setting", "paper", "ours", "verdict", "note"]
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
        cells = [chapter, claim, _cell(r["setting"]), _cell(r["paper"]), _cell(r["ours"]), _cell(r["verdict"]),
                 _cell(r["note"])]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
