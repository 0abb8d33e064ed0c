"""Regressions for the run-ahead bound (issue 12, defect 9).

An unordered concurrent ``map`` let results pile up behind its one sending
worker (up to ``2 * concurrency - 2`` waiting plus the chunk being sent, with
nothing counting them), so the source ran further ahead than any bound the
flow states; it now holds at most ``2 * concurrency`` items. The source's
linger timer read ``time.monotonic`` and so flushed partial chunks at
wall-clock moments the test could not control; it now runs on the run's clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import dspex.flows as fl
from dspex.backpressure import BufferPolicy
from dspex.sinks import Sink
from dspex.sources import Source, SourceRecord
from dspex.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence


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


class StallingSink(Sink):
    """Writes slowly (``delay`` checkpoints per batch), then blocks on batch ``block_at``."""

    name = "stalling"

    def __init__(self, delay: int, block_at: int) -> None:
        self.delay, self.block_at = delay, block_at
        self.release = anyio.Event()
        self.batches: list[int] = []
        self.written = 0

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.batches.append(len(records))
        if len(self.batches) == self.block_at:
            await self.release.wait()
        else:
            for _ in range(self.delay):
                await anyio.lowlevel.checkpoint()
        self.written += len(records)


@pytest.mark.reliability
@pytest.mark.parametrize("concurrency", [3, 4, 6])
async def test_unordered_map_holds_at_most_twice_its_concurrency(concurrency: int) -> None:
    started = 0

    async def work(record: dict[str, int]) -> dict[str, int]:
        nonlocal started
        started += 1
        await anyio.lowlevel.checkpoint()
        return record

    # A slow first write lets results pile up behind the sending worker, then
    # the sink stalls: before the fix the map held up to 3 * concurrency items.
    sink = StallingSink(delay=20, block_at=2)
    flow = fl.Flow("bound", buffer=BufferPolicy(size=0, chunk=1), max_in_flight=1_000_000)
    flow.source(Numbers(300)).map(work, concurrency=concurrency, ordered=False).sink(sink)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(progress=False))
        await anyio.wait_all_tasks_blocked()
        assert len(sink.batches) == 2, "the sink is not stalled on its second batch"
        # started by the map, neither written nor in the sink's stalled batch:
        in_map = started - sink.written - sink.batches[-1]
        assert 0 < in_map <= 2 * concurrency
        sink.release.set()
    assert sink.written == 300
    assert started == 300


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


async def test_a_cancelled_fake_clock_sleep_is_forgotten() -> None:
    clock = FakeClock()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.sleep, 5.0)
        await anyio.wait_all_tasks_blocked()
        assert clock.sleeping == 1
        assert clock.next_deadline() == 5.0
        tg.cancel_scope.cancel()  # as a flow cancels its linger timer at the end
    assert clock.sleeping == 0
    assert clock.next_deadline() is None
