"""Regressions for the run-ahead bound (issue 12, defect 9).

An unordered concurrent ``map`` let results pile up behind its one sending
worker (up to ``2 * concurrency - 2`` waiting plus the chunk being sent), so
the source ran further ahead than the bound the flow promises. The source's
linger timer read ``time.monotonic`` and so flushed partial chunks at
wall-clock moments the test could not control; it now runs on the run's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anyio
import pytest

import dspex.flows as fl
from dspex.backpressure import BufferPolicy
from dspex.sinks import Sink
from dspex.sources import Source, SourceRecord
from dspex.testing import FakeClock


class GatedSink(Sink):
    """Blocks its first write until ``release`` is set; counts what it wrote."""

    name = "gated"

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.batches: list[int] = []
        self.written = 0

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.batches.append(len(records))
        await self.release.wait()
        self.written += len(records)


class Numbers(Source):
    """Yields ``n`` records, then optionally waits for ``more`` before ending."""

    name = "numbers"

    def __init__(self, n: int, hold: anyio.Event | None = None) -> None:
        self.n = n
        self.hold = hold

    async def records(self, *, skip: Any = None) -> AsyncIterator[SourceRecord]:
        for i in range(self.n):
            yield SourceRecord({"i": i})
        if self.hold is not None:
            await self.hold.wait()


@pytest.mark.reliability
@pytest.mark.parametrize("concurrency", [2, 3, 5])
async def test_unordered_map_holds_at_most_concurrency_items(concurrency: int) -> None:
    started = 0

    async def work(record: dict[str, int]) -> dict[str, int]:
        nonlocal started
        started += 1
        await anyio.sleep(0)
        return record

    sink = GatedSink()
    flow = fl.Flow("bound", buffer=BufferPolicy(size=0, chunk=1), max_in_flight=1_000_000)
    flow.source(Numbers(60)).map(work, concurrency=concurrency, ordered=False).sink(sink)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(progress=False))
        await anyio.wait_all_tasks_blocked()
        # The sink holds its first batch; past it, the map may have started
        # at most ``concurrency`` items (processing, waiting or being sent).
        assert sink.batches, "the sink never received a batch"
        assert 0 < started - sink.batches[0] <= concurrency
        sink.release.set()
    assert sink.written == 60 and started == 60


@pytest.mark.reliability
async def test_source_linger_runs_on_the_run_clock() -> None:
    clock = FakeClock()
    hold = anyio.Event()
    sink = GatedSink()
    sink.release.set()
    flow = fl.Flow("linger", buffer=BufferPolicy(size=2, chunk=8, linger_s=0.5))
    flow.source(Numbers(3, hold)).sink(sink)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(progress=False, clock=clock))
        await anyio.wait_all_tasks_blocked()
        assert sink.written == 0  # a partial chunk of 3 lingers: time has not moved
        clock.advance(0.4)
        await anyio.wait_all_tasks_blocked()
        assert sink.written == 0  # still inside linger_s
        clock.advance(0.1)
        await anyio.wait_all_tasks_blocked()
        assert sink.written == 3  # linger_s reached on the run's clock: sent
        hold.set()
    assert sink.batches == [3]
