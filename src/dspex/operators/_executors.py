"""Where a map-like node runs a sync function: inline, in threads, in processes.

``executor="inline"`` (the default) calls a sync function on the event loop,
a whole chunk at a time: for cheap per-record Python this is the fastest
choice at any concurrency, since a thread trip costs more than the call.
``"threads"`` is for functions that block (file or network I/O, C code that
drops the GIL): records go to worker threads in *batches*, many records per
trip. ``"processes"`` is for CPU-bound functions: a pool of ``concurrency``
worker processes receives pickled batches. Both report one outcome per
record, so the node applies its error policy record by record.

Why ``concurrent.futures.ProcessPoolExecutor`` rather than
``anyio.to_process``: anyio's worker processes belong to the event loop (idle
ones linger up to five minutes after the node ends when a flow runs inside a
long-lived loop) and cannot be shut down per node. A node-scoped pool is
started with the node and shut down with it, killed on cancellation. The
waits on its futures run in anyio worker threads (one per batch in flight,
abandoned on cancellation), so the loop is never blocked on asyncio or trio.
Workers are started with ``spawn``: ``fork`` is unsafe in a process that
runs an event loop and threads, and ``spawn`` behaves the same everywhere.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.from_thread
import anyio.to_thread

from ..errors import ConfigError, InputError, ItemFailed

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "EXECUTORS",
    "Outcome",
    "ProcessExecutor",
    "ThreadExecutor",
    "apply_batch",
    "check_executor",
]

#: The accepted values of ``executor=``.
EXECUTORS = ("inline", "threads", "processes")

#: One record's result: ``(True, value)`` or ``(False, exception)``.
Outcome = tuple[bool, Any]

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _describe(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def check_executor(executor: str, fn: Any, *, mode: str, what: str) -> None:
    """Validate ``executor=`` for a callable of ``mode`` (sync/async/module).

    Raises:
        ConfigError: Unknown executor; threads/processes with an async
            function or a module; processes with a function that cannot be
            pickled (the message names the function).
    """
    if executor not in EXECUTORS:
        raise ConfigError(
            f"{what} executor must be one of {', '.join(map(repr, EXECUTORS))}, got {executor!r}"
        )
    if executor == "inline":
        return
    if mode != "sync":
        kind = "a Module" if mode == "module" else "an async function"
        raise ConfigError(
            f"{what} executor={executor!r} runs sync functions; {_describe(fn)} is {kind}, "
            "which runs on the event loop (use executor='inline')"
        )
    if executor == "processes":
        try:
            pickle.dumps(fn, _PROTOCOL)
        except Exception as exc:
            raise ConfigError(
                f"{what} executor='processes' needs a picklable function; {_describe(fn)} "
                f"cannot be pickled ({type(exc).__name__}: {exc}); define it at module level "
                "(not a lambda, closure or bound method of an unpicklable object)"
            ) from exc


def apply_batch(
    fn: Callable[[Any], Any], records: Sequence[Any], between: Callable[[], None] | None = None
) -> list[Outcome]:
    """Call ``fn`` on each record; return one outcome per record, in order.

    An iterator result (a generator from a ``flat_map`` function) is drained
    here, in the worker, so no user code runs later on the event loop.
    ``between`` runs before each record (a cancellation check: it may raise).
    """
    out: list[Outcome] = []
    append = out.append
    for record in records:
        if between is not None:
            between()
        try:
            result = fn(record)
            if isinstance(result, Iterator):
                result = list(result)
            append((True, result))
        except Exception as exc:
            append((False, exc))
    return out


class ThreadExecutor:
    """Run batches in anyio worker threads, at most ``workers`` at once.

    Each input chunk is shared evenly among the threads (``min_batch`` 1), so
    a blocking function keeps all of them busy. A cancelled node waits for
    the records already running to return; each thread stops before its next
    record (no thread is left running the function).
    """

    min_batch = 1

    def __init__(self, fn: Callable[[Any], Any], workers: int, node: str) -> None:
        self.fn = fn
        self.node = node
        self.limiter = anyio.CapacityLimiter(workers)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def run(self, records: list[Any]) -> list[Outcome]:
        """Apply the function to ``records`` in one thread trip (blocks the caller only)."""
        return await anyio.to_thread.run_sync(
            apply_batch, self.fn, records, anyio.from_thread.check_cancelled, limiter=self.limiter
        )


def _portable(outcome: Outcome) -> Outcome:
    """Return ``outcome``, or an error outcome if it cannot cross back to the parent."""
    try:
        pickle.loads(pickle.dumps(outcome[1], _PROTOCOL))
    except Exception as exc:
        what = "result" if outcome[0] else f"error {type(outcome[1]).__name__}: {outcome[1]}"
        return (False, InputError(
            f"the function's {what} cannot be sent back from the worker process "
            f"({type(exc).__name__}: {exc}); executor='processes' needs picklable results"
        ))
    return outcome


def _child_batch(fn: Callable[[Any], Any], payload: bytes) -> bytes:
    """Worker-process side: unpickle records, apply ``fn``, pickle the outcomes."""
    outcomes = apply_batch(fn, pickle.loads(payload))
    try:
        return pickle.dumps(outcomes, _PROTOCOL)
    except Exception:
        return pickle.dumps([_portable(o) for o in outcomes], _PROTOCOL)


class ProcessExecutor:
    """A pool of ``workers`` processes for one node run (see the module doc).

    Use as ``async with``: leaving normally waits for the workers to exit;
    leaving on an error or cancellation kills them, so no process outlives
    the node.
    """

    min_batch = 128

    def __init__(self, fn: Callable[[Any], Any], workers: int, node: str) -> None:
        self.fn = fn
        self.node = node
        self.workers = workers
        self.limiter = anyio.CapacityLimiter(workers)
        self.pool: ProcessPoolExecutor | None = None

    async def __aenter__(self) -> Self:
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        with anyio.CancelScope(shield=True):
            if et is None:
                await anyio.to_thread.run_sync(pool.shutdown)
            else:
                await anyio.to_thread.run_sync(_kill, pool)

    async def run(self, records: list[Any]) -> list[Outcome]:
        """Apply the function to ``records`` in one worker process.

        Blocks (in a worker thread, abandoned on cancellation) until the batch
        is done. Records that cannot be pickled get an ``InputError`` outcome.

        Raises:
            ConfigError: The worker could not load the function (not
                importable by module name in a fresh interpreter).
            ItemFailed: The pool broke (a worker process died).
        """
        return await anyio.to_thread.run_sync(
            self._run_blocking, records, limiter=self.limiter, abandon_on_cancel=True
        )

    def _run_blocking(self, records: list[Any]) -> list[Outcome]:
        try:
            payload = pickle.dumps(records, _PROTOCOL)
        except Exception:
            return self._run_picklable(records)
        return self._submit(payload)

    def _run_picklable(self, records: list[Any]) -> list[Outcome]:
        outcomes: list[Outcome | None] = []
        good: list[Any] = []
        for record in records:
            try:
                pickle.dumps(record, _PROTOCOL)
            except Exception as exc:
                outcomes.append((False, InputError(
                    f"node {self.node!r}: record cannot be sent to a worker process "
                    f"({type(exc).__name__}: {exc}); executor='processes' needs picklable records"
                )))
            else:
                outcomes.append(None)
                good.append(record)
        done = iter(self._submit(pickle.dumps(good, _PROTOCOL)) if good else ())
        return [o if o is not None else next(done) for o in outcomes]

    def _submit(self, payload: bytes) -> list[Outcome]:
        if self.pool is None:
            raise RuntimeError("ProcessExecutor used outside 'async with'")
        try:
            data = self.pool.submit(_child_batch, self.fn, payload).result()
        except BrokenProcessPool as exc:
            raise ItemFailed(
                f"node {self.node!r}: a worker process died ({exc}); the process pool is broken. "
                "Workers import the main module: a script that runs its flow at import time "
                "must guard it with `if __name__ == \"__main__\":`",
                node=self.node,
            ) from exc
        except Exception as exc:  # the child failed outside the function: loading it
            raise ConfigError(
                f"node {self.node!r}: worker processes could not run {_describe(self.fn)} "
                f"({type(exc).__name__}: {exc}); executor='processes' needs a function "
                "importable by module name (defined in a module or a guarded script, "
                "not in -c or a REPL)"
            ) from exc
        return pickle.loads(data)  # type: ignore[no-any-return]


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: cancel queued batches, kill and reap its workers."""
    # ProcessPoolExecutor has no public kill before Python 3.14 (kill_workers), and
    # shutdown(wait=False) alone would let a running batch finish first: kill the
    # workers it lists itself.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)
