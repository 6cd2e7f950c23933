"""The Ray engine: every missing shard is one Ray task, on a cluster or on a local Ray instance.

The driver (the chapter's process) loads each shard's images and sends them as task arguments;
models and other large read-only objects go into Ray's object store once per job (``ray.put``) and
each worker fetches them once, keeps them on its device for the job's later shards, and never calls
``get_model``, trains or downloads (the process marks itself as a worker, and the training and
download paths refuse to run there). A task asks for one GPU when the cluster has GPUs (or the
fraction the engine was given), else one CPU, and sets torch's thread count to its CPUs. Results
come back to the driver, which caches them, so workers need neither data folders nor the cache.
"""
from __future__ import annotations

import copy
import os
import socket
import warnings
from typing import Any, Iterator

import torch
import torch.nn as nn

from ..runtime import WORKER_ENV
from .base import NOT_RETRIED, Engine, Job, ShardError, run_shard, shard_failure

__all__ = ["RayEngine", "ClusterUnavailable", "import_ray", "check_address", "connect", "ensure_cluster",
           "DEFAULT_SHARD_SIZE"]

DEFAULT_SHARD_SIZE = 16  # images per task when none is given: one task per shard of 16 images
CONNECT_TIMEOUT_S = 3.0
INSTALL_HINT = "pip install 'advxai[cluster]'"
START_HINT = "start one with `ray start --head` (then `ray start --address=<head>:6379` on the other machines)"


class ClusterUnavailable(ConnectionError):
    """The Ray cluster named by the address cannot be reached."""


def import_ray():
    """The ``ray`` module, or an ImportError that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"the ray engine needs Ray, which is not installed here: {INSTALL_HINT} "
                          f"(or run with the local engine: --engine local)") from exc
    return ray


def _host_port(address: str) -> tuple[str, int]:
    bare = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = bare.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"Ray address {address!r} must be 'host:port' (the head node's port, 6379 by default), "
                         f"'ray://host:port', 'auto' or 'local'")
    return host.strip("[]"), int(port)


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds when nothing listens at ``address``.

    Ray itself retries an unreachable head for minutes before it gives up; a plain TCP connection
    to the head's port tells at once whether there is anything to join.
    """
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterUnavailable(f"no Ray cluster answers at {address} ({exc.strerror or exc}); {START_HINT}, "
                                 f"or pass --address auto to start a local one") from None


def _auto_address(ray) -> str | None:
    """The cluster 'auto' would join (RAY_ADDRESS, or the last `ray start` on this machine), or None."""
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:  # Ray moved it: let ray.init(address="auto") look, and start one if it finds none
        return "auto"
    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        return None


