"""One partition's work as it travels to a worker, and what comes back.

:func:`pack` pickles the flow for partition ``i`` with cloudpickle and a
``reducer_override`` that (1) swaps the keyed source for the partition's
source, (2) turns each file sink into a sink on the partition's own file
(``out.part-00007.jsonl``, appended to, so a resumed partition truncates to
its committed position), and each ``collect()`` sink into a fresh one whose
items come back in the result, and (3) pickles every ``LM`` *without* its API
key: a worker builds the LM again and reads the key from its own
environment, so no key is in the task payload, the task graph or the
dashboard. :func:`run_partition` is what a worker runs: the local engine
(``anyio.run`` through ``run_sync``, on asyncio or trio) with the partition's
run id and the shared run store, then it returns a :class:`PartitionResult`.
"""

from __future__ import annotations

import io
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import cloudpickle

from .._util._sync import run_sync
from ..errors import ConfigError, RunLeaseError
from ..lm._lm import LM
from ..sinks._files import CsvSink, FileSink, JsonlSink
from ..sinks._simple import CollectSink
from ._progress import PROGRESS_EVERY_S, OnProgress, progress_hook

if TYPE_CHECKING:
    from ..flows._report import RunReport
    from ..sources._base import Source

__all__ = ["LEASE_WAIT_S", "PartitionResult", "PartitionTask", "pack", "part_path", "run_partition"]

LEASE_WAIT_S = 45.0  # the run store's lease lives 30 s; an abandoned one has expired by then


@dataclass(frozen=True, slots=True)
class PartitionTask:
    """What a worker needs to run one partition (no secrets inside).

    Attributes:
        index: The partition's number (0-based).
        run_id: The partition's own run id (``"<run_id>/part-00007"``).
        payload: The cloudpickled ``(flow, run options)`` with the partition's
            source and sinks; the options hold the ``Flow.run`` arguments and
            the caller's effective ``dx.context`` settings.
        store: The run store's path, reachable from every worker.
        backend: ``"asyncio"`` or ``"trio"`` for the worker's event loop.
    """

    index: int
    run_id: str
    payload: bytes
    store: str
    backend: str

    def __repr__(self) -> str:  # the payload is opaque; keep reprs short
        return f"<PartitionTask {self.run_id!r} ({len(self.payload)} bytes)>"


@dataclass(slots=True)
class PartitionResult:
    """One partition's report, its ``collect()`` items and its sink files."""

    index: int
    report: RunReport
    collected: dict[str, list[Any]] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)  # part file path -> bytes
    pid: int = 0
    peak_rss_mb: float = 0.0  # the worker process's peak so far (ru_maxrss)


def part_path(path: str, index: int) -> str:
    """Return partition ``index``'s file for sink ``path`` (``a.jsonl`` -> ``a.part-00007.jsonl``)."""
    stem, ext = os.path.splitext(path)
    return f"{stem}.part-{index:05d}{ext}"


def _file_sink(cls: type[FileSink], path: str, kwargs: dict[str, Any]) -> FileSink:
    return cls(path, mode="a", **kwargs)


def _collect(name: str) -> CollectSink:
    return CollectSink(name)


def _same(obj: Any) -> Any:
    return obj


class _PartitionPickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle has no stubs
    """Cloudpickle with the partition's substitutions (see the module docstring)."""

    def __init__(self, file: Any, source: Source, part: Source, index: int) -> None:
        super().__init__(file)
        self._source, self._part, self._index = source, part, index

    def reducer_override(self, obj: Any) -> Any:
        if obj is self._source and obj is not self._part:
            return _same, (self._part,)
        if isinstance(obj, LM):
            rebuild, (model, _key, *rest) = obj.__reduce__()
            return rebuild, (model, None, *rest)  # the worker reads its own key
        if isinstance(obj, JsonlSink | CsvSink):
            kw: dict[str, Any] = {"buffer_bytes": obj.buffer_bytes}
            if isinstance(obj, CsvSink):
                kw.update(fieldnames=obj._given, extrasaction=obj.extrasaction,
                          delimiter=obj.delimiter)
            return _file_sink, (type(obj), part_path(obj.path, self._index), kw)
        if type(obj) is CollectSink:
            return _collect, (obj.name,)
        return super().reducer_override(obj)


def pack(flow: Any, options: dict[str, Any], source: Source, part: Source, index: int) -> bytes:
    """Pickle ``(flow, options)`` for partition ``index`` (``source`` replaced by ``part``).

    Raises:
        ConfigError: Something in the flow cannot be pickled; names it.
    """
    buf = io.BytesIO()
    try:
        _PartitionPickler(buf, source, part, index).dump((flow, options))
    except Exception as exc:
        raise ConfigError(
            f"flow {flow.name!r} cannot be sent to a worker ({type(exc).__name__}: {exc}); "
            "expected functions, modules, sources and sinks that pickle (no open files, "
            "sockets or locks captured in closures)"
        ) from exc
    return buf.getvalue()


def run_partition(task: PartitionTask, send_progress: OnProgress | None = None) -> PartitionResult:
    """Run one partition to the end on the local engine (blocks; worker side).

    With ``send_progress``, the partition's counts so far go to it every
    ``PROGRESS_EVERY_S`` seconds while it runs (when they changed) and once
    at its end, from the partition's event loop thread.

    Resumes from the run store when the partition ran before (a killed worker,
    a retried task): its done keys are skipped and its sink files are cut back
    to the committed positions. While an earlier attempt still holds the
    partition's lease (a worker presumed dead that is still running), waits
    for it, at most ``LEASE_WAIT_S`` seconds (longer than a lease lives), then
    raises ``RunLeaseError``. Raises what ``Flow.run`` raises (``FlowFailed``, ...).
    """
    flow, options = cloudpickle.loads(task.payload)
    progress: Any = False
    if send_progress is not None:
        options = {**options, "progress_every_s": PROGRESS_EVERY_S}
        progress = progress_hook(task.index, send_progress)
    run = partial(flow.run, run_id=task.run_id, store=task.store, progress=progress, **options)
    deadline = time.monotonic() + LEASE_WAIT_S
    while True:
        try:
            report = run_sync(run, backend=task.backend)
            break
        except RunLeaseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # a worker thread or process of its own: blocking is fine
    rss_unit = 1 << 20 if sys.platform == "darwin" else 1 << 10  # bytes on macOS, KiB on Linux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / rss_unit
    result = PartitionResult(task.index, report, pid=os.getpid(), peak_rss_mb=round(peak, 1))
    for node in flow.nodes:
        for sink in node.sinks:
            if type(sink) is CollectSink:
                result.collected[sink.name] = list(sink.items)
            elif isinstance(sink, FileSink):
                exists = os.path.exists(sink.path)
                result.files[sink.path] = os.path.getsize(sink.path) if exists else 0
    return result
