"""The book's own web assets, served from the built site so it renders without network access.

Jupyter Book loads MathJax from a CDN by default; a book read offline (or built on a machine that
cannot reach the CDN) then shows raw LaTeX. MathJax 3 ships in the npm package ``mathjax``: ``advxai
fetch mathjax`` (``make install`` runs it) takes its tarball with ``npm pack`` (no install, so none of
its scripts run), checks its SHA-256, and places its ``es5`` folder (the browser bundles and fonts)
in the cache by one atomic rename. ``advxai book`` copies that folder into ``<book>/_static/mathjax``
before building, and ``_config.yml`` points Sphinx's ``mathjax_path`` at it.

``$ADVXAI_MATHJAX`` may name an existing MathJax 3 ``es5`` folder instead (Debian's ``libjs-mathjax``
has one under ``/usr/share/javascript/mathjax``, for example); it is used as it is.

Standard library only, like :mod:`advxai.fetch`.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from .fetch import FetchError, NpmPackFailed, _cache_root, file_digest, npm_pack

__all__ = ["MATHJAX_PACKAGE", "MATHJAX_SHA256", "MATHJAX_ENTRY", "FETCH_MATHJAX", "mathjax_folder",
           "mathjax_present", "fetch_mathjax", "extract_es5", "install_mathjax"]

MATHJAX_PACKAGE = "mathjax@3.2.2"
# SHA-256 of the registry's tarball of mathjax 3.2.2 (npm tarballs are immutable once published)
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
MATHJAX_ENTRY = "tex-chtml.js"  # the bundle the book loads: TeX input, HTML-CSS output
FETCH_MATHJAX = "advxai fetch mathjax"
_MEMBER_PREFIX = "package/es5/"
_MAX_BYTES = 16 << 20  # the largest file of the es5 folder is ~2 MB


def mathjax_folder() -> Path:
    """Where the ``es5`` folder is: ``$ADVXAI_MATHJAX`` if set, else ``<cache>/assets/mathjax-3.2.2/es5``."""
    if os.environ.get("ADVXAI_MATHJAX"):
        return Path(os.environ["ADVXAI_MATHJAX"]).expanduser()
    return _cache_root() / "assets" / MATHJAX_PACKAGE.replace("@", "-") / "es5"


def mathjax_present(folder: Path | None = None) -> bool:
    folder = folder or mathjax_folder()
    return (folder / MATHJAX_ENTRY).is_file() and (folder / "output" / "chtml" / "fonts").is_dir()


def extract_es5(tarball: str | os.PathLike, dest: str | os.PathLike) -> int:
    """Copy the regular files under ``package/es5/`` of the tarball into ``dest``; returns how many.

    Member names are checked before use: anything that is not a plain relative path below
    ``package/es5/`` (``..``, an absolute path, a link) is refused, so nothing lands outside ``dest``.
    """
    dest = Path(dest)
    count = 0
    try:
        with tarfile.open(tarball, mode="r:gz") as tar:
            for member in tar:
                if not member.name.startswith(_MEMBER_PREFIX) or member.isdir():
                    continue
                relative = Path(member.name[len(_MEMBER_PREFIX):])
                if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                    raise FetchError(f"{tarball}: member {member.name!r} points outside the es5 folder")
                if not member.isreg():
                    raise FetchError(f"{tarball}: {member.name} is not a regular file; refusing it")
                if member.size > _MAX_BYTES:
                    raise FetchError(f"{tarball}: {member.name} is {member.size:,} bytes, larger than MathJax's files")
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                count += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"could not copy MathJax out of {tarball}: {type(exc).__name__}: {exc}") from exc
    if not (dest / MATHJAX_ENTRY).is_file():
        raise FetchError(f"{tarball}: no {_MEMBER_PREFIX}{MATHJAX_ENTRY} in it: not the MathJax 3 package")
    return count


def _npm_pack(workdir: Path) -> Path:
    if shutil.which("npm") is None:
        raise FetchError(f"npm is not installed: install Node.js and npm, then run '{FETCH_MATHJAX}' "
                         "(or set $ADVXAI_MATHJAX to a MathJax 3 es5 folder)")
    try:
        return npm_pack(MATHJAX_PACKAGE, workdir)
    except NpmPackFailed as exc:
        raise FetchError(f"{exc}; run '{FETCH_MATHJAX}' once npm can reach its registry, or set $ADVXAI_MATHJAX "
                         "to a MathJax 3 es5 folder") from exc


def fetch_mathjax(force: bool = False, tarball: str | os.PathLike | None = None) -> Path:
    """Place MathJax's ``es5`` folder in the cache (see the module docstring); its path.

    Does nothing when it is already there (unless ``force``) or when ``$ADVXAI_MATHJAX`` names one.
    ``tarball``: a local copy of the npm tarball instead of ``npm pack`` (checked the same way).
    """
    folder = mathjax_folder()
    if os.environ.get("ADVXAI_MATHJAX"):
        if not mathjax_present(folder):
            raise FetchError(f"$ADVXAI_MATHJAX={folder} holds no MathJax 3 es5 folder ({MATHJAX_ENTRY} and "
                             "output/chtml/fonts/)")
        return folder
    if mathjax_present(folder) and not force:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mathjax-", dir=folder.parent) as tmp:
        work = Path(tmp)
        source = Path(tarball) if tarball else _npm_pack(work)
        digest = file_digest(source)
        if digest != MATHJAX_SHA256:
            raise FetchError(f"{source.name}: SHA-256 {digest}, expected {MATHJAX_SHA256} for {MATHJAX_PACKAGE}; "
                             "nothing was placed")
        stage = work / "es5"
        extract_es5(source, stage)
        old = work / "old"
        if folder.exists():
            os.replace(folder, old)
        os.replace(stage, folder)  # atomic: the folder is absent or complete
    return folder


def install_mathjax(static_dir: str | os.PathLike) -> Path:
    """Copy the ``es5`` folder to ``<static_dir>/mathjax`` (what ``_config.yml``'s ``mathjax_path`` names),
    fetching it first when it is not in the cache; the entry script's path."""
    source = fetch_mathjax()
    static_dir = Path(static_dir)
    target = static_dir / "mathjax"
    if (target / MATHJAX_ENTRY).is_file() and file_digest(target / MATHJAX_ENTRY) == file_digest(source / MATHJAX_ENTRY):
        return target / MATHJAX_ENTRY
    static_dir.mkdir(parents=True, exist_ok=True)
    staging = static_dir / ".mathjax-staging"  # copied whole, then renamed: never a half-copied folder
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target / MATHJAX_ENTRY
