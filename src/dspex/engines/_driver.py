"""Run a flow over partitions on an engine and merge what comes back.

Exactly-once across workers rests on the run store (SQLite on a path every
worker can reach; the store is only used through ``RunStore``'s small API so
a server database can replace it). The run ``R`` is split into partitions
``R/part-00000``, ``R/part-00001``, ...; each is an ordinary run of the local
engine with its own lease, done keys and sink positions, so a killed worker
or a retried task resumes that partition only, and two attempts of one
partition never run at once (the second waits out the lease or takes over
from a dead process). ``R`` itself records the plan (the partition count,
under the position key ``"@plan"``) and one done key ``"@part:N"`` per
finished partition: a re-launch with the same run id reuses the count, skips
finished partitions and resumes the others, processing only what is missing.

Sinks: a file sink becomes one file per partition (``out.part-00007.jsonl``)
plus a manifest ``out.manifest.json`` listing them. Why not a merge step: it
would read and write the whole output once more, and each partition file
resumes on its own from its committed position. ``collect()`` sinks receive
the items of the partitions run now, in partition order.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from .._context import KNOWN_SETTINGS, settings_snapshot
from .._util._clock import default_clock
from ..errors import ConfigError
from ..flows._report import NodeReport, RunReport
from ..sinks._files import FileSink
from ..sinks._simple import CollectSink
from ..store._sqlite import DEFAULT_STORE_PATH, RunStore
from ._partition import split_source
from ._progress import PROGRESS_EVERY_S, ProgressBoard
from ._task import PartitionResult, PartitionTask, pack, part_path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..flows._progress import ProgressHook
    from ..sources._base import Source
    from ._base import Engine

__all__ = ["WORKER_RETENTION", "run_partitioned", "worker_settings"]

log = logging.getLogger("dspex.engines")

LINE_EVERY_S = 10.0  # the summed progress line on stderr (no hook given)

WORKER_RETENTION = 100
"""LM calls a worker keeps in its histories and trace unless the caller chose a size."""


def worker_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Return the caller's ``dx.context`` settings as a partition runs with them.

    Two differ, because what a worker records stays in the worker: the trace
    starts empty (the caller's entries would only fatten every task), and the
    LM and predictor histories and the trace keep the last ``WORKER_RETENTION``
    calls instead of 10,000 unless the caller set another size. A full
    10,000-entry history and trace are ~20 objects a call that every full
    collection walks: up to ~6 % of a process's throughput at concurrency 256
    once full, for records nobody outside the worker can read. Code inside the
    flow still sees the last calls (``inspect_history``).
    """
    out = dict(settings)
    if out.get("trace") is not None:
        out["trace"] = []
    for key in ("max_history_size", "max_trace_size"):
        if out.get(key) == KNOWN_SETTINGS[key]:
            out[key] = WORKER_RETENTION
    return out


def _source(flow: Any) -> Source:
    sources = [n for n in flow.nodes if n.kind == "source"]
    if len(sources) != 1:
        raise ConfigError(
            f"flow {flow.name!r} has {len(sources)} sources; a multi-process engine expects "
            "exactly one (the one it partitions)"
        )
    source: Source = sources[0].source
    return source


def _store_path(store: Any) -> str:
    path = getattr(store, "path", store) if store is not None else DEFAULT_STORE_PATH
    if not isinstance(path, str | os.PathLike) or str(path) == ":memory:":
        raise ConfigError(
            f"a multi-process engine needs a run store file every worker can reach; got {store!r}"
        )
    return os.path.abspath(path)


async def _plan(store: RunStore, run_id: str, partitions: int) -> tuple[int, set[int], bool]:
    """Return the partition count, the partitions already finished, and whether resumed."""
    ck = await store.load_checkpoint(run_id)
    plan = ck.positions.get("@plan") if ck is not None else None
    if plan is None:
        await store.commit(run_id, [], {"@plan": {"partitions": partitions}})
        return partitions, set(), False
    assert ck is not None  # a plan was found in it
    done = {int(k.split(":", 1)[1]) for k in ck.done if k.startswith("@part:")}
    return int(plan["partitions"]), done, True


def _file_sinks(flow: Any) -> list[FileSink]:
    return [s for n in flow.nodes for s in n.sinks if isinstance(s, FileSink)]


def _fresh_files(flow: Any, count: int) -> None:
    """Before a fresh run: drop part files left by an earlier run of a ``mode="w"`` sink."""
    for sink in _file_sinks(flow):
        if sink.mode == "w":
            for i in range(count):
                if os.path.exists(part_path(sink.path, i)):
                    os.remove(part_path(sink.path, i))


