"""Memory pressure: the monitor pauses the sources and holds memory near the watermark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex.flows as fl
from dspex.backpressure import BufferPolicy, MemoryWatermarks
from dspex.backpressure._memory import MB
from dspex.events import Event, Metrics
from dspex.sinks import Sink
from dspex.sources import Source, SourceRecord

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence


class Ledger:
    """Fake memory: 1 MiB per item read and not yet written."""

    def __init__(self) -> None:
        self.read = 0
        self.written = 0
        self.peak = 0

    def sample(self) -> float:
        used = self.read - self.written
        self.peak = max(self.peak, used)
        return used * MB


class Src(Source):
    name = "ledger"

    def __init__(self, n: int, ledger: Ledger) -> None:
        self.n, self.ledger = n, ledger

    async def records(self, *, skip: Any = None) -> AsyncIterator[SourceRecord]:
        for i in range(self.n):
            self.ledger.read += 1
            yield SourceRecord({"i": i})


class SlowSink(Sink):
    name = "slow"
    wants_events = True

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.metrics: list[dict[str, Any]] = []

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        # slow per record (however the engine batches), so that, unmonitored, the
        # source fills every buffer on the way
        await anyio.sleep(0.0005 * len(records))
        self.ledger.written += len(records)

    async def write_event(self, event: Event) -> None:
        if isinstance(event, Metrics):
            self.metrics.append(event.values)


async def _run(memory: MemoryWatermarks | None, ledger: Ledger) -> tuple[Any, SlowSink]:
    sink = SlowSink(ledger)
    flow = fl.Flow("mem", buffer=BufferPolicy(size=64, chunk=8))
    flow.source(Src(1500, ledger)).map(lambda r: r).sink(sink)
    report = await flow.run(progress=False, memory=memory, max_in_flight=100_000)
    return report, sink


async def test_fake_sampler_forces_pauses_and_holds_memory() -> None:
    ledger = Ledger()
    marks = MemoryWatermarks(high_mb=100, low_mb=50, interval_s=0.0002, sampler=ledger.sample)
    report, sink = await _run(marks, ledger)
    assert report.items_out == 1500
    assert report.memory_pauses >= 1
    assert report.memory["pauses"] == report.memory_pauses
    assert ledger.peak < 300  # the unmonitored run keeps ~700+ items in flight (below)
    assert sink.metrics
    assert sink.metrics[0]["memory_paused"] is True
    assert any(m["memory_paused"] is False for m in sink.metrics)


async def test_unmonitored_run_ahead_is_large() -> None:
    ledger = Ledger()
    ahead = 0

    class Watch(Src):
        async def records(self, *, skip: Any = None) -> AsyncIterator[SourceRecord]:
            nonlocal ahead
            async for rec in super().records(skip=skip):
                ahead = max(ahead, ledger.read - ledger.written)
                yield rec

    sink = SlowSink(ledger)
    flow = fl.Flow("free", buffer=BufferPolicy(size=64, chunk=8))
    flow.source(Watch(1500, ledger)).map(lambda r: r).sink(sink)
    await flow.run(progress=False, max_in_flight=100_000)
    # so the bound above is the monitor's doing: two edges of 64 chunks x 8 items fill up
    assert ahead > 600, ahead


RSS_SCRIPT = """
import json, sys
import anyio
import dspex.flows as fl
from dspex.backpressure import BufferPolicy, MemoryWatermarks, rss_bytes
from dspex.backpressure._memory import MB
from dspex.sinks import Sink

class Slow(Sink):
    name = "slow"
    async def write(self, records):
        await anyio.sleep(0.002 * len(records))  # slow per record, however the engine batches

def payloads():
    for i in range(800):
        yield {"i": i, "blob": bytes([i % 251 + 1]) * (256 * 1024)}  # touched pages count in RSS

base = rss_bytes() / MB
marks = MemoryWatermarks(high_mb=base + 40, low_mb=base + 25, interval_s=0.002, sampler="rss")
flow = fl.Flow("rss", buffer=BufferPolicy(size=256, chunk=4))
flow.source(payloads()).map(lambda r: r).sink(Slow())
report = flow.run_sync(progress=False, memory=marks, max_in_flight=100_000)
print(json.dumps({"base": base, "peak": report.memory["peak_mb"], "pauses": report.memory_pauses,
                  "out": report.items_out}))
"""


@pytest.mark.timeout(120)
def test_real_rss_is_held_near_the_high_watermark() -> None:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # big blobs are mmapped, so freed
    proc = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, timeout=110, env=env
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["out"] == 800
    assert result["pauses"] >= 1
    assert result["peak"] < result["base"] + 120  # unbounded, the blobs alone are 200 MiB
