"""Checks of the built HTML book: every chapter page has its math rendered offline and its figures.

``advxai book`` runs :func:`check_book` after Jupyter Book has built ``_build/html``. For each
chapter of ``_toc.yml`` it compares the page with the executed notebook it was rendered from:

* **math**: every ``$...$`` / ``$$...$$`` of the notebook's markdown became a MathJax math element
  (``span.math`` / ``div.math``) on the page, no raw ``$`` formula is left in the text, and the page
  loads MathJax from a file inside the built site (the book must render formulas without network
  access, so a CDN address is an error);
* **figures**: the page shows at least as many images as the notebook has image outputs in cells
  the page does not remove, every image file exists, and every figure has a caption (a ``figure``
  element with a ``figcaption``; chapters give captions through the cell metadata
  ``mystnb.figure.caption``).

Only the standard library's HTML parser is used, so the check runs wherever the book builds.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import yaml

__all__ = ["PageReport", "check_page", "check_book", "BookCheckError", "notebook_expectations"]

# Inline $...$ (not $$) and display $$...$$ in markdown, outside code spans and fences.
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)(?<![\\$\s])\$(?!\$)")
_REMOVED_TAGS = {"remove-cell", "remove-output"}


class BookCheckError(RuntimeError):
    """The built book misses rendered math or figures on some page; the message lists every problem."""


@dataclass
class PageReport:
    page: str
    math_expected: int = 0
    math_found: int = 0
    images_expected: int = 0
    images_found: int = 0
    figures: int = 0
    figures_captioned: int = 0
    mathjax_src: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _strip_code(markdown: str) -> str:
    markdown = re.sub(r"^(```|~~~).*?^\1", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", markdown)


def notebook_expectations(notebook: Path) -> tuple[int, int]:
    """(formulas in the markdown cells, image outputs in cells the page keeps) of an executed notebook."""
    cells = json.loads(Path(notebook).read_text()).get("cells", [])
    formulas = images = 0
    for cell in cells:
        source = cell.get("source", "")
        source = source if isinstance(source, str) else "".join(source)
        if cell.get("cell_type") == "markdown":
            text = _strip_code(source)
            displays = len(_DISPLAY.findall(text))
            formulas += displays + len(_INLINE.findall(_DISPLAY.sub("", text)))
        elif cell.get("cell_type") == "code":
            if _REMOVED_TAGS & set(cell.get("metadata", {}).get("tags", [])):
                continue
            for out in cell.get("outputs", []):
                if any(k.startswith("image/") for k in out.get("data", {})):
                    images += 1
    return formulas, images


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_OPAQUE = {"script", "style", "pre", "code", "textarea"}  # their text is not prose


class _PageParser(HTMLParser):
    """Counts math elements, images, figures with captions and script sources, and collects prose text
    (outside math, code and scripts, inside the page's main article) that still holds a raw ``$...$``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.math = 0
        self.images: list[str] = []
        self.scripts: list[str] = []
        self.figures = 0
        self.captions = 0
        self.raw_dollar_text: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, text inside is not prose)
        self._figure_has_caption: list[bool] = []

    def _opaque(self) -> bool:
        return any(opaque for _, opaque in self._stack)

    def _in_main(self) -> bool:
        return any(tag in ("main", "article") for tag, _ in self._stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        is_math = tag in ("span", "div") and "math" in classes
        self.math += int(is_math)
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag == "figure":
            self.figures += 1
            self._figure_has_caption.append(False)
        if tag == "figcaption" and self._figure_has_caption:
            self._figure_has_caption[-1] = True
        if tag not in _VOID:
            self._stack.append((tag, is_math or tag in _OPAQUE))

    def handle_endtag(self, tag):
        if tag == "figure" and self._figure_has_caption:
            self.captions += int(self._figure_has_caption.pop())
        for i in range(len(self._stack) - 1, -1, -1):  # tolerate unclosed inner elements
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data):
        if self._in_main() and not self._opaque() and re.search(r"\$[^$\s][^$]*\$", data):
            self.raw_dollar_text.append(data.strip()[:80])


def check_page(html_file: Path, notebook: Path | None, site_root: Path) -> PageReport:
    """Check one built page against the notebook it was rendered from (see the module docstring)."""
    html_file = Path(html_file)
    report = PageReport(page=html_file.name)
    if not html_file.exists():
        report.problems.append(f"{html_file} was not built")
        return report
    parser = _PageParser()
    parser.feed(html_file.read_text(encoding="utf-8"))
    report.math_found, report.images_found = parser.math, len(parser.images)
    report.figures, report.figures_captioned = parser.figures, parser.captions
    if notebook is not None and Path(notebook).exists():
        report.math_expected, report.images_expected = notebook_expectations(Path(notebook))
    mathjax = [s for s in parser.scripts if "mathjax" in s.lower() or "tex-" in s.lower()]
    report.mathjax_src = mathjax[0] if mathjax else None
    if report.math_expected:
        if report.math_found < report.math_expected:
            report.problems.append(f"{report.math_found} math elements for {report.math_expected} formulas "
                                   "in the notebook's markdown")
        if not mathjax:
            report.problems.append("formulas but no MathJax script on the page")
        for src in mathjax:
            if re.match(r"^(https?:)?//", src):
                report.problems.append(f"MathJax comes from the network ({src}); the book must render offline")
            elif not (html_file.parent / src.split("?")[0]).resolve().exists():
                report.problems.append(f"MathJax script {src} is missing from the built site")
    if parser.raw_dollar_text:
        report.problems.append(f"raw $...$ left in the text: {parser.raw_dollar_text[:3]}")
    if report.images_found < report.images_expected:
        report.problems.append(f"{report.images_found} images on the page for {report.images_expected} image "
                               "outputs in the notebook")
    for src in parser.images:
        if re.match(r"^(https?:|data:)", src):
            continue
        if not (html_file.parent / src.split("?")[0]).resolve().exists():
            report.problems.append(f"image {src} is missing from the built site")
    uncaptioned = report.figures - report.figures_captioned
    if report.images_expected and report.figures_captioned < report.images_expected:
        report.problems.append(f"{report.figures_captioned} captioned figures for {report.images_expected} "
                               f"figure outputs ({uncaptioned} figure elements without a caption)")
    return report


def _toc_pages(root: Path) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in [toc, *toc.get("parts", [])]:
        for entry in part.get("chapters", []):
            pages.append(entry["file"])
    return pages


def check_book(root: Path, html_dir: Path | None = None, chapters_only: bool = True) -> list[PageReport]:
    """Check every page of ``_toc.yml`` (by default only the executed chapters); raise
    :class:`BookCheckError` listing every problem, or return the reports."""
    root = Path(root)
    html_dir = Path(html_dir or root / "_build" / "html")
    reports = []
    for page in _toc_pages(root):
        notebook = root / f"{page}.ipynb"
        if chapters_only and not notebook.exists():
            continue
        reports.append(check_page(html_dir / f"{page}.html", notebook if notebook.exists() else None, html_dir))
    bad = [r for r in reports if not r.ok]
    if bad:
        lines = [f"{r.page}: {p}" for r in bad for p in r.problems]
        raise BookCheckError("the built book falls short:\n  " + "\n  ".join(lines))
    return reports
