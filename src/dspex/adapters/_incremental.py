"""Sans-I/O incremental parsers: completion chunks in, field events out.

Both parsers are fed text chunks of any size and return ``FieldDelta`` events
as soon as text is known to belong to an output field, and a ``FieldDone``
with the coerced value when the field ends. Each chunk is scanned once: the
only text held back is a line head that could still become a
``[[ ## name ## ]]`` marker, trailing whitespace (which the final parse
strips), a lone ``\\r``, or an unfinished JSON escape. ``finish()`` runs the
adapter's full ``parse`` (so it raises exactly what ``parse`` raises) and emits
``FieldDone`` for the fields not yet finished, including defaulted ones. Event
sequences do not depend on the chunking, once adjacent deltas of a field are
merged.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..errors import ParseError
from ..events import Event, FieldDelta, FieldDone
from ..signatures._coerce import parse_field
from ._base import IncrementalParser
from ._chat import HEADER

if TYPE_CHECKING:
    from ..signatures import Signature
    from ._base import Adapter

__all__ = ["ChatIncrementalParser", "JSONIncrementalParser"]

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


class _Base(IncrementalParser):
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


class ChatIncrementalParser(_Base):
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


_SEEK, _KEY_OR_END, _KEY, _COLON, _VALUE, _STRING, _RAW, _DONE = range(8)
_RUNS = {'"': re.compile(r'[^"\\]+'), "'": re.compile(r"[^'\\]+")}
_RAW_RUN = re.compile(r"[^{}\[\]\"'\\,\s]+")
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "/": "/", "'": "'"}


class JSONIncrementalParser(_Base):
    """Incremental JSON-object parser: string values stream as decoded text.

    Non-string values stream as their raw JSON text. The first top-level
    ``{`` starts the object (fences and prose before it are skipped); a
    repeated key streams only its first value.
    """

    def __init__(self, adapter: Adapter, signature: type[Signature]) -> None:
        super().__init__(adapter, signature)
        self._state = _SEEK
        self._quote = '"'
        self._esc = ""  # an unfinished escape sequence
        self._high = ""  # a high surrogate waiting for its pair
        self._key: list[str] = []
        self._field: str | None = None
        self._seen: set[str] = set()
        self._depth = 0  # nesting depth of a raw value
        self._raw_quote = ""  # quote char when inside a string in a raw value
        self._raw_escape = False
        self._raw: list[str] = []

    def feed(self, text: str) -> list[Event]:
        self._check_open()
        out: list[Event] = []
        if not text:
            return out
        self._chunks.append(text)
        i, n = 0, len(text)
        while i < n and self._state != _DONE:
            state = self._state
            if state == _STRING or state == _KEY:
                i = self._string(out, text, i)
            elif state == _RAW:
                i = self._raw_value(out, text, i)
            elif state == _SEEK:
                j = text.find("{", i)
                if j < 0:
                    return out
                self._state, i = _KEY_OR_END, j + 1
            else:
                i = self._punct(out, text[i], i)
        return out

    def _punct(self, out: list[Event], c: str, i: int) -> int:
        state = self._state
        if c.isspace():
            return i + 1
        if state == _KEY_OR_END:
            if c in "\"'":
                self._state, self._quote, self._key = _KEY, c, []
            elif c == "}":
                self._state = _DONE
        elif state == _COLON:
            if c == ":":
                self._state = _VALUE
        elif state == _VALUE:
            self._begin_value(c)
            if self._state == _RAW:
                return i  # the raw scanner consumes this character
        return i + 1

    def _begin_value(self, c: str) -> None:
        if c in "\"'":
            self._state, self._quote = _STRING, c
        else:
            self._state, self._depth, self._raw = _RAW, 0, []

    def _emit(self, out: list[Event], piece: str) -> None:
        if self._state == _KEY:
            self._key.append(piece)
        elif self._field is not None and piece:
            self._delta(out, self._field, piece)

    def _string(self, out: list[Event], text: str, i: int) -> int:
        n, run = len(text), _RUNS[self._quote]
        while i < n:
            if self._esc:
                need = 6 if self._esc.startswith("\\u") or (len(self._esc) == 1 and text[i] == "u") else 2
                take = min(need - len(self._esc), n - i)
                self._esc += text[i : i + take]
                i += take
                if len(self._esc) == need:
                    self._escape(out)
                continue
            c = text[i]
            if c == "\\":
                self._esc, i = "\\", i + 1
                continue
            self._flush_high(out)
            if c == self._quote:
                self._end_string(out)
                return i + 1
            m = run.match(text, i)
            assert m is not None
            self._emit(out, m.group())
            i = m.end()
        return i

    def _escape(self, out: list[Event]) -> None:
        esc, self._esc = self._esc, ""
        if esc[1] != "u":
            self._flush_high(out)
            self._emit(out, _SIMPLE_ESCAPES.get(esc[1], esc[1]))
            return
        try:
            code = int(esc[2:], 16)
        except ValueError:
            self._flush_high(out)
            self._emit(out, esc)
            return
        if self._high and 0xDC00 <= code <= 0xDFFF:
            pair = 0x10000 + ((ord(self._high) - 0xD800) << 10) + (code - 0xDC00)
            self._high = ""
            self._emit(out, chr(pair))
            return
        self._flush_high(out)
        if 0xD800 <= code <= 0xDBFF:
            self._high = chr(code)
        else:
            self._emit(out, chr(code))

    def _flush_high(self, out: list[Event]) -> None:
        if self._high:
            high, self._high = self._high, ""
            self._emit(out, high)

    def _end_string(self, out: list[Event]) -> None:
        if self._state == _KEY:
            key = "".join(self._key)
            wanted = key in self._outputs and key not in self._seen
            self._field = key if wanted else None
            if wanted:
                self._seen.add(key)
                self._parts[key] = []
            self._state = _COLON
            return
        if self._field is not None:
            self._done(out, self._field, "".join(self._parts[self._field]))
        self._field, self._state = None, _KEY_OR_END

    def _raw_value(self, out: list[Event], text: str, i: int) -> int:
        n, start = len(text), i
        while i < n:
            c = text[i]
            if self._raw_quote:
                if self._raw_escape:
                    self._raw_escape = False
                elif c == "\\":
                    self._raw_escape = True
                elif c == self._raw_quote:
                    self._raw_quote = ""
                else:
                    m = _RUNS[self._raw_quote].match(text, i)
                    i = m.end() if m else i + 1
                    continue
                i += 1
                continue
            if c in "{[":
                self._depth += 1
            elif c in "}]":
                if self._depth == 0:
                    return self._end_raw(out, text, start, i)
                self._depth -= 1
                if self._depth == 0:
                    return self._end_raw(out, text, start, i + 1)
            elif c in "\"'" and self._depth > 0:
                self._raw_quote = c
            elif (c == "," or c.isspace()) and self._depth == 0:
                return self._end_raw(out, text, start, i)
            else:
                m = _RAW_RUN.match(text, i)
                i = m.end() if m else i + 1
                continue
            i += 1
        self._raw_piece(out, text[start:i])
        return i

    def _raw_piece(self, out: list[Event], piece: str) -> None:
        if piece:
            self._raw.append(piece)
            if self._field is not None:
                self._delta(out, self._field, piece)

    def _end_raw(self, out: list[Event], text: str, start: int, end: int) -> int:
        self._raw_piece(out, text[start:end])
        if self._field is not None:
            try:
                value = json.loads("".join(self._raw))
            except ValueError:
                value = None  # not strict JSON: finish() reports the repaired value
            else:
                self._done(out, self._field, value)
        self._field, self._state, self._raw = None, _KEY_OR_END, []
        return end
