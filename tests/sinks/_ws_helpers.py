"""Helpers for the WebSocket tests: a receiving server and non-blocking call checks."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from dspex._ws._conn import ProtocolStream

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from anyio.abc import SocketStream


def run_without_suspending(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion in one step; fail if it would suspend (block)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the coroutine suspended: the producer would have waited")


class Receiver:
    """A WebSocket server that records the JSON messages pushed to it.

    It acknowledges ``push_id`` cumulatively when ``ack`` is True. ``drop_after``
    closes each connection (abruptly) after that many messages, to force
    reconnects. Built from the same Sans-I/O pieces, on anyio, for both backends.
    """

    def __init__(self, *, ack: bool = True, drop_after: int | None = None, token: str | None = None) -> None:
        self.ack = ack
        self.drop_after = drop_after
        self.token = token
        self.messages: list[dict[str, Any]] = []
        self.connections = 0
        self.refused = 0
        self.port = 0
        self.changed = anyio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            task_status.started()
            await listener.serve(self._handle)

    async def wait_for(self, predicate: Any, limit_s: float = 10.0) -> None:
        with anyio.fail_after(limit_s):
            while not predicate():
                await self.changed.wait()
                self.changed = anyio.Event()

    async def _handle(self, stream: SocketStream) -> None:
        conn = ProtocolStream(ServerProtocol(), stream)
        request = None
        while request is None and not conn.eof:
            request = next((e for e in await conn.receive() if isinstance(e, Request)), None)
        assert request is not None
        protocol = conn.protocol
        assert isinstance(protocol, ServerProtocol)
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused += 1
            protocol.send_response(protocol.reject(401, "no\n"))
            await conn.flush()
            await conn.aclose()
            return
        protocol.send_response(protocol.accept(request))
        await conn.flush()
        self.connections += 1
        count = 0
        try:
            while not conn.eof:
                for frame in await conn.receive():
                    if getattr(frame, "opcode", None) is not Opcode.TEXT:
                        continue
                    message = json.loads(frame.data)
                    self.messages.append(message)
                    count += 1
                    self.changed.set()
                    if self.drop_after is not None and count >= self.drop_after:
                        await conn.flush()  # acks for the earlier messages go out
                        return  # abrupt: this message stays unacknowledged
                    if self.ack and "push_id" in message:
                        protocol.send_text(json.dumps({"type": "ack", "push_id": message["push_id"]}).encode())
                await conn.flush()
        finally:
            self.changed.set()
            await conn.aclose()


def real_connect(backend: str, url: str, **kwargs: Any) -> Any:
    """Connect with the ``websockets`` library's own client for the running backend."""
    if backend == "asyncio":
        from websockets.asyncio.client import connect
    else:
        from websockets.trio.client import connect
    return connect(url, **kwargs)


