"""Progress from inside running partitions, summed for the client.

Worker side, :func:`progress_hook` is handed to the partition's local run as
its ``progress`` callable (``Flow.run(progress=hook, progress_every_s=...)``):
every ``PROGRESS_EVERY_S`` seconds (so at most 10 updates a second per
partition) it turns the running report into a small :class:`PartitionProgress`
and passes it to the engine's channel home (a multiprocessing queue, Dask
worker events) unless nothing changed since the last one. Client side, a
:class:`ProgressBoard` keeps the latest counts of every partition (from any
thread) and sums them into a running ``RunReport``. Counters never go back:
a partition attempt that restarts after its worker died is shown with the
larger of its counts until its final report replaces them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..flows._report import RunReport

if TYPE_CHECKING:
    from ._task import PartitionResult

__all__ = ["PROGRESS_EVERY_S", "OnProgress", "PartitionProgress", "ProgressBoard", "progress_hook"]

PROGRESS_EVERY_S = 0.1  # a partition's update interval: at most 10 a second


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """One partition's counts so far (plain values: it crosses processes as a dict).

    Attributes:
        index: The partition's number.
        items_in: Records read so far.
        items_out: Items written to sinks so far.
        items_failed: Items failed so far.
        cost: LM cost so far.
        usage: LM usage so far (``input_tokens``, ``output_tokens``, ...).
    """

    index: int
    items_in: int = 0
    items_out: int = 0
    items_failed: int = 0
    cost: float = 0.0
    usage: dict[str, int | float] = field(default_factory=dict)

    @classmethod
    def of(cls, index: int, report: RunReport) -> PartitionProgress:
        """Return the counts of ``report`` (a partition's running or final report)."""
        usage = {k: v for k, v in report.usage.items() if isinstance(v, int | float)}
        return cls(index, report.items_in, report.items_out, report.items_failed,
                   report.cost, usage)

    def to_dict(self) -> dict[str, Any]:
        """Return the counts as a dict of plain values (msgpack- and pickle-able)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionProgress:
        """Rebuild from :meth:`to_dict`'s output (other keys are ignored: Dask adds ``worker``)."""
        return cls(**{k: data[k] for k in _FIELDS if k in data})


_FIELDS = tuple(f.name for f in fields(PartitionProgress))

OnProgress = Callable[[PartitionProgress], None]
"""Called with a partition's latest counts (from any thread)."""


def progress_hook(index: int, send: OnProgress) -> Callable[[RunReport], None]:
    """Return a ``Flow.run(progress=...)`` hook sending partition ``index``'s counts.

    An update equal to the previous one is not sent. ``send`` must not block
    for long: it runs on the partition's event loop.
    """
    last: list[PartitionProgress] = []

    def hook(report: RunReport) -> None:
        update = PartitionProgress.of(index, report)
        if not last or update != last[0]:
            last[:] = [update]
            send(update)

    return hook


class ProgressBoard:
    """The latest counts of every partition, summed into a running report (thread-safe).

    Args:
        flow: The flow's name (for the reports).
        run_id: The run's id.
    """

    def __init__(self, flow: str, run_id: str) -> None:
        self.flow, self.run_id = flow, run_id
        self._parts: dict[int, PartitionProgress] = {}
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change; readers compare it to skip idle ticks

    def update(self, progress: PartitionProgress) -> None:
        """Record a partition's counts (each counter keeps its largest value)."""
        with self._lock:
            old = self._parts.get(progress.index)
            if old is not None:
                usage = {k: max(v, old.usage.get(k, 0)) for k, v in progress.usage.items()}
                progress = PartitionProgress(
                    progress.index, max(progress.items_in, old.items_in),
                    max(progress.items_out, old.items_out),
                    max(progress.items_failed, old.items_failed),
                    max(progress.cost, old.cost), {**old.usage, **usage})
                if progress == old:
                    return
            self._parts[progress.index] = progress
            self.version += 1

    def finish(self, result: PartitionResult) -> None:
        """Replace a partition's counts by its final report's."""
        with self._lock:
            self._parts[result.index] = PartitionProgress.of(result.index, result.report)
            self.version += 1

    def snapshot(self) -> RunReport:
        """Return the summed counts as a report with status ``"running"``."""
        with self._lock:
            parts = list(self._parts.values())
        report = RunReport(self.flow, self.run_id, status="running")
        for p in parts:
            report.items_in += p.items_in
            report.items_out += p.items_out
            report.items_failed += p.items_failed
            report.cost += p.cost
            for k, v in p.usage.items():
                report.usage[k] = report.usage.get(k, 0) + v
        return report
