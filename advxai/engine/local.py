"""The local engine: every missing shard computed in this process, one after the other."""
from __future__ import annotations

from typing import Iterator

from .base import Engine, Job, objects_device, run_shard

__all__ = ["LocalEngine"]


class LocalEngine(Engine):
    """Shards run in the calling process, on the models' device, with the process's thread count.

    With no shard size (the default) a job is one shard: exactly the computation a direct call makes,
    so results do not depend on whether a study goes through the engine. A shard that raises is
    retried up to ``retries`` times, except for errors that would come out the same again
    (:data:`~advxai.engine.base.NOT_RETRIED`).
    """

    name = "local"

    def _compute(self, job: Job, todo: list[int]) -> Iterator[tuple[int, dict]]:
        device = objects_device(job.objects)
        for i in todo:
            shard = job.shard_inputs(i)
            attempt = 0
            while True:
                attempt += 1
                try:
                    payload = run_shard(job.task, job.objects, shard, job.seeds[i], device, job.desc)
                    break
                except Exception as exc:  # KeyboardInterrupt is not caught: an interrupted run stops
                    self._attempt_failed(job, i, attempt, exc)
            yield i, payload
