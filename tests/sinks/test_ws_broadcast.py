"""Many clients, some deliberately slow: nobody stalls the flow, finals always arrive."""

from __future__ import annotations

import json
import socket
from typing import Any

import anyio
import pytest
from _poll import wait_until
from _ws_helpers import real_connect, run_without_suspending

from dspex import events as ev
from dspex._ws._conn import ProtocolStream, connect, open_connection
from dspex.sinks import websocket

N_FAST, N_SLOW, N_ITEMS, N_TOKENS = 180, 20, 30, 4


async def _slow_client(url: str, port: int) -> ProtocolStream:
    """Open a connection that will never read, with a tiny receive window."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.connect(("127.0.0.1", port))  # loopback: immediate
    sock.setblocking(False)
    stream = await anyio.abc.SocketStream.from_socket(sock)
    return await connect(url, stream=stream)


def _produce(sink: Any, item: int, text: str) -> None:
    """Emit one item's events; every call must complete without suspending."""
    for seq in range(N_TOKENS):
        event = ev.TokenDelta(text=text, item_id=str(item), seq=seq)
        run_without_suspending(sink.write_event(event))
    done = ev.PredictionDone(outputs={"answer": f"a{item}"}, item_id=str(item), seq=N_TOKENS)
    run_without_suspending(sink.write_event(done))


def _check_stream(messages: list[dict[str, Any]], n_items: int = N_ITEMS) -> None:
    """Every final arrives once, in order, after its own tokens (which stay in order)."""
    finals = [m["item_id"] for m in messages if m["type"] == "prediction_done"]
    assert finals == [str(i) for i in range(n_items)]
    finished: set[str] = set()
    last_seq: dict[str, int] = {}
    for m in messages:
        if m["type"] == "token_delta":
            assert m["item_id"] not in finished, "a token arrived after its item's final result"
            assert m["seq"] > last_seq.get(m["item_id"], -1)
            last_seq[m["item_id"]] = m["seq"]
        elif m["type"] == "prediction_done":
            finished.add(m["item_id"])


@pytest.mark.slow
async def test_200_clients_with_20_slow_ones(anyio_backend: str) -> None:
    results: dict[int, tuple[list[dict[str, Any]], int | None]] = {}
    slow: list[ProtocolStream] = []

    async def fast(index: int, url: str) -> None:
        async with real_connect(anyio_backend, url, max_queue=None) as conn:
            messages = [json.loads(m) async for m in conn]
            results[index] = (messages, conn.close_code)

    sink = websocket(queue_size=64, slow_client_limit_s=0.5, close_timeout=1.0, metrics_interval=None)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            async with sink:
                for index in range(N_FAST):
                    tg.start_soon(fast, index, sink.url)
                slow.extend([await _slow_client(sink.url, sink.server.port) for _ in range(N_SLOW)])
                await wait_until(lambda: len(sink.server.sessions) == N_FAST + N_SLOW, limit_s=30)
                for item in range(N_ITEMS):
                    _produce(sink, item, text="x" * 400)
                    await anyio.sleep(0.002)  # the flow's own pace; never waits on clients
    for conn in slow:
        await conn.aclose()
    assert len(results) == N_FAST
    for messages, code in results.values():
        assert code == 1001
        _check_stream(messages)
    assert sink.statistics()["messages"] == N_ITEMS * (N_TOKENS + 1)


async def test_slow_client_is_disconnected_and_fast_client_unaffected() -> None:
    sink = websocket(queue_size=8, slow_client_limit_s=0.2, close_timeout=1.0, metrics_interval=None)
    fast_messages: list[dict[str, Any]] = []
    async with sink:
        slow = await _slow_client(sink.url, sink.server.port)
        fast = await open_connection(sink.url)

        async def read_fast() -> None:
            while (text := await fast.recv()) is not None:
                fast_messages.append(json.loads(text))

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_fast)
            items = 0
            with anyio.fail_after(20):  # produce until the slow client's socket and queue are full
                while sink.server.statistics()["kicked"] == 0:
                    _produce(sink, items, text="y" * 32_000)
                    items += 1
                    await anyio.sleep(0.005)
            assert len(sink.server.sessions) == 1  # only the fast client is left
            _produce(sink, items, text="after")
            items += 1
            await wait_until(lambda: sum(m["type"] == "prediction_done" for m in fast_messages) == items)
            await fast.close()
        await slow.aclose()
    _check_stream([m for m in fast_messages if m["type"] in ("token_delta", "prediction_done")], items)
    assert sink.statistics()["dropped"] > 0  # the slow client lost token messages, not finals


async def test_client_that_cannot_hold_final_results_is_closed_1008() -> None:
    async with websocket(queue_size=4, metrics_interval=None, close_timeout=1.0) as sink:
        conn = await open_connection(sink.url)
        await wait_until(lambda: len(sink.server.sessions) == 1)
        session = next(iter(sink.server.sessions))
        session.conn.write_nowait = lambda data: False  # type: ignore[method-assign]  # its socket takes nothing now
        for item in range(10):  # a burst: the writer gets no chance to run in between
            run_without_suspending(sink.write_event(ev.PredictionDone(outputs={}, item_id=str(item))))
        while await conn.recv() is not None:
            pass
        assert conn.close_code == 1008
        assert conn.close_reason is not None
        assert "too slow" in conn.close_reason
        await wait_until(lambda: sink.server.statistics()["kicked"] == 1)
