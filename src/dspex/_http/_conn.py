"""Connection-level pieces of the lean pool: targets, connections, loop state, encoding.

A :class:`Target` is a parsed URL (where to connect, the request line, the
``Host`` header); a :class:`Conn` is one keep-alive byte stream (anyio's,
``_http/_aio.py``'s or ``_http/_blocking.py``'s); a :class:`Host` holds an
origin's idle connections and its connection-slot semaphore; a
:class:`LoopState` holds every host of one event loop (or of the blocking
path), plus the sentinel async generator that closes its idle sockets when the
loop shuts down. :class:`Timer` moves a single deadline through the phases of
an exchange (connect, write, read), which is much cheaper than one cancel
scope per phase. The rest is request-head encoding and body decompression;
the exchange itself is ``_http/_exchange.py``.
"""

from __future__ import annotations

import ssl
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from ..errors import ConfigError, LMTimeoutError, LMTransportError
from ._transport import HTTPResponse, redact_url

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Mapping
    from typing import TypeAlias

    from anyio.abc import ByteStream

    from ._aio import AioStream, Loop
    from ._blocking import BlockingStream
    from ._h1 import ResponseParser

    # The byte streams an exchange runs over: anyio's (trio), ``_aio``'s (asyncio)
    # or ``_blocking``'s; the pool uses ``send``, ``receive`` and ``aclose``.
    Stream: TypeAlias = ByteStream | AioStream | BlockingStream

__all__ = [
    "INF",
    "MAX_STALE_RETRIES",
    "RECV_SIZE",
    "Conn",
    "Expired",
    "Host",
    "LoopState",
    "Target",
    "Timer",
    "attempt_timeout",
    "content_encoding",
    "decode_all",
    "decoder",
    "default_ssl_context",
    "head_bytes",
    "keepalive_hint",
    "loop_sentinel",
    "whole_response",
]

RECV_SIZE = 65536
INF = float("inf")
_ATTEMPT = "attempt"  # the Timer phase a Timeouts.attempt cap cut short
MAX_STALE_RETRIES = 8  # reused connections found dead before any byte, per request
_MANAGED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_ssl_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """Return the process-wide default TLS context (system trust store)."""
    global _ssl_context
    if _ssl_context is None:  # built on first https use: loading the trust store takes a while
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class Target:
    """A parsed URL: where to connect and what to put on the request line."""

    __slots__ = ("heads", "host", "host_header", "key", "origin", "port", "target", "tls")

    def __init__(self, url: str) -> None:
        self.heads: dict[tuple[Any, ...], bytes] = {}  # encoded heads by (method, headers)
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


class Conn:
    """One open keep-alive connection and when it stops being reusable."""

    __slots__ = ("expires_at", "generation", "stream", "uses")

    def __init__(self, stream: Stream, generation: int) -> None:
        self.stream = stream
        self.generation = generation
        self.expires_at = 0.0
        self.uses = 0


class Host:
    """Idle connections (most recent last) and the slot semaphore of one origin."""

    __slots__ = ("idle", "slots")

    def __init__(self, limit: int) -> None:
        self.idle: deque[Conn] = deque()
        self.slots = anyio.Semaphore(limit)


class LoopState:
    """Everything a pool owns inside one event loop (or on the blocking path).

    Args:
        aio: The asyncio loop (connections then use ``_http/_aio.py``), else None.
        clock: Monotonic seconds, the clock deadlines are set on (default: the loop's).
        blocking: The state of the blocking connections (``_http/_blocking.py``).
    """

    def __init__(
        self,
        aio: Loop | None = None,
        *,
        clock: Callable[[], float] | None = None,
        blocking: bool = False,
    ) -> None:
        self.hosts: dict[tuple[str, str, int], Host] = {}
        self.generation = 0
        self.sentinel: AsyncGenerator[None, None] | None = None
        self.aio = aio
        self.blocking = blocking
        # asyncio and blocking streams time their own waits (``Timer`` without a scope)
        self.timed_streams = aio is not None or blocking
        if clock is None:  # the loop's own clock: the same time, fewer hops
            clock = aio.time if aio is not None else anyio.current_time
        self.clock = clock

    async def close_idle(self) -> None:
        """Close every idle connection of this loop."""
        conns = [c for host in self.hosts.values() for c in host.idle]
        for host in self.hosts.values():
            host.idle.clear()
        for conn in conns:
            await anyio.aclose_forcefully(conn.stream)


async def loop_sentinel(state: LoopState) -> AsyncGenerator[None, None]:
    """Suspend forever; the loop finalizes it at shutdown, closing idle sockets.

    Both asyncio (``shutdown_asyncgens``) and trio (at the end of ``run``)
    ``aclose()`` async generators that are still suspended, inside the loop.
    """
    try:
        yield
    finally:
        await state.close_idle()


