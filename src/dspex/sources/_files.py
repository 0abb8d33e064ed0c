"""File sources: JSONL, CSV and a directory of text files, all streamed.

Each reads its file in chunks inside ``anyio.to_thread`` hops (about 1 MiB of
JSONL or 2,000 CSV rows per hop, parsed in the worker thread), so memory holds
one chunk at a time whatever the file size. Malformed input never stops the
stream: a bad line or row is yielded as a record whose ``error`` names the file
and line, for the engine's dead letters. With ``id_field`` a source is keyed
(resumable) and honours ``skip``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio.to_thread

from ..errors import ConfigError, SourceError
from ._base import SkipFn, Source, SourceRecord
from ._csv import CsvRows
from ._lines import LineChunker, parse_lines

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = ["CsvSource", "JsonlSource", "TextDirSource", "csv", "jsonl", "text_dir"]

PathLike = str | os.PathLike[str]


def _open_binary(path: str, what: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SourceError(f"cannot open {what} file {path!r}: {exc.strerror}", path=path) from exc


def _emit(records: list[SourceRecord], skip: SkipFn | None) -> list[SourceRecord]:
    if skip is None:
        return records
    return [r for r in records if r.key is None or not skip(r.key)]


class JsonlSource(Source):
    """Stream a JSON-lines file: one JSON object per line.

    Attributes:
        max_buffered_bytes: The most bytes held at once (chunk plus tail).
        max_chunk_records: The most records parsed in one thread hop.
    """

    def __init__(
        self, path: PathLike, *, id_field: str | None = None, chunk_bytes: int = 1 << 20,
        max_line_bytes: int = 64 << 20,
    ) -> None:
        self.path = os.fspath(path)
        self.id_field = id_field
        self.name = f"jsonl:{self.path}"
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes
        self.max_buffered_bytes = 0
        self.max_chunk_records = 0

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield the file's records in order; see :meth:`Source.records`.

        Raises:
            SourceError: The file cannot be opened or read.
        """
        f = await anyio.to_thread.run_sync(_open_binary, self.path, "JSONL")
        try:
            chunker = LineChunker(f.read, self.chunk_bytes, self.max_line_bytes)

            def hop() -> list[SourceRecord]:
                try:
                    lines = chunker.next_lines()
                except OSError as exc:
                    raise SourceError(
                        f"cannot read {self.path!r}: {exc}", path=self.path, line=chunker.line
                    ) from exc
                return parse_lines(lines, path=self.path, id_field=self.id_field,
                                   max_line_bytes=self.max_line_bytes)

            while not chunker.eof:
                batch = await anyio.to_thread.run_sync(hop)
                self.max_buffered_bytes = max(self.max_buffered_bytes, chunker.max_buffered)
                self.max_chunk_records = max(self.max_chunk_records, len(batch))
                for record in _emit(batch, skip):
                    yield record
                del batch
        finally:
            f.close()


