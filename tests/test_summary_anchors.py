"""Links from the summary land on the sections Jupyter Book 1 generates."""
import json
import re
from pathlib import Path

import pytest

from advxai import report, summary

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"


def _chapter_headings() -> list[str]:
    out = []
    for path in sorted(CHAPTERS.glob("ch*.py")):
        out += [m.group(1) for m in re.finditer(r"^# #{1,6} (.+)$", path.read_text(), flags=re.M)]
    return out


@pytest.mark.parametrize("title", ["1. Digits: benign inputs against FGSM, DeepFool, C&W and PGD",
                                   "ADV² (RTS^A) — résumé", "  Run   time ", "3. The matrix", "### `digits`", "42"])
def test_anchor_is_the_id_docutils_gives_the_heading(title):
    nodes = pytest.importorskip("docutils.nodes")
    assert summary.anchor(title) == nodes.make_id(title)


def test_every_chapter_heading_gets_the_docutils_id():
    nodes = pytest.importorskip("docutils.nodes")
    titles = _chapter_headings()
    assert len(titles) > 20
    for t in titles:
        assert summary.anchor(t) == nodes.make_id(t), t


def test_sections_resolve_to_heading_ids():
    titles = ["1. Digits: benign inputs against FGSM", "2. Photos: the same", "Run time", "3. The matrix"]
    assert summary.resolve_section("1-digits", titles) == "digits-benign-inputs-against-fgsm"  # an older short slug
    assert summary.resolve_section("photos-the-same", titles) == "photos-the-same"  # the id itself
    assert summary.resolve_section("3. The matrix", titles) == "the-matrix"  # the heading's text
    assert summary.resolve_section("1-dig", titles) == ""  # not a whole word of the slug
    assert summary.resolve_section("nowhere", titles) == "" and summary.resolve_section("", titles) == ""


def test_collected_links_use_the_ids_of_the_notebook_beside_the_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVXAI_BOOK_DIR", str(tmp_path))
    claims = [report.Claim("a", "s", 1.0, 1.0, "reproduced", "1-digits"),
              report.Claim("b", "s", 1.0, 1.0, "reproduced", "gone")]
    report.save_metrics("ch01_x", "t", {}, claims, report.Timings({}))
    cells = [{"cell_type": "markdown", "source": ["# Title\n", "\n", "## 1. Digits: benign inputs\n"]},
             {"cell_type": "markdown", "source": "```\n## not a heading\n```"},
             {"cell_type": "code", "source": "## a comment", "outputs": []}]
    (tmp_path / "ch01_x.ipynb").write_text(json.dumps({"cells": cells}))
    assert summary.headings(tmp_path / "ch01_x.ipynb") == ["Title", "1. Digits: benign inputs"]
    df = summary.collect_claims(tmp_path, ["ch01_x"])
    assert list(df.link) == ["ch01_x.html#digits-benign-inputs", "ch01_x.html"]
