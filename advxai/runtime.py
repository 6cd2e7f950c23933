"""Run-time services every module shares: device, seeds, the on-disk cache, the network guard.

The cache holds expensive artifacts (trained models, decoders, adversarial sets). Each entry is
keyed by a hash of everything that determines it, written atomically (a temporary file renamed
into place), stored with a SHA-256 sidecar, and loaded with ``weights_only=True``. An entry whose
checksum or key does not match is treated as missing and rebuilt, never loaded.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import inspect
import json
import os
import random
import socket
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

__all__ = [
    "resolve_device",
    "module_device",
    "seed_everything",
    "strict_fp32",
    "cache_dir",
    "cache_key",
    "cache_path",
    "atomic_save",
    "load_checkpoint",
    "cached",
    "cache_lookup",
    "cache_store",
    "MISSING",
    "CacheCorrupted",
    "model_digest",
    "code_digest",
    "in_worker",
    "worker_mode",
    "refuse_in_worker",
    "WorkerForbidden",
    "forbid_network",
    "NetworkForbidden",
    "IMAGE_SIZE_ENV",
    "image_size_override",
]


# --------------------------------------------------------------------------- image size

IMAGE_SIZE_ENV = "ADVXAI_IMAGE_SIZE"
IMAGE_SIZE_RANGE = (32, 1024)


def image_size_override() -> int | None:
    """The side (pixels) set by ``$ADVXAI_IMAGE_SIZE`` for every image-folder data set (ImageNet, CUB,
    AwA2) and every torchvision model, in place of the models' own 224 (299 for Inception-v3); ``None``
    when unset. ``advxai run --image-size N`` sets it for a run.

    Why one setting for both: the interpreters and defenses size their maps and decoders from the
    model's input size, and the data sets load at that size, so the two must change together. It
    makes an ImageNet-scale profile affordable on a CPU (and lets the test on fake folders run the
    paper profiles in minutes); the numbers are then those of smaller images, not the paper's.
    """
    text = os.environ.get(IMAGE_SIZE_ENV, "").strip()
    if not text:
        return None
    low, high = IMAGE_SIZE_RANGE
    try:
        size = int(text)
    except ValueError:
        size = None
    if size is None or not low <= size <= high:
        raise ValueError(f"${IMAGE_SIZE_ENV} must be an integer in [{low}, {high}] (pixels), got {text!r}")
    return size


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


def module_device(module: torch.nn.Module) -> torch.device:
    """The device a module's tensors live on: its first buffer's, else its first parameter's.

    Buffers come first because the study's classifiers hold their normalisation there and freeze
    their parameters; a module with neither (a pure function of its input) runs wherever its
    input is, and counts as on the CPU."""
    for tensor in module.buffers():
        return tensor.device
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- seeds


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; with ``deterministic`` ask torch for deterministic kernels.

    On the CPU this makes runs bit-for-bit repeatable (same machine, same thread count). On CUDA
    it selects deterministic algorithms where torch has them and warns where it does not, and
    switches TensorFloat-32 off (:func:`strict_fp32`), so a GPU run computes in fp32 as the CPU does.
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
        strict_fp32()
    return torch.Generator().manual_seed(seed)


def strict_fp32() -> None:
    """fp32 arithmetic throughout on CUDA: no TensorFloat-32 in matrix products or convolutions.

    PyTorch lets cuDNN convolutions use TF32 (a 10-bit mantissa) by default on Ampere and later GPUs,
    so a "fp32" GPU run would silently differ from the CPU's arithmetic far beyond the last bits.
    The study's default is strict fp32; :func:`advxai.accelerate.fast_math` opts into TF32 for a block.
    Uses the per-backend ``fp32_precision`` settings where torch has them (mixing them with the older
    ``allow_tf32`` flags is an error in recent torch), the older flags otherwise.
    """
    matmul, conv = torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and hasattr(conv, "fp32_precision"):
        matmul.fp32_precision = "ieee"
        conv.fp32_precision = "ieee"
    else:
        matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


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
    from .fetch import file_digest

    return file_digest(path, "sha256")


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


MISSING = object()  # what cache_lookup returns for an entry that is not there


def cache_lookup(kind: str, spec: dict, map_location: str | torch.device = "cpu") -> Any:
    """The payload stored for ``spec``, or :data:`MISSING` when there is none (a damaged entry is
    reported, deleted and counts as missing). :func:`cached` is this plus :func:`cache_store`; the
    engine uses the two halves because its shards are built elsewhere and stored as they arrive."""
    path = cache_path(kind, spec)
    if path.exists():
        try:
            entry = load_checkpoint(path, map_location=map_location)
            if not isinstance(entry, dict) or entry.get("spec") != _canonical(spec):
                raise CacheCorrupted(f"{path}: stored spec does not match the one asked for")
            return entry["payload"]
        except CacheCorrupted as exc:
            warnings.warn(f"rebuilding a damaged cache entry: {exc}", stacklevel=3)
            remove_entry(path)
    return MISSING


def cache_store(kind: str, spec: dict, payload: Any) -> Path:
    """Store ``payload`` for ``spec`` atomically (with the spec beside it, checked on load)."""
    return atomic_save({"spec": _canonical(spec), "payload": payload}, cache_path(kind, spec))


def cached(kind: str, spec: dict, build: Callable[[], Any], map_location: str | torch.device = "cpu") -> Any:
    """Return the artifact described by ``spec``, building and storing it on a miss.

    The stored object is ``{"spec": spec, "payload": build()}``; on load the spec is compared with
    the one asked for, so a hash collision or a renamed file can never return the wrong thing.
    A corrupted entry is reported, deleted and rebuilt.
    """
    payload = cache_lookup(kind, spec, map_location)
    if payload is not MISSING:
        return payload
    # Every expensive artifact (a model, a decoder, a patch ...) is built here; a cluster worker
    # that got this far would train it silently, once per worker, in a cache nobody reads.
    refuse_in_worker(f"build the cache entry {kind}/{cache_path(kind, spec).name}")
    payload = build()
    cache_store(kind, spec, payload)
    return payload


# --------------------------------------------------------------------------- digests of weights and code

# module -> (fingerprint of its tensors, digest): hashing a ResNet-50's 100 MB of weights costs a
# fraction of a second, and the same model is digested once per cache key it enters.
_MODEL_DIGESTS: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, str]]" = weakref.WeakKeyDictionary()


def _tensor_fingerprint(state: dict[str, torch.Tensor]) -> tuple:
    # A tensor's version counter moves on every in-place change (an optimiser step, load_state_dict,
    # copy_), so a module trained further after its first digest is digested again.
    return tuple((name, t.data_ptr(), t._version, t.dtype, tuple(t.shape), str(t.device)) for name, t in state.items())


def model_digest(module: torch.nn.Module) -> str:
    """A short SHA-256 digest of a module's parameters and buffers (its state dict), names included.

    Every cache entry derived from a model carries it, so retraining or fixing the model makes the
    entries derived from the old weights unreachable instead of silently reused. Cached per module
    object and recomputed only when one of its tensors changed in place or was replaced.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"model_digest takes a torch.nn.Module, got {type(module).__name__}")
    state = module.state_dict(keep_vars=True)
    fingerprint = _tensor_fingerprint(state)
    known = _MODEL_DIGESTS.get(module)
    if known is not None and known[0] == fingerprint:
        return known[1]
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        h.update(name.encode())
        # the raw bytes of any dtype (numpy has no bfloat16); for float32 this equals .numpy().tobytes()
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    info = getattr(module, "info", None)
    if info is not None and "native_input_size" in getattr(info, "notes", {}):
        # the same weights at another input size ($ADVXAI_IMAGE_SIZE) give other maps, decoders and
        # adversarial images: their cache entries must not meet (native-size digests stay as they were)
        h.update(f"input_size={tuple(info.input_size)}".encode())
    digest = h.hexdigest()[:16]
    _MODEL_DIGESTS[module] = (fingerprint, digest)
    return digest


