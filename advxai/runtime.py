"""Run-time services every module shares: device, seeds, the on-disk cache, the network guard.

The cache holds expensive artifacts (trained models, decoders, adversarial sets). Each entry is
keyed by a hash of everything that determines it, written atomically (a temporary file renamed
into place), stored with a SHA-256 sidecar, and loaded with ``weights_only=True``. An entry whose
checksum or key does not match is treated as missing and rebuilt, never loaded.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = [
    "resolve_device",
    "seed_everything",
    "cache_dir",
    "cache_key",
    "cache_path",
    "atomic_save",
    "load_checkpoint",
    "cached",
    "CacheCorrupted",
    "forbid_network",
    "NetworkForbidden",
]


# --------------------------------------------------------------------------- device


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA device when one is present, else the CPU.

    ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are taken literally; asking for CUDA on a machine
    without it is an error, not a silent fall-back, so a GPU run never quietly runs on the CPU.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available on this machine; use 'cpu' or 'auto'")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise ValueError(f"unknown device {device!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:N'")


# --------------------------------------------------------------------------- seeds


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; with ``deterministic`` ask torch for deterministic kernels.

    On the CPU this makes runs bit-for-bit repeatable (same machine, same thread count). On CUDA
    it selects deterministic algorithms where torch has them and warns where it does not.
    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        # cuBLAS needs this for deterministic matrix products on CUDA.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- cache


class CacheCorrupted(RuntimeError):
    """A cache entry exists but fails its checksum, its key check, or cannot be read."""


def cache_dir() -> Path:
    """``$ADVXAI_CACHE`` if set, else ``~/.cache/advxai``; created on first use."""
    root = os.environ.get("ADVXAI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "advxai")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _canonical(obj: Any) -> Any:
    """Turn a key description into plain JSON types so its hash is stable across runs."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, torch.Tensor):
        return hashlib.sha256(obj.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def cache_key(spec: dict) -> str:
    """A short hex digest of everything that determines an artifact."""
    text = json.dumps(_canonical(spec), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(kind: str, spec: dict, suffix: str = ".pt") -> Path:
    """Where the artifact described by ``spec`` lives: ``<cache>/<kind>/<name>-<hash><suffix>``."""
    name = str(spec.get("name", kind)).replace("/", "_")
    folder = cache_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{cache_key(spec)}{suffix}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    A killed process leaves at most a stray temporary file, never a half-written entry. A
    ``.sha256`` sidecar written after the rename lets ``load_checkpoint`` detect later damage.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        digest = _sha256(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _write_text_atomic(path.with_name(path.name + ".sha256"), digest)
    return path


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a file written by :func:`atomic_save`, after checking its checksum.

    Always ``weights_only=True``: a cache entry can hold tensors, numbers, strings, lists and
    dicts, never pickled code. Raises :class:`CacheCorrupted` when the file is damaged.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.exists():
        raise CacheCorrupted(f"{path}: checksum sidecar missing")
    if _sha256(path) != sidecar.read_text().strip():
        raise CacheCorrupted(f"{path}: checksum mismatch")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a damaged zip, a pickle of the wrong kind ...
        raise CacheCorrupted(f"{path}: unreadable ({exc})") from exc


def remove_entry(path: str | os.PathLike) -> None:
    """Delete a cache entry and its sidecar."""
    path = Path(path)
    for p in (path, path.with_name(path.name + ".sha256")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def cached(kind: str, spec: dict, build: Callable[[], Any], map_location: str | torch.device = "cpu") -> Any:
    """Return the artifact described by ``spec``, building and storing it on a miss.

    The stored object is ``{"spec": spec, "payload": build()}``; on load the spec is compared with
    the one asked for, so a hash collision or a renamed file can never return the wrong thing.
    A corrupted entry is reported, deleted and rebuilt.
    """
    path = cache_path(kind, spec)
    if path.exists():
        try:
            entry = load_checkpoint(path, map_location=map_location)
            if not isinstance(entry, dict) or entry.get("spec") != _canonical(spec):
                raise CacheCorrupted(f"{path}: stored spec does not match the one asked for")
            return entry["payload"]
        except CacheCorrupted as exc:
            warnings.warn(f"rebuilding a damaged cache entry: {exc}", stacklevel=2)
            remove_entry(path)
    payload = build()
    atomic_save({"spec": _canonical(spec), "payload": payload}, path)
    return payload


# --------------------------------------------------------------------------- network guard


class NetworkForbidden(ConnectionError):
    """Raised when code tries to reach a non-local host while the network guard is on."""


_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
_guard_installed = False


def _is_local(address: Any) -> bool:
    if isinstance(address, (tuple, list)) and address:
        host = address[0]
    else:  # a UNIX socket path
        return True
    if host in _LOCAL_HOSTS:
        return True
    return isinstance(host, str) and (host.startswith("127.") or host == "::ffff:127.0.0.1")


def forbid_network() -> None:
    """Make any connection to a non-loopback address raise :class:`NetworkForbidden`.

    The embedded profiles must run offline; tests and ``make test`` switch this on (also through
    ``ADVXAI_FORBID_NETWORK=1``, read when ``advxai`` is imported) so that a hidden download fails
    loudly instead of succeeding on a machine that happens to be online. Loopback stays open
    because Jupyter kernels talk to their clients over it.
    """
    global _guard_installed
    if _guard_installed:
        return
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            raise NetworkForbidden(f"network access to {address!r} is forbidden (offline profile)")
        return original_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            raise NetworkForbidden(f"network access to {address!r} is forbidden (offline profile)")
        return original_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS and not (isinstance(host, str) and host.startswith("127.")):
            raise NetworkForbidden(f"name lookup of {host!r} is forbidden (offline profile)")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    _guard_installed = True
