"""Chunked line reading and JSON-line parsing, run in a worker thread.

:class:`LineChunker` reads a binary stream one chunk at a time (1 MiB by
default) and hands back the complete lines in it with their 1-based line
numbers, keeping only the unfinished tail between chunks; a line longer than
``max_line_bytes`` is dropped and reported instead of growing the buffer.
:func:`parse_lines` turns a chunk of lines into :class:`SourceRecord` objects,
marking bad lines (invalid JSON, not an object, undecodable bytes, missing id)
as errors that name the path and line. Both run inside ``to_thread`` hops, so
the event loop only sees whole parsed chunks.
"""

from __future__ import annotations

import json
from json.scanner import make_scanner
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import SourceError
from ._base import SourceRecord

if TYPE_CHECKING:
    from collections.abc import Callable


class MakeRecord(Protocol):
    """``(data, key=None) -> SourceRecord`` for a well-formed line."""

    def __call__(self, data: Any, key: str | None = None, /) -> SourceRecord: ...

__all__ = ["LineChunker", "parse_lines"]

_BOM = b"\xef\xbb\xbf"

# The C scanner behind ``json.loads``, called directly: a line that is exactly
# one JSON value parses in one call instead of four (loads -> decode ->
# raw_decode -> scan). Anything else (surrounding whitespace, errors) goes
# through ``json.loads``, so the result is always what ``json.loads`` gives.
_SCAN = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed: context typed as make_scanner, it is the decoder


def _record_factory() -> MakeRecord:
    """Return a cheap ``(data, key) -> SourceRecord`` for well-formed lines.

    ``SourceRecord`` is a frozen slots dataclass: its generated ``__init__``
    sets each field through ``object.__setattr__``, which costs more than
    parsing a short line. Writing the slots through their descriptors builds
    the same (equal, still frozen) object several times cheaper. Falls back to
    the class itself if it ever stops having slots.
    """
    slots = [SourceRecord.__dict__.get(name) for name in ("data", "key", "error")]
    if not all(type(slot).__name__ == "member_descriptor" for slot in slots):
        return SourceRecord
    set_data, set_key, set_error = (slot.__set__ for slot in slots)  # type: ignore[union-attr]
    new = object.__new__

    def make(data: Any, key: str | None = None) -> SourceRecord:
        record = new(SourceRecord)
        set_data(record, data)
        set_key(record, key)
        set_error(record, None)
        return record

    return make


_record = _record_factory()


class LineChunker:
    """Split a binary stream into numbered lines, one read per call.

    The unfinished tail is kept as a list of chunks and joined once, when the
    newline that ends it arrives: a line spanning ``k`` reads costs one copy,
    not ``k`` growing ones (quadratic in the line's length).

    Args:
        read: Reads up to ``n`` bytes; ``b""`` means end of input.
        chunk_bytes: How much to read per call.
        max_line_bytes: Longest line accepted; longer ones are reported as
            ``(line_number, None)`` and skipped.

    Attributes:
        max_buffered: The most bytes ever held at once (instrumentation).
        bytes_joined: Bytes copied to join tails with the chunk ending them
            (instrumentation: linear in the input, whatever the line lengths).
    """

    def __init__(
        self, read: Callable[[int], bytes], chunk_bytes: int = 1 << 20,
        max_line_bytes: int = 64 << 20,
    ) -> None:
        self._read = read
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes
        self._parts: list[bytes] = []  # the unfinished line, chunk by chunk
        self._held = 0  # bytes in _parts
        self._dropping = False
        self._first = True
        self.line = 0
        self.eof = False
        self.max_buffered = 0
        self.bytes_joined = 0

    def next_lines(self) -> list[tuple[int, bytes | None]]:
        """Return the next complete lines (maybe none); sets :attr:`eof` at the end."""
        data = self._read(self.chunk_bytes)
        if self._first:
            self._first = False
            data = data.removeprefix(_BOM)
        if not data:
            self.eof = True
            return self._finish()
        out: list[tuple[int, bytes | None]] = []
        if self._dropping:
            cut = data.find(b"\n")
            if cut < 0:
                return out
            self._dropping = False
            self.line += 1
            out.append((self.line, None))
            data = data[cut + 1:]
        if b"\n" not in data:  # the line goes on: hold the chunk, copy nothing
            self._hold(data)
            return out
        if self._parts:
            self._parts.append(data)
            buf = b"".join(self._parts)
            self.bytes_joined += len(buf)
        else:
            buf = data
        self.max_buffered = max(self.max_buffered, len(buf))
        lines = buf.split(b"\n")
        tail = lines.pop()
        self._parts, self._held = [], 0
        start = self.line
        out.extend(zip(range(start + 1, start + 1 + len(lines)), lines, strict=True))
        self.line = start + len(lines)
        self._hold(tail)
        return out

    def _hold(self, data: bytes) -> None:
        if not data:
            return
        self._parts.append(data)
        self._held += len(data)
        self.max_buffered = max(self.max_buffered, self._held)
        if self._held > self.max_line_bytes:
            self._parts, self._held = [], 0
            self._dropping = True

    def _finish(self) -> list[tuple[int, bytes | None]]:
        if self._dropping:
            self._dropping = False
            self.line += 1
            return [(self.line, None)]
        if self._parts:
            tail = b"".join(self._parts)
            self._parts, self._held = [], 0
            self.line += 1
            return [(self.line, tail)]
        return []


