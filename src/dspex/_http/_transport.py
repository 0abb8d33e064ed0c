"""The HTTP transport seam under every LM provider, and the factory that picks one.

Providers build a request (method, URL, headers, JSON body) and hand it to a
:class:`Transport`; the transport returns an :class:`HTTPResponse` whose body is
either already read (:meth:`Transport.request`) or still arriving
(:meth:`Transport.stream`, used for SSE). Two transports implement the seam: the
default lean keep-alive HTTP/1.1 pool on anyio streams (``_http/_pool.py``) and an
``httpx.AsyncClient`` wrapper (``_http/_httpx_transport.py``) for proxies, HTTP/2 and
user-supplied clients; ``_http/_factory.py`` chooses between them (this module
imports neither, so the implementations depend on it one way). Whatever the
transport, failures surface only as :class:`~dspex.errors.LMTransportError`
(refused, reset, EOF, truncated, malformed) or :class:`~dspex.errors.LMTimeoutError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import anyio

from ..errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
    from contextlib import AbstractAsyncContextManager

__all__ = ["HTTPResponse", "Timeouts", "Transport", "describe_io_error", "redact_url"]

@dataclass(frozen=True)
class Timeouts:
    """Time limits in seconds for one attempt of an LM call.

    The defaults suit batch work: a hung request costs at most ``read``
    seconds (non-streamed) or ``attempt`` seconds (anything), then fails with
    ``LMTimeoutError``, which the LM's retry policy retries like any transport
    error. Pass ``dx.LM(..., timeout=dx.Timeouts(read=..., attempt=...))`` to
    change them, or ``timeout=seconds`` to cap ``read`` and ``attempt`` at once.

    Attributes:
        connect: Opening the TCP connection and the TLS handshake (10 s).
        read: The longest wait for the next bytes of the response, per read
            (120 s). A non-streamed call receives nothing until the model has
            finished, so this bounds the whole generation; a streamed call
            restarts it on each chunk, so a long stream that keeps sending is
            only bounded by ``attempt``.
        pool: Waiting for a free connection slot when the per-host limit is hit (30 s).
        write: Sending the request head and body (30 s).
        attempt: Total time of one attempt, from asking for a connection to
            the last byte, streamed or not (300 s); ``None`` for no limit.
            The default transport ends a non-streamed call by it itself
            (every wait, the blocking socket of a sync call included); for a
            stream, or a transport of your own, the LM's cancel scope does.
    """

    connect: float = 10.0
    read: float = 120.0
    pool: float = 30.0
    write: float = 30.0
    attempt: float | None = 300.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "pool", "write", "attempt"):
            value = getattr(self, name)
            if name == "attempt" and value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(
                    f"Timeouts.{name} must be a positive number of seconds, got {value!r}"
                )


_DEFAULT_TIMEOUTS = Timeouts()


class HTTPResponse:
    """An HTTP response: status, lowercased headers and a body read once.

    A response from :meth:`Transport.request` holds its whole body; one from
    :meth:`Transport.stream` reads it lazily through :meth:`aiter_bytes` (each
    chunk as it arrives, already de-chunked and decompressed). The body can be
    consumed once; :meth:`aread` after a partial iteration raises. ``aclose``
    releases the connection (back to the pool if the body was read to the end,
    closed otherwise) and is idempotent.

    Args:
        status: The HTTP status code.
        headers: ``(name, value)`` pairs with lowercased names, in wire order.
        content: The whole body, when already read.
        chunks: An async iterator over body chunks, when still arriving.
        on_close: Called once by :meth:`aclose` to release the connection.
    """

    __slots__ = ("_chunks", "_closed", "_consumed", "_content", "_on_close", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        *,
        content: bytes | None = None,
        chunks: AsyncIterator[bytes] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self._content = content
        self._chunks = chunks
        self._on_close = on_close
        self._consumed = False
        self._closed = False

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (case-insensitive), or None."""
        key = name.lower()
        for k, v in self.headers:
            if k == key:
                return v
        return None

    async def aread(self) -> bytes:
        """Read and return the whole body, then release the connection."""
        if self._content is not None:
            return self._content
        parts = [chunk async for chunk in self.aiter_bytes()]
        self._content = b"".join(parts)
        return self._content

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Iterate over body chunks as they arrive; the end releases the connection.

        The iterator is a plain object (not an async generator), so breaking
        out of the loop leaves nothing to finalize: leaving the ``stream()``
        context closes the connection.
        """
        if self._content is not None:
            return _BodyIterator(self, None, [self._content] if self._content else [])
        if self._consumed or self._chunks is None:
            raise RuntimeError("the response body was already consumed")
        self._consumed = True
        return _BodyIterator(self, self._chunks, [])

    async def aclose(self) -> None:
        """Release the connection; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            await self._on_close()

    def __repr__(self) -> str:
        return f"<HTTPResponse status={self.status}>"