class CsvSource(Source):
    """Stream a CSV file: the header row names the fields, each row is a record.

    Values are strings, as with ``csv.DictReader``. A row with the wrong
    number of columns, undecodable bytes, a CSV syntax error or no id is
    yielded as a bad record naming the line where it starts. The reader is
    strict (``strict=True`` unless given) and a quoted field may span at most
    ``max_field_lines`` lines: a quote left open is one bad record naming the
    field and its line span (``line``, ``end_line``), and reading resumes on
    the next line, so later rows are kept.
    """

    def __init__(
        self, path: PathLike, *, id_field: str | None = None, delimiter: str = ",",
        fieldnames: Sequence[str] | None = None, encoding: str = "utf-8",
        batch_rows: int = 2000, max_field_lines: int = 1000, **fmtparams: Any,
    ) -> None:
        if not isinstance(max_field_lines, int) or max_field_lines < 1:
            raise ConfigError(f"max_field_lines must be an int >= 1, got {max_field_lines!r}")
        self.path = os.fspath(path)
        self.id_field = id_field
        self.name = f"csv:{self.path}"
        self.delimiter = delimiter
        self.fieldnames = list(fieldnames) if fieldnames is not None else None
        self.encoding = encoding
        self.batch_rows = batch_rows
        self.max_field_lines = max_field_lines
        self.fmtparams = fmtparams
        self.max_chunk_records = 0

    def _open(self) -> IO[str]:
        try:
            return open(
                self.path, encoding=self.encoding, errors="surrogateescape", newline=""
            )
        except OSError as exc:
            raise SourceError(
                f"cannot open CSV file {self.path!r}: {exc.strerror}", path=self.path
            ) from exc

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield one record per data row; see :meth:`Source.records`."""
        f = await anyio.to_thread.run_sync(self._open)
        try:
            state = CsvRows(self, f)
            while not state.eof:
                batch = await anyio.to_thread.run_sync(state.next_batch)
                self.max_chunk_records = max(self.max_chunk_records, len(batch))
                for record in _emit(batch, skip):
                    yield record
        finally:
            f.close()


class TextDirSource(Source):
    """One record per text file in a directory: ``{"path": ..., "text": ...}``.

    Files are matched by a glob ``pattern`` (``**/`` patterns recurse) and
    read in sorted order, one file per thread hop. Keyed by ``"path"`` by
    default. An undecodable file is yielded as a bad record.
    """

    def __init__(
        self, path: PathLike, pattern: str = "*.txt", *, id_field: str | None = "path",
        encoding: str = "utf-8",
    ) -> None:
        self.path = os.fspath(path)
        self.pattern = pattern
        self.id_field = id_field
        self.encoding = encoding
        self.name = f"text_dir:{self.path}"

    def _list(self) -> list[Path]:
        root = Path(self.path)
        if not root.is_dir():
            raise SourceError(
                f"text_dir expects a directory, got {self.path!r}", path=self.path
            )
        return sorted(p for p in root.glob(self.pattern) if p.is_file())

    def _read(self, file: Path) -> SourceRecord:
        name = str(file)
        try:
            text = file.read_text(encoding=self.encoding)
        except UnicodeDecodeError as exc:
            err = SourceError(
                f"{name}: undecodable bytes at offset {exc.start}; expected {self.encoding} text",
                path=name, line=1,
            )
            return SourceRecord(file.read_bytes().decode(self.encoding, "replace"), None, err)
        except OSError as exc:
            err = SourceError(f"{name}: cannot read ({exc.strerror})", path=name)
            return SourceRecord("", None, err)
        data = {"path": name, "text": text}
        key = None if self.id_field is None else str(data.get(self.id_field))
        return SourceRecord(data, key)

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield one record per matching file, in sorted order."""
        files = await anyio.to_thread.run_sync(self._list)
        for file in files:
            by_path = self.id_field == "path"
            if skip is not None and by_path and skip(str(file)):
                continue  # decided before reading the file
            record = await anyio.to_thread.run_sync(self._read, file)
            if skip is not None and not by_path and record.key is not None and skip(record.key):
                continue
            yield record


def jsonl(path: PathLike, id_field: str | None = None, *, chunk_bytes: int = 1 << 20) -> JsonlSource:
    """Return a source streaming a JSON-lines file (``dx.sources.jsonl``).

    Args:
        path: The file, one JSON object per line (blank lines are skipped).
        id_field: Makes the source keyed (resumable) by ``str(record[id_field])``.
        chunk_bytes: Bytes read per thread hop; memory holds one chunk.

    Bad lines (invalid JSON, not an object, undecodable, no id) are yielded
    with ``error`` set, naming the path and line.
    """
    return JsonlSource(path, id_field=id_field, chunk_bytes=chunk_bytes)


def csv(
    path: PathLike, id_field: str | None = None, *, delimiter: str = ",",
    fieldnames: Sequence[str] | None = None, encoding: str = "utf-8",
    max_field_lines: int = 1000, **fmtparams: Any,
) -> CsvSource:
    """Return a source streaming a CSV file (``dx.sources.csv``).

    Args:
        path: The CSV file; its first row is the header unless ``fieldnames``.
        id_field: Makes the source keyed (resumable).
        delimiter: The field separator.
        fieldnames: Column names when the file has no header row.
        encoding: The text encoding.
        max_field_lines: The most lines one quoted field may span; a quote
            left open longer (or to the end of the file) is reported as one
            bad record and reading resumes on the line after it.
        **fmtparams: Passed to :func:`csv.reader` (``quotechar``, ...);
            ``strict`` defaults to True.
    """
    return CsvSource(path, id_field=id_field, delimiter=delimiter, fieldnames=fieldnames,
                     encoding=encoding, max_field_lines=max_field_lines, **fmtparams)


def text_dir(
    path: PathLike, pattern: str = "*.txt", *, id_field: str | None = "path",
    encoding: str = "utf-8",
) -> TextDirSource:
    """Return a source yielding ``{"path", "text"}`` per file in a directory."""
    return TextDirSource(path, pattern, id_field=id_field, encoding=encoding)