class Expired(Exception):
    """A stream's own deadline passed while it waited (see :meth:`Timer.bind`)."""


class Timer:
    """Move one deadline through the phases of an exchange, under an optional cap.

    The deadline lives on a cancel scope, or — for the asyncio streams of
    ``_http/_aio.py`` and the blocking ones of ``_http/_blocking.py``, which
    time their own waits — on the stream itself (``scope=None``, then
    :meth:`bind` the stream), which spares a cancel scope per request (and is
    the only way to bound a blocking call). A stream that expires raises
    :class:`Expired`. ``cap`` is the attempt's own deadline
    (``Timeouts.attempt`` from the request's start): no phase runs past it,
    and a phase it cuts short is reported as the attempt timing out.
    """

    __slots__ = ("cap", "cap_seconds", "clock", "deadline", "phase", "scope", "seconds", "stream")

    def __init__(
        self, scope: anyio.CancelScope | None, clock: Callable[[], float] = anyio.current_time,
        cap: float = INF, cap_seconds: float = 0.0,
    ) -> None:
        self.scope = scope
        self.clock = clock
        self.cap, self.cap_seconds = cap, cap_seconds
        self.phase = ""
        self.seconds = 0.0
        self.deadline = INF
        self.stream: Any = None

    def arm(self, phase: str, seconds: float) -> None:
        """Give the coming phase ``seconds`` from now (never past the cap)."""
        deadline = self.clock() + seconds
        if deadline >= self.cap:
            deadline, phase, seconds = self.cap, _ATTEMPT, self.cap_seconds
        self.phase, self.seconds = phase, seconds
        self.deadline = deadline
        if self.scope is not None:
            self.scope.deadline = deadline
        elif self.stream is not None:
            self.stream.deadline = deadline

    def bind(self, stream: Any) -> None:
        """Attach an asyncio stream: it enforces the deadline unless a scope does."""
        if self.scope is None:
            self.stream = stream
            stream.deadline = self.deadline
        else:
            stream.deadline = None

    def error(self, origin: str) -> LMTimeoutError:
        """Return the error for a deadline that fired."""
        if self.phase == _ATTEMPT:
            return attempt_timeout(self.seconds, origin)
        return LMTimeoutError(f"{self.phase} ({self.seconds}s) talking to {origin}")


def attempt_timeout(seconds: float, origin: str) -> LMTimeoutError:
    """Return the error for an attempt that ran past ``Timeouts.attempt``."""
    return LMTimeoutError(
        f"the call exceeded the {seconds}s timeout per attempt (Timeouts.attempt) talking to {origin}"
    )


def keepalive_hint(headers: list[tuple[str, str]]) -> float | None:
    """Return a safe idle time from ``Keep-Alive: timeout=N`` (N - 1 s), or None."""
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


def head_bytes(
    method: str, target: Target, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """Encode the request line and headers (``Accept-Encoding: identity`` by default).

    The head without ``Content-Length`` is cached on ``target`` per (method,
    headers): an LM sends the same headers on every call.
    """
    key = (method, body is not None, *headers.items())
    head = target.heads.get(key)
    if head is None:
        head = _encode_head(method, target, headers)
        if len(target.heads) >= 64:
            target.heads.clear()
        target.heads[key] = head
    if body is not None or method in ("POST", "PUT", "PATCH"):
        return b"%sContent-Length: %d\r\n\r\n" % (head, len(body) if body else 0)
    return head + b"\r\n"


def _encode_head(method: str, target: Target, headers: Mapping[str, str]) -> bytes:
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
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError("HTTP header values must be latin-1 (ASCII) text") from None


def content_encoding(headers: list[tuple[str, str]]) -> str | None:
    """Return ``gzip``/``deflate`` if the body is compressed that way, else None."""
    for name, value in headers:
        if name == "content-encoding":
            value = value.strip().lower()
            return value if value in ("gzip", "deflate", "x-gzip") else None
    return None


def decoder() -> Any:
    """Return a zlib decompressor accepting gzip or zlib framing."""
    return zlib.decompressobj(zlib.MAX_WBITS | 32)


def decode_all(content: bytes, encoding: str, origin: str) -> bytes:
    """Decompress a whole body, mapping corruption to ``LMTransportError``."""
    try:
        d = decoder()
        return d.decompress(content) + d.flush()  # type: ignore[no-any-return]
    except zlib.error as exc:
        raise LMTransportError(f"invalid {encoding} body from {origin}: {exc}") from None


def whole_response(parser: ResponseParser, parts: list[bytes], origin: str) -> HTTPResponse:
    """Return the response ``parser`` read, its body ``parts`` joined and decompressed."""
    content = b"".join(parts)
    encoding = content_encoding(parser.headers)
    if encoding:
        content = decode_all(content, encoding, origin)
    return HTTPResponse(parser.status, parser.headers, content=content)
