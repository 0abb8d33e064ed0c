"""Broadcast fan-out: one flush hands the same bytes to every client that keeps up.

A client with nothing queued gets a broadcast batch in one non-blocking write,
without its writer task waking; what its socket does not take is sent first
by the writer; a client behind gets the per-client queue (and its policy).
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from _poll import wait_until
from _ws_helpers import real_connect, run_without_suspending

from dspex import events as ev
from dspex._ws._conn import ProtocolStream
from dspex.sinks import websocket

if TYPE_CHECKING:
    from dspex.sinks import WebSocketSink
    from dspex.sinks._ws_clients import ClientSession


def _token(i: int) -> ev.TokenDelta:
    return ev.TokenDelta(text=f"t{i}", item_id="1", seq=i)


async def _one_client(
    anyio_backend: str, sink: WebSocketSink, received: list[dict[str, Any]], tg: anyio.abc.TaskGroup,
) -> ClientSession:
    """Connect one reading client; return its server session once the hello arrived."""

    async def read() -> None:
        async with real_connect(anyio_backend, sink.url) as conn:
            async for message in conn:
                received.append(json.loads(message))  # noqa: PERF401 - watched while it fills

    tg.start_soon(read)
    await wait_until(lambda: len(received) == 1)  # the hello: the writer is idle again
    await wait_until(lambda: next(iter(sink.server.sessions)).conn.idle)
    return next(iter(sink.server.sessions))


async def _count_flushes(session: ClientSession) -> list[int]:
    """Count the writer's (and reader's) flushes of ``session`` from now on."""
    flushes = [0]
    flush = session.conn.flush

    async def counting() -> bool:
        flushes[0] += 1
        return await flush()

    session.conn.flush = counting  # type: ignore[method-assign]
    return flushes


async def test_a_client_that_keeps_up_is_written_without_its_writer(anyio_backend: str) -> None:
    received: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg, websocket(metrics_interval=None, flush_interval=0) as sink:
            session = await _one_client(anyio_backend, sink, received, tg)
            flushes = await _count_flushes(session)
            writes = session.conn.writes
            for i in range(5):
                run_without_suspending(sink.write_event(_token(i)))
                assert session.conn.writes == writes + i + 1  # written before write_event returned
                await wait_until(lambda n=i + 2: len(received) == n)
            assert flushes == [0]  # the writer task never had to run
            assert sink.server.statistics()["direct_writes"] == 5
            tg.cancel_scope.cancel()
    assert [m["text"] for m in received[1:]] == [f"t{i}" for i in range(5)]


async def test_what_the_socket_does_not_take_goes_first_then_the_queue(anyio_backend: str) -> None:
    received: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg, websocket(metrics_interval=None, flush_interval=0) as sink:
            session = await _one_client(anyio_backend, sink, received, tg)
            conn = session.conn
            whole = conn._nowait
            assert whole is not None  # both backends have a non-blocking write for a TCP socket

            def seven_bytes_only(data: bytes) -> bytes | None:  # a socket with little room left
                rest = whole(data[:7])
                return None if rest is None else rest + data[7:]

            conn._nowait = seven_bytes_only
            run_without_suspending(sink.write_event(_token(0)))
            assert conn.tail  # a torn frame: the rest must precede anything else
            conn._nowait = whole
            for i in range(1, 4):  # the connection is busy: these are queued behind the tail
                run_without_suspending(sink.write_event(_token(i)))
            assert len(session.queue) == 3
            await wait_until(lambda: len(received) == 5)
            await wait_until(lambda: conn.idle)
            run_without_suspending(sink.write_event(_token(4)))  # caught up: written at once again
            assert not session.queue
            await wait_until(lambda: len(received) == 6)
            tg.cancel_scope.cancel()
    assert [m["text"] for m in received[1:]] == [f"t{i}" for i in range(5)]


async def test_held_broadcasts_precede_the_answer_to_a_client_message(anyio_backend: str) -> None:
    received: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with websocket(metrics_interval=None, flush_interval=1.0) as sink:
            sink.server._tick.full_at = 1  # hold for the whole second from one client on
            async with real_connect(anyio_backend, sink.url) as conn:
                received.append(json.loads(await conn.recv()))  # the hello
                await wait_until(lambda: len(sink.server.sessions) == 1)
                run_without_suspending(sink.write_event(_token(0)))
                assert sink.server._outbox  # held for the tick
                await conn.send(json.dumps({"type": "ping", "id": 7}))
                received.append(json.loads(await conn.recv()))
                received.append(json.loads(await conn.recv()))
    assert [m["type"] for m in received] == ["hello", "token_delta", "pong"]


async def test_shutdown_delivers_held_broadcasts_before_closing(anyio_backend: str) -> None:
    received: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            sink = websocket(metrics_interval=None, flush_interval=1.0)
            async with sink:
                sink.server._tick.full_at = 1
                await _one_client(anyio_backend, sink, received, tg)
                for i in range(3):
                    run_without_suspending(sink.write_event(_token(i)))
                assert len(sink.server._outbox) == 3  # still held when the sink closes
            await wait_until(lambda: len(received) == 4)
    assert [m["text"] for m in received[1:]] == ["t0", "t1", "t2"]


async def test_a_client_that_stops_reading_falls_back_to_its_bounded_queue(anyio_backend: str) -> None:
    with anyio.fail_after(20):
        async with websocket(metrics_interval=None, flush_interval=0, queue_size=16) as sink:
            sock = socket.create_connection(("127.0.0.1", sink.server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            key = "dGhlIHNhbXBsZSBub25jZQ=="
            sock.sendall(f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            try:
                await wait_until(lambda: len(sink.server.sessions) == 1)
                session = next(iter(sink.server.sessions))
                text = "y" * 16_000
                for i in range(400):  # never read: the socket fills, then the queue takes over
                    run_without_suspending(sink.write_event(ev.TokenDelta(text=text, item_id="1", seq=i)))
                    if i % 20 == 0:
                        await anyio.sleep(0.001)  # the writer runs and meets the full socket
                assert len(session.queue) <= 16  # bounded, whatever the burst
                assert session.queue.dropped > 0  # token messages dropped for this client only
                assert session.conn.bytes_sent < 400 * 16_000
            finally:
                sock.close()


async def test_streams_without_a_non_blocking_write_are_always_flushed() -> None:
    class Wrapped(anyio.abc.ByteStream):  # e.g. TLS: bytes must go through the stream
        def __init__(self, inner: anyio.abc.ByteStream) -> None:
            self.inner = inner

        async def send(self, item: bytes) -> None:
            await self.inner.send(item)

        async def receive(self, max_bytes: int = 65536) -> bytes:
            return await self.inner.receive(max_bytes)

        async def send_eof(self) -> None:
            await self.inner.send_eof()

        async def aclose(self) -> None:
            await self.inner.aclose()

    from websockets.server import ServerProtocol

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            conn = ProtocolStream(ServerProtocol(), Wrapped(client))
            assert conn._nowait is None
            assert conn.write_nowait(b"frame") is False
            assert conn.writes == 0


async def test_a_big_batch_goes_through_the_bounded_queues(anyio_backend: str) -> None:
    from dspex.sinks._ws_server import DIRECT_MAX

    received: list[dict[str, Any]] = []
    text = "z" * 1000
    count = DIRECT_MAX // 1000 + 10  # one batch over the direct-write limit
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg, websocket(metrics_interval=None, flush_interval=0) as sink:
            session = await _one_client(anyio_backend, sink, received, tg)
            writes = session.conn.writes
            events = [ev.TokenDelta(text=text, item_id="1", seq=i) for i in range(count)]
            run_without_suspending(sink.write_events(events))
            assert session.conn.writes == writes  # nothing written straight away
            assert len(session.queue) == count  # queued (bounded by queue_size), for the writer
            assert sink.server.statistics()["queued_batches"] == 1
            await wait_until(lambda: len(received) == count + 1)
            tg.cancel_scope.cancel()
    assert [m["seq"] for m in received[1:]] == list(range(count))


async def test_a_newcomer_gets_held_broadcasts_only_through_its_replay(anyio_backend: str) -> None:
    first: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg, websocket(metrics_interval=None, flush_interval=1.0) as sink:
            sink.server._tick.full_at = 1
            await _one_client(anyio_backend, sink, first, tg)
            run_without_suspending(sink.write_event(ev.PredictionDone(outputs={"a": 1}, item_id="7")))
            assert sink.server._outbox  # held for the tick when the newcomer arrives
            async with real_connect(anyio_backend, f"{sink.url}?replay=5") as late:
                kinds = [json.loads(await late.recv())["type"] for _ in range(4)]
                await late.send(json.dumps({"type": "ping"}))  # held broadcasts go out before the pong
                while kinds[-1] != "pong":
                    kinds.append(json.loads(await late.recv())["type"])
            await wait_until(lambda: len(first) == 2)
            tg.cancel_scope.cancel()
    assert kinds == ["hello", "replay_begin", "prediction_done", "replay_end", "pong"]  # no second copy
    assert [m["type"] for m in first] == ["hello", "prediction_done"]
