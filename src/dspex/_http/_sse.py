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

from typing import NamedTuple

__all__ = ["SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
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
        self._data: list[bytes] = []
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
        if self._first and len(buf) >= 3:
            self._first = False
            if buf.startswith(_BOM):
                buf = buf[3:]
        elif self._first and not _BOM.startswith(buf):
            self._first = False
        elif self._first:
            self._buf = buf  # could still be the start of a BOM
            return []
        if b"\r" in buf:
            lines = buf.splitlines(keepends=True)
            if lines and lines[-1][-1:] not in (b"\n", b"\r"):
                self._buf = lines.pop()
            else:
                self._buf = b""
            if buf[-1:] == b"\r":
                self._skip_lf = True  # a CRLF may be split across chunks
            lines = [line.rstrip(b"\r\n") for line in lines]
        else:  # the common LF-only case, without per-line copies of endings
            lines = buf.split(b"\n")
            self._buf = lines.pop()
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(self._dispatch())
                    data = self._data
                else:
                    self._event, self._retry = "", None
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[:1] != b":":
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, raw = line.partition(b":")
        if colon and raw[:1] == b" ":
            raw = raw[1:]
        value = raw.decode("utf-8", errors="replace")
        if name == b"data":
            self._data.append(raw)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if "\x00" not in value:
                self._last_id = value
        elif name == b"retry" and value.isascii() and value.isdigit():
            self._retry = int(value)

    def _dispatch(self) -> SSEEvent:
        data = self._data
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", errors="replace")
        event = SSEEvent(self._event or "message", text, self._last_id, self._retry)
        self._event, self._retry, self._data = "", None, []
        return event
