"""Sans-I/O HTTP/1.1 message parsers: httptools (C) first, h11 as pure-Python fallback.

The lean pool parses responses and the fake LM server parses requests through
the small interfaces here, so neither cares which parser runs; ``_parsers.py``
picks the implementation: these ``httptools`` (llhttp) ones when it imports,
otherwise (or when ``impl="h11"`` is asked for) the h11 ones in ``_h1_h11.py``,
which do the same job more slowly. Parsers are fed raw bytes and expose
what they found as plain attributes; protocol violations raise
:class:`HTTPProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from types import ModuleType

httptools: ModuleType | None  # None when it is not importable: ``_parsers`` then picks h11
try:
    import httptools
except ImportError:  # pragma: no cover - exercised by forcing the fallback
    httptools = None

__all__ = [
    "HTTPProtocolError",
    "HttptoolsRequestParser",
    "HttptoolsResponseParser",
    "ParsedRequest",
    "RequestParser",
    "ResponseParser",
    "httptools",
]


class HTTPProtocolError(Exception):
    """The peer sent bytes that are not valid HTTP/1.1."""


def _httptools() -> ModuleType:
    """Return the httptools module (read at call time: a test may hide it).

    Raises:
        ConfigError: httptools is not installed (``_parsers`` picks h11 then).
    """
    if httptools is None:
        raise ConfigError("HTTP parser 'httptools' was asked for but httptools is not installed")
    return httptools


class ResponseParser:
    """Parse one HTTP/1.1 response; shared state for both implementations.

    After :meth:`feed`, ``status``/``headers`` are set once ``head_done``;
    decoded body pieces wait in ``body`` (take them with :meth:`take_body`);
    ``complete`` is set at the end of the message. ``keep_alive`` says whether
    the connection may carry another request afterwards.
    """

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.body: list[bytes] = []
        self.received_any = False

    def take_body(self) -> list[bytes]:
        """Return the body pieces parsed since the last call (a list the parser no longer holds)."""
        body = self.body
        if not body:
            # never hand out the parser's own list: a caller that keeps it and
            # extends it with later pieces would see every later piece twice
            return []
        self.body = []
        return body

    def feed(self, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def feed_eof(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class HttptoolsResponseParser(ResponseParser):
    """The httptools (llhttp) response parser; ``head_only`` for HEAD requests."""

    def __init__(self, head_only: bool) -> None:
        super().__init__()
        self._head_only = head_only
        self._until_eof = False
        self._messages = 0
        lib = _httptools()
        self._error: type[Exception] = lib.HttpParserError
        self._parser: Any = lib.HttpResponseParser(self)  # None once the message is complete

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._messages += 1
        if self._messages > 1:  # bytes beyond our response: never reuse
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational: wait for the final response
            self.headers = []
            return
        self.status = status
        self.head_done = True
        self.keep_alive = bool(self._parser.should_keep_alive())
        if self._head_only or status in (204, 304):
            self.complete = True
            self.keep_alive = False
            return
        names = {k for k, _ in self.headers}
        if "content-length" not in names and "transfer-encoding" not in names:
            self._until_eof = True
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True
        if self._messages > 1:  # bytes beyond our response: never reuse
            self.keep_alive = False

    def feed(self, data: bytes) -> None:
        self.received_any = True
        parser = self._parser
        if parser is None:  # bytes after our complete message: never reuse the connection
            self.keep_alive = False
            return
        try:
            parser.feed_data(data)
        except self._error as exc:
            if self.complete:  # junk after our message: the connection is done
                self.keep_alive = False
                self._parser = None
                return
            raise HTTPProtocolError(f"malformed HTTP response: {exc}") from None
        if self.complete:
            # The C parser holds our callbacks (bound methods of self): dropping it
            # once the message is in breaks that cycle, so refcounting frees both
            # at once instead of leaving ~11 objects per request to the cyclic GC.
            self._parser = None

    def feed_eof(self) -> None:
        if self.complete:
            return
        if self._until_eof and self.head_done:
            self.complete = True
            return
        raise HTTPProtocolError("connection closed before the response was complete")


@dataclass
class ParsedRequest:
    """One complete HTTP request as the fake server sees it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool
    headers_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.headers_map:
            self.headers_map = dict(self.headers)


class RequestParser:
    """Parse a stream of pipelined HTTP/1.1 requests (server side)."""

    def feed(self, data: bytes) -> list[ParsedRequest]:  # pragma: no cover - abstract
        raise NotImplementedError


class HttptoolsRequestParser(RequestParser):
    def __init__(self) -> None:
        lib = _httptools()
        self._error: type[Exception] = lib.HttpParserError
        self._parser: Any = lib.HttpRequestParser(self)
        self._done: list[ParsedRequest] = []
        self._reset()

    def _reset(self) -> None:
        self._url = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        p = self._parser
        self._done.append(
            ParsedRequest(
                method=p.get_method().decode("ascii"),
                target=self._url.decode("latin-1"),
                headers=self._headers,
                body=b"".join(self._body),
                keep_alive=bool(p.should_keep_alive()),
            )
        )
        self._reset()

    def feed(self, data: bytes) -> list[ParsedRequest]:
        try:
            self._parser.feed_data(data)
        except self._error as exc:
            raise HTTPProtocolError(f"malformed HTTP request: {exc}") from None
        done, self._done = self._done, []
        return done