def _write_manifests(flow: Any, run_id: str, count: int) -> None:
    for sink in _file_sinks(flow):
        parts = [part_path(sink.path, i) for i in range(count)]
        manifest = {
            "run_id": run_id, "sink": sink.path,
            "parts": [{"path": p, "bytes": os.path.getsize(p) if os.path.exists(p) else 0}
                      for p in parts],
        }
        stem, _ = os.path.splitext(sink.path)
        with open(f"{stem}.manifest.json", "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)


def _merge_nodes(into: dict[str, NodeReport], nodes: dict[str, NodeReport]) -> None:
    for name, n in nodes.items():
        old = into.get(name)
        if old is None:
            into[name] = n
            continue
        into[name] = NodeReport(
            name, n.kind, old.items_in + n.items_in, old.items_out + n.items_out,
            old.items_failed + n.items_failed, round(old.busy_s + n.busy_s, 6),
            max(old.queue_hwm, n.queue_hwm), max(old.queue_capacity, n.queue_capacity),
        )


def merge_reports(flow_name: str, run_id: str, results: Sequence[PartitionResult],
                  resumed: bool) -> RunReport:
    """Return one report summing the partitions' counts, usage, cost and nodes."""
    report = RunReport(flow_name, run_id, resumed=resumed)
    statuses = set()
    for r in results:
        p = r.report
        statuses.add(p.status)
        report.items_in += p.items_in
        report.items_out += p.items_out
        report.items_failed += p.items_failed
        report.cost += p.cost
        for k, v in p.usage.items():
            report.usage[k] = report.usage.get(k, 0) + v if isinstance(v, int | float) else v
        _merge_nodes(report.nodes, p.nodes)
        report.dead_letters.extend(p.dead_letters)
        report.dead_letter_count += p.dead_letter_count
        report.committed_keys += p.committed_keys
        report.validation_failures += p.validation_failures
        report.resumed = report.resumed or p.resumed
    peaks: dict[str, float] = {}
    for r in results:  # one figure per worker process: its largest
        peaks[str(r.pid)] = max(peaks.get(str(r.pid), 0.0), r.peak_rss_mb)
    report.memory["worker_peak_rss_mb"] = peaks
    report.status = next((s for s in ("failed", "cancelled") if s in statuses), "completed")
    return report


def _line(report: RunReport, elapsed: float) -> str:
    done = report.items_out + report.items_failed
    rate = done / elapsed if elapsed > 0 else 0.0
    tokens = int(report.usage.get("input_tokens", 0) + report.usage.get("output_tokens", 0))
    return (f"{report.flow}: {report.items_in} in, {report.items_out} out, {rate:,.1f} items/s, "
            f"{report.items_failed} failed, {tokens:,} tokens, ${report.cost:.4f}")


async def _watch(board: ProgressBoard, progress: bool | ProgressHook | None) -> None:
    """Until cancelled: pass the board's sums to the hook (at most every ``PROGRESS_EVERY_S``),
    or print them on stderr every ``LINE_EVERY_S`` seconds; only when they changed."""
    clock, seen = default_clock(), -1
    start = clock.now()
    hook = None if progress is None or isinstance(progress, bool) else progress
    while True:
        await clock.sleep(PROGRESS_EVERY_S if hook is not None else LINE_EVERY_S)
        if board.version == seen:
            continue
        seen = board.version
        if hook is not None:
            hook(board.snapshot())
        else:
            print(_line(board.snapshot(), clock.now() - start), file=sys.stderr, flush=True)


async def _run_tasks(engine: Engine, tasks: list[PartitionTask], board: ProgressBoard,
                     progress: bool | ProgressHook | None, count: int) -> list[PartitionResult]:
    """Run ``tasks`` on ``engine``; their progress goes to ``board`` and on to the caller."""
    def on_done(result: PartitionResult) -> None:  # called from the engine's thread
        board.finish(result)
        line = (f"{board.flow}: partition {result.index + 1}/{count} done on pid "
                f"{result.pid}: {result.report.items_in} in, {result.report.items_out} out")
        log.info(line)
        if progress is None or progress is True:
            print(line, file=sys.stderr, flush=True)

    if progress is False:
        return await engine.run_partitions(tasks, on_done)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch, board, progress)
        results = await engine.run_partitions(tasks, on_done, board.update)
        tg.cancel_scope.cancel()
    return results


async def run_partitioned(
    flow: Any, engine: Engine, *, run_id: str | None, store: Any, partitions: int | None,
    backend: str, options: dict[str, Any], progress: bool | ProgressHook | None = None,
) -> RunReport:
    """Split ``flow``'s source, run the partitions on ``engine``, merge the reports.

    Blocks until every partition finished. Unless ``progress`` is False the
    running partitions stream their counts home: with ``None``/``True`` one
    line per finished partition, a summed line every ``LINE_EVERY_S``
    seconds and a last one go to stderr; a callable ``progress`` gets the summed running
    report at most every ``PROGRESS_EVERY_S`` seconds, then the final report.
    Raises what a partition raised (``FlowFailed`` with that partition's
    report, ``RunLeaseError``, ...) or ``ConfigError`` for a flow that cannot
    be partitioned or pickled.
    """
    started = time.perf_counter()
    flow.check()
    source = _source(flow)
    path, run_id = _store_path(store), run_id or uuid.uuid4().hex
    async with RunStore(path) as rs:
        count, finished, resumed = await _plan(rs, run_id, partitions or engine.default_partitions)
        if not resumed:
            _fresh_files(flow, count)
        parts = split_source(source, count)
        # the caller's effective dx.context settings travel with the flow
        options = {**worker_settings(settings_snapshot()), **options}
        tasks = [PartitionTask(i, f"{run_id}/part-{i:05d}", pack(flow, options, source, part, i),
                               path, backend)
                 for i, part in enumerate(parts) if i not in finished]
        board = ProgressBoard(flow.name, run_id)
        results = await _run_tasks(engine, tasks, board, progress, len(parts)) if tasks else []
        await rs.commit(run_id, [f"@part:{r.index}" for r in results], {})
    _write_manifests(flow, run_id, len(parts))
    for r in sorted(results, key=lambda r: r.index):
        for node in flow.nodes:
            for sink in node.sinks:
                if type(sink) is CollectSink and sink.name in r.collected:
                    sink.items.extend(r.collected[sink.name])
    report = merge_reports(flow.name, run_id, results, resumed)
    report.duration_s = time.perf_counter() - started
    if progress is None or progress is True:
        print(_line(report, report.duration_s), file=sys.stderr, flush=True)  # how it ended
    elif progress is not False:
        progress(report)  # the last call: the final counts
    return report
