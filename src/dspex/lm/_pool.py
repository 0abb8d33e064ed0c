"""The default LM transport: a lean keep-alive HTTP/1.1 connection pool on anyio.

Connections are anyio byte streams (TCP, or TLS with SNI through the default
SSL context) parsed by ``lm/_h1.py``. Each event loop gets its own idle lists
and per-host slot semaphores, because a connection belongs to the loop that
opened it: a sync call that starts a fresh loop never sees another loop's
sockets, and when a loop shuts down its idle connections are closed (the pool
plants a tiny async generator in each loop, which both asyncio and trio
finalize at shutdown). A request is retried only when it went out on a reused
keep-alive connection that failed before any response byte arrived (the server
had closed it); any other failure surfaces, since POSTs are not idempotent.
Requests send ``Accept-Encoding: identity`` unless the caller sets the header;
a gzip or deflate body is decoded anyway.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import anyio
import anyio.lowlevel

from ..errors import ConfigError, LMTimeoutError, LMTransportError
from ._h1 import HTTPProtocolError, ResponseParser, make_response_parser
from ._transport import _DEFAULT_TIMEOUTS, HTTPResponse, Timeouts, Transport, redact_url

if TYPE_CHECKING:
    import ssl

    from anyio.abc import ByteStream

__all__ = ["ConnectionPool"]

_RECV_SIZE = 65536
_MAX_STALE_RETRIES = 8
_MANAGED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        import ssl

        _ssl_context = ssl.create_default_context()
    return _ssl_context


class _Target:
    """A parsed URL: where to connect and what to put on the request line."""

    __slots__ = ("host", "host_header", "key", "origin", "port", "target", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"LM URL must be http:// or https:// with a host, got {redact_url(url)!r}"
            )
        self.tls = parts.scheme == "https"
        default_port = 443 if self.tls else 80
        try:
            self.port = parts.port or default_port
        except ValueError:
            raise ConfigError(f"LM URL has an invalid port: {redact_url(url)!r}") from None
        self.host = parts.hostname
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = shown if self.port == default_port else f"{shown}:{self.port}"
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.key = (parts.scheme, self.host, self.port)
        self.origin = f"{parts.scheme}://{self.host_header}"


class _Conn:
    __slots__ = ("expires_at", "generation", "stream", "uses")

    def __init__(self, stream: ByteStream, generation: int) -> None:
        self.stream = stream
        self.generation = generation
        self.expires_at = 0.0
        self.uses = 0


class _Host:
    """Idle connections and the connection-slot semaphore for one origin."""

    __slots__ = ("idle", "slots")

    def __init__(self, limit: int) -> None:
        self.idle: deque[_Conn] = deque()
        self.slots = anyio.Semaphore(limit)


class _LoopState:
    """Everything the pool owns inside one event loop."""

    def __init__(self) -> None:
        self.hosts: dict[tuple[str, str, int], _Host] = {}
        self.generation = 0
        self.sentinel: Any = None

    async def close_idle(self) -> None:
        conns = [c for host in self.hosts.values() for c in host.idle]
        for host in self.hosts.values():
            host.idle.clear()
        for conn in conns:
            await anyio.aclose_forcefully(conn.stream)


async def _loop_sentinel(state: _LoopState) -> AsyncIterator[None]:
    """Suspend forever; the loop finalizes it at shutdown, closing idle sockets."""
    try:
        yield
    finally:
        await state.close_idle()


def _keepalive_hint(headers: list[tuple[str, str]]) -> float | None:
    for name, value in headers:
        if name == "keep-alive":
            for part in value.split(","):
                key, _, num = part.strip().partition("=")
                if key.strip().lower() == "timeout":
                    try:
                        return max(float(num) - 1.0, 0.0)
                    except ValueError:
                        return None
    return None


class ConnectionPool(Transport):
    """A keep-alive HTTP/1.1 connection pool over anyio streams (both backends).

    At most ``max_connections_per_host`` connections are open per origin and
    event loop; a request waits up to ``timeouts.pool`` for a slot, then raises
    ``LMTimeoutError``. Idle connections close after ``keepalive_expiry``
    seconds (or earlier if the server's ``Keep-Alive: timeout`` says so).
    Cancelling a request closes its connection. ``aclose()`` closes the idle
    connections of the current loop; the pool stays usable.

    Args:
        max_connections_per_host: Connection limit per (scheme, host, port).
        keepalive_expiry: Seconds an idle connection is kept.
        parser: ``"httptools"`` or ``"h11"`` to force a parser (default: best).
        ssl_context: TLS settings for https (default: system trust store).
    """

    def __init__(
        self,
        *,
        max_connections_per_host: int = 256,
        keepalive_expiry: float = 30.0,
        parser: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections_per_host < 1:
            raise ConfigError(
                f"max_connections_per_host must be >= 1, got {max_connections_per_host!r}"
            )
        make_response_parser("GET", "/", "x", parser)  # validates ``parser`` early
        self._limit = max_connections_per_host
        self._expiry = float(keepalive_expiry)
        self._parser = parser
        self._ssl = ssl_context
        self._states: WeakKeyDictionary[Any, _LoopState] = WeakKeyDictionary()
        self._targets: dict[str, _Target] = {}
        self.connections_opened = 0

    # -- per-loop state -------------------------------------------------------------

    async def _state(self) -> _LoopState:
        token = anyio.lowlevel.current_token().native_token
        state = self._states.get(token)
        if state is None:
            state = self._states[token] = _LoopState()
            state.sentinel = _loop_sentinel(state)
            await state.sentinel.asend(None)
        return state

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _Target(url)
            if len(self._targets) >= 512:
                self._targets.clear()
            self._targets[url] = target
        return target

    async def _acquire(self, target: _Target, timeouts: Timeouts) -> tuple[_LoopState, _Host]:
        state = await self._state()
        host = state.hosts.get(target.key)
        if host is None:
            host = state.hosts[target.key] = _Host(self._limit)
        try:
            host.slots.acquire_nowait()
        except anyio.WouldBlock:
            try:
                with anyio.fail_after(timeouts.pool):
                    await host.slots.acquire()
            except TimeoutError:
                raise LMTimeoutError(
                    f"no free connection to {target.origin} within the pool timeout "
                    f"({timeouts.pool}s, max_connections_per_host={self._limit})"
                ) from None
        return state, host

    # -- connections ------------------------------------------------------------------

    async def _connect(self, target: _Target, timeouts: Timeouts, generation: int) -> _Conn:
        try:
            with anyio.fail_after(timeouts.connect):
                if target.tls:
                    stream: ByteStream = await anyio.connect_tcp(
                        target.host,
                        target.port,
                        ssl_context=self._ssl or _default_ssl_context(),
                        tls_hostname=target.host,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(target.host, target.port)
        except TimeoutError:
            raise LMTimeoutError(
                f"connecting to {target.origin} timed out after {timeouts.connect}s"
            ) from None
        except (OSError, anyio.BrokenResourceError) as exc:
            raise LMTransportError(f"could not connect to {target.origin}: {exc}") from None
        self.connections_opened += 1
        return _Conn(stream, generation)

    @staticmethod
    async def _take_idle(host: _Host) -> _Conn | None:
        """Pop the most recently used live idle connection, closing expired ones."""
        now = anyio.current_time()
        while host.idle:
            conn = host.idle.pop()
            if conn.expires_at > now:
                return conn
            await anyio.aclose_forcefully(conn.stream)
        return None

    async def _prune(self, host: _Host) -> None:
        now = anyio.current_time()
        while host.idle and host.idle[0].expires_at <= now:
            await anyio.aclose_forcefully(host.idle.popleft().stream)

    async def _release(
        self, state: _LoopState, host: _Host, conn: _Conn | None, parser: ResponseParser | None
    ) -> None:
        """Return ``conn`` to the idle list if reusable, else close it; free the slot."""
        try:
            if conn is None:
                return
            if (
                parser is not None
                and parser.complete
                and parser.keep_alive
                and conn.generation == state.generation
            ):
                hint = _keepalive_hint(parser.headers)
                expiry = self._expiry if hint is None else min(self._expiry, hint)
                if expiry > 0:
                    conn.expires_at = anyio.current_time() + expiry
                    conn.uses += 1
                    host.idle.append(conn)
                    return
            await anyio.aclose_forcefully(conn.stream)
        finally:
            host.slots.release()

    # -- one exchange -------------------------------------------------------------------

    @staticmethod
    def _head_bytes(
        method: str, target: _Target, headers: Mapping[str, str], body: bytes | None
    ) -> bytes:
        lines = [f"{method} {target.target} HTTP/1.1\r\nHost: {target.host_header}\r\n"]
        encoding_set = False
        for name, value in headers.items():
            lower = name.lower()
            if lower in _MANAGED_HEADERS:
                continue
            if lower == "accept-encoding":
                encoding_set = True
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
                raise ConfigError(f"HTTP header {name!r} contains a line break or colon")
            lines.append(f"{name}: {value}\r\n")
        if not encoding_set:
            lines.append("Accept-Encoding: identity\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body) if body else 0}\r\n")
        lines.append("\r\n")
        try:
            return "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError("HTTP header values must be latin-1 (ASCII) text") from None

    @staticmethod
    async def _recv(conn: _Conn, timeout: float, origin: str) -> bytes:
        """Receive bytes (``b""`` at EOF); map errors and the read timeout."""
        with anyio.CancelScope(deadline=anyio.current_time() + timeout):
            try:
                return await conn.stream.receive(_RECV_SIZE)
            except anyio.EndOfStream:
                return b""
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                raise LMTransportError(f"connection to {origin} failed: {exc!r}") from None
        raise LMTimeoutError(f"no response bytes from {origin} within {timeout}s (read timeout)")

    async def _send_and_read_head(
        self, conn: _Conn, payload: bytes, parser: ResponseParser, target: _Target, timeouts: Timeouts
    ) -> None:
        try:
            with anyio.fail_after(timeouts.write):
                await conn.stream.send(payload)
        except TimeoutError:
            raise LMTimeoutError(
                f"sending the request to {target.origin} timed out after {timeouts.write}s"
            ) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise LMTransportError(
                f"connection to {target.origin} failed while sending: {exc!r}"
            ) from None
        while not parser.head_done:
            data = await self._recv(conn, timeouts.read, target.origin)
            try:
                if data:
                    parser.feed(data)
                else:
                    parser.feed_eof()
            except HTTPProtocolError as exc:
                raise LMTransportError(f"{exc} (from {target.origin})") from None

    async def _exchange(
        self,
        state: _LoopState,
        host: _Host,
        method: str,
        target: _Target,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> tuple[_Conn, ResponseParser]:
        """Send the request and read the response head, retrying stale connections."""
        payload = self._head_bytes(method, target, headers, body)
        if body:
            payload += body
        await self._prune(host)
        for _ in range(_MAX_STALE_RETRIES + 1):
            conn = await self._take_idle(host)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(target, timeouts, state.generation)
            parser = make_response_parser(method, target.target, target.host_header, self._parser)
            try:
                await self._send_and_read_head(conn, payload, parser, target, timeouts)
            except LMTransportError:
                await anyio.aclose_forcefully(conn.stream)
                if reused and not parser.received_any:
                    continue  # stale keep-alive connection: nothing was received
                raise
            except BaseException:
                await anyio.aclose_forcefully(conn.stream)
                raise
            return conn, parser
        raise LMTransportError(f"every pooled connection to {target.origin} was stale")

    # -- Transport API ----------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> HTTPResponse:
        """Send a request and return the response with its whole body read."""
        target = self._target(url)
        state, host = await self._acquire(target, timeouts)
        conn: _Conn | None = None
        parser: ResponseParser | None = None
        try:
            conn, parser = await self._exchange(
                state, host, method, target, headers, body, timeouts
            )
            parts = parser.take_body()
            while not parser.complete:
                data = await self._recv(conn, timeouts.read, target.origin)
                try:
                    if data:
                        parser.feed(data)
                    else:
                        parser.feed_eof()
                except HTTPProtocolError as exc:
                    raise LMTransportError(f"{exc} (from {target.origin})") from None
                parts.extend(parser.take_body())
            content = b"".join(parts)
            encoding = _content_encoding(parser.headers)
            if encoding:
                content = _decode_all(content, encoding, target.origin)
            return HTTPResponse(parser.status, parser.headers, content=content)
        finally:
            await self._release(state, host, conn, parser)

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> _StreamContext:
        """Return a context that yields the response with its body still arriving."""
        return _StreamContext(self, method, self._target(url), headers, body, timeouts)

    async def aclose(self) -> None:
        """Close the current loop's idle connections (the pool stays usable)."""
        try:
            token = anyio.lowlevel.current_token().native_token
        except RuntimeError:
            return
        state = self._states.get(token)
        if state is not None:
            state.generation += 1
            await state.close_idle()


def _content_encoding(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name == "content-encoding":
            value = value.strip().lower()
            return value if value in ("gzip", "deflate", "x-gzip") else None
    return None


def _decoder() -> Any:
    return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib framing


def _decode_all(content: bytes, encoding: str, origin: str) -> bytes:
    try:
        d = _decoder()
        return d.decompress(content) + d.flush()
    except zlib.error as exc:
        raise LMTransportError(f"invalid {encoding} body from {origin}: {exc}") from None


class _StreamContext:
    """``async with pool.stream(...) as response``: the response body streams."""

    def __init__(
        self,
        pool: ConnectionPool,
        method: str,
        target: _Target,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> None:
        self._pool = pool
        self._args = (method, target, headers, body, timeouts)
        self._state: _LoopState | None = None
        self._host: _Host | None = None
        self._conn: _Conn | None = None
        self._parser: ResponseParser | None = None
        self._released = False

    async def __aenter__(self) -> HTTPResponse:
        method, target, headers, body, timeouts = self._args
        self._state, self._host = await self._pool._acquire(target, timeouts)
        try:
            self._conn, self._parser = await self._pool._exchange(
                self._state, self._host, method, target, headers, body, timeouts
            )
        except BaseException:
            await self._release()
            raise
        return HTTPResponse(
            self._parser.status,
            self._parser.headers,
            chunks=self._body(),
            on_close=self._release,
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._release()

    async def _release(self) -> None:
        if self._released or self._state is None or self._host is None:
            return
        self._released = True
        await self._pool._release(self._state, self._host, self._conn, self._parser)

    def _body(self) -> _PoolBody:
        assert self._conn is not None and self._parser is not None
        return _PoolBody(self, self._conn, self._parser)


class _PoolBody:
    """Async iterator over a streamed body: de-chunked (by the parser), decoded."""

    __slots__ = ("_conn", "_ctx", "_decoder", "_done", "_encoding", "_parser", "_ready")

    def __init__(self, ctx: _StreamContext, conn: _Conn, parser: ResponseParser) -> None:
        self._ctx, self._conn, self._parser = ctx, conn, parser
        self._encoding = _content_encoding(parser.headers)
        self._decoder = _decoder() if self._encoding else None
        self._ready: deque[bytes] = deque()
        self._done = False

    def __aiter__(self) -> _PoolBody:
        return self

    def _decode(self, piece: bytes) -> bytes:
        if self._decoder is None:
            return piece
        try:
            return self._decoder.decompress(piece)  # type: ignore[no-any-return]
        except zlib.error as exc:
            raise LMTransportError(f"invalid {self._encoding} body: {exc}") from None

    async def __anext__(self) -> bytes:
        ctx, parser = self._ctx, self._parser
        origin, read_timeout = ctx._args[1].origin, ctx._args[4].read
        while not self._ready:
            if self._done:
                raise StopAsyncIteration
            self._ready.extend(p for p in map(self._decode, parser.take_body()) if p)
            if self._ready:
                break
            if parser.complete:
                self._done = True
                if self._decoder is not None and (tail := self._decoder.flush()):
                    self._ready.append(tail)
                await ctx._release()
                continue
            data = await ctx._pool._recv(self._conn, read_timeout, origin)
            try:
                if data:
                    parser.feed(data)
                else:
                    parser.feed_eof()
            except HTTPProtocolError as exc:
                raise LMTransportError(f"{exc} (from {origin})") from None
        return self._ready.popleft()