@functools.lru_cache(maxsize=None)
def _module_source_digest(module_name: str) -> str:
    """A digest of a module's code: its syntax tree without docstrings, so editing a comment or a
    docstring keeps the artifacts built by it, while any change to what it computes does not."""
    module = importlib.import_module(module_name)
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):  # no source (compiled, frozen): its name and version stand in
        return hashlib.sha256(f"{module_name} {getattr(module, '__version__', '')}".encode()).hexdigest()[:12]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:12]


def _code_modules(obj: Any, package: str, found: set[str], seen: set[int], depth: int) -> None:
    if depth < 0 or id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), torch.Tensor)):
        return
    seen.add(id(obj))
    if isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            _code_modules(item, package, found, seen, depth - 1)
        return
    if isinstance(obj, dict):
        for item in obj.values():
            _code_modules(item, package, found, seen, depth - 1)
        return
    if inspect.ismethod(obj):
        obj = obj.__func__
    if inspect.isfunction(obj):
        if (obj.__module__ or "").startswith(package):
            found.add(obj.__module__)
        for cell in obj.__closure__ or ():  # a schedule made by a factory keeps its settings in cells
            with contextlib.suppress(ValueError):
                _code_modules(cell.cell_contents, package, found, seen, depth - 1)
        return
    cls = obj if inspect.isclass(obj) else type(obj)
    mine = [c.__module__ for c in cls.__mro__ if c.__module__.startswith(package)]
    found.update(mine)
    # The model's own code is covered by its weights' digest (its training key holds its source);
    # other torch modules are library code.
    if mine and not inspect.isclass(obj) and not isinstance(obj, torch.nn.Module):
        for value in vars(obj).values():
            _code_modules(value, package, found, seen, depth - 1)


