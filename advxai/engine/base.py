"""What both engines share: shards of image positions, their cache keys, and running one shard.

A job applies ``task`` to shards of per-image inputs. The driver splits the ``N`` images into shards of
``shard_size`` consecutive positions, looks each shard up in the cache under the job's key plus the
shard's image indices and a digest of its inputs, computes only the shards that are missing (in this
process, or as Ray tasks), stores each one the moment it arrives, and concatenates the per-image
results in the original order. A run that dies keeps every shard it finished.
"""
from __future__ import annotations

import dataclasses
import hashlib
import pickle
import traceback
import warnings
from collections.abc import Mapping
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from ..errors import EmptySelection
from ..runtime import MISSING, WorkerForbidden, cache_key, cache_lookup, cache_store, module_device

__all__ = ["Engine", "Job", "RunStats", "ShardFailed", "ShardError", "RemoteTraceback", "NOT_RETRIED",
           "check_shard_size", "check_retries", "run_shard", "shard_failure"]

# Errors that come out the same on every attempt (bad settings or inputs, a failed assertion, a
# worker asked to train): retrying them only multiplies the time to fail, so they end the run at
# once, raised as their own type (callers catch a ValueError as before), the shard named in the
# message. Everything else (out of memory, a lost node, I/O) is retried, then ends the run as
# ShardFailed.
NOT_RETRIED = (ValueError, TypeError, KeyError, IndexError, AttributeError, NotImplementedError, AssertionError,
               WorkerForbidden)


def check_shard_size(shard_size: Any) -> int | None:
    if shard_size is None:
        return None
    if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size < 1:
        raise ValueError(f"shard_size must be an integer >= 1 (images per shard), or None for one shard holding "
                         f"every image; got {shard_size!r}")
    return int(shard_size)


def check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or not 0 <= retries <= 100:
        raise ValueError(f"retries must be an integer in [0, 100] (attempts after the first), got {retries!r}")
    return int(retries)


def describe_index(index: list[int]) -> str:
    """``16..23`` for a run of consecutive indices, else the first few."""
    if not index:
        return "none"
    if index == list(range(index[0], index[0] + len(index))):
        return f"{index[0]}..{index[-1]}" if len(index) > 1 else str(index[0])
    head = ", ".join(map(str, index[:8]))
    return f"{head}, ... ({len(index)} images)" if len(index) > 8 else head


class RemoteTraceback(Exception):
    """The traceback of an error raised on a worker, as text (shown as the cause of the driver's error)."""


class ShardError:
    """A shard's failure as a value: how a worker reports an error that is not worth retrying. It
    carries the exception itself when that pickles, and its traceback as text."""

    def __init__(self, exc: BaseException):
        self.type = type(exc).__name__
        self.message = str(exc)
        self.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            pickle.dumps(exc)
            self.exc: BaseException | None = exc
        except Exception:  # an exception holding something unpicklable: its text is enough
            self.exc = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class ShardFailed(RuntimeError):
    """A shard failed on every attempt; the run stops. ``shard`` counts from 0, ``index`` holds its images."""

    def __init__(self, shard: int, total: int, index: list[int], attempts: int, cause: BaseException | ShardError | str):
        self.shard, self.total, self.index, self.attempts, self.cause = shard, total, list(index), attempts, cause
        what = cause if isinstance(cause, (str, ShardError)) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"{shard_context(shard, total, self.index)} failed after {attempts} attempt(s): {what}")


def shard_context(shard: int, total: int, index: list[int]) -> str:
    return f"shard {shard + 1} of {total} (image indices {describe_index(list(index))})"


def shard_failure(shard: int, total: int, index: list[int], attempts: int,
                  cause: BaseException | ShardError) -> BaseException:
    """The error that ends a run: an error not worth retrying as its own type, its message prefixed
    with the shard; any other as :class:`ShardFailed`. A worker's traceback becomes the cause."""
    remote = RemoteTraceback(cause.traceback) if isinstance(cause, ShardError) else None
    exc = cause.exc if isinstance(cause, ShardError) else cause
    if isinstance(exc, NOT_RETRIED):
        try:
            err = type(exc)(f"{shard_context(shard, total, index)}: {exc.args[0] if exc.args else exc}")
            err.__dict__.update(exc.__dict__)  # e.g. EmptySelection.reason
        except Exception:  # a constructor that wants other arguments
            err = None
        if err is not None:
            err.__cause__ = remote or exc
            return err
    err = ShardFailed(shard, total, index, attempts, exc if exc is not None else cause)
    err.__cause__ = remote or (exc if isinstance(exc, BaseException) else None)
    return err


# --------------------------------------------------------------------------- trees of per-image tensors


def _items(tree: Mapping) -> Iterator[tuple[str, Any]]:
    for name, value in tree.items():
        if isinstance(value, Mapping):
            for sub, leaf in _items(value):
                yield f"{name}.{sub}", leaf
        else:
            yield name, value


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], tree: Mapping) -> dict:
    return {k: tree_map(fn, v) if isinstance(v, Mapping) else fn(v) for k, v in tree.items() if v is not None}


