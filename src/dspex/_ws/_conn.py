"""Drive a websockets Sans-I/O protocol over an anyio byte stream.

``websockets`` ships its protocol logic as Sans-I/O objects
(:class:`~websockets.server.ServerProtocol`, :class:`~websockets.client.ClientProtocol`):
bytes in, events and bytes out. :class:`ProtocolStream` pairs one of them with an
anyio :class:`~anyio.abc.ByteStream`, so that the server sink, the client sink and the
WebSocket source share one code path on asyncio and trio. :func:`connect` performs the
client opening handshake. No framing is written here: every byte on the wire comes from
the protocol object, or is a frame the caller serialized (:meth:`ProtocolStream.write_nowait`).
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel

from .._util._redact import RedactingLogger, redact
from ..errors import DspexError, SinkError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from anyio.abc import ByteStream
    from websockets.protocol import Event as WsEvent
    from websockets.protocol import Protocol

__all__ = ["ProtocolStream", "WebSocketConnection", "connect", "open_connection"]

LOG = logging.getLogger("dspex.websocket")
READ_SIZE = 65536
_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class ProtocolStream:
    """One WebSocket connection: a Sans-I/O protocol bound to a byte stream.

    Writes are serialised by a lock, so a reader task (which answers pings and
    close frames automatically) and a writer task can share the connection.
    ``broken`` turns True when a write was interrupted half-way (cancelled or
    failed): nothing more may be framed on that stream, it can only be closed.
    ``writes`` counts the writes handed to the socket, by :meth:`flush` and by
    :meth:`write_nowait` alike.

    Args:
        protocol: A ``ServerProtocol`` or ``ClientProtocol``.
        stream: The connected byte stream (TCP, possibly TLS).
    """

    def __init__(self, protocol: Protocol, stream: ByteStream) -> None:
        self.protocol = protocol
        self.stream = stream
        self.eof = False
        self.broken = False
        self.sending = False  # True while a write waits for the peer (TCP backpressure)
        self.bytes_sent = 0
        self.writes = 0
        self.tail = b""  # what the socket did not take of a write_nowait(): sent first by flush()
        self.pending: list[WsEvent] = []  # events read along with the handshake
        self._lock = anyio.Lock()
        self._nowait = _nowait_writer(stream)

    @property
    def idle(self) -> bool:
        """True when nothing is being written or waits to be: no flush in progress,
        no protocol output queued, no unsent tail, and the stream usable."""
        return not (self._lock.locked() or self.tail or self.broken or self.eof or self.protocol.writes)

    def write_nowait(self, data: bytes) -> bool:
        """Write ``data`` (ready-made frames) now, without suspending, if the connection is idle.

        Returns False, having written nothing, when the connection is busy
        (see :attr:`idle`), its transport still holds earlier bytes, or the
        stream offers no non-blocking write (then the caller queues ``data``
        for :meth:`flush`). On True, the bytes the socket did not take at once
        are kept in ``tail`` and go out first with the next :meth:`flush`: the
        caller must make sure one follows. Never raises for a failed socket
        (the next :meth:`flush` reports it).

        Why: serving hundreds of clients, a task switch and a trip through the
        event loop per client and write cost more than the write itself.
        """
        if not self.idle:
            return False
        if self._nowait is None:
            return False
        rest = self._nowait(data)
        if rest is None:
            return False
        self.tail = rest
        self.writes += 1
        self.bytes_sent += len(data) - len(rest)
        return True

    async def flush(self) -> bool:
        """Write all bytes the protocol has queued; False if the stream failed.

        Blocks while the peer does not read (TCP backpressure). The protocol's
        end-of-stream marker half-closes the stream (or closes it under TLS).
        """
        await anyio.lowlevel.checkpoint_if_cancelled()  # still a cancellation point
        lock = self._lock
        try:
            lock.acquire_nowait()  # uncontended (the usual case): no extra trip through the event loop
        except anyio.WouldBlock:
            await lock.acquire()
        try:
            chunks = self.protocol.data_to_send()
            if self.broken:
                return False
            if self.tail:
                chunks.insert(0, self.tail)
                self.tail = b""
            if all(chunks):  # no end-of-stream marker: one write
                return not chunks or await self._send(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            pending = bytearray()
            for chunk in chunks:
                if chunk:
                    pending += chunk
                    continue
                if pending and not await self._send(bytes(pending)):
                    return False
                pending.clear()
                await self._send_eof()
            return not pending or await self._send(bytes(pending))
        finally:
            lock.release()

    async def _send(self, data: bytes) -> bool:
        self.sending = True
        try:
            await self.stream.send(data)
        except _STREAM_ERRORS:
            self.broken = True
            return False
        except BaseException:
            self.broken = True  # cancelled mid-write: the frame may be torn
            raise
        finally:
            self.sending = False
        self.bytes_sent += len(data)
        self.writes += 1
        return True

    async def _send_eof(self) -> None:
        try:
            await self.stream.send_eof()
        except NotImplementedError:
            await self.stream.aclose()
        except _STREAM_ERRORS:
            self.broken = True

    async def receive(self) -> list[WsEvent]:
        """Read once, feed the protocol, flush its replies, return its events.

        Blocks until bytes arrive. At end of stream (or a failed read) ``eof``
        turns True and the list is empty.
        """
        if self.pending:
            events, self.pending = self.pending, []
            return events
        if self.eof:
            return []
        try:
            data = await self.stream.receive(READ_SIZE)
        except _STREAM_ERRORS:
            self.eof = True
            self.protocol.receive_eof()
            await self.flush()
            return self.protocol.events_received()
        self.protocol.receive_data(data)
        events = self.protocol.events_received()
        await self.flush()
        return events

    async def aclose(self) -> None:
        """Close the byte stream without a closing handshake (idempotent)."""
        self.eof = True
        self.protocol.receive_eof()
        await self.stream.aclose()


def _nowait_writer(stream: ByteStream) -> Callable[[bytes], bytes | None] | None:
    """A non-blocking write for ``stream`` if it has one: bytes in, the unsent rest out.

    The function returns None, having written nothing, when the bytes cannot
    go out in order right now. On asyncio, anyio's socket stream writes
    through an asyncio transport, which buffers what the socket does not take:
    writing to the socket directly could overtake those bytes, so the write
    goes through the transport, and only while its buffer is empty (the
    client is keeping up). On trio the socket is written directly (trio keeps
    no buffer of its own). Any other stream (TLS, in-memory) has none.
    """
    transport = getattr(stream, "_transport", None)  # anyio's asyncio SocketStream (private, hence checked)
    if transport is not None and callable(getattr(transport, "get_write_buffer_size", None)):

        def via_transport(data: bytes) -> bytes | None:
            if transport.is_closing() or transport.get_write_buffer_size():
                return None
            try:
                transport.write(data)  # tries the socket at once; keeps the rest, in order
            except RuntimeError:  # uvloop, once the connection is lost
                return None
            return b""

        return via_transport
    if not (isinstance(stream, anyio.abc.SocketStream) and type(stream).__module__.endswith("._trio")):
        return None
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)

    def via_socket(data: bytes) -> bytes | None:
        try:
            sent = sock.send(data)
        except OSError:  # BlockingIOError (full) or a dead peer: flush() handles both
            return None
        return data[sent:] if sent or not data else None

    return via_socket


async def connect(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
    max_size: int | None = 2**20,
    connect_timeout: float = 10.0,
    error: type[DspexError] = SinkError,
    stream: ByteStream | None = None,
) -> ProtocolStream:
    """Open a client WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    Args:
        url: The server URL.
        headers: Extra request headers (e.g. ``Authorization``).
        origin: ``Origin`` header to send, if any.
        max_size: Largest incoming message accepted, in bytes.
        connect_timeout: Seconds allowed for TCP connect plus the opening handshake.
        error: The dspex error class raised on failure.
        stream: An already connected byte stream to use instead of dialing
            ``url``'s host (custom sockets, tunnels).

    Returns:
        The open connection.

    Raises:
        DspexError: (``error``) for a bad URL, a refused or timed-out
            connection, or a rejected handshake (``status`` = HTTP status).

    Credentials (an ``Authorization`` header, a ``?token=`` in ``url``) are
    redacted from error messages and from the protocol's DEBUG log lines.
    """
    from websockets.client import ClientProtocol
    from websockets.exceptions import InvalidStatus, InvalidURI
    from websockets.typing import Origin
    from websockets.uri import parse_uri

    secrets = _secrets_of(url, headers or {})
    shown = redact(url, secrets)
    try:
        uri = parse_uri(url)
    except InvalidURI:  # its message repeats the URL, token and all
        raise error(f"invalid WebSocket URL {shown!r}: expected ws://host[:port]/path") from None
    log = RedactingLogger(LOG, secrets)
    try:
        with anyio.fail_after(connect_timeout):
            if stream is None and uri.secure:
                stream = await anyio.connect_tcp(uri.host, uri.port, tls=True)
            elif stream is None:
                stream = await anyio.connect_tcp(uri.host, uri.port)
            sent_origin = None if origin is None else Origin(origin)
            conn = ProtocolStream(ClientProtocol(uri, origin=sent_origin, max_size=max_size, logger=log), stream)
            try:
                await _handshake(conn, headers or {})
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await conn.aclose()
                raise
    except TimeoutError as exc:
        raise error(f"WebSocket handshake with {shown!r} timed out after {connect_timeout} s") from exc
    except OSError as exc:
        raise error(f"cannot connect to WebSocket server {shown!r}: {exc}") from exc
    refused = conn.protocol.handshake_exc
    if refused is not None:
        await conn.aclose()
        status = refused.response.status_code if isinstance(refused, InvalidStatus) else None
        raise error(f"WebSocket server {shown!r} refused the connection: {refused}", status=status) from refused
    return conn


def _secrets_of(url: str, headers: Mapping[str, Any]) -> tuple[str, ...]:
    """The credentials in a request: bearer tokens and ``token=`` query values."""
    found = [str(v).partition(" ")[2].strip() for k, v in headers.items() if k.lower() == "authorization"]
    found += urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("token", [])
    return tuple(s for s in found if s)


async def _handshake(conn: ProtocolStream, headers: Mapping[str, Any]) -> None:
    from websockets.client import ClientProtocol
    from websockets.protocol import State

    protocol = conn.protocol
    assert isinstance(protocol, ClientProtocol)
    request = protocol.connect()
    for name, value in headers.items():
        request.headers[name] = str(value)
    protocol.send_request(request)
    await conn.flush()
    from websockets.http11 import Response

    while protocol.state is State.CONNECTING and protocol.handshake_exc is None and not conn.eof:
        events = await conn.receive()
        conn.pending = [ev for ev in events if not isinstance(ev, Response)]
    if protocol.state is not State.OPEN and protocol.handshake_exc is None:
        raise OSError("connection closed during the WebSocket handshake")


class WebSocketConnection:
    """A client connection with a message-level API (text in, text out).

    ``recv`` must be called from one task at a time; ``send`` may run
    concurrently with it. Pings from the server are answered automatically
    while receiving.

    Args:
        conn: An open client :class:`ProtocolStream` (see :func:`connect`).
    """

    def __init__(self, conn: ProtocolStream) -> None:
        self.stream = conn
        self._messages: list[str] = []
        self._fragments: list[bytes] | None = None
        self._text = True

    @property
    def close_code(self) -> int | None:
        """The close code received from the server (or sent, if none came)."""
        protocol = self.stream.protocol
        close = protocol.close_rcvd or protocol.close_sent
        return None if close is None else int(close.code)

    @property
    def close_reason(self) -> str | None:
        """The close reason matching :attr:`close_code`."""
        protocol = self.stream.protocol
        close = protocol.close_rcvd or protocol.close_sent
        return None if close is None else close.reason

    @property
    def open(self) -> bool:
        """True while messages can be sent."""
        from websockets.protocol import State

        return self.stream.protocol.state is State.OPEN and not self.stream.broken

    async def recv(self) -> str | None:
        """Return the next text message, or None once the connection is closed."""
        from websockets.protocol import State

        while not self._messages:
            if self.stream.eof or self.stream.protocol.state is State.CLOSED:
                with anyio.CancelScope(shield=True):
                    await self.stream.aclose()  # the peer is gone: release the socket
                return None
            invalid = False
            for frame in await self.stream.receive():
                invalid |= self._on_frame(frame)
            if invalid:
                await self.stream.flush()  # the 1007 close frame
        return self._messages.pop(0)

    def _on_frame(self, frame: Any) -> bool:
        """Collect one frame; True if it ended a text message that is not UTF-8.

        Such a message fails the connection with close code 1007 (RFC 6455
        §8.1); binary messages are decoded leniently.
        """
        from websockets.frames import Opcode
        from websockets.protocol import State

        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragments = [bytes(frame.data)]
            self._text = frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
        else:
            return False
        if not frame.fin:
            return False
        data, self._fragments = b"".join(self._fragments), None
        try:
            self._messages.append(data.decode("utf-8", errors="strict" if self._text else "replace"))
        except UnicodeDecodeError as exc:
            if self.stream.protocol.state is State.OPEN:
                self.stream.protocol.fail(1007, f"invalid UTF-8 in a text message at byte {exc.start}")
            return True
        return False

    async def send(self, *messages: str | bytes) -> bool:
        """Send text messages in order; False if the connection is not usable."""
        if not self.open:
            return False
        for message in messages:
            self.stream.protocol.send_text(message.encode() if isinstance(message, str) else message)
        return await self.stream.flush()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (the reader then sees the end)."""
        if self.open:
            self.stream.protocol.send_close(code, reason)
            await self.stream.flush()

    async def aclose(self, code: int = 1000, reason: str = "", close_timeout: float = 5.0) -> None:
        """Close cleanly (waiting up to ``close_timeout`` seconds for the server) then drop the socket."""
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(close_timeout):
                await self.close(code, reason)
                while await self.recv() is not None:
                    pass
            await self.stream.aclose()


async def open_connection(
    url: str,
    *,
    token: str | None = None,
    origin: str | None = None,
    max_size: int | None = 2**20,
    connect_timeout: float = 10.0,
    error: type[DspexError] = SinkError,
) -> WebSocketConnection:
    """Connect to ``url`` and return a :class:`WebSocketConnection`.

    ``token`` is sent as ``Authorization: Bearer <token>``. See :func:`connect`
    for the errors raised.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    stream = await connect(url, headers=headers, origin=origin, max_size=max_size,
                           connect_timeout=connect_timeout, error=error)
    return WebSocketConnection(stream)
