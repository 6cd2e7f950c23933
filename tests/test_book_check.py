"""The built-book check: math rendered from a local MathJax, every figure present and captioned."""
import json

import pytest

from advxai.book_check import BookCheckError, check_book, check_page, notebook_expectations


def _notebook(path, markdown, image_cells=1, removed_image_cells=0):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": markdown}]
    png = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}, "metadata": {}}
    for _ in range(image_cells):
        cells.append({"cell_type": "code", "metadata": {}, "source": "fig", "outputs": [png], "execution_count": 1})
    for _ in range(removed_image_cells):
        cells.append({"cell_type": "code", "metadata": {"tags": ["remove-cell"]}, "source": "x", "outputs": [png],
                      "execution_count": 1})
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def _page(path, *, math=2, mathjax="../_static/mathjax/tex-chtml.js", figures=1, captioned=True, raw=""):
    spans = "".join(r'<span class="math notranslate nohighlight">\(x\)</span>' for _ in range(math))
    figs = "".join('<figure><img src="../_images/a.png">' + ("<figcaption><p>Look at the gap.</p></figcaption>"
                                                              if captioned else "") + "</figure>"
                   for _ in range(figures))
    script = f'<script src="{mathjax}"></script>' if mathjax else ""
    path.write_text(f"<html><head>{script}</head><body><main><article><p>{spans} {raw}</p>{figs}"
                    f"<pre>$not prose$</pre></article></main></body></html>")
    return path


@pytest.fixture
def site(tmp_path):
    html = tmp_path / "_build" / "html"
    (html / "book").mkdir(parents=True)
    (html / "_static" / "mathjax").mkdir(parents=True)
    (html / "_static" / "mathjax" / "tex-chtml.js").write_text("// mathjax")
    (html / "_images").mkdir()
    (html / "_images" / "a.png").write_bytes(b"png")
    return tmp_path, html


def test_expectations_count_formulas_outside_code_and_kept_figures(tmp_path):
    nb = _notebook(tmp_path / "n.ipynb", "Let $x$ and $$y = 2$$ but not `$z$` nor\n```\n$w$\n```\ncost $5 only",
                   image_cells=2, removed_image_cells=1)
    assert notebook_expectations(nb) == (2, 2)


def test_a_good_page_passes(site):
    root, html = site
    (root / "book").mkdir()
    nb = _notebook(root / "book" / "ch.ipynb", "$a$ and $b$")
    report = check_page(_page(html / "book" / "ch.html"), nb, html)
    assert report.ok, report.problems
    assert (report.math_found, report.images_found, report.figures_captioned) == (2, 1, 1)


@pytest.mark.parametrize("page_kwargs, problem", [
    (dict(math=1), "math elements"),
    (dict(mathjax="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"), "from the network"),
    (dict(mathjax="../_static/mathjax/missing.js"), "missing from the built site"),
    (dict(mathjax=None), "no MathJax script"),
    (dict(figures=0), "images on the page"),
    (dict(captioned=False), "captioned figures"),
    (dict(raw="so $x+1$ stays raw"), "raw $...$"),
])
def test_each_defect_is_named(site, page_kwargs, problem):
    root, html = site
    (root / "book").mkdir()
    nb = _notebook(root / "book" / "ch.ipynb", "$a$ and $b$")
    report = check_page(_page(html / "book" / "ch.html", **page_kwargs), nb, html)
    assert not report.ok and any(problem in p for p in report.problems), report.problems


def test_check_book_reads_the_toc_and_raises_with_every_problem(site):
    root, html = site
    (root / "book").mkdir()
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/index\nchapters:\n  - file: book/ch\n")
    _notebook(root / "book" / "ch.ipynb", "$a$ and $b$")
    _page(html / "book" / "ch.html", captioned=False)
    with pytest.raises(BookCheckError, match="ch.html: 0 captioned figures"):
        check_book(root)
    _page(html / "book" / "ch.html")
    assert [r.page for r in check_book(root)] == ["ch.html"]