def _bad(
    raw: bytes | None, message: str, path: str, line: int, field: str | None = None
) -> SourceRecord:
    text = "" if raw is None else raw.decode("utf-8", "replace")
    err = SourceError(f"{path}:{line}: {message}", path=path, line=line, field=field)
    return SourceRecord(text, None, err)


def parse_lines(
    lines: list[tuple[int, bytes | None]],
    *,
    path: str,
    id_field: str | None,
    fmt: Literal["jsonl", "lines"] = "jsonl",
    max_line_bytes: int = 64 << 20,
) -> list[SourceRecord]:
    """Parse numbered lines into records; blank JSON lines are skipped."""
    if fmt == "lines":
        return _parse_text(lines, path, max_line_bytes)
    out: list[SourceRecord] = []
    append = out.append
    loads, scan = json.loads, _SCAN
    record = _record
    for line, raw in lines:
        try:
            text = raw.decode()  # type: ignore[union-attr]
            try:
                data, end = scan(text, 0)
            except StopIteration:  # leading whitespace or not JSON: json.loads decides
                end = -1
            if end != len(text):
                data = loads(text)
        except Exception:
            if raw is None or raw.strip():
                append(_diagnose(raw, path, line, max_line_bytes))
            continue
        if type(data) is not dict:
            append(_bad(raw, f"got a JSON {type(data).__name__}; expected a JSON object",
                        path, line))
        elif id_field is None:
            append(record(data))
        else:
            key = data.get(id_field)
            if key is None:
                append(_bad(raw, f"missing id field {id_field!r}; expected it in every record",
                            path, line, id_field))
            else:
                append(record(data, str(key)))
    return out


def _diagnose(raw: bytes | None, path: str, line: int, max_line_bytes: int) -> SourceRecord:
    """Build the error record for a line that failed to decode or parse."""
    if raw is None:
        return _bad(None, f"line longer than {max_line_bytes} bytes; skipped", path, line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad(raw, f"undecodable bytes ({exc.reason} at column {exc.start + 1}); "
                    "expected UTF-8", path, line)
    try:
        json.loads(text)
    except ValueError as exc:
        return _bad(raw, f"invalid JSON ({exc}); expected one JSON object per line", path, line)
    return _bad(raw, "unreadable line; expected one JSON object per line", path, line)


def _parse_text(
    lines: list[tuple[int, bytes | None]], path: str, max_line_bytes: int
) -> list[SourceRecord]:
    out: list[SourceRecord] = []
    for line, raw in lines:
        if raw is None:
            out.append(_bad(None, f"line longer than {max_line_bytes} bytes; skipped", path, line))
            continue
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            out.append(SourceRecord({"text": raw.decode("utf-8")}))
        except UnicodeDecodeError as exc:
            out.append(_bad(raw, f"undecodable bytes ({exc.reason}); expected UTF-8", path, line))
    return out
