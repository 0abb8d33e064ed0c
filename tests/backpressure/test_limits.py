"""Edges, the in-flight limiter, the source gate and the memory monitor."""

from __future__ import annotations

import anyio
import pytest

from dspex.backpressure import (
    BufferPolicy,
    InFlightLimiter,
    MemoryMonitor,
    MemoryWatermarks,
    SourceGate,
    create_edge,
    rss_bytes,
)
from dspex.backpressure._memory import MB, resolve_sampler
from dspex.errors import ConfigError
from dspex.testing import FakeClock


async def test_edge_blocks_when_full_and_counts_high_water() -> None:
    send, receive = create_edge("e", BufferPolicy(size=2, chunk=3))
    await send.send([1, 2, 3])
    await send.send([4])
    with anyio.move_on_after(0.05) as scope:  # a third chunk must wait for room
        await send.send([5])
    assert scope.cancelled_caught
    assert await receive.__anext__() == [1, 2, 3]
    assert receive.receive_nowait() == [4]
    assert receive.receive_nowait() is None
    assert send.edge.items_hwm == 4
    assert send.edge.chunks_hwm == 2
    send.close()
    with pytest.raises(StopAsyncIteration):
        await receive.__anext__()
    receive.close()


def test_buffer_policy_validation_and_coerce() -> None:
    base = BufferPolicy(size=4, chunk=16)
    assert base.capacity == 64
    assert BufferPolicy.coerce(8, base) == BufferPolicy(size=8, chunk=16)
    assert BufferPolicy.coerce(None, base) is base
    with pytest.raises(ConfigError, match="chunk must be"):
        BufferPolicy(chunk=0)
    with pytest.raises(ConfigError, match="BufferPolicy or an int"):
        BufferPolicy.coerce("big", base)  # type: ignore[arg-type]


async def test_limiter_waits_for_room_and_shrinks() -> None:
    limiter = InFlightLimiter(3, floor=2)
    limiter.admit(3)
    assert limiter.full
    woke = anyio.Event()

    async def waiter() -> None:
        await limiter.wait()
        woke.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert not woke.is_set()
        limiter.release(1)
    assert woke.is_set()
    assert limiter.peak == 3
    limiter.shrink(0.1)
    assert limiter.limit == 2
    assert limiter.full
    limiter.restore()
    assert limiter.limit == 3
    assert not limiter.full


async def test_gate_pauses_and_resumes() -> None:
    gate = SourceGate()
    gate.pause()
    passed = anyio.Event()

    async def source() -> None:
        await gate.wait()
        passed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(source)
        await anyio.wait_all_tasks_blocked()
        assert not passed.is_set()
        gate.resume()
    assert passed.is_set()
    assert gate.pauses == 1


async def test_monitor_hysteresis_with_fake_sampler() -> None:
    samples = iter([50, 120, 110, 90, 70, 130])
    changes: list[bool] = []
    marks = MemoryWatermarks(high_mb=100, low_mb=80, interval_s=1.0,
                             sampler=lambda: next(samples) * MB)
    gate, limiter = SourceGate(), InFlightLimiter(100)
    limiter.admit(10)  # items in flight: a pause can end only below the low watermark
    monitor = MemoryMonitor(marks, gate, limiter, lambda v: changes.append(v["memory_paused"]))
    states = []
    clock = FakeClock()
    for _ in range(6):
        monitor.update(monitor.sampler(), clock.now())
        states.append((gate.paused, limiter.limit))
        clock.advance(1.0)
    assert states == [(False, 100), (True, 50), (True, 50), (True, 50), (False, 100), (True, 50)]
    assert changes == [True, False, True]
    assert monitor.pauses == 2
    assert monitor.stats()["paused_s"] == pytest.approx(3.0)
    assert monitor.stats()["peak_mb"] == 130
    limiter.release(10)
    monitor.update(130 * MB, clock.now())
    assert not gate.paused  # nothing in flight: waiting could not free memory


async def test_monitor_task_samples_on_the_clock_and_resumes_on_exit() -> None:
    clock = FakeClock()
    marks = MemoryWatermarks(high_mb=1, interval_s=0.5, sampler=lambda: 2 * MB)
    gate = SourceGate()
    monitor = MemoryMonitor(marks, gate)
    async with anyio.create_task_group() as tg:
        tg.start_soon(monitor.run, clock)
        await clock.step(0.5)
        await clock.step(0.5)
        assert gate.paused
        assert monitor.samples == 3
        tg.cancel_scope.cancel()
    assert not gate.paused


def test_watermarks_validation_and_samplers() -> None:
    with pytest.raises(ConfigError, match="low_mb"):
        MemoryWatermarks(high_mb=10, low_mb=20)
    with pytest.raises(ConfigError, match="sampler must be"):
        MemoryWatermarks(high_mb=10, sampler="swap")
    high, low = MemoryWatermarks(high_mb=10).thresholds()
    assert (high, low) == (10 * MB, 8 * MB)
    assert rss_bytes() > 1 * MB
    assert resolve_sampler("rss") is rss_bytes
    assert resolve_sampler("auto")() > 0
