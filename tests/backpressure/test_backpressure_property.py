"""Property: a slow sink bounds how far the source can run ahead (end-to-end backpressure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dspex.flows as fl
from dspex.backpressure import BufferPolicy
from dspex.sinks import Sink
from dspex.sources import Source, SourceRecord

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence


class Counted(Source):
    """Yields n records and tracks how far reads run ahead of sink writes."""

    name = "counted"

    def __init__(self, n: int, sink: SlowSink) -> None:
        self.n = n
        self.sink = sink
        self.read = 0
        self.max_ahead = 0

    async def records(self, *, skip: Any = None) -> AsyncIterator[SourceRecord]:
        for i in range(self.n):
            self.read += 1
            self.max_ahead = max(self.max_ahead, self.read - self.sink.written)
            yield SourceRecord({"i": i})


class SlowSink(Sink):
    name = "slow"

    def __init__(self, delay_checkpoints: int) -> None:
        self.delay = delay_checkpoints
        self.written = 0

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        for _ in range(self.delay):
            await anyio.lowlevel.checkpoint()
        self.written += len(records)


async def _work(r: dict[str, int]) -> dict[str, int]:
    await anyio.lowlevel.checkpoint()
    return r


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 300),
    chunk=st.integers(1, 8),
    size=st.integers(0, 3),
    maps=st.lists(st.integers(1, 4), max_size=3),
    delay=st.integers(1, 20),
    limit=st.one_of(st.none(), st.integers(1, 50)),
)
# issue 12 (9): an unordered map's results piled up uncounted behind its sender
@example(n=12, chunk=1, size=0, maps=[3], delay=14, limit=None)
async def test_source_never_runs_ahead_of_the_bound(
    n: int, chunk: int, size: int, maps: list[int], delay: int, limit: int | None
) -> None:
    sink = SlowSink(delay)
    source = Counted(n, sink)
    policy = BufferPolicy(size=size, chunk=chunk)
    flow = fl.Flow("bp", buffer=policy, max_in_flight=limit or 1_000_000)
    handle = flow.source(source)
    for concurrency in maps:
        handle = handle.map(_work, concurrency=concurrency, ordered=concurrency % 2 == 0)
    handle.sink(sink)
    report = await flow.run(progress=False)
    assert sink.written == n
    assert report.items_out == n
    edges = len(maps) + 1
    # Where an item read by the source but not yet written can be. Chunks on
    # an edge never exceed ``chunk`` items (Outputs.send splits bigger ones),
    # and each producer has at most one send in progress.
    bound = (
        2 * chunk  # the source's pending chunk and one being sent
        + edges * policy.capacity  # buffered on the edges
        # each map: the chunk it received + the items between its input and
        # output (ordered: concurrency; unordered: 2 * concurrency)
        + sum(chunk + (c if c % 2 == 0 else 2 * c) for c in maps)
        # the sink's batch: what it drained from its edge + the chunk of the
        # producer blocked in send
        + policy.capacity + chunk
    )
    assert source.max_ahead <= bound
    if limit is not None:
        assert source.max_ahead <= limit
    hwm = max(node.queue_hwm for node in report.nodes.values())
    assert hwm <= policy.capacity + chunk  # buffered + the one producer blocked in send
