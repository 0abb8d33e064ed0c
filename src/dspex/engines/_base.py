"""The engine interface and registry: where a flow's partitions run.

An :class:`Engine` only has to run a list of :class:`PartitionTask` (each a
plain picklable object whose work is :func:`run_partition`) and hand back
their :class:`PartitionResult`; partitioning, the run store, sink files,
manifests and the merged report are the driver's. A new backend (Ray, say)
is one subclass with :meth:`Engine.run_partitions` plus
``register_engine("ray", RayEngine)``.
"""

from __future__ import annotations

import gc
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from ..errors import ConfigError
from ._progress import OnProgress
from ._task import PartitionResult, PartitionTask

__all__ = [
    "GC_THRESHOLD", "Engine", "OnDone", "RunAll", "check_gc_threshold", "engine_names", "get_engine",
    "register_engine", "run_in_thread", "tune_worker_gc",
]

OnDone = Callable[[PartitionResult], None]
"""Called once per finished partition, in completion order (from any thread)."""

GC_THRESHOLD = (7000, 10, 10)
"""Workers' default ``gc.set_threshold``: ten times Python's first generation."""


def check_gc_threshold(gc_threshold: object) -> tuple[int, int, int] | None:
    """Return ``gc_threshold`` if it is three positive ints or None.

    Raises:
        ConfigError: It is anything else.
    """
    if gc_threshold is None:
        return None
    if not (isinstance(gc_threshold, tuple) and len(gc_threshold) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in gc_threshold)):
        raise ConfigError(f"gc_threshold must be three positive ints or None, got {gc_threshold!r}")
    return gc_threshold


def tune_worker_gc(gc_threshold: tuple[int, int, int]) -> None:
    """In a worker process an engine owns: freeze what is imported, raise the collector's thresholds.

    ``gc.freeze()`` moves every object alive now (the imported modules) out of
    the collector's reach, so full collections stop walking them; the higher
    first threshold collects a heap of calls in flight ten times less often.
    A library must not do this in its user's process; an engine's own worker
    processes are another matter.
    """
    gc.freeze()
    gc.set_threshold(*gc_threshold)


RunAll = Callable[[list[PartitionTask], OnDone, OnProgress | None, threading.Event],
                  list[PartitionResult]]
"""A blocking driver: runs the tasks and returns their results, stopping when the event is set."""


async def run_in_thread(
    run_all: RunAll, tasks: Sequence[PartitionTask], on_done: OnDone,
    on_progress: OnProgress | None = None,
) -> list[PartitionResult]:
    """Run a blocking ``run_all`` in a worker thread; cancelling the caller sets its stop event.

    The thread is abandoned on cancellation (it notices the event within its
    own polling interval), so the caller never waits on a pool or a cluster.
    """
    stop = threading.Event()
    try:
        return await anyio.to_thread.run_sync(run_all, list(tasks), on_done, on_progress, stop,
                                              abandon_on_cancel=True)
    finally:
        stop.set()


class Engine(ABC):
    """Runs partition tasks somewhere (worker processes, a cluster).

    Args:
        workers: How many partitions run at once (processes or cluster workers).
        address: A cluster's address, for engines that connect to one.
    """

    name = "engine"

    def __init__(self, *, workers: int | None = None, address: str | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or workers < 1):
            raise ConfigError(f"workers must be a positive int or None, got {workers!r}")
        self.workers = workers or 2
        self.address = address

    @property
    def default_partitions(self) -> int:
        """Partitions of a run that does not say (``2 x workers``: room to balance uneven ones)."""
        return self.workers * 2

    @abstractmethod
    async def run_partitions(
        self, tasks: Sequence[PartitionTask], on_done: OnDone,
        on_progress: OnProgress | None = None,
    ) -> list[PartitionResult]:
        """Run every task (each at least once, retried if its worker dies) and return the results.

        Blocks until all tasks finished; the first task that raises makes this
        raise that error once the others were stopped. A task may run twice
        (a worker died after writing): the run store makes that harmless.
        With ``on_progress``, running partitions report their counts to it
        (``run_partition``'s ``send_progress``), from any thread.
        """


_ENGINES: dict[str, Callable[..., Engine]] = {}


def register_engine(name: str, factory: Callable[..., Engine]) -> None:
    """Make ``flow.run(engine=name)`` build its engine with ``factory(workers=, address=)``."""
    _ENGINES[name] = factory


def engine_names() -> list[str]:
    """Return the registered engine names, plus ``"local"``."""
    return ["local", *sorted(_ENGINES)]


def get_engine(name: str, **kwargs: Any) -> Engine:
    """Return a new engine by name.

    Raises:
        ConfigError: No engine has that name.
    """
    factory = _ENGINES.get(name)
    if factory is None:
        raise ConfigError(f"unknown engine {name!r}; expected one of {engine_names()}")
    return factory(**kwargs)
