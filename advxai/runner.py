"""Chapter orchestration: jupytext source -> papermill execution -> executed notebook + metrics.

``run_chapter("ch01", profile="quick", overrides={"n_images": 64})``:

1. resolves the chapter (``ch01`` -> ``chapters/ch01_causal_attribution.py``);
2. reads the parameters the chapter declares (its ``parameters`` cell) and the profile's values
   (``advxai/profiles/<chapter>.yaml``, one section per profile);
3. checks everything *before* executing: an undeclared parameter, a value of the wrong type, an
   unknown profile, data set, model, attack or interpreter name fails with the valid choices;
4. executes with papermill into ``<output dir>/<chapter>.ipynb`` (the injected parameters cell
   collapsed in the book), with ``$ADVXAI_BOOK_DIR`` pointing the chapter's metrics there;
5. checks that the chapter wrote ``<chapter>.metrics.json`` and adds the run's details to it.

``engine`` / ``address`` set the chapter parameters ``engine`` and ``ray_address`` of a chapter that
declares them (its per-image work then runs on that engine, see :mod:`advxai.engine`).
:func:`run_chapters` runs several chapters at the same time, each once the chapters it builds on
(:data:`CHAPTER_AFTER`) have finished: what ``advxai run all --engine ray`` does.
"""
from __future__ import annotations

import ast
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("smoke", "quick", "paper")
PACKAGE_DIR = Path(__file__).resolve().parent
PROFILE_DIR = PACKAGE_DIR / "profiles"


class ChapterError(ValueError):
    """Bad input to a chapter run: unknown chapter/profile/parameter/name, or a wrong type."""


# --------------------------------------------------------------------------- where things are


def repo_root(start: Path | None = None) -> Path:
    """The folder holding ``chapters/`` and ``_toc.yml``: ``$ADVXAI_ROOT``, else searched upwards
    from the current folder, else the checkout this package lives in."""
    if os.environ.get("ADVXAI_ROOT"):
        return Path(os.environ["ADVXAI_ROOT"]).resolve()
    for base in [start or Path.cwd(), PACKAGE_DIR.parent]:
        for folder in [base.resolve(), *base.resolve().parents]:
            if (folder / "chapters").is_dir() and (folder / "_toc.yml").is_file():
                return folder
    raise ChapterError("cannot find the study's folder (one with chapters/ and _toc.yml); "
                       "run from inside the repository or set $ADVXAI_ROOT")


def list_chapters(root: Path | None = None) -> list[str]:
    root = root or repo_root()
    return sorted(p.stem for p in (root / "chapters").glob("ch[0-9][0-9]_*.py"))


def resolve_chapter(name: str, root: Path | None = None) -> str:
    """``ch01``, ``1``, ``ch01_causal_attribution`` or ``ch01_causal_attribution.py`` -> the stem."""
    chapters = list_chapters(root)
    key = Path(str(name)).stem
    if key.isdigit():
        key = f"ch{int(key):02d}"
    matches = [c for c in chapters if c == key or c.startswith(key + "_")]
    if len(matches) != 1:
        raise ChapterError(f"unknown chapter {name!r}; valid: {', '.join(chapters)}")
    return matches[0]


# --------------------------------------------------------------------------- parameters