def connect(address: str = "auto", init_kwargs: dict | None = None):
    """Join the cluster at ``address`` (``auto``: a running one if there is one, else start a local one;
    ``local``: always a new local one); reuse this process's connection when it already has one."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    kwargs = {"log_to_driver": True, **(init_kwargs or {})}
    if address in (None, "", "auto"):
        found = _auto_address(ray)
        if found is None:
            ray.init(address="local", **kwargs)
            return ray
        if found != "auto":
            check_address(found)
        try:
            ray.init(address=found, **kwargs)
        except ConnectionError:
            ray.init(address="local", **kwargs)
        return ray
    if address == "local":
        ray.init(address="local", **kwargs)
        return ray
    check_address(address)
    ray.init(address=address, **kwargs)
    return ray


def ensure_cluster(address: str = "auto", init_kwargs: dict | None = None) -> str:
    """The address of a cluster several drivers can share (chapters running at the same time): the
    one at ``address``, the one ``auto`` finds, or a local instance started now, which lives as long
    as this process."""
    ray = connect(address, init_kwargs)
    return ray.get_runtime_context().gcs_address


def check_gpus(num_gpus: Any) -> float | None:
    if num_gpus is None:
        return None
    ok = isinstance(num_gpus, (int, float)) and not isinstance(num_gpus, bool) and num_gpus >= 0
    if not ok or (num_gpus > 1 and float(num_gpus) != int(num_gpus)):
        raise ValueError(f"num_gpus_per_task must be None (one GPU when the cluster has any), a fraction in [0, 1] "
                         f"or a whole number of GPUs, got {num_gpus!r}")
    return float(num_gpus)


# --------------------------------------------------------------------------- on the worker

_WORKER_JOB: dict[str, tuple] = {}  # the current job's task and objects, fetched once per worker


def _job_on_worker(holder: list) -> tuple:
    import ray

    ref = holder[0]  # wrapped in a list so that Ray hands over the reference, not a fresh copy per task
    key = ref.hex()
    if key not in _WORKER_JOB:
        task, objects = ray.get(ref)
        device = torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")
        objects = {k: v.to(device) if isinstance(v, nn.Module) else v for k, v in objects.items()}
        _WORKER_JOB.clear()  # keep one job's models: a worker serves one job at a time
        _WORKER_JOB[key] = (task, objects, device)
    return _WORKER_JOB[key]


def shard_on_worker(holder: list, shard: dict, seed: int, threads: int, desc: str):
    """One shard on a Ray worker. Errors worth retrying are raised (Ray retries the task); the others
    come back as a :class:`ShardError` value, so Ray does not run them again."""
    os.environ[WORKER_ENV] = "1"  # this process serves the engine: training and downloads refuse here
    torch.set_num_threads(max(1, int(threads)))
    task, objects, device = _job_on_worker(holder)
    try:
        return run_shard(task, objects, shard, seed, device, desc)
    except NOT_RETRIED as exc:
        return ShardError(exc)


# --------------------------------------------------------------------------- the engine


def _cpu_copy(value: Any) -> Any:
    """A module as it travels: on the CPU (a worker without a GPU must be able to load it)."""
    if isinstance(value, nn.Module) and any(t.device.type != "cpu" for t in value.state_dict().values()):
        return copy.deepcopy(value).cpu()
    return value


class RayEngine(Engine):
    """Each missing shard runs as one Ray task; see the module's description.

    ``address``: ``auto`` (join the cluster this machine knows of, else start a local one), ``local``,
    or ``host:port`` of a running cluster (checked at once: an unreachable one fails in seconds).
    ``num_gpus_per_task``: ``None`` asks for one GPU per task when the cluster has GPUs; a fraction
    lets tasks share one. ``num_cpus_per_task`` is also torch's thread count in the task.
    ``retries``: attempts after the first for a task that raised or whose worker died.
    ``init_kwargs`` go to ``ray.init`` (e.g. ``num_cpus`` for a local instance).
    """

    name = "ray"

    def __init__(self, address: str = "auto", shard_size: int | None = None, num_gpus_per_task: float | None = None,
                 num_cpus_per_task: int = 1, retries: int = 2, init_kwargs: dict | None = None):
        super().__init__(DEFAULT_SHARD_SIZE if shard_size is None else shard_size, retries)
        if isinstance(num_cpus_per_task, bool) or not isinstance(num_cpus_per_task, int) or num_cpus_per_task < 1:
            raise ValueError(f"num_cpus_per_task must be an integer >= 1, got {num_cpus_per_task!r}")
        self.num_gpus_per_task = check_gpus(num_gpus_per_task)
        self.num_cpus_per_task = num_cpus_per_task
        self.address = address
        self._ray = connect(address, init_kwargs)
        self._remote = self._ray.remote(shard_on_worker)

    def __repr__(self) -> str:
        return (f"RayEngine(address={self.address!r}, shard_size={self.shard_size}, retries={self.retries}, "
                f"num_gpus_per_task={self.num_gpus_per_task}, num_cpus_per_task={self.num_cpus_per_task})")

    def gpus_per_task(self) -> float:
        if self.num_gpus_per_task is not None:
            return self.num_gpus_per_task
        return 1.0 if self._ray.cluster_resources().get("GPU", 0) >= 1 else 0.0

    def _slots(self, gpus: float) -> int:
        """How many tasks the cluster runs at once (to keep about twice that many submitted)."""
        resources = self._ray.cluster_resources()
        if gpus > 0:
            return max(1, int(resources.get("GPU", 0) / gpus))
        return max(1, int(resources.get("CPU", 1) // self.num_cpus_per_task))

    def _compute(self, job: Job, todo: list[int]) -> Iterator[tuple[int, dict]]:
        if not todo:
            return
        ray = self._ray
        gpus = self.gpus_per_task()
        resources = self._ray.cluster_resources()  # a task no node can hold would wait for ever
        if gpus > 0 and resources.get("GPU", 0) < gpus:
            raise ValueError(f"num_gpus_per_task={gpus:g} but the cluster has {resources.get('GPU', 0):g} GPU(s); "
                             "pass num_gpus_per_task=0 to run on CPUs")
        if resources.get("CPU", 0) < self.num_cpus_per_task:
            raise ValueError(f"num_cpus_per_task={self.num_cpus_per_task} but the cluster has "
                             f"{resources.get('CPU', 0):g} CPU(s)")
        holder = [ray.put((job.task, {k: _cpu_copy(v) for k, v in job.objects.items()}))]
        remote = self._remote.options(num_cpus=self.num_cpus_per_task, num_gpus=gpus, max_retries=self.retries,
                                      retry_exceptions=True)
        window = 2 * self._slots(gpus)
        queue = list(todo)
        pending: dict[Any, int] = {}
        try:
            while queue or pending:
                # the driver reads a shard's images only when it is about to be sent, and keeps a
                # bounded number in flight (memory on the driver and in the object store stays small)
                while queue and len(pending) < window:
                    i = queue.pop(0)
                    pending[remote.remote(holder, job.shard_inputs(i), job.seeds[i], self.num_cpus_per_task,
                                          job.desc)] = i
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                try:
                    out = ray.get(done[0])
                except ray.exceptions.RayError as exc:  # raised on every attempt, or the worker died each time
                    cause = getattr(exc, "cause", None) or exc  # the task's own exception, when Ray has it
                    raise shard_failure(i, len(job.bounds), job.shard_index(i), self.retries + 1, cause) from exc
                if isinstance(out, ShardError):
                    raise shard_failure(i, len(job.bounds), job.shard_index(i), 1, out)
                yield i, out
        finally:
            for ref in pending:  # an interrupted or failed run leaves nothing running on the cluster
                try:
                    ray.cancel(ref)
                except Exception as exc:  # already finished, or the cluster went away
                    warnings.warn(f"could not cancel a shard of {job.desc}: {exc}", RuntimeWarning, stacklevel=2)
