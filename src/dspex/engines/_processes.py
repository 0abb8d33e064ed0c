"""``engine="processes"``: partitions on a local pool of worker processes.

For one big machine, no Dask needed. The pool uses the ``spawn`` start
method (a forked copy of a process running threads and an event loop is not
safe), so worker processes import dspex afresh and inherit the environment
(API keys included). Waiting happens in one anyio worker thread. If a worker
process dies (killed, out of memory) the pool breaks; the partitions not yet
finished are submitted again to a new pool, at most ``max_attempts`` times in
all, and each resumes from the run store without duplicates.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from ..errors import DspexError
from ._base import Engine, OnDone, register_engine, run_in_thread
from ._task import PartitionResult, PartitionTask, run_partition

if TYPE_CHECKING:
    import threading
    from collections.abc import Sequence

__all__ = ["ProcessesEngine"]

_POLL_S = 0.2  # how often the waiting thread looks for a cancellation


class ProcessesEngine(Engine):
    """Run partitions in ``workers`` local processes (see the module docstring).

    Args:
        workers: Processes in the pool (default 2).
        max_attempts: Pools built in all when worker processes die.
    """

    name = "processes"

    def __init__(self, *, workers: int | None = None, address: str | None = None,
                 max_attempts: int = 3) -> None:
        super().__init__(workers=workers, address=address)
        self.max_attempts = max_attempts

    async def run_partitions(
        self, tasks: Sequence[PartitionTask], on_done: OnDone
    ) -> list[PartitionResult]:
        """Run the tasks on the pool; see :meth:`Engine.run_partitions`.

        Cancelling the caller stops waiting at once (within ``_POLL_S``, in the
        background) and terminates the pool's processes; a resume with the same
        run id continues each partition from its last commit.
        """
        return await run_in_thread(self._run_all, tasks, on_done)

    def _run_all(self, tasks: list[PartitionTask], on_done: OnDone,
                 stop: threading.Event) -> list[PartitionResult]:
        pending = {t.index: t for t in tasks}
        results: dict[int, PartitionResult] = {}
        for attempt in range(1, self.max_attempts + 1):
            try:
                self._one_pool(pending, results, on_done, stop)
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
                  on_done: OnDone, stop: threading.Event) -> None:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(pending)), mp_context=ctx)
        try:
            futures: dict[Future[PartitionResult], int] = {
                pool.submit(run_partition, task): i for i, task in pending.items()
            }
            while futures and not stop.is_set():
                done, _ = wait(futures, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                for fut in done:
                    index = futures.pop(fut)
                    result = fut.result()  # BrokenProcessPool: a new pool takes the rest
                    results[index] = result
                    del pending[index]
                    on_done(result)
        finally:
            if stop.is_set():
                _terminate(pool)
            pool.shutdown(wait=not stop.is_set(), cancel_futures=True)


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
