"""The lean pool's byte stream on asyncio: a plain ``asyncio.Protocol`` (asyncio-only).

This module is the one explicitly asyncio-only adapter of the transport (the
team rule allows it): on an asyncio loop the pool opens its connections here
instead of through ``anyio.connect_tcp``. anyio's asyncio socket stream pauses
and resumes reading around every ``receive`` (two ``epoll_ctl`` calls), waits
for the kernel to take every ``send``, and adds a checkpoint to each; an LM
request pays that three or four times. :class:`AioStream` keeps the socket
registered, buffers what arrives and returns it without a trip through the
loop when it is already there. It speaks the small part of anyio's
``ByteStream`` the pool uses (``send``, ``receive``, ``aclose``) and raises
anyio's exceptions (``EndOfStream``, ``BrokenResourceError``,
``ClosedResourceError``), so the pool code is the same on both backends.
Cancellation (anyio cancel scopes) cancels the awaited future as usual.
"""

from __future__ import annotations

# asyncio-only: this adapter is chosen only on an asyncio loop; trio uses anyio streams.
import asyncio
import socket
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import AsyncResource, SocketAttribute

from ._conn import INF, Expired

if TYPE_CHECKING:
    import ssl

__all__ = ["AioStream", "Loop", "asyncio_loop", "connect", "start_server"]

_HIGH_WATER = 1 << 20  # buffered bytes before reading pauses (a consumer that lags)


def asyncio_loop(native_token: Any) -> asyncio.AbstractEventLoop | None:
    """Return ``native_token`` if it is an asyncio loop (anyio's token there), else None."""
    return native_token if isinstance(native_token, asyncio.AbstractEventLoop) else None


class _Protocol(asyncio.Protocol):
    """Buffer what arrives; wake the one reader waiting, if any."""

    __slots__ = ("buffer", "buffered", "closed", "drain", "eof", "error", "paused", "transport", "waiter")

    def __init__(self) -> None:
        self.buffer: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.drain: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.closed = False
        self.paused = False
        self.error: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.eof = True
        if exc is not None:
            self.error = exc
        self._wake()
        drain = self.drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        if self.drain is None or self.drain.done():
            self.drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drain = self.drain
        if drain is not None and not drain.done():
            drain.set_result(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(Expired())


Loop = asyncio.AbstractEventLoop  # the loop type, for modules that may not import asyncio


class AioStream(AsyncResource):
    """One TCP (or TLS) connection on asyncio with the pool's stream interface."""

    __slots__ = ("_graceful", "_loop", "_proto", "_transport", "deadline")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, proto: _Protocol,
        *, graceful: bool = False,
    ) -> None:
        self._loop = loop
        self._transport = transport
        self._proto = proto
        self._graceful = graceful
        self.deadline: float | None = None  # loop time; a wait past it raises Expired

    async def _wait(self, future: asyncio.Future[None]) -> None:
        """Await ``future``, raising :class:`Expired` at ``deadline``."""
        deadline = self.deadline
        if deadline is None or deadline == INF:
            await future
            return
        handle = self._loop.call_at(deadline, _expire, future)
        try:
            await future
        finally:
            handle.cancel()

    def extra(self, attribute: Any, default: Any = None) -> Any:
        """Return anyio's ``SocketAttribute.raw_socket``, else ``default``."""
        if attribute is SocketAttribute.raw_socket:
            return self._transport.get_extra_info("socket")
        return default

    async def send(self, data: bytes) -> None:
        """Queue ``data`` on the socket; wait only when the write buffer is full."""
        proto = self._proto
        if proto.closed or self._transport.is_closing():
            raise anyio.BrokenResourceError
        self._transport.write(data)
        drain = proto.drain
        if drain is not None and not drain.done():
            await self._wait(drain)
            if proto.closed:
                raise anyio.BrokenResourceError

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return the next bytes received (what is buffered, without yielding if any)."""
        proto = self._proto
        if not proto.buffer:
            if proto.eof:
                if proto.error is not None:
                    raise anyio.BrokenResourceError from proto.error
                raise anyio.EndOfStream
            if self._transport.is_closing() and not proto.closed:
                raise anyio.ClosedResourceError
            waiter = proto.waiter = self._loop.create_future()
            try:
                await self._wait(waiter)
            finally:
                proto.waiter = None
            if not proto.buffer:
                if proto.error is not None:
                    raise anyio.BrokenResourceError from proto.error
                raise anyio.EndOfStream
        data = proto.buffer.popleft()
        if len(data) > max_bytes:
            proto.buffer.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        proto.buffered -= len(data)
        if proto.paused and proto.buffered <= _HIGH_WATER // 2:
            proto.paused = False
            self._transport.resume_reading()
        return data

    async def aclose(self) -> None:
        """Close the connection: at once (client side), or after the buffered output (server side)."""
        if self._graceful:
            self._transport.close()
        else:
            self._transport.abort()


async def connect(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> AioStream:
    """Open a connection (TLS when ``ssl_context`` is given) and return its stream.

    Raises:
        OSError: The connection or the TLS handshake failed.
    """
    transport, proto = await loop.create_connection(
        _Protocol, host, port, ssl=ssl_context, server_hostname=server_hostname if ssl_context else None
    )
    return AioStream(loop, transport, proto)


class _ServerProtocol(_Protocol):
    """A server connection: hands its stream to ``on_connection`` once made."""

    __slots__ = ("on_connection",)

    def __init__(self, on_connection: Any) -> None:
        super().__init__()
        self.on_connection = on_connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        loop = asyncio.get_running_loop()
        self.on_connection(AioStream(loop, transport, self, graceful=True))  # type: ignore[arg-type]


async def start_server(
    loop: asyncio.AbstractEventLoop, host: str, port: int, on_connection: Any
) -> asyncio.base_events.Server:
    """Listen on the first address of ``host``; call ``on_connection(stream)`` per connection.

    ``on_connection`` runs in the loop (from ``connection_made``) and must not
    block: it should start a task. Close the returned server to stop listening.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return await loop.create_server(lambda: _ServerProtocol(on_connection), sock=sock, backlog=65535)