def read_notebook(chapter: str, root: Path | None = None):
    import jupytext

    root = root or repo_root()
    nb = jupytext.read(root / "chapters" / f"{chapter}.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def declared_parameters(chapter: str, root: Path | None = None) -> dict[str, Any]:
    """Name -> default value of every assignment in the chapter's ``parameters`` cell."""
    nb = read_notebook(chapter, root)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ChapterError(f"{chapter}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    params: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name):
                try:
                    params[target.id] = ast.literal_eval(node.value)
                except ValueError as exc:
                    raise ChapterError(f"{chapter}: parameter {target.id} must have a literal default") from exc
    return params


def profile_parameters(chapter: str, profile: str) -> dict[str, Any]:
    """The profile's values for a chapter (``advxai/profiles/<chapter>.yaml``)."""
    if profile not in PROFILES:
        raise ChapterError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    path = PROFILE_DIR / f"{chapter}.yaml"
    if not path.exists():
        raise ChapterError(f"{chapter}: no profile file {path.relative_to(PACKAGE_DIR.parent)}")
    data = yaml.safe_load(path.read_text()) or {}
    missing = [p for p in PROFILES if p not in data]
    if missing:
        raise ChapterError(f"{path.name}: profiles {missing} missing (each of {PROFILES} must be listed)")
    return dict(data[profile] or {})


def parse_value(text: str) -> Any:
    """``-p key=value`` values are YAML scalars/lists: ``8``, ``0.03``, ``true``, ``[a, b]``, ``resnet50``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _name_registries() -> list[tuple[str, Any]]:
    """(parameter-name stem, registry) pairs: a parameter named ``dataset``, ``*_dataset``,
    ``datasets`` or ``*_datasets`` holds data-set names, and so on."""
    from .data import DATASETS
    from .models import MODELS

    pairs = [("dataset", DATASETS), ("model", MODELS)]
    for module, attr, stem in (("attacks", "ATTACKS", "attack"), ("interpreters", "INTERPRETERS", "interpreter")):
        try:
            mod = __import__(f"advxai.{module}", fromlist=[attr])
            pairs.append((stem, getattr(mod, attr)))
        except (ImportError, AttributeError):
            pass
    return pairs


def check_names(params: dict[str, Any]) -> None:
    for key, value in params.items():
        for stem, registry in _name_registries():
            if key in (stem, stem + "s") or key.endswith("_" + stem) or key.endswith("_" + stem + "s"):
                for item in (value if isinstance(value, (list, tuple)) else [value]):
                    if item in (None, ""):
                        continue
                    try:
                        registry.check(item)
                    except ValueError as exc:
                        raise ChapterError(f"parameter {key}: {exc}") from None


def resolve_parameters(chapter: str, profile: str = "quick", overrides: dict | None = None,
                       device: str | None = None, root: Path | None = None, engine: str | None = None,
                       address: str | None = None) -> dict[str, Any]:
    """The parameters a run injects: profile values, then overrides; all checked. ``engine`` and
    ``address`` set the parameters ``engine`` and ``ray_address`` where the chapter declares them."""
    declared = declared_parameters(chapter, root)
    params = profile_parameters(chapter, profile)
    params.update(overrides or {})
    if device is not None:
        params["device"] = device
    if engine is not None and "engine" in declared:
        params["engine"] = engine
    if address is not None and "ray_address" in declared:
        params["ray_address"] = address
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ChapterError(f"{chapter} does not declare parameter(s) {unknown}; declared: {', '.join(declared)}")
    for key, value in params.items():
        if not _type_ok(declared[key], value):
            raise ChapterError(f"{chapter}: parameter {key}={value!r} should be of type "
                               f"{type(declared[key]).__name__} like its default {declared[key]!r}")
    check_names({**declared, **params})
    if "engine" in params:
        from .engine import ENGINES

        if params["engine"] not in ENGINES:
            raise ChapterError(f"{chapter}: unknown engine {params['engine']!r}; valid: {', '.join(ENGINES)}")
    if "shard_size" in params:
        from .engine import check_shard_size

        try:
            check_shard_size(params["shard_size"])
        except ValueError as exc:
            raise ChapterError(f"{chapter}: {exc}") from None
    if "device" in params:
        from .runtime import resolve_device

        try:
            resolve_device(params["device"])
        except ValueError as exc:
            raise ChapterError(str(exc)) from None
    return params


# --------------------------------------------------------------------------- running


@dataclass
class RunResult:
    chapter: str
    notebook: Path
    metrics: Path
    seconds: float
    parameters: dict


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_chapter(chapter: str, profile: str = "quick", overrides: dict | None = None, device: str | None = None,
                output_dir: str | Path | None = None, root: Path | None = None, log_output: bool = False,
                timeout: int | None = None, engine: str | None = None, address: str | None = None) -> RunResult:
    import papermill

    root = root or repo_root()
    chapter = resolve_chapter(chapter, root)
    params = resolve_parameters(chapter, profile, overrides, device, root, engine, address)
    from .runtime import image_size_override

    image_size_override()  # a bad $ADVXAI_IMAGE_SIZE stops here, not inside the kernel
    out_dir = Path(output_dir or root / "book").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = out_dir / f"{chapter}.ipynb"
    metrics = out_dir / f"{chapter}.metrics.json"
    metrics.unlink(missing_ok=True)  # a stale file must not pass for this run's numbers

    nb = read_notebook(chapter, root)
    env_before = {k: os.environ.get(k) for k in ("ADVXAI_BOOK_DIR", "ADVXAI_ROOT", "ADVXAI_PROFILE")}
    os.environ.update(ADVXAI_BOOK_DIR=str(out_dir), ADVXAI_ROOT=str(root), ADVXAI_PROFILE=profile)
    t0 = time.time()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / f"{chapter}.ipynb"
            import nbformat

            nbformat.write(nb, source)
            papermill.execute_notebook(
                str(source), str(notebook), parameters=params, kernel_name="python3", cwd=str(out_dir),
                progress_bar=False, log_output=log_output, execution_timeout=timeout,
            )
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if notebook.exists():
            _tidy_notebook(notebook)
    seconds = time.time() - t0
    if not metrics.exists():
        raise ChapterError(f"{chapter} ran but wrote no {metrics.name}: a chapter must call advxai.report.save_metrics")
    data = json.loads(metrics.read_text())
    data["run"] = {
        "profile": profile, "parameters": params, "seconds": round(seconds, 1), "commit": _git_commit(root),
        "image_size": image_size_override(),  # None: every model at its own input size
        "python": platform.python_version(), "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    tmp = metrics.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, metrics)
    return RunResult(chapter, notebook, metrics, seconds, params)


# --------------------------------------------------------------------------- chapters at the same time

# The chapters each chapter builds on, when chapters run at the same time. Every chapter uses the
# models chapter 0 trains; chapter 4 attacks RTS with the decoder chapter 3 trains and caches (two
# chapters training it at once would do the same hours twice); chapter 6 reuses chapters 3 and 5's
# adversarial sets and collects every chapter's claims for the book's summary, so it comes last.
# "*" means every chapter numbered below it; a chapter not listed here waits for all of those.
CHAPTER_AFTER: dict[str, tuple[str, ...]] = {
    "ch00": (), "ch01": ("ch00",), "ch02": ("ch00",), "ch03": ("ch00",), "ch04": ("ch00", "ch03"),
    "ch05": ("ch00",), "ch06": ("*",),
}


def _number(chapter: str) -> int:
    return int(chapter.split("_")[0][2:])


def chapter_dependencies(chapters: list[str]) -> dict[str, set[str]]:
    """For each chapter, those among ``chapters`` that must finish before it starts."""
    out = {}
    for ch in chapters:
        after = CHAPTER_AFTER.get(ch.split("_")[0], ("*",))
        out[ch] = {c for c in chapters if c != ch and (c.split("_")[0] in after
                                                       or ("*" in after and _number(c) < _number(ch)))}
    return out


def runs_alone(chapter: str, chapters: list[str]) -> bool:
    """Whether ``chapter`` never shares the machine when ``chapters`` run at the same time: every other
    chapter finishes before it starts or starts after it finishes (chapter 0 and chapter 6 in the
    book). Decided by the dependencies alone, never by timing, so a chapter's thread count (and with
    it its last bits of floating point) is the same in every run."""
    deps = chapter_dependencies(chapters)

    def before(a: str, b: str, seen=frozenset()) -> bool:  # a finishes before b starts
        return a in deps[b] or any(before(a, d, seen | {b}) for d in deps[b] if d not in seen)

    return all(before(c, chapter) or before(chapter, c) for c in chapters if c != chapter)


def _run_chapter_in_process(kwargs: dict) -> RunResult:
    """One chapter in a process of its own (a chapter run changes the process's environment);
    ``threads`` (when given) is the chapter kernel's thread count, set before torch is imported."""
    threads = kwargs.pop("threads", None)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    try:
        return run_chapter(**kwargs)
    except ChapterError:
        raise
    except Exception as exc:  # papermill's errors do not survive pickling: their text does
        raise RuntimeError(f"{kwargs['chapter']} failed:\n{exc}") from None


def run_chapters(chapters: list[str], *, log=print, executor=None, jobs: int | None = None,
                 cores: int | None = None, **kwargs) -> dict[str, RunResult | BaseException]:
    """Run ``chapters`` at the same time, at most ``jobs`` at once (default: all), each once those it
    builds on (:func:`chapter_dependencies`) have finished; a chapter whose prerequisite failed is not
    run. ``kwargs`` go to :func:`run_chapter`. Returns each chapter's result or error, in the order given.

    With ``cores`` (the machine's CPU cores to share), each chapter's kernel gets ``cores // jobs``
    threads, or all of them when it always runs alone (:func:`runs_alone`): the cores are neither
    left idle nor oversubscribed, and the thread count does not depend on timing."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    import multiprocessing

    deps = chapter_dependencies(chapters)
    jobs = max(1, len(chapters)) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ChapterError(f"jobs must be a positive integer, got {jobs!r}")
    threads = {ch: (cores if runs_alone(ch, chapters) else max(1, cores // jobs)) if cores else None
               for ch in chapters}
    if executor is None:
        executor = ProcessPoolExecutor(max_workers=min(jobs, max(1, len(chapters))),
                                       mp_context=multiprocessing.get_context("spawn"))
    results: dict[str, RunResult | BaseException] = {}
    # Chapters others wait for start first (chapter 3 before 1, 2 and 5: chapter 4 needs it), so a
    # long chain of prerequisites does not run last, alone; otherwise in the order given.
    waiting = sorted(chapters, key=lambda ch: -sum(ch in deps[other] for other in chapters))
    running = {}
    with executor:
        while waiting or running:
            for ch in list(waiting):
                failed = sorted(d for d in deps[ch] if isinstance(results.get(d), BaseException))
                if failed:
                    waiting.remove(ch)
                    results[ch] = ChapterError(f"{ch} not run: it builds on {', '.join(failed)}, which failed")
                    log(f"[advxai] {results[ch]}")
                elif all(d in results for d in deps[ch]) and len(running) < jobs:
                    waiting.remove(ch)
                    at = f", {threads[ch]} thread{'s' * (threads[ch] > 1)}" if threads[ch] else ""
                    log(f"[advxai] running {ch} (profile {kwargs.get('profile', 'quick')}{at}) ...")
                    running[executor.submit(_run_chapter_in_process,
                                            {"chapter": ch, "threads": threads[ch], **kwargs})] = ch
            if not running:  # only chapters whose prerequisites can never finish are left
                for ch in waiting:
                    results[ch] = ChapterError(f"{ch} not run: its prerequisites form a cycle")
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                ch = running.pop(future)
                try:
                    results[ch] = result = future.result()
                    log(f"[advxai] {ch}: {result.seconds:.0f} s -> {result.notebook}")
                except Exception as exc:
                    results[ch] = exc
                    log(f"[advxai] {ch} failed: {exc}")
    return {ch: results[ch] for ch in chapters}


def models_to_train(chapters: list[str], profile: str = "quick", overrides: dict | None = None,
                    root: Path | None = None) -> list[tuple[str, str]]:
    """``(model, train_budget)`` for every model trained here (the embedded ones) that the chapters'
    parameters name: what :func:`train_models` trains before chapters run side by side. Ordered so
    that models of different data sets alternate (two workers never build one training set at once)."""
    from .models.embedded import TRAINED

    found: dict[tuple[str, str], None] = {}
    for ch in chapters:
        params = {**declared_parameters(ch, root), **resolve_parameters(ch, profile, overrides, root=root)}
        budget = params.get("train_budget", "full")
        for value in params.values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, str) and item in TRAINED:
                    found[(item, budget)] = None
    by_data: dict[str, list[tuple[str, str]]] = {}
    for pair in sorted(found):
        by_data.setdefault(TRAINED[pair[0]].dataset, []).append(pair)
    rounds = max((len(v) for v in by_data.values()), default=0)
    return [group[k] for k in range(rounds) for group in by_data.values() if k < len(group)]


def _train_in_process(name: str, train_budget: str, device: str | None, threads: int) -> str:
    import torch

    from .models import get_model

    torch.set_num_threads(threads)
    get_model(name, device=device or "auto", train_budget=train_budget)  # trains and caches, or loads
    return name


def train_models(pairs: list[tuple[str, str]], *, jobs: int, cores: int, device: str | None = None, log=print,
                 executor=None) -> None:
    """Train (or find in the cache) the models ``pairs`` names, ``jobs`` at a time with ``cores // jobs``
    threads each: done by the chapters one after the other, on a chapter's threads, this is most of
    a cold book's first chapter. A failure is raised: every chapter needs its models."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    if not pairs:
        return
    threads = max(1, cores // jobs)
    if executor is None:
        executor = ProcessPoolExecutor(max_workers=min(jobs, len(pairs)), mp_context=multiprocessing.get_context("spawn"))
    t0 = time.time()
    log(f"[advxai] training (or loading) {len(pairs)} models, {jobs} at a time, {threads} thread(s) each: "
        + ", ".join(name for name, _ in pairs))
    with executor:
        futures = [executor.submit(_train_in_process, name, budget, device, threads) for name, budget in pairs]
        for future in futures:
            future.result()
    log(f"[advxai] models ready in {time.time() - t0:.0f} s")


def _tidy_notebook(path: Path) -> None:
    """Collapse the parameters cells in the book: the chapter's defaults and papermill's injected values
    (readers open them with a click; the page starts with the story, not a list of settings)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ({"injected-parameters", "parameters"} & set(tags)) and "hide-cell" not in tags:
            tags.append("hide-cell")
    nbformat.write(nb, path)


def build_book(root: Path | None = None, strict: bool = True, check: bool = True) -> Path:
    """``jupyter-book build`` (execution off: papermill already ran); fails on any warning.

    MathJax is copied into ``<root>/_static/mathjax`` first (:mod:`advxai.book_assets`), so the book
    renders its formulas offline; with ``check`` the built pages are then checked
    (:func:`advxai.book_check.check_book`: formulas rendered from the local MathJax, every figure present
    and captioned), and a page that falls short fails the build with the list of what is missing.
    """
    from .book_assets import install_mathjax
    from .fetch import FetchError

    root = root or repo_root()
    try:
        install_mathjax(root / "_static")
    except FetchError as exc:
        raise RuntimeError(f"the book needs its local MathJax: {exc}") from exc
    exe = Path(sys.executable).with_name("jupyter-book")  # the console script of this environment
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--keep-going"]
    if strict:
        cmd.append("-W")
    proc = subprocess.run(cmd, cwd=root)
    index = root / "_build" / "html" / "index.html"
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); warnings count as failures")
    if not index.exists():
        raise RuntimeError(f"jupyter-book build produced no {index}")
    if check:
        from .book_check import check_book

        check_book(root)
    return index
