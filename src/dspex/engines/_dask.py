"""``engine="dask"``: partitions as tasks on a Dask distributed cluster.

With ``address=None`` a ``distributed.LocalCluster`` is started for the run
(``workers`` worker processes, one thread each, listening on 127.0.0.1, no
dashboard) and closed after it; with ``address="tcp://host:8786"`` the run
connects to that scheduler. Each partition is one task running
:func:`run_partition`, submitted with ``pure=False`` and a unique key. Dask
reschedules a task whose worker died (up to the scheduler's
``allowed-failures``) and retries a failing one ``retries`` times; either
way the partition resumes from the run store, so the run stays exactly
once. Dask's client is driven from one anyio worker thread (its async API
is asyncio-only), so the engine works under asyncio and trio alike. The
task payload holds no API key (see ``_task``); task keys name only the run
and partition. Progress from running partitions travels as Dask worker
events (``Worker.log_event`` on a per-run topic, batched to the scheduler)
to a ``Client.subscribe_topic`` handler on the client.

A LocalCluster the engine starts is the engine's own, so its workers are
tuned like the ``processes`` engine's (``gc_threshold``: ``gc.freeze`` and a
higher threshold) and run without Dask's statistical profiler, which samples
every task thread's stack 100 times a second for a dashboard the engine does
not start (~4 % of a worker's CPU on LM calls). A cluster at ``address`` is
someone else's: nothing is changed there.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import (
    GC_THRESHOLD,
    Engine,
    OnDone,
    check_gc_threshold,
    register_engine,
    run_in_thread,
    tune_worker_gc,
)
from ._progress import OnProgress, PartitionProgress
from ._task import PartitionResult, PartitionTask, run_partition

if TYPE_CHECKING:
    import threading
    from collections.abc import Sequence

__all__ = ["DaskEngine"]


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            "engine='dask' needs the dask extra: pip install 'dspex[dask]'"
        ) from exc
    return distributed


def _run_on_worker(task: PartitionTask, topic: str | None) -> PartitionResult:
    """Run ``task`` on a Dask worker, its progress logged as events on ``topic``."""
    if topic is None:
        return run_partition(task)
    worker = _distributed().get_worker()

    def send(update: PartitionProgress) -> None:
        worker.log_event(topic, update.to_dict())  # thread-safe, batched, never blocks

    return run_partition(task, send)


class DaskEngine(Engine):
    """Run partitions on a Dask cluster (see the module docstring).

    Args:
        workers: Workers of the LocalCluster started when ``address`` is None.
        address: A running scheduler's address (``"tcp://10.0.0.5:8786"``).
        retries: Extra attempts for a task that raised.
        gc_threshold: The ``gc.set_threshold`` of the LocalCluster's workers
            (after a ``gc.freeze``), or None for Python's defaults; never
            applied to a cluster at ``address``.

    Raises:
        ConfigError: ``gc_threshold`` is not three positive integers.
    """

    name = "dask"

    def __init__(self, *, workers: int | None = None, address: str | None = None,
                 retries: int = 2,
                 gc_threshold: tuple[int, int, int] | None = GC_THRESHOLD) -> None:
        super().__init__(workers=workers, address=address)
        self.retries = retries
        self.gc_threshold = check_gc_threshold(gc_threshold)
        self.last_cluster: Any = None  # the LocalCluster of the current run (tests kill workers)

    async def run_partitions(
        self, tasks: Sequence[PartitionTask], on_done: OnDone,
        on_progress: OnProgress | None = None,
    ) -> list[PartitionResult]:
        """Run the tasks on the cluster; see :meth:`Engine.run_partitions`.

        Cancelling the caller cancels the tasks not finished (a running one
        may still finish on its worker and commit to the run store).
        """
        return await run_in_thread(self._run_all, tasks, on_done, on_progress)

    def _cluster(self) -> Any:
        distributed = _distributed()
        import dask.config  # the dask extra, as distributed itself

        # each nanny copies the dask config of its start into its worker process
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            return distributed.LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=logging.ERROR,
                # the scheduler's HTTP server on a free loopback port (by default it takes 8787)
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )

    def _run_all(self, tasks: list[PartitionTask], on_done: OnDone,
                 on_progress: OnProgress | None, stop: threading.Event) -> list[PartitionResult]:
        distributed = _distributed()
        cluster = self._cluster() if self.address is None else None
        self.last_cluster = cluster
        try:
            with distributed.Client(self.address or cluster, set_as_default=False) as client:
                if cluster is not None and self.gc_threshold is not None:
                    client.run(tune_worker_gc, self.gc_threshold)
                return self._submit(client, distributed, tasks, on_done, on_progress, stop)
        finally:
            self.last_cluster = None
            if cluster is not None:
                cluster.close()

    def _submit(self, client: Any, distributed: Any, tasks: list[PartitionTask], on_done: OnDone,
                on_progress: OnProgress | None, stop: threading.Event) -> list[PartitionResult]:
        token = uuid.uuid4().hex[:8]
        topic = None
        if on_progress is not None:
            topic = f"dspex-progress-{token}"

            def handler(event: tuple[float, dict[str, Any]]) -> None:  # on the client's loop
                on_progress(PartitionProgress.from_dict(event[1]))

            client.subscribe_topic(topic, handler)
        futures = [
            client.submit(_run_on_worker, task, topic, key=f"dspex-part-{task.index:05d}-{token}",
                          pure=False, retries=self.retries)
            for task in tasks
        ]
        results: dict[int, PartitionResult] = {}
        try:
            for future in distributed.as_completed(futures, loop=client.loop):
                if stop.is_set():
                    break
                result = future.result()
                results[result.index] = result
                on_done(result)
        finally:
            if len(results) < len(tasks):
                client.cancel(futures)
            if topic is not None:
                client.unsubscribe_topic(topic)
        return [results[i] for i in sorted(results)]


register_engine("dask", DaskEngine)
