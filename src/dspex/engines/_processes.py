"""``engine="processes"``: partitions on a local pool of worker processes.

For one big machine, no Dask needed. A forked copy of a process running
threads and an event loop is not safe, so workers come from multiprocessing's
*fork server* (``spawn`` where there is none): a clean process started once
per parent process that has imported dspex's worker side
(``set_forkserver_preload``), so a worker starts in milliseconds instead of
importing dspex again (~0.4 s of CPU each), and later runs reuse it. A fork
server child inherits the fork server's environment, not the caller's, so the
pool's initializer installs the caller's environment (API keys included, over
the local pipe, as a spawned worker would inherit them; never in a task).

Waiting happens in one anyio worker thread, which also drains a
multiprocessing queue of progress updates (one per pool: a worker killed
while writing to it cannot wedge the next pool). If a worker process dies
(killed, out of memory) the pool breaks; the partitions not yet finished are
submitted again to a new pool, at most ``max_attempts`` times in all, and each
resumes from the run store without duplicates. Once every partition is in,
the run returns without waiting for the worker processes to exit.

The engine owns its worker processes, so it tunes their garbage collector
(``gc_threshold``): most of dspex's CPU per LM call at high concurrency above
the HTTP client is the cyclic collector walking a heap of calls in flight, and
a library must not change that for the user's own process, but a worker may.
At start a worker freezes what the fork server imported (``gc.freeze``: full
collections skip it) and raises the first generation's threshold; pass
``gc_threshold=None`` to keep Python's defaults.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from ..errors import DspexError
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
    from multiprocessing.context import BaseContext

__all__ = ["ProcessesEngine"]

_POLL_S = 0.1  # how often the waiting thread drains progress and looks for a cancellation
_PRELOAD = ["__main__", "dspex.engines._task"]  # what the fork server imports once

_home: Any = None  # in a worker process: the pool's progress queue (set by _init_worker)


def _context() -> BaseContext:
    """Return the fork server context with dspex preloaded, or spawn's."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)  # no effect once the fork server runs
    return ctx


def _init_worker(env: dict[str, str], progress: Any, gc_threshold: tuple[int, int, int] | None) -> None:
    """Worker start: the caller's environment, the pool's progress queue, the GC's tuning."""
    global _home
    os.environ.clear()
    os.environ.update(env)
    if gc_threshold is not None:
        tune_worker_gc(gc_threshold)
    if progress is not None:
        progress.cancel_join_thread()  # exiting never waits for the parent to read
    _home = progress


def _send_home(update: PartitionProgress) -> None:
    _home.put(update.to_dict())


def _run_in_worker(task: PartitionTask) -> PartitionResult:
    """Run ``task`` in a worker process, its progress going to the pool's queue."""
    return run_partition(task, _send_home if _home is not None else None)


def _drain(updates: Any, on_progress: OnProgress) -> None:
    """Pass every queued update to ``on_progress`` without blocking."""
    while True:
        try:
            data = updates.get_nowait()
        except queue.Empty:
            return
        on_progress(PartitionProgress.from_dict(data))


class ProcessesEngine(Engine):
    """Run partitions in ``workers`` local processes (see the module docstring).

    Args:
        workers: Processes in the pool (default 2).
        max_attempts: Pools built in all when worker processes die.
        gc_threshold: The workers' ``gc.set_threshold`` (after a ``gc.freeze``
            of what was imported), or None for Python's defaults (700, 10, 10).

    Raises:
        ConfigError: ``gc_threshold`` is not three positive integers.
    """

    name = "processes"

    def __init__(self, *, workers: int | None = None, address: str | None = None,
                 max_attempts: int = 3,
                 gc_threshold: tuple[int, int, int] | None = GC_THRESHOLD) -> None:
        super().__init__(workers=workers, address=address)
        self.max_attempts = max_attempts
        self.gc_threshold = check_gc_threshold(gc_threshold)

    @property
    def default_partitions(self) -> int:
        """One partition per worker: on one machine the chunks are even, and each partition
        boundary costs a worker a drain of its calls in flight and a start (~50 ms; 2-3 %
        of a 20,000-call run at concurrency 256)."""
        return self.workers

    async def run_partitions(
        self, tasks: Sequence[PartitionTask], on_done: OnDone,
        on_progress: OnProgress | None = None,
    ) -> list[PartitionResult]:
        """Run the tasks on the pool; see :meth:`Engine.run_partitions`.

        Cancelling the caller stops waiting at once (within ``_POLL_S``, in the
        background) and terminates the pool's processes; a resume with the same
        run id continues each partition from its last commit.
        """
        return await run_in_thread(self._run_all, tasks, on_done, on_progress)

    def _run_all(self, tasks: list[PartitionTask], on_done: OnDone,
                 on_progress: OnProgress | None, stop: threading.Event) -> list[PartitionResult]:
        pending = {t.index: t for t in tasks}
        results: dict[int, PartitionResult] = {}
        for attempt in range(1, self.max_attempts + 1):
            try:
                self._one_pool(pending, results, on_done, on_progress, stop)
            except BrokenProcessPool as exc:
                if attempt == self.max_attempts:
                    raise DspexError(
                        f"worker processes died {attempt} times; partitions "
                        f"{sorted(pending)} did not finish (last: {exc})"
                    ) from exc
            if not pending or stop.is_set():
                break
        return [results[i] for i in sorted(results)]

    def _one_pool(self, pending: dict[int, PartitionTask], results: dict[int, PartitionResult],
                  on_done: OnDone, on_progress: OnProgress | None, stop: threading.Event) -> None:
        ctx = _context()
        updates = ctx.Queue() if on_progress is not None else None
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(pending)), mp_context=ctx,
                                   initializer=_init_worker, initargs=(dict(os.environ), updates, self.gc_threshold))
        try:
            futures: dict[Future[PartitionResult], int] = {
                pool.submit(_run_in_worker, task): i for i, task in pending.items()
            }
            while futures and not stop.is_set():
                done, _ = wait(futures, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                if updates is not None and on_progress is not None:
                    _drain(updates, on_progress)
                for fut in done:
                    index = futures.pop(fut)
                    result = fut.result()  # BrokenProcessPool: a new pool takes the rest
                    results[index] = result
                    del pending[index]
                    on_done(result)
        finally:
            if stop.is_set():
                _terminate(pool)
            # the results are in: the workers exit (and tear down) on their own
            pool.shutdown(wait=False, cancel_futures=True)
            if updates is not None:
                updates.close()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's processes now (a cancelled run must not keep partitions running).

    What they wrote but had not committed is cut back when the run resumes.
    ``ProcessPoolExecutor`` has no public way to do this before Python 3.14
    (``terminate_workers``), hence its ``_processes`` map.
    """
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()


register_engine("processes", ProcessesEngine)
