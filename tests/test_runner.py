import re
from pathlib import Path

import jupytext
import pytest
import yaml

from advxai import cli, runner

ROOT = Path(__file__).resolve().parents[1]


def test_chapters_are_found_and_resolved():
    chapters = runner.list_chapters(ROOT)
    assert "ch00_data_and_models" in chapters
    assert runner.resolve_chapter("ch00", ROOT) == "ch00_data_and_models"
    assert runner.resolve_chapter("0", ROOT) == "ch00_data_and_models"
    assert runner.resolve_chapter("chapters/ch00_data_and_models.py", ROOT) == "ch00_data_and_models"
    with pytest.raises(runner.ChapterError, match="valid: ch00_data_and_models"):
        runner.resolve_chapter("ch99", ROOT)


@pytest.mark.parametrize("chapter", runner.list_chapters(ROOT))
def test_every_profile_of_every_chapter_is_valid(chapter):
    """Each chapter has smoke/quick/paper sections, and every value is declared, typed and named right."""
    declared = runner.declared_parameters(chapter, ROOT)
    assert "device" in declared and "seed" in declared
    for profile in runner.PROFILES:
        params = runner.resolve_parameters(chapter, profile, root=ROOT)
        assert set(params) <= set(declared)
    assert runner.profile_parameters(chapter, "smoke"), "the smoke profile must shrink something"


@pytest.mark.parametrize("chapter", runner.list_chapters(ROOT))
def test_chapter_anatomy(chapter):
    source = (ROOT / "chapters" / f"{chapter}.py").read_text()
    assert 'tags=["parameters"]' in source
    assert "report.save_metrics(" in source, "a chapter must publish its headline numbers"
    notebook = jupytext.reads(source, fmt="py:percent")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    checked = [c for c in code if "nbval-check-output" in c.metadata.get("tags", [])]
    assert checked, "a chapter must tag a cell of rounded key numbers for nbval ('nbval-check-output')"
    assert all("remove-cell" in c.metadata["tags"] for c in checked), "nbval's check cells stay off the page"
    assert "NBVAL_CHECK_OUTPUT" not in source, "nbval's check cells are marked by tags, not comments"
    defining = [c.source.splitlines()[0] for c in code if re.search(r"^\s*(def|class) ", c.source, re.M)]
    assert not defining, f"experiments live in advxai.studies; the chapter defines: {defining}"
    assert len(source.splitlines()) <= 400, "a chapter stays short: its experiments live in advxai.studies"


def test_toc_lists_every_chapter():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for c in toc["chapters"]]
    chapters = set(runner.list_chapters(ROOT))
    # every executed chapter once, in order; other top-level entries are plain pages that exist
    assert [f for f in files if f.removeprefix("book/") in chapters] == [f"book/{c}" for c in sorted(chapters)]
    pages = [f for f in files if f.removeprefix("book/") not in chapters]
    assert all((ROOT / f"{f}.md").is_file() for f in pages), pages


def test_bad_parameters_fail_before_running():
    with pytest.raises(runner.ChapterError, match="does not declare parameter.*declared: device"):
        runner.resolve_parameters("ch00_data_and_models", "quick", {"epsilon": 0.1}, root=ROOT)
    with pytest.raises(runner.ChapterError, match="should be of type int"):
        runner.resolve_parameters("ch00_data_and_models", "quick", {"seed": "zero"}, root=ROOT)
    with pytest.raises(runner.ChapterError, match="unknown profile 'fast'; valid: smoke, quick, paper"):
        runner.resolve_parameters("ch00_data_and_models", "fast", root=ROOT)
    with pytest.raises(runner.ChapterError, match="unknown model 'resnet18'.*valid: .*shapes_resnet"):
        runner.resolve_parameters("ch00_data_and_models", "quick", {"models": ["resnet18"]}, root=ROOT)
    with pytest.raises(runner.ChapterError, match="device"):
        runner.resolve_parameters("ch00_data_and_models", "quick", {"device": "tpu"}, root=ROOT)


def test_cli_reports_bad_input_with_exit_code_2(capsys):
    assert cli.main(["run", "ch00", "-p", "nonsense=1"]) == 2
    assert "does not declare" in capsys.readouterr().err
    assert cli.main(["run", "ch42"]) == 2
    assert cli.main(["run", "ch00", "-p", "noequals"]) == 2


def test_parse_value():
    assert runner.parse_value("8") == 8
    assert runner.parse_value("0.03") == 0.03
    assert runner.parse_value("[a, b]") == ["a", "b"]
    assert runner.parse_value("true") is True
    assert runner.parse_value("shapes_resnet") == "shapes_resnet"


def test_install_files_agree():
    """environment.yml, the Makefile and pyproject.toml pin the same torch and the same extras."""
    makefile = (ROOT / "Makefile").read_text()
    env = (ROOT / "environment.yml").read_text()
    pins = re.search(r"TORCH_PINS := (.*)", makefile).group(1).split()
    for pin in pins:
        assert pin in env
    extras = re.search(r'pip install --quiet -e "\.\[([a-z,]+)\]"', makefile).group(1)
    assert f"-e .[{extras}]" in env
    pyproject_extras = set(re.findall(r"^([a-z]+) = \[", (ROOT / "pyproject.toml").read_text(), flags=re.M))
    assert set(extras.split(",")) <= pyproject_extras, "the Makefile installs an extra pyproject.toml lacks"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"jupyter-book>=1.0.4.post1,<2"' in pyproject
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme


def test_config_renders_without_executing():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True


def test_tidy_notebook_collapses_both_parameter_cells(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("a = 2", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(a)")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    runner._tidy_notebook(path)
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert tags == [["parameters", "hide-cell"], ["injected-parameters", "hide-cell"], []]
