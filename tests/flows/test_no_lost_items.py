"""No item is lost when a helper task is stopped while it is sending a chunk.

A source's linger task, and the timers of ``batch`` and ``window``, send
partial chunks on their own. When the input ends, the owner stops them by
cancelling their task group; a helper that was then blocked in ``send`` on a
full edge (a slow sink) used to lose the chunk it held, and the run still
reported ``completed`` (with a run store, the lost keys were never done, so
the output silently missed them). Each test drives that exact interleaving:
the sink holds its first write, the next chunk fills the edge, the helper
blocks sending the last records, the input ends, and only then is the sink
released. The last test checks the runner's guard: a run that ends with items
unaccounted for fails instead of reporting ``completed``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex.flows as fl
from dspex.backpressure import BufferPolicy
from dspex.errors import FlowFailed
from dspex.operators import Operator
from dspex.sinks import Sink, jsonl
from dspex.sources import Source, SourceRecord, iterable
from dspex.store import RunStore
from dspex.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence
    from pathlib import Path

    from dspex.backpressure._edge import EdgeReceiver
    from dspex.operators import NodeContext, Outputs


class HeldSink(Sink):
    """A sink whose first write waits until ``release`` is set."""

    def __init__(self) -> None:
        self.name = "held"
        self.items: list[Any] = []
        self.release = anyio.Event()
        self.writing = anyio.Event()

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.writing.set()
        await self.release.wait()
        self.items.extend(records)


class EndsAfterLinger(Source):
    """Yield 10 keyed records in three steps, then end.

    ``[0-3]`` (one chunk), then wait until the sink holds it in its first
    write; ``[4-7]`` (a chunk that fills the edge) and ``[8, 9]``, then wait
    until every other task is blocked: the linger task has taken ``[8, 9]``
    and is blocked sending them; then end.
    """

    def __init__(self, sink: HeldSink) -> None:
        self.name = "ends-after-linger"
        self.id_field = "id"
        self.sink = sink
        self.ended = anyio.Event()

    async def records(self, *, skip: Any = None) -> AsyncIterator[SourceRecord]:
        for i in range(10):
            if i == 4:
                await self.sink.writing.wait()
            if skip is None or not skip(str(i)):
                yield SourceRecord({"id": i}, key=str(i))
        await anyio.wait_all_tasks_blocked()
        self.ended.set()


async def _release_after(ended: anyio.Event, sink: HeldSink) -> None:
    await ended.wait()
    await anyio.wait_all_tasks_blocked()  # the source task has finished meanwhile
    sink.release.set()


@pytest.mark.parametrize("keyed", [False, True])
async def test_linger_chunk_in_flight_when_source_ends(tmp_path: Path, keyed: bool) -> None:
    # chunk 4, edge of 1 chunk: [0-3] held by the sink, [4-7] fills the edge,
    # the linger task takes [8, 9] and blocks; then the source ends.
    sink = HeldSink()
    flow = fl.Flow("linger", buffer=BufferPolicy(size=1, chunk=4, linger_s=0.0))
    source = EndsAfterLinger(sink)
    flow.source(source).sink(sink)
    store = RunStore(tmp_path / "s.sqlite")
    options: dict[str, Any] = {"run_id": "r", "store": store} if keyed else {}
    async with store, anyio.create_task_group() as tg:
        tg.start_soon(_release_after, source.ended, sink)
        with anyio.fail_after(10):
            report = await flow.run(progress=False, **options)
        checkpoint = await store.load_checkpoint("r")
    assert sorted(r["id"] for r in sink.items) == list(range(10))
    assert (report.items_in, report.items_out, report.status) == (10, 10, "completed")
    if keyed:
        assert checkpoint is not None
        assert checkpoint.done == {str(i) for i in range(10)}


def _held_source(n: int, end: anyio.Event, sink: HeldSink) -> Any:
    """Yield ``[0, 1]``, wait until the sink holds them, yield the rest, wait for ``end``."""

    async def gen() -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            if i == 2:
                await sink.writing.wait()
            yield {"i": i}
        await end.wait()

    return gen()


async def _drive(
    flow: fl.Flow, clock: FakeClock, sink: HeldSink, end: anyio.Event, s: float
) -> Any:
    """Fire the timer while the edge is full, end the input, then release the sink."""
    result: dict[str, Any] = {}

    async def run() -> None:
        result["report"] = await flow.run(progress=False, clock=clock)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await sink.writing.wait()
            await clock.step(s)  # the timer emits and blocks on the full edge
            end.set()
            await anyio.wait_all_tasks_blocked()  # the input ended meanwhile
            sink.release.set()
    return result["report"]


async def test_batch_timer_send_in_flight_when_input_ends() -> None:
    # batches [0, 1] (held by the sink) and [2, 3] (fills the edge) by size;
    # [4] is emitted by the timer, which blocks sending it.
    clock, end, sink = FakeClock(), anyio.Event(), HeldSink()
    flow = fl.Flow("bt", buffer=BufferPolicy(size=1, chunk=1))
    flow.source(_held_source(5, end, sink)).batch(size=2, timeout=5.0).sink(sink)
    report = await _drive(flow, clock, sink, end, 5.0)
    assert [[r["i"] for r in b] for b in sink.items] == [[0, 1], [2, 3], [4]]
    assert report.items_out == 3


async def test_window_timer_send_in_flight_when_input_ends() -> None:
    # groups of 2 close early by size; the timer closes the window with [4].
    clock, end, sink = FakeClock(), anyio.Event(), HeldSink()
    flow = fl.Flow("wt", buffer=BufferPolicy(size=1, chunk=1))
    flow.source(_held_source(5, end, sink)).window(10.0, size=2).sink(sink)
    report = await _drive(flow, clock, sink, end, 10.0)
    assert [[x["i"] for x in w["items"]] for w in sink.items] == [[0, 1], [2, 3], [4]]
    assert report.items_out == 3


class Forgets(Operator):
    """A broken operator: it passes records on but forgets those in ``lose``."""

    kind = "forgets"

    def __init__(self, lose: set[int]) -> None:
        super().__init__()
        self.lose = lose

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        async for chunk in receive:
            ctx.stats.items_in += len(chunk)
            await out.send([item for item in chunk if item.data["id"] not in self.lose])


async def test_items_lost_by_the_engine_fail_the_run_and_resume_redoes_them(tmp_path: Path) -> None:
    rows = [{"id": i} for i in range(40)]
    out, store = tmp_path / "out.jsonl", tmp_path / "s.sqlite"

    def build(lose: set[int]) -> fl.Flow:
        flow = fl.Flow("forgets")
        flow.source(iterable(rows, id_field="id")).then(Forgets(lose)).sink(jsonl(out))
        return flow

    with pytest.raises(FlowFailed, match=r"ended with 3 items neither written") as info:
        await build({5, 17, 30}).run(run_id="f", store=store, progress=False)
    assert info.value.report.status == "failed"
    assert info.value.report.committed_keys == 37  # the written ones only
    report = await build(set()).run(run_id="f", store=store, progress=False)
    assert report.items_in == 3
    assert report.status == "completed"
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == list(range(40))