def tree_len(tree: Mapping, what: str) -> int | None:
    """The common leading length of a tree's tensors (None for a tree without any)."""
    lengths = {}
    for name, leaf in _items(tree):
        if leaf is None:
            continue
        if not isinstance(leaf, torch.Tensor) or leaf.dim() == 0:
            raise TypeError(f"{what}: {name} must be a per-image tensor [N, ...], got "
                            f"{type(leaf).__name__ if not isinstance(leaf, torch.Tensor) else 'a 0-d tensor'}")
        lengths[name] = leaf.shape[0]
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{what}: per-image tensors differ in length: {lengths}")
    return next(iter(lengths.values()), None)


def tree_digest(tree: Mapping) -> dict:
    out = {}
    for name, leaf in _items(tree):
        if leaf is not None:
            t = leaf.detach().cpu().contiguous()
            h = hashlib.sha256(f"{t.dtype} {tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            out[name] = h.hexdigest()[:16]
    return out


def tree_cat(parts: list[Mapping], what: str) -> dict:
    first = parts[0]
    for i, part in enumerate(parts[1:], 1):
        if set(part) != set(first):
            raise ValueError(f"{what}: shard {i + 1} returned {sorted(part)}, shard 1 returned {sorted(first)}; "
                             "every shard must return the same fields")
    out = {}
    for k, v in first.items():
        if isinstance(v, Mapping):
            out[k] = tree_cat([p[k] for p in parts], what)
        else:
            out[k] = torch.cat([p[k] for p in parts]) if len(parts) > 1 else v
    return out


# --------------------------------------------------------------------------- one shard


def _check_output(out: Any, n: int, what: str) -> dict:
    if not isinstance(out, Mapping):
        raise TypeError(f"{what}: a task must return a dict of per-image tensors, got {type(out).__name__}")
    out = tree_map(lambda t: t, out)  # drops None fields (an untargeted attack's targets)
    for name, leaf in _items(out):
        if not isinstance(leaf, torch.Tensor) or leaf.dim() == 0 or leaf.shape[0] != n:
            shape = tuple(leaf.shape) if isinstance(leaf, torch.Tensor) else type(leaf).__name__
            raise TypeError(f"{what}: field {name} must be a per-image tensor with {n} rows, got {shape}")
    return tree_map(lambda t: t.detach().cpu(), out)


def run_shard(task: Callable, objects: Mapping[str, Any], shard: Mapping, seed: int,
              device: torch.device | None = None, what: str = "task") -> dict:
    """Compute one shard: the same function on the driver (local engine) and on a Ray worker.

    Inputs move to ``device`` (the model's); the global random generators are seeded from the
    shard's key inside a fork, so a task that draws from them gives the same numbers wherever the
    shard runs, and the caller's random state is left as it was. Results come back on the CPU.
    """
    n = tree_len(shard, what) or 0
    if device is not None:
        shard = tree_map(lambda t: t.to(device), shard)
    cuda = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        out = task(shard, **objects)
    return _check_output(out, n, what)


def objects_device(objects: Mapping[str, Any]) -> torch.device | None:
    """Where a job's models live (the first torch module among its objects), or None."""
    for value in objects.values():
        if isinstance(value, nn.Module):
            return module_device(value)
    return None


# --------------------------------------------------------------------------- a job


@dataclasses.dataclass
class Job:
    """One ``map`` call as an engine sees it; shard ``i`` covers positions ``bounds[i]``."""

    task: Callable
    objects: dict
    key: dict
    kind: str
    index: torch.Tensor
    inputs: dict
    load: Callable[[torch.Tensor], Mapping] | None
    bounds: list[tuple[int, int]]
    desc: str

    def __post_init__(self):
        name = str(self.key.get("name", self.kind))
        self.specs = []
        for a, b in self.bounds:
            idx = self.index[a:b]
            label = f"{int(idx[0])}-n{len(idx)}" if len(idx) else "empty"
            self.specs.append({**self.key, "name": f"{name}-{label}", "shard": {
                "index": idx, "inputs": tree_digest(_slice(self.inputs, a, b))}})
        # the shard's global seed: from its key, so it is the same on any machine and in either engine
        self.seeds = [int(cache_key(spec), 16) % 2**31 for spec in self.specs]

    def shard_index(self, i: int) -> list[int]:
        a, b = self.bounds[i]
        return self.index[a:b].tolist()

    def shard_inputs(self, i: int) -> dict:
        """Shard ``i``'s inputs: the slices of the given tensors, plus what ``load`` reads for it."""
        a, b = self.bounds[i]
        shard = _slice(self.inputs, a, b)
        if self.load is not None:
            extra = dict(self.load(self.index[a:b]))
            clash = sorted(set(extra) & set(shard))
            if clash:
                raise ValueError(f"{self.desc}: load() returned {clash}, which the inputs already hold")
            if tree_len(extra, f"{self.desc}: load()") not in (None, b - a):
                raise ValueError(f"{self.desc}: load() returned {tree_len(extra, self.desc)} rows for {b - a} images")
            shard.update(tree_map(lambda t: t, extra))
        return shard


def _slice(tree: Mapping, a: int, b: int) -> dict:
    return tree_map(lambda t: t[a:b], tree)


@dataclasses.dataclass
class RunStats:
    """What the last ``map`` did: shards in all, loaded from the cache, computed."""

    engine: str
    shards: int
    cached: int
    computed: int


# --------------------------------------------------------------------------- the engine


class Engine:
    """Maps a task over shards of images; subclasses say where a missing shard is computed."""

    name = "engine"

    def __init__(self, shard_size: int | None = None, retries: int = 2):
        self.shard_size = check_shard_size(shard_size)
        self.retries = check_retries(retries)
        self.last_run: RunStats | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shard_size={self.shard_size}, retries={self.retries})"

    # -- to implement ------------------------------------------------------------------------
    def _compute(self, job: Job, todo: list[int]) -> Iterator[tuple[int, dict]]:
        """Yield ``(shard, result)`` for every shard in ``todo`` as each finishes; raise
        :class:`ShardFailed` for one that fails for good."""
        raise NotImplementedError

    # -- the map -----------------------------------------------------------------------------
    def map(self, task: Callable, inputs: Mapping[str, Any] | None = None, *, key: Mapping, index=None,
            objects: Mapping[str, Any] | None = None, load: Callable[[torch.Tensor], Mapping] | None = None,
            shard_size: int | None = None, kind: str = "shards", desc: str | None = None,
            cache: bool = True) -> dict:
        """Apply ``task`` to every shard of the images and return its per-image results, in order.

        ``task(shard, **objects)`` gets one shard's inputs (a dict of tensors with one row per image,
        on the models' device) and returns a dict (nested dicts allowed) of per-image tensors; it must
        be picklable (a module-level function or class), and small: models and other large read-only
        things go in ``objects``, which reach a Ray worker once per job through the object store.
        ``inputs`` holds per-image tensors given now (``None`` values are left out); ``load(index)``,
        called on the driver for a shard that has to be computed, returns more of them (the images
        themselves, read only when needed). ``index`` names the images (data-set indices; by default
        their positions) and ``key`` describes everything else that determines the results: each
        shard is cached under ``kind`` as ``key`` + the shard's indices + a digest of its inputs.
        ``shard_size`` (default the engine's; ``None`` means one shard) sets images per shard.
        """
        if not isinstance(key, Mapping):
            raise TypeError(f"key must be a dict describing everything that determines the results, "
                            f"got {type(key).__name__}")
        inputs = tree_map(lambda t: t.detach().cpu() if isinstance(t, torch.Tensor) else t, inputs or {})
        desc = desc or str(key.get("name", kind))
        n = tree_len(inputs, desc)
        if index is not None:
            index = torch.as_tensor(index, dtype=torch.long).reshape(-1).cpu()
            if n is not None and len(index) != n:
                raise ValueError(f"{desc}: {len(index)} indices for {n} images")
            n = len(index)
        if n is None:
            raise ValueError(f"{desc}: no per-image inputs and no index: nothing says how many images there are")
        if n == 0:
            raise EmptySelection(f"{desc}: no images to work on (the selection is empty)", reason="no images")
        index = torch.arange(n) if index is None else index
        size = check_shard_size(shard_size) if shard_size is not None else self.shard_size
        size = n if size is None else size
        bounds = [(a, min(a + size, n)) for a in range(0, n, size)]
        job = Job(task, dict(objects or {}), dict(key), kind, index, inputs, load, bounds, desc)

        results: list[dict | None] = [None] * len(bounds)
        todo = []
        for i, spec in enumerate(job.specs):
            payload = cache_lookup(kind, spec) if cache else MISSING
            if payload is MISSING:
                todo.append(i)
            else:
                results[i] = payload
        # one bar over the shards (a single-shard job, the default, shows none: nothing to follow)
        bar = tqdm(total=len(bounds), initial=len(bounds) - len(todo), desc=f"{desc} [{self.name}]", unit="shard",
                   leave=False, disable=len(bounds) <= 1)
        try:
            for i, payload in self._compute(job, todo):
                if cache:
                    cache_store(kind, job.specs[i], payload)
                results[i] = payload
                bar.update(1)
        finally:
            bar.close()
        self.last_run = RunStats(self.name, len(bounds), len(bounds) - len(todo), len(todo))
        return tree_cat(results, desc)

    # -- shared by the engines -----------------------------------------------------------------
    def _attempt_failed(self, job: Job, i: int, attempt: int, exc: BaseException) -> None:
        """Raise the run's error when ``exc`` ends shard ``i`` (:func:`shard_failure`), else warn that
        the shard is retried."""
        if isinstance(exc, NOT_RETRIED) or attempt > self.retries:
            raise shard_failure(i, len(job.bounds), job.shard_index(i), attempt, exc)
        warnings.warn(f"{job.desc}: shard {i + 1} of {len(job.bounds)} failed ({type(exc).__name__}: {exc}); "
                      f"retrying ({attempt}/{self.retries})", RuntimeWarning, stacklevel=3)
