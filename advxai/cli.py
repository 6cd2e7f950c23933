"""The command line: ``advxai run``, ``advxai book``, ``advxai list``, ``advxai cache``.

    advxai run ch01 --profile quick -p n_images=64 -p model=efficientnet_lite0 --device cuda
    advxai run all --profile smoke --output-dir build/smoke
    advxai book                      # every chapter at the quick profile, then jupyter-book build
    advxai list                      # chapters, profiles, data sets, models, attacks, interpreters
    advxai cache [--clear]           # where the cache is, what it holds, and emptying it
"""
from __future__ import annotations

import argparse
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


def cmd_run(args) -> int:
    root = runner.repo_root()
    chapters = _chapters(args.chapters, root)
    overrides = _overrides(args.param)
    # Check every chapter's parameters before executing any, so a typo fails in seconds.
    for ch in chapters:
        runner.resolve_parameters(ch, args.profile, overrides, args.device, root)
    for ch in chapters:
        print(f"[advxai] running {ch} (profile {args.profile}) ...", flush=True)
        result = runner.run_chapter(ch, args.profile, overrides, args.device, args.output_dir, root,
                                    log_output=args.verbose)
        print(f"[advxai] {ch}: {result.seconds:.0f} s -> {result.notebook}", flush=True)
    return 0


def cmd_book(args) -> int:
    root = runner.repo_root()
    t0 = time.time()
    if not args.no_run:
        args.chapters, args.param, args.output_dir, args.verbose = ["all"], args.param, None, False
        cmd_run(args)
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
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("book", help="run every chapter (quick profile) and build the HTML book")
    p.add_argument("--profile", default="quick")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override a parameter in every chapter")
    p.add_argument("--device", default=None)
    p.add_argument("--no-run", action="store_true", help="only build from the notebooks already in book/")
    p.add_argument("--allow-warnings", action="store_true", help="do not fail on Sphinx warnings")
    p.set_defaults(func=cmd_book)

    sub.add_parser("list", help="chapters, profiles, data sets, models, attacks, interpreters").set_defaults(func=cmd_list)

    p = sub.add_parser("cache", help="show or clear the cache of trained models and artifacts")
    p.add_argument("--clear", action="store_true")
    p.set_defaults(func=cmd_cache)

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