class _BodyIterator:
    """Yield preloaded chunks, then chunks from ``source``; close at the end."""

    __slots__ = ("_preloaded", "_response", "_source")

    def __init__(
        self, response: HTTPResponse, source: AsyncIterator[bytes] | None, preloaded: list[bytes]
    ) -> None:
        self._response = response
        self._source = source
        self._preloaded = preloaded

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        if self._preloaded:
            return self._preloaded.pop(0)
        if self._source is None:
            raise StopAsyncIteration
        try:
            return await self._source.__anext__()
        except StopAsyncIteration:
            self._source = None
            await self._response.aclose()
            raise


class Transport(ABC):
    """Send HTTP requests for LM providers (public as ``dx.lm.Transport``).

    Pass one as ``dx.LM(..., transport=...)`` to route an LM's requests through
    your own code; :class:`dspex.testing.MockTransport` is a ready one for tests.
    A subclass implements :meth:`request`, :meth:`stream` and :meth:`aclose`,
    returning :class:`HTTPResponse` objects (``content=`` for a whole body,
    ``chunks=`` for one still arriving).

    Implementations must be safe to share between tasks, and between event
    loops used one after the other (a sync call runs a fresh loop each time).
    Errors are only ``LMTransportError`` and ``LMTimeoutError``.

    Attributes:
        bounds_attempt: True when :meth:`request` itself ends every call by
            ``timeouts.attempt`` (raising ``LMTimeoutError``); the LM then adds
            no cancel scope of its own around it. False (the default): the LM
            bounds each attempt with a cancel scope.
    """

    bounds_attempt: ClassVar[bool] = False

    @abstractmethod
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> HTTPResponse:
        """Send a request and return the response with its body fully read."""

    @abstractmethod
    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> AbstractAsyncContextManager[HTTPResponse]:
        """Send a request; the context yields the response with its body pending.

        Leaving the context early (or by cancellation) closes the connection
        instead of returning it to the pool.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Close idle connections owned by the current event loop."""


def redact_url(url: str) -> str:
    """Return ``url`` without query string or credentials, safe for messages."""
    base = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = base.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


_OS_ERRORS: tuple[tuple[type[OSError], str], ...] = (
    (ConnectionResetError, "connection reset by peer"),
    (BrokenPipeError, "broken pipe (the server closed the connection)"),
    (ConnectionAbortedError, "connection aborted"),
    (ConnectionRefusedError, "connection refused"),
    (TimeoutError, "the operating system timed the connection out"),
)


def _os_cause(exc: BaseException) -> BaseException | None:
    """Return the most specific ``OSError`` behind ``exc`` (``exc`` itself if it is one), or None."""
    found: BaseException | None = None
    cause: BaseException | None = exc
    for _ in range(8):  # the OS error, if any, is a few links down (anyio, httpcore, httpx)
        if cause is None:
            break
        if isinstance(cause, BaseExceptionGroup):  # anyio's happy eyeballs: one per address
            cause = cause.exceptions[0]
            continue
        if isinstance(cause, OSError):
            found = cause
            if type(cause) is not OSError or cause.errno is not None:
                return cause
        cause = cause.__cause__ or cause.__context__
    return found


def describe_io_error(exc: BaseException) -> str:
    """Return a plain-words reason for a socket failure, never a bare class name.

    anyio raises ``BrokenResourceError()``/``ClosedResourceError()`` with no
    message (the OS error, if any, is the ``__cause__``); those names mean
    nothing to a user reading a dead letter, so they are translated here.
    """
    cause = _os_cause(exc)
    if isinstance(cause, OSError):
        for cls, words in _OS_ERRORS:
            if isinstance(cause, cls):
                return words
        return cause.strerror or str(cause) or "the connection failed"
    if isinstance(exc, anyio.EndOfStream):
        return "the server closed the connection"
    if isinstance(exc, anyio.BrokenResourceError):
        return "the connection broke (reset or closed by the server)"
    if isinstance(exc, anyio.ClosedResourceError):
        return "the connection was already closed"
    return str(exc) or "the connection failed"
