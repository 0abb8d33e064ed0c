"""Sans-I/O incremental parsing: completion chunks in, field events out.

Both parsers are fed text chunks of any size and return ``FieldDelta`` events
as soon as text is known to belong to an output field, and a ``FieldDone``
with the coerced value when the field ends. Each chunk is scanned once: the
only text held back is a line head that could still become a
``[[ ## name ## ]]`` marker, trailing whitespace (which the final parse
strips), a lone ``\\r``, or an unfinished JSON escape. ``finish()`` runs the
adapter's full ``parse`` (so it raises exactly what ``parse`` raises) and emits
``FieldDone`` for the fields not yet finished, including defaulted ones. Event
sequences do not depend on the chunking, once adjacent deltas of a field are
merged. This module holds the shared base and the chat parser; the JSON
parser is in ``_incremental_json``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import ParseError
from ..events import Event, FieldDelta, FieldDone
from ..signatures._coerce import parse_field
from ._base import IncrementalParser
from ._sections import HEADER

if TYPE_CHECKING:
    from ..signatures import Signature
    from ._base import Adapter

__all__ = ["ChatIncrementalParser", "IncrementalBase"]

# str.splitlines() boundaries; "\r\n" counts once.
_LINE_BREAK = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_OPEN = "[[ ## "
_CLOSE = " ## ]]"
_WORD = re.compile(r"\w+")


def _could_be_header(s: str) -> bool:
    """Return True if ``s`` (a stripped line head) may still grow into a marker."""
    if len(s) <= len(_OPEN):
        return _OPEN.startswith(s)
    if not s.startswith(_OPEN):
        return False
    m = _WORD.match(s, len(_OPEN))
    return m is not None and _CLOSE.startswith(s[m.end() :])


class IncrementalBase(IncrementalParser):
    """Shared state: text, per-field parts, coerced values, the final parse."""

    def __init__(self, adapter: Adapter, signature: type[Signature]) -> None:
        self._adapter = adapter
        self._signature = signature
        self._outputs = signature.output_fields
        self._chunks: list[str] = []
        self._parts: dict[str, list[str]] = {}
        self._values: dict[str, Any] = {}
        self._finished = False

    @property
    def text(self) -> str:
        if len(self._chunks) > 1:
            self._chunks = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    @property
    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def _delta(self, out: list[Event], field: str, text: str) -> None:
        self._parts.setdefault(field, []).append(text)
        out.append(FieldDelta(field=field, text=text))

    def _done(self, out: list[Event], field: str, raw: Any) -> None:
        """Emit ``FieldDone`` for ``field`` if ``raw`` coerces (else ``finish`` raises)."""
        try:
            value = parse_field(field, raw, self._outputs[field])
        except ParseError:
            return
        self._values[field] = value
        out.append(FieldDone(field=field, value=value))

    def _check_open(self) -> None:
        if self._finished:
            raise ParseError("cannot feed an incremental parser after finish(); expected a fresh parse_stream()",
                             adapter=self._adapter.name)

    def _flush(self, out: list[Event]) -> None:
        """Emit whatever is held back at end of stream."""

    def finish(self) -> list[Event]:
        self._check_open()
        out: list[Event] = []
        self._flush(out)
        self._finished = True
        final = self._adapter.parse(self._signature, self.text)
        for name, value in final.items():
            if name not in self._values or not _same(self._values[name], value):
                out.append(FieldDone(field=name, value=value))
        self._values = final
        return out


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(type(a) is type(b) and a == b)
    except Exception:  # exotic __eq__: report the final value again
        return False


class ChatIncrementalParser(IncrementalBase):
    """Incremental ``[[ ## field ## ]]`` parser (see the module docstring)."""

    def __init__(self, adapter: Adapter, signature: type[Signature]) -> None:
        super().__init__(adapter, signature)
        self._field: str | None = None  # the section being read, if it is a wanted output
        self._seen: set[str] = set()
        self._line_start = True
        self._head = ""
        self._header_line = False
        self._pending = ""
        self._emitted = False
        self._skip_lf = False

    def feed(self, text: str) -> list[Event]:
        self._check_open()
        out: list[Event] = []
        if not text:
            return out
        self._chunks.append(text)
        i, n = 0, len(text)
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                i = 1
        while i < n:
            brk = _LINE_BREAK.search(text, i)
            end = brk.start() if brk else n
            if self._line_start:
                self._head += text[i:end]
                if not self._decide(out, line_ended=brk is not None):
                    return out  # still a possible marker: hold the head
            else:
                self._content(out, text[i:end])
            if brk is None:
                return out
            if brk.group() == "\r" and brk.end() == n:
                self._skip_lf = True
            self._newline()
            i = brk.end()
        return out

    def _decide(self, out: list[Event], line_ended: bool) -> bool:
        """Classify the held line head; return False while it is undecided."""
        head = self._head
        stripped = head.lstrip()
        match = HEADER.match(stripped)
        if match:
            self._start_section(out, match.group(1))
            self._line_start, self._head = False, ""
            # DSPy slices the original line at the stripped match's end.
            self._content(out, head[match.end() :])
            return True
        if not line_ended and (not stripped or _could_be_header(stripped)):
            return False
        self._line_start, self._head = False, ""
        self._content(out, head)
        return True

    def _start_section(self, out: list[Event], name: str) -> None:
        self._close_section(out)
        wanted = name in self._outputs and name not in self._seen
        self._field = name if wanted else None
        if wanted:
            self._seen.add(name)
            self._parts[name] = []
        self._header_line, self._pending, self._emitted = True, "", False

    def _close_section(self, out: list[Event]) -> None:
        if self._field is not None:
            self._done(out, self._field, "".join(self._parts[self._field]))
        self._field = None

    def _content(self, out: list[Event], seg: str) -> None:
        if self._field is None or not seg:
            return
        text = self._pending + seg
        if not self._emitted:
            text = text.lstrip()
        body = text.rstrip()
        if body:
            self._delta(out, self._field, body)
            self._emitted = True
            self._pending = text[len(body) :]
        else:
            self._pending = text

    def _newline(self) -> None:
        if self._field is not None:
            if self._header_line:
                self._pending = ""  # DSPy strips the header line's remainder
            self._pending += "\n"
        self._header_line = False
        self._line_start = True

    def _flush(self, out: list[Event]) -> None:
        if self._line_start and self._head:
            self._decide(out, line_ended=True)
        self._close_section(out)
