"""Text frames that are not UTF-8 fail the connection with close code 1007.

Issue 12, defect 8 (WebSocket part): RFC 6455 §8.1 requires an endpoint that
receives a text message with invalid UTF-8 to fail the connection with 1007
(websockets' Sans-I/O protocol leaves that check to its caller). Checked on the
server sink (clients' messages, whole and fragmented) and on dspex's client
connection (the server's messages), on both backends.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from _poll import wait_until
from websockets.http11 import Request
from websockets.server import ServerProtocol

from dspex._ws._conn import ProtocolStream, WebSocketConnection, connect, open_connection
from dspex.sinks import websocket

if TYPE_CHECKING:
    from anyio.abc import SocketStream

pytestmark = pytest.mark.reliability


async def _close_code(conn: WebSocketConnection) -> int | None:
    with anyio.fail_after(10):
        while await conn.recv() is not None:
            pass
    return conn.close_code


async def _open(url: str) -> WebSocketConnection:
    conn = WebSocketConnection(await connect(url, connect_timeout=10))
    with anyio.fail_after(10):
        assert json.loads(await conn.recv() or "{}")["type"] == "hello"
    return conn


async def test_server_closes_1007_on_invalid_utf8(anyio_backend: str) -> None:
    async with websocket(metrics_interval=None, close_timeout=2.0) as live:
        whole = await _open(live.url)
        whole.stream.protocol.send_text(b'{"type": "ping", "x": "\xff\xfe"}')
        await whole.stream.flush()
        fragmented = await _open(live.url)
        protocol = fragmented.stream.protocol
        protocol.send_text(b'{"type": "ping", "x": "\xe2\x82', fin=False)  # a euro sign, cut ...
        protocol.send_continuation(b'\xff"}', fin=True)  # ... and never completed
        await fragmented.stream.flush()
        codes = [await _close_code(whole), await _close_code(fragmented)]
        reasons = [whole.close_reason, fragmented.close_reason]
    assert codes == [1007, 1007]
    assert all(r is not None and "invalid UTF-8" in r for r in reasons)


async def test_server_accepts_utf8_split_across_fragments(anyio_backend: str) -> None:
    async with websocket(metrics_interval=None, close_timeout=2.0) as live:
        conn = await _open(live.url)
        protocol = conn.stream.protocol
        protocol.send_text(b'{"type": "ping", "id": "\xe2\x82', fin=False)
        protocol.send_continuation(b'\xac"}', fin=True)  # the euro sign completed
        await conn.stream.flush()
        with anyio.fail_after(10):
            pong = json.loads(await conn.recv() or "{}")
        await conn.aclose()
    assert pong == {"type": "pong", "id": "\u20ac"}


async def test_client_closes_1007_on_invalid_utf8_from_the_server(anyio_backend: str) -> None:
    codes: list[int] = []

    async def serve_bad_text(stream: SocketStream) -> None:
        conn = ProtocolStream(ServerProtocol(), stream)
        request = None
        while request is None and not conn.eof:
            request = next((e for e in await conn.receive() if isinstance(e, Request)), None)
        protocol: Any = conn.protocol
        protocol.send_response(protocol.accept(request))
        protocol.send_text(b'{"ok": "\xc3\x28"}')  # an invalid two-byte sequence
        await conn.flush()
        with anyio.fail_after(10):
            while protocol.close_rcvd is None and not conn.eof:
                await conn.receive()
        codes.append(protocol.close_rcvd.code if protocol.close_rcvd else -1)
        await conn.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve_bad_text)
        client = await open_connection(f"ws://127.0.0.1:{port}/", connect_timeout=10)
        assert await _close_code(client) == 1007
        await wait_until(lambda: codes)
        tg.cancel_scope.cancel()
    assert codes == [1007]  # the server saw the client's 1007 close frame