def code_digest(*objects: Any, package: str = "advxai.") -> str:
    """A digest of the package's code an object runs: the modules defining its class and base
    classes, and, recursively, those of the objects it holds (an attack's interpreter, its objective
    terms, its step schedules). Torch modules held inside (the model) are not followed: their weights'
    digest stands for them. Helpers called but not held are not seen: the digest is a cheap guard
    that a fix to an attack invalidates its cached images, not a proof of dependence.
    """
    found: set[str] = set()
    seen: set[int] = set()
    for obj in objects:
        _code_modules(obj, package, found, seen, depth=4)
    h = hashlib.sha256()
    for name in sorted(found):
        h.update(f"{name}:{_module_source_digest(name)};".encode())
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------- cluster workers

WORKER_ENV = "ADVXAI_WORKER"


class WorkerForbidden(RuntimeError):
    """Raised when a cluster worker is asked to train or download something."""


def in_worker() -> bool:
    """Whether this process is running a task of :mod:`advxai.engine` on a cluster worker."""
    return os.environ.get(WORKER_ENV, "") not in ("", "0")


@contextlib.contextmanager
def worker_mode() -> Iterator[None]:
    """Mark the process as a worker while the block runs (the engine wraps every remote task in it)."""
    before = os.environ.get(WORKER_ENV)
    os.environ[WORKER_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(WORKER_ENV, None)
        else:
            os.environ[WORKER_ENV] = before


def refuse_in_worker(action: str) -> None:
    """Raise :class:`WorkerForbidden` when called on a worker: models, decoders and weights reach
    workers through the object store, built once by the driver, never trained or downloaded there."""
    if in_worker():
        raise WorkerForbidden(
            f"a cluster worker was asked to {action}; workers never train, build cached artifacts or download. "
            "Build it on the driver (get_model, the interpreter, ...) before the sharded run and hand it to the "
            "task through the engine's objects (they travel through Ray's object store).")


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
