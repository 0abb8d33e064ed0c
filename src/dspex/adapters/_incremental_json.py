"""Sans-I/O incremental parser of a streamed JSON object (the JSONAdapter's output).

Skips everything before the first ``{`` (fences, prose), then follows the
object's keys: a string value of an output field streams as its decoded
characters (escapes and surrogate pairs included, an unfinished escape held
back), any other value as its raw JSON text, and a ``FieldDone`` follows as
soon as the value ends. ``finish()`` runs the full ``JSONAdapter.parse``; when
its repaired value differs from what was streamed (a duplicate key, non-strict
JSON) a second ``FieldDone`` carries the final value.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from ._incremental import IncrementalBase

if TYPE_CHECKING:
    from ..events import Event
    from ..signatures import Signature
    from ._base import Adapter

__all__ = ["JSONIncrementalParser"]

_SEEK, _KEY_OR_END, _KEY, _COLON, _VALUE, _STRING, _RAW, _DONE = range(8)
_RUNS = {'"': re.compile(r'[^"\\]+'), "'": re.compile(r"[^'\\]+")}
_RAW_RUN = re.compile(r"[^{}\[\]\"'\\,\s]+")
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "/": "/", "'": "'"}


class JSONIncrementalParser(IncrementalBase):
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
            if state in (_STRING, _KEY):
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
