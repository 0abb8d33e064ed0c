"""A Sans-I/O decoder for Server-Sent Events (the WHATWG ``text/event-stream`` format).

Feed it raw body bytes in chunks of any size; it returns the events completed
so far. Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF
at the start of the next count once); ``data`` lines accumulate with ``\\n``;
lines starting with ``:`` are comments; ``id`` persists across events;
``retry`` must be all digits. Bytes are decoded as UTF-8 only once a line is
complete, so a character split across chunks is never mangled. As the
standard says, an event still open when the stream ends is discarded;
:attr:`SSEDecoder.pending` tells whether that happened (a truncated stream).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: type (default ``"message"``), data, last id, retry ms."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Decode an event stream incrementally: ``feed(bytes) -> list[SSEEvent]``."""

    __slots__ = ("_buf", "_data", "_event", "_first", "_last_id", "_retry", "_skip_lf")

    def __init__(self) -> None:
        self._buf = b""
        self._skip_lf = False
        self._first = True
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self._retry: int | None = None

    @property
    def pending(self) -> bool:
        """True if bytes or fields of an undispatched event are buffered."""
        return bool(self._buf or self._data or self._event)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed, in order."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.splitlines(keepends=True)
        if lines and lines[-1][-1:] not in (b"\n", b"\r"):
            self._buf = lines.pop()
        else:
            self._buf = b""
        if buf[-1:] == b"\r":
            self._skip_lf = True  # a CRLF may be split across chunks
        events: list[SSEEvent] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
            if self._first:
                self._first = False
                if line.startswith("\ufeff"):
                    line = line[1:]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        retry, self._retry = self._retry, None
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._last_id,
            retry=retry,
        )
        self._event = ""
        self._data = []
        return event
