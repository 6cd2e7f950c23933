"""Per-image work as a map over shards of images: in this process (``local``) or on a Ray cluster (``ray``).

The expensive per-image work of the study (adversarial sets, MASK maps, an arena's cells) is a map
of a task over shards of image indices. Each shard is cached under the job's key plus its images,
so a run that is interrupted, or run again, computes only the shards it is missing; both engines
give the same results for the same shard size (bit for bit at a fixed thread count on the CPU).

A chapter picks the engine once, in its setup cell, and every package function that does per-image
work uses it without being told::

    advxai.engine.configure(engine, address=ray_address, shard_size=shard_size)

* :func:`configure` / :func:`current`: the process-wide engine (by default local, one shard per job:
  a job computes exactly what a direct call does);
* :func:`get_engine`: an engine without making it current;
* ``engine.map(task, inputs, key=..., objects=...)``: the general map (:class:`~advxai.engine.base.Engine`);
* :func:`map_attack`: an attack over shards (what :func:`advxai.attacks.adversarial_set` and the
  MASK maps of :func:`advxai.interpreters.mask.mask_maps` are built on).

Shard size changes results for attacks that draw random numbers per batch (a random start draws
for the whole shard), so it is part of what a result is: the book's numbers are one shard per job;
the Ray engine's default is 16 images per shard, and a local run with ``shard_size=16`` reproduces it.
"""
from __future__ import annotations

from typing import Any

from .base import Engine, RunStats, ShardFailed, check_retries, check_shard_size
from .cluster import ClusterUnavailable, RayEngine  # imports Ray only when a Ray engine is made
from .local import LocalEngine
from .tasks import AttackFactory, AttackTask, map_attack

__all__ = ["ENGINES", "Engine", "LocalEngine", "RayEngine", "RunStats", "ShardFailed", "ClusterUnavailable",
           "AttackFactory", "AttackTask", "check_shard_size", "configure", "current", "get_engine", "map_attack",
           "preflight"]

ENGINES = ("local", "ray")
_CURRENT: list[Engine] = []


def _check_name(name: Any) -> str:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")
    return name


def get_engine(name: str = "local", address: str = "auto", shard_size: int | None = None,
               num_gpus_per_task: float | None = None, retries: int = 2, **ray_options) -> Engine:
    """An engine by name: ``local`` (``address`` and the GPU setting do not apply) or ``ray``
    (connects now, so a missing Ray or an unreachable address fails here; see :class:`RayEngine`)."""
    _check_name(name)
    check_shard_size(shard_size)
    check_retries(retries)
    if name == "local":
        if ray_options:
            raise TypeError(f"the local engine takes no Ray options: {sorted(ray_options)}")
        return LocalEngine(shard_size=shard_size, retries=retries)
    return RayEngine(address=address, shard_size=shard_size, num_gpus_per_task=num_gpus_per_task, retries=retries,
                     **ray_options)


def configure(engine: str = "local", address: str = "auto", shard_size: int | None = None,
              num_gpus_per_task: float | None = None, retries: int = 2, **ray_options) -> Engine:
    """Make an engine the process's current one (what package functions use) and return it."""
    eng = get_engine(engine, address, shard_size, num_gpus_per_task, retries, **ray_options)
    _CURRENT[:] = [eng]
    return eng


def current() -> Engine:
    """The process's engine: the one :func:`configure` set, else a local engine with one shard per job."""
    if not _CURRENT:
        _CURRENT.append(LocalEngine())
    return _CURRENT[0]


def preflight(engine: str, address: str = "auto") -> None:
    """The checks a command line makes before any work: a known engine name, Ray installed for
    ``ray``, and an explicit address that answers (within seconds). Connects to nothing."""
    _check_name(engine)
    if engine == "ray":
        from .cluster import check_address, import_ray

        import_ray()
        if address not in (None, "", "auto", "local"):
            check_address(address)

