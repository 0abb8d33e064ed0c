"""``MockTransport``: drive an LM offline with a function from request to response.

Like httpx's ``MockTransport``: pass ``dx.LM(..., transport=MockTransport(handler))``
and every request the LM would send goes to ``handler(request)`` instead of
the network. The handler gets a :class:`MockRequest` (method, URL, headers,
body) and returns a :class:`MockResponse` — a JSON body, raw bytes, or a
stream of SSE events that the LM reads chunk by chunk as it would a server's.
It may be a plain or an ``async`` function; to simulate a network failure it
raises :class:`~dspex.errors.LMTransportError` or
:class:`~dspex.errors.LMTimeoutError`, which the LM retries like real ones.
"""

from __future__ import annotations

import inspect
import json as _json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from .._http._transport import _DEFAULT_TIMEOUTS, HTTPResponse, Timeouts, Transport
from ..errors import ConfigError

__all__ = ["MockRequest", "MockResponse", "MockTransport"]


@dataclass(frozen=True)
class MockRequest:
    """One request the LM sent, as the handler sees it.

    Attributes:
        method: ``"POST"``, ``"GET"``, ...
        url: The full URL, query string included.
        headers: Header names lowercased.
        body: The raw request body (``b""`` when there is none).
        stream: True when the LM asked for a streamed response (SSE).
    """

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool = False

    def json(self) -> Any:
        """Return the body decoded as JSON (raises ``json.JSONDecodeError`` if it is not)."""
        return _json.loads(self.body)


@dataclass(frozen=True)
class MockResponse:
    """What the handler answers: a status, headers and one kind of body.

    Give at most one of ``json`` (encoded, ``content-type: application/json``),
    ``content`` (raw bytes or text) or ``sse`` (events sent one chunk each,
    ``content-type: text/event-stream``: a dict is sent as ``data: <json>``, a
    string as ``data: <string>``, e.g. ``"[DONE]"``).

    Raises:
        ConfigError: More than one body was given, or ``status`` is not an HTTP status.
    """

    status: int = 200
    json: Any = None
    content: bytes | str | None = None
    sse: Iterable[Mapping[str, Any] | str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = [n for n in ("json", "content", "sse") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ConfigError(f"MockResponse takes one body, got {' and '.join(given)}")
        if (
            not isinstance(self.status, int)
            or isinstance(self.status, bool)
            or not 100 <= self.status <= 599
        ):
            raise ConfigError(
                f"MockResponse.status must be an HTTP status (100-599), got {self.status!r}"
            )

    def chunks(self) -> tuple[list[tuple[str, str]], list[bytes]]:
        """Return the wire headers (lowercased, content-type first) and the body chunks."""
        headers = [(k.lower(), v) for k, v in self.headers.items()]
        if self.sse is not None:
            kind, parts = "text/event-stream", [_sse_event(e) for e in self.sse]
        elif self.json is not None:
            kind, parts = "application/json", [_json.dumps(self.json).encode()]
        elif isinstance(self.content, str):
            kind, parts = "text/plain; charset=utf-8", [self.content.encode()]
        else:
            kind, parts = "application/octet-stream", [self.content] if self.content else []
        if not any(k == "content-type" for k, _ in headers):
            headers.insert(0, ("content-type", kind))
        return headers, parts


def _sse_event(event: Mapping[str, Any] | str) -> bytes:
    data = event if isinstance(event, str) else _json.dumps(event)
    return b"".join(b"data: " + line.encode() + b"\n" for line in data.split("\n")) + b"\n"


Handler = Callable[[MockRequest], MockResponse | Awaitable[MockResponse]]


class _Chunks:
    """Async iterator over prepared body chunks (no async generator left to finalize)."""

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self._parts:
            raise StopAsyncIteration
        return self._parts.pop(0)


class MockTransport(Transport):
    """A :class:`dspex.lm.Transport` that answers every request with ``handler(request)``.

    Never touches the network. Requests are recorded in :attr:`requests` (in
    the order sent) for assertions. Safe to share between tasks and loops: it
    holds no connections; ``timeouts`` are ignored (the LM's attempt deadline
    still applies around a slow ``async`` handler).

    Args:
        handler: ``request -> MockResponse``, a plain or ``async`` function. What
            it raises reaches the LM unchanged (raise ``LMTransportError`` or
            ``LMTimeoutError`` to simulate the network failing).

    Raises:
        ConfigError: ``handler`` is not callable, or it returned something
            other than a ``MockResponse`` (raised from the request).
    """

    def __init__(self, handler: Handler) -> None:
        if not callable(handler):
            raise ConfigError(
                f"MockTransport needs a callable handler(request) -> MockResponse, got {handler!r}"
            )
        self._handler = handler
        self.requests: list[MockRequest] = []

    async def _answer(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, stream: bool
    ) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        request = MockRequest(
            method, url, {k.lower(): v for k, v in headers.items()}, body or b"", stream
        )
        self.requests.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, MockResponse):
            raise ConfigError(
                f"the MockTransport handler must return a MockResponse, got {result!r}"
            )
        wire_headers, parts = result.chunks()
        return result.status, wire_headers, parts

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> HTTPResponse:
        """Ask the handler; return its response with the whole body."""
        status, wire_headers, parts = await self._answer(method, url, headers, body, stream=False)
        return HTTPResponse(status, wire_headers, content=b"".join(parts))

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> AsyncIterator[HTTPResponse]:
        """Ask the handler; yield its response, the body arriving one chunk (SSE event) at a time."""
        status, wire_headers, parts = await self._answer(method, url, headers, body, stream=True)
        response = HTTPResponse(status, wire_headers, chunks=_Chunks(parts))
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Nothing to close (no connections); kept for the ``Transport`` contract."""
