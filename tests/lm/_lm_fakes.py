"""In-test doubles for LM tests: a scripted ``Transport`` and fixture loading.

``FakeTransport(handler)`` plays the role httpx's ``MockTransport`` plays: each
request is recorded and passed to ``handler(request)``, which returns a
``Reply`` (status, headers, body or body chunks) or raises a transport error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from dspex.lm import HTTPResponse, Timeouts, Transport

FIXTURES = Path(__file__).parent / "fixtures"
_TIMEOUTS = Timeouts()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    stream: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] | None = None
    fail_after_chunks: Exception | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Reply:
        return cls(status, json.dumps(data).encode(), headers or [("content-type", "application/json")])

    @classmethod
    def sse(cls, raw: bytes, *, size: int = 7) -> Reply:
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        return cls(200, b"", [("content-type", "text/event-stream")], chunks=chunks)


Handler = Callable[[Sent], Reply]


class FakeTransport(Transport):
    """A Transport that answers from ``handler`` and records every request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sent: list[Sent] = []
        self.closed = 0

    def _reply(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, stream: bool) -> Reply:
        sent = Sent(method, url, dict(headers), body, stream)
        self.sent.append(sent)
        return self.handler(sent)

    async def request(self, method: str, url: str, *, headers: Mapping[str, str],
                      body: bytes | None = None, timeouts: Timeouts = _TIMEOUTS) -> HTTPResponse:
        await anyio.lowlevel.checkpoint()
        reply = self._reply(method, url, headers, body, False)
        content = reply.body if reply.chunks is None else b"".join(reply.chunks)
        return HTTPResponse(reply.status, reply.headers, content=content)

    @asynccontextmanager
    async def _stream(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> AsyncIterator[HTTPResponse]:
        await anyio.lowlevel.checkpoint()
        reply = self._reply(method, url, headers, body, True)

        async def chunks() -> AsyncIterator[bytes]:
            for chunk in reply.chunks if reply.chunks is not None else [reply.body]:
                await anyio.lowlevel.checkpoint()
                yield chunk
            if reply.fail_after_chunks is not None:
                raise reply.fail_after_chunks

        resp = HTTPResponse(reply.status, reply.headers, chunks=chunks())
        try:
            yield resp
        finally:
            await resp.aclose()

    def stream(self, method: str, url: str, *, headers: Mapping[str, str],
               body: bytes | None = None, timeouts: Timeouts = _TIMEOUTS) -> Any:
        return self._stream(method, url, headers, body)

    async def aclose(self) -> None:
        self.closed += 1


def sequence(*replies: Reply | Exception) -> Handler:
    """A handler answering with ``replies`` in order (the last one repeats)."""
    items = list(replies)

    def handler(sent: Sent) -> Reply:
        item = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler
