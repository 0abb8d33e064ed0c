"""The one HTTP/1.1 request/response exchange, over whichever byte stream the pool picked.

The pool (``_http/_pool.py``) chooses a connection; this module talks HTTP on
it: send the request, read the head, read the body — whole, or piece by piece
for a stream — and say whether the connection may carry another request.
Body framing (``Content-Length``, chunked, until EOF) is the parser's
(``_http/_h1.py``); decompression and the keep-alive rule are here; every
failure leaves as :class:`~dspex.errors.LMTransportError`, and a stream whose
own deadline passed raises :class:`~dspex._http._conn.Expired`, which the
caller turns into :class:`~dspex.errors.LMTimeoutError` naming the phase.

The code does not know which stream it drives: anyio's (trio, timed by a
cancel scope), ``_http/_aio.py``'s (asyncio, timing its own waits), or
``_http/_blocking.py``'s blocking socket (a sync call alone on its loop; its
awaits never suspend). One async exchange serves all three, rather than a
sans-I/O state machine under an async and a blocking driver, because the
asyncio path is the hot one: its per-call CPU stays what it was (no extra
layer of events between the parser and the stream), and the blocking path
pays only a few coroutine frames that never suspend.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import LMTimeoutError, LMTransportError
from ._conn import RECV_SIZE, content_encoding, decoder, keepalive_hint
from ._h1 import HTTPProtocolError
from ._transport import describe_io_error

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._conn import Conn, Timer
    from ._h1 import ResponseParser
    from ._transport import Timeouts

__all__ = ["SMALL_REQUEST", "StreamBody", "feed", "idle_seconds", "recv", "send_request"]

SMALL_REQUEST = 65536  # fits a socket's send buffer: sending it cannot stall


def feed(parser: ResponseParser, data: bytes, origin: str) -> None:
    """Feed ``data`` (``b""``: the peer closed) to ``parser``; malformed input is a transport error."""
    try:
        if data:
            parser.feed(data)
        else:
            parser.feed_eof()
    except HTTPProtocolError as exc:
        raise LMTransportError(f"{exc} (from {origin})") from None


async def recv(conn: Conn, origin: str) -> bytes:
    """Receive bytes (``b""`` at EOF), mapping failures to ``LMTransportError``."""
    try:
        return await conn.stream.receive(RECV_SIZE)
    except anyio.EndOfStream:
        return b""
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise LMTransportError(f"{describe_io_error(exc)} while reading the response from {origin}") from None


async def send_request(
    conn: Conn, payload: bytes, parser: ResponseParser, timer: Timer, timeouts: Timeouts, origin: str,
    *, whole: bool,
) -> None:
    """Send ``payload`` (head and body), then read the response head (``whole``: and body).

    Blocks for at most ``timeouts.write`` while sending a large payload, then
    ``timeouts.read`` per read (the deadline moves on with each one). The body
    read so far waits in ``parser`` (``take_body()``).

    Raises:
        LMTransportError: The connection failed or the reply is not HTTP/1.1;
            ``parser.received_any`` tells whether any response byte arrived.
        Expired: The stream's own deadline passed (streams timed by a cancel
            scope are cancelled instead).
    """
    stream = conn.stream
    # A small request fits the socket buffer, so sending cannot stall: one
    # deadline (the read timeout) then covers it and the head.
    big = len(payload) > SMALL_REQUEST
    if big:
        timer.arm("write timeout", timeouts.write)
    else:
        timer.arm("read timeout", timeouts.read)
    try:
        await stream.send(payload)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise LMTransportError(f"{describe_io_error(exc)} while sending the request to {origin}") from None
    if big:
        timer.arm("read timeout", timeouts.read)
    while not (parser.complete if whole else parser.head_done):
        try:  # ``recv`` inlined: this loop is every call's hot path
            data = await stream.receive(RECV_SIZE)
        except anyio.EndOfStream:
            data = b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise LMTransportError(f"{describe_io_error(exc)} while reading the response from {origin}") from None
        try:  # ``feed`` inlined too
            if data:
                parser.feed(data)
            else:
                parser.feed_eof()
        except HTTPProtocolError as exc:
            raise LMTransportError(f"{exc} (from {origin})") from None
        if not parser.complete:  # the deadline is per read
            timer.arm("read timeout", timeouts.read)


def idle_seconds(parser: ResponseParser | None, expiry: float) -> float:
    """Return how long the connection may wait idle for another request (0: close it).

    Only after a complete response the server did not ask to close; a
    ``Keep-Alive: timeout`` hint shorter than ``expiry`` wins.
    """
    if parser is None or not parser.complete or not parser.keep_alive:
        return 0.0
    hint = keepalive_hint(parser.headers)
    return expiry if hint is None else min(expiry, hint)


class StreamBody:
    """Async iterator over a streamed body: de-chunked (by the parser), decompressed.

    Each item is what one network read delivered (HTTP chunk boundaries are
    not preserved; SSE framing does not depend on them). Each read waits at
    most ``read_timeout`` (a cancel scope: the stream is a loop's), then
    raises ``LMTimeoutError``. At the end of the body ``release()`` is awaited
    (the connection goes back to the pool).
    """

    __slots__ = ("_conn", "_decoder", "_done", "_encoding", "_origin", "_parser", "_read_timeout",
                 "_ready", "_release")

    def __init__(self, conn: Conn, parser: ResponseParser, origin: str, read_timeout: float,
                 release: Callable[[], Awaitable[None]]) -> None:
        self._conn, self._parser, self._origin = conn, parser, origin
        self._read_timeout, self._release = read_timeout, release
        self._encoding = content_encoding(parser.headers)
        self._decoder: Any = decoder() if self._encoding else None
        self._ready: deque[bytes] = deque()
        self._done = False

    def __aiter__(self) -> StreamBody:
        return self

    def _decode(self, piece: bytes) -> bytes:
        if self._decoder is None:
            return piece
        try:
            return self._decoder.decompress(piece)  # type: ignore[no-any-return]
        except zlib.error as exc:
            raise LMTransportError(f"invalid {self._encoding} body from {self._origin}: {exc}") from None

    async def __anext__(self) -> bytes:
        parser, origin = self._parser, self._origin
        while not self._ready:
            if self._done:
                raise StopAsyncIteration
            pieces = parser.take_body()
            if pieces:  # one chunk per network read, however many HTTP chunks it held
                joined = self._decode(pieces[0] if len(pieces) == 1 else b"".join(pieces))
                if joined:
                    self._ready.append(joined)
                    break
            if parser.complete:
                self._done = True
                if self._decoder is not None and (tail := self._decoder.flush()):
                    self._ready.append(tail)
                await self._release()
                continue
            with anyio.CancelScope(deadline=anyio.current_time() + self._read_timeout):
                feed(parser, await recv(self._conn, origin), origin)
                continue
            raise LMTimeoutError(f"read timeout ({self._read_timeout}s) talking to {origin}")
        return self._ready.popleft()
