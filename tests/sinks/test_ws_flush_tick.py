"""The shared flush tick: messages of one interval reach a client in one socket write."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
from _poll import wait_until
from _ws_helpers import real_connect, run_without_suspending

from dspex import events as ev
from dspex.errors import ConfigError
from dspex.sinks import websocket
from dspex.sinks._ws_clients import FlushTick

if TYPE_CHECKING:
    from collections.abc import Callable


async def _serve_one(anyio_backend: str, flush_interval: float, body: Any) -> tuple[list[dict[str, Any]], int]:
    """Run ``body(sink, received, writes)`` with one client (``writes()``: socket writes
    since the hello, by the writer task or straight from the flush); return its
    messages and the writes ``body`` saw."""
    received: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            async with websocket(metrics_interval=None, flush_interval=flush_interval) as sink:

                async def read() -> None:
                    async with real_connect(anyio_backend, sink.url) as conn:
                        async for message in conn:
                            received.append(json.loads(message))  # noqa: PERF401 - watched while it fills

                sink.server._tick.full_at = 1  # the whole interval from one client on
                tg.start_soon(read)
                await wait_until(lambda: len(received) == 1)  # the hello
                conn = next(iter(sink.server.sessions)).conn
                before = conn.writes
                seen = await body(sink, received, lambda: conn.writes - before)
    return received, seen


async def test_broadcasts_within_one_interval_share_one_write(anyio_backend: str) -> None:
    async def body(sink: Any, received: list[dict[str, Any]], writes: Callable[[], int]) -> int:
        for i in range(20):  # the producer never waits, even with the writer held
            run_without_suspending(sink.write_event(ev.TokenDelta(text=f"t{i}", item_id="1", seq=i)))
            if i % 4 == 0:
                await anyio.lowlevel.checkpoint()  # other tasks run; the interval (1 s) is far from over
        await wait_until(lambda: len(received) == 21)
        return writes()  # before the close frame

    received, writes = await _serve_one(anyio_backend, 1.0, body)
    assert [m["text"] for m in received[1:]] == [f"t{i}" for i in range(20)]
    assert writes == 1


async def test_zero_interval_writes_each_message_at_once(anyio_backend: str) -> None:
    async def body(sink: Any, received: list[dict[str, Any]], writes: Callable[[], int]) -> int:
        for i in range(5):
            run_without_suspending(sink.write_event(ev.TokenDelta(text=f"t{i}", item_id="1", seq=i)))
            await wait_until(lambda n=i + 2: len(received) == n)  # delivered before the next is queued
        return writes()

    received, writes = await _serve_one(anyio_backend, 0.0, body)
    assert [m["text"] for m in received[1:]] == [f"t{i}" for i in range(5)]
    assert writes == 5


@pytest.mark.parametrize("bad", [-0.001, 1.5])
def test_flush_interval_out_of_range_is_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match=rf"flush_interval {bad!r} must be in 0..1 seconds"):
        websocket(flush_interval=bad)


def test_the_hold_grows_with_the_number_of_clients() -> None:
    clients = [0]
    tick = FlushTick(0.002, lambda: clients[0], full_at=100)
    holds = {}
    for n in (1, 10, 24, 25, 50, 100, 500):
        clients[0] = n
        holds[n] = tick.hold()
    assert holds == {1: 0.0, 10: 0.0, 24: 0.0, 25: 0.0005, 50: 0.001, 100: 0.002, 500: 0.002}
    assert FlushTick(0.0).hold() == 0.0
