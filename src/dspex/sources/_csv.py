"""CSV rows from a text file, with recovery from unterminated quoted fields.

:class:`CsvRows` turns an open CSV file into :class:`SourceRecord` batches for
:class:`~dspex.sources.CsvSource`. It feeds :func:`csv.reader` one line at a
time and remembers the lines of the record being read, so that it can tell
where a record starts and ends. A quote that is never closed would otherwise
swallow every later row into one field: here a quoted field may span at most
``max_field_lines`` lines, and one that runs past that, reaches the end of the
file, or breaks the CSV syntax further down (the reader is strict by default,
so a stray quote inside a quoted field is an error, not more text) is reported
as one bad record, a :class:`~dspex.errors.SourceError` naming the field, the
line where its quote opened (``line``) and the last line read (``end_line``).
Reading then resumes at the line after the one that opened the quote, so the
rows after it are not lost. The cost is bounded: at most ``max_field_lines``
lines are held and re-read per bad record. A legitimate multi-line field
longer than ``max_field_lines`` is reported the same way (raise the limit).
"""

from __future__ import annotations

import csv as _csv
from collections import deque
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..errors import SourceError
from ._base import SourceRecord

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["CsvRows", "CsvSettings"]


class CsvSettings(Protocol):
    """What :class:`CsvRows` reads from its source (``CsvSource`` has these)."""

    path: str
    id_field: str | None
    delimiter: str
    fieldnames: list[str] | None
    encoding: str
    batch_rows: int
    max_field_lines: int
    fmtparams: dict[str, Any]


class _FieldTooLong(Exception):
    """Internal: the record being read spans more than ``max_field_lines`` lines."""


class CsvRows:
    """The reader state carried across thread hops for one pass over a CSV file.

    Args:
        source: The CSV source (path, dialect, id field, limits).
        f: The open text file (``newline=""``).
    """

    def __init__(self, source: CsvSettings, f: IO[str]) -> None:
        self.src = source
        self.f = f
        self.header = source.fieldnames
        self.eof = False
        self.fmtparams: dict[str, Any] = {"strict": True, **source.fmtparams}
        self.quotechar: str = self.fmtparams.get("quotechar", '"') or '"'
        self.max_lines = source.max_field_lines
        self.lines_read = 0  # lines taken from the file so far
        self.replay: deque[tuple[int, str]] = deque()  # lines to read again after a resync
        self.span: list[tuple[int, str]] = []  # (number, text) of the record being read
        self.ran_out = False  # the file ended inside a record (an open quote)
        self.reader = self._reader()

    def _reader(self) -> Iterator[list[str]]:
        self.ran_out = False
        return _csv.reader(self._lines(), delimiter=self.src.delimiter, **self.fmtparams)

    def _lines(self) -> Iterator[str]:
        # The csv reader pulls another line for the same record only while a
        # quoted field is open, so ``span`` is the record's line span.
        span, replay, f = self.span, self.replay, self.f
        while True:
            if replay:
                number, text = replay.popleft()
            else:
                text = f.readline()
                if not text:
                    self.ran_out = bool(span)
                    return
                self.lines_read += 1
                number = self.lines_read
            span.append((number, text))
            if len(span) > self.max_lines:
                raise _FieldTooLong
            yield text

    def next_batch(self) -> list[SourceRecord]:
        """Return up to ``batch_rows`` records (bad ones included); sets ``eof``."""
        out: list[SourceRecord] = []
        span = self.span
        while len(out) < self.src.batch_rows:
            span.clear()
            try:
                row = next(self.reader)
            except StopIteration:
                if not self.ran_out:
                    self.eof = True
                    break
                out.append(self._unterminated("the file ends first"))
                continue
            except _FieldTooLong:
                out.append(self._unterminated(f"it would span over {self.max_lines} lines"))
                continue
            except _csv.Error as exc:
                if self.ran_out:
                    out.append(self._unterminated("the file ends first"))
                elif len(span) > 1:
                    out.append(self._unterminated(f"the CSV breaks first: {exc}"))
                else:
                    out.append(self._bad(None, span[0][0] if span else self.lines_read,
                                         f"CSV syntax error ({exc})"))
                continue
            if self.ran_out:  # strict=False returns the half-read record
                out.append(self._unterminated("the file ends first"))
                continue
            if row:
                record = self._row(row, span[0][0])
                if record is not None:
                    out.append(record)
        return out

    def _unterminated(self, reason: str) -> SourceRecord:
        """Report the record in ``span`` as an open quote and resync after its first line."""
        (first, text), last = self.span[0], self.span[-1][0]
        # Everything after the line that opened the quote is read again.
        self.replay.extendleft(reversed(self.span[1:]))
        self.span.clear()
        self.reader = self._reader()
        column, name = self._open_field(text)
        what = "a field"
        if column >= 0:
            what = f"column {column + 1}" + (f" ({name!r})" if name else "")
        message = (
            f"unterminated quoted field in {what}: the quote opened on line {first} is not "
            f"closed by line {last} ({reason}); expected a closing {self.quotechar!r}. "
            f"The row is skipped and reading resumes at line {first + 1}"
        )
        path = self.src.path
        err = SourceError(f"{path}:{first}: {message}", path=path, line=first, field=name,
                          end_line=last)
        return SourceRecord(_printable(text.rstrip("\r\n")), None, err)

    def _open_field(self, text: str) -> tuple[int, str | None]:
        """Return the index and name of the field left open on ``text``, if found."""
        closed = text.rstrip("\r\n") + self.quotechar
        params = {**self.fmtparams, "strict": False}
        try:
            fields = next(_csv.reader([closed], delimiter=self.src.delimiter, **params))
        except (_csv.Error, StopIteration):
            return -1, None
        column = len(fields) - 1
        header = self.header
        if header is None:  # the header row itself is broken
            return column, None
        return column, header[column] if column < len(header) else None

    def _bad(
        self, row: list[str] | None, line: int, message: str, field: str | None = None
    ) -> SourceRecord:
        raw = _printable(self.src.delimiter.join(row or ()))
        path = self.src.path
        err = SourceError(f"{path}:{line}: {message}", path=path, line=line, field=field)
        return SourceRecord(raw, None, err)

    def _row(self, row: list[str], line: int) -> SourceRecord | None:
        try:
            "\x1f".join(row).encode("utf-8")
        except UnicodeEncodeError:
            return self._bad(row, line, f"undecodable bytes; expected {self.src.encoding} text")
        if self.header is None:
            self.header = row
            return None
        if len(row) != len(self.header):
            return self._bad(
                row, line, f"{len(row)} columns; expected {len(self.header)} as in the header"
            )
        data = dict(zip(self.header, row, strict=True))
        id_field = self.src.id_field
        if id_field is None:
            return SourceRecord(data)
        key = data.get(id_field)
        if key is None or key == "":
            return self._bad(row, line, f"missing id field {id_field!r}; expected a value",
                             id_field)
        return SourceRecord(data, key)


def _printable(text: str) -> str:
    """Return ``text`` with undecodable bytes (surrogate escapes) as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
