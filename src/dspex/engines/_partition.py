"""Split a keyed source into partitions that together yield every record once.

A partition is itself a :class:`~dspex.sources.Source`, so each worker runs
the flow's local engine on it unchanged. JSONL files split by byte range,
each boundary moved forward to the byte after a newline (a line belongs to the
partition where it starts), so no line is cut or read twice; line numbers stay
those of the whole file. CSV files split the same way, but only at a newline
outside quotes (an even number of quote characters since the data began), so
a quoted field spanning lines stays whole; every partition gets the header. Parquet splits by row group, lists and tuples by
contiguous chunk. Partitions depend only on the input and their count, so a
re-launched run with the same count sees the same partitions (the driver
records the count in the run store and reuses it).
"""

from __future__ import annotations

import _csv
import io
import os
from typing import TYPE_CHECKING, Any

import anyio

from .._util._pyarrow import import_pyarrow
from ..errors import ConfigError, SourceError
from ..sources._base import SkipFn, Source, SourceRecord
from ..sources._csv import CsvRows
from ..sources._files import CsvSource, JsonlSource, _emit, _open_binary
from ..sources._iterable import IterableSource
from ..sources._lines import LineChunker, parse_lines
from ..sources._parquet import ParquetSource

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = ["CsvRangeSource", "JsonlRangeSource", "ParquetGroupsSource", "split_source"]

_SCAN = 1 << 20


class JsonlRangeSource(JsonlSource):
    """The lines of a JSONL file that start in ``[start, end)``.

    Args:
        path: The JSONL file.
        start: A line start (0 or the byte after a newline).
        end: A line start at or after ``start`` (or the file size).
        first_line: The 1-based number of the line at ``start``.
        id_field: As for :func:`dspex.sources.jsonl`.
    """

    def __init__(
        self, path: str, start: int, end: int, first_line: int, *, id_field: str | None = None,
        chunk_bytes: int = 1 << 20,
    ) -> None:
        super().__init__(path, id_field=id_field, chunk_bytes=chunk_bytes)
        self.start, self.end, self.first_line = start, end, first_line
        self.name = f"jsonl:{self.path}[{start}:{end}]"

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield the range's records in order; see :meth:`Source.records`.

        Raises:
            SourceError: The file cannot be opened or read.
        """
        f = await anyio.to_thread.run_sync(_open_binary, self.path, "JSONL")
        left = self.end - self.start

        def read(n: int) -> bytes:
            nonlocal left
            data = f.read(min(n, left))
            left -= len(data)
            return data

        try:
            await anyio.to_thread.run_sync(f.seek, self.start)
            chunker = LineChunker(read, self.chunk_bytes, self.max_line_bytes)
            chunker.line = self.first_line - 1  # numbers as in the whole file

            def hop() -> list[SourceRecord]:
                try:
                    lines = chunker.next_lines()
                except OSError as exc:
                    raise SourceError(f"cannot read {self.path!r}: {exc}", path=self.path,
                                      line=chunker.line) from exc
                return parse_lines(lines, path=self.path, id_field=self.id_field,
                                   max_line_bytes=self.max_line_bytes)

            while not chunker.eof:
                batch = await anyio.to_thread.run_sync(hop)
                for record in _emit(batch, skip):
                    yield record
        finally:
            f.close()


class _RangeReader(io.RawIOBase):
    """The bytes ``[start, end)`` of a file, as a raw stream."""

    def __init__(self, path: str, start: int, end: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed with this stream
        self._f.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._f.readinto(memoryview(buffer)[: max(0, min(len(buffer), self._left))])
        self._left -= n or 0
        return n or 0

    def close(self) -> None:
        self._f.close()
        super().close()


class CsvRangeSource(CsvSource):
    """The CSV records that start in ``[start, end)``, named by ``header``.

    Args:
        source: The whole file's source (path, dialect, id field, limits).
        start: A record start after the header (see :func:`split_source`).
        end: A record start at or after ``start`` (or the file size).
        first_line: The 1-based line number at ``start`` in the whole file.
        header: The field names from the file's header row.
    """

    def __init__(self, source: CsvSource, start: int, end: int, first_line: int,
                 header: list[str]) -> None:
        super().__init__(source.path, id_field=source.id_field, delimiter=source.delimiter,
                         fieldnames=header, encoding=source.encoding, batch_rows=source.batch_rows,
                         max_field_lines=source.max_field_lines, **source.fmtparams)
        self.start, self.end, self.first_line = start, end, first_line
        self.name = f"csv:{self.path}[{start}:{end}]"

    def _open(self) -> Any:
        try:
            raw = _RangeReader(self.path, self.start, self.end)
        except OSError as exc:
            raise SourceError(f"cannot open CSV file {self.path!r}: {exc.strerror}",
                              path=self.path) from exc
        return io.TextIOWrapper(io.BufferedReader(raw), encoding=self.encoding,
                                errors="surrogateescape", newline="")

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield one record per data row of the range; see :meth:`Source.records`."""
        f = await anyio.to_thread.run_sync(self._open)
        try:
            state = CsvRows(self, f)
            state.lines_read = self.first_line - 1  # numbers as in the whole file
            while not state.eof:
                for record in _emit(await anyio.to_thread.run_sync(state.next_batch), skip):
                    yield record
        finally:
            f.close()


def _csv_bounds(source: CsvSource, n: int) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Return the header and ``(start, end, first_line)`` of up to ``n`` record-aligned ranges."""
    quote = (source.fmtparams.get("quotechar") or '"').encode(source.encoding)
    size = os.path.getsize(source.path)
    with open(source.path, "rb") as f:
        head = f.readline()
        # decoded as CsvSource decodes it (a BOM stays: same field names on every engine)
        text = head.decode(source.encoding, "surrogateescape")
        header = source.fieldnames or next(_csv.reader([text], delimiter=source.delimiter))
        pos, line, quotes = f.tell(), 2, 0
        ranges: list[tuple[int, int, int]] = []
        start, first = pos, 2
        step = max(1, (size - pos) // n)
        for raw in f:  # one pass: a cut is a line start with the quotes balanced
            pos += len(raw)
            line += 1
            quotes += raw.count(quote)
            if quotes % 2 == 0 and pos - start >= step and len(ranges) < n - 1:
                ranges.append((start, pos, first))
                start, first = pos, line
        ranges.append((start, size, first))
    return header, [r for r in ranges if r[1] > r[0]] or [(start, start, first)]


class ParquetGroupsSource(ParquetSource):
    """The rows of some row groups of one Parquet file."""

    def __init__(self, file: str, groups: Sequence[int], *, id_field: str | None,
                 columns: Sequence[str] | None, batch_size: int) -> None:
        super().__init__(file, id_field=id_field, columns=columns, batch_size=batch_size)
        self.groups = list(groups)
        self.name = f"parquet:{file}[groups {self.groups[0]}..{self.groups[-1]}]"

    def _files(self) -> list[str]:
        return [self.path]

    def _batches(self, file: str) -> Any:
        pq = import_pyarrow()
        try:
            pf = pq.ParquetFile(file)
            for batch in pf.iter_batches(batch_size=self.batch_size, columns=self.columns,
                                         row_groups=self.groups):
                yield batch.to_pylist()
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot read Parquet file {file!r}: {exc}", path=file) from exc


def _jsonl_bounds(path: str, n: int) -> list[tuple[int, int, int]]:
    """Return ``(start, end, first_line)`` for up to ``n`` non-empty line-aligned ranges."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, n):
            f.seek(max(k * size // n - 1, cuts[-1]))
            f.readline()  # to the byte after the next newline: a line start
            cuts.append(max(f.tell(), cuts[-1]))
        cuts.append(size)
        # first line numbers: count the newlines before each cut, in one pass
        firsts, seen, pos = [], 0, 0
        f.seek(0)
        for cut in cuts[:-1]:
            while pos < cut:
                data = f.read(min(_SCAN, cut - pos))
                seen += data.count(b"\n")
                pos += len(data)
            firsts.append(seen + 1)
    ranges = [(cuts[i], cuts[i + 1], firsts[i]) for i in range(len(cuts) - 1)]
    return [r for r in ranges if r[1] > r[0]] or [(0, 0, 1)]


def _chunks(n_items: int, n: int) -> list[tuple[int, int]]:
    step = max(1, -(-n_items // n))
    return [(i, min(i + step, n_items)) for i in range(0, n_items, step)] or [(0, 0)]


def _split_parquet(source: ParquetSource, n: int) -> list[Source]:
    pq = import_pyarrow()
    groups = [(file, g) for file in source._files()
              for g in range(pq.ParquetFile(file).num_row_groups)]
    parts: list[Source] = []
    for lo, hi in _chunks(len(groups), n):
        # a partition may span files: one source per file it touches, in order
        by_file: dict[str, list[int]] = {}
        for file, g in groups[lo:hi]:
            by_file.setdefault(file, []).append(g)
        subs: list[Source] = [ParquetGroupsSource(f, gs, id_field=source.id_field, columns=source.columns,
                                    batch_size=source.batch_size) for f, gs in by_file.items()]
        parts.append(subs[0] if len(subs) == 1 else _Chain(subs, source.id_field))
    return parts


class _Chain(Source):
    """Several sources read one after the other (a partition spanning files)."""

    def __init__(self, sources: list[Source], id_field: str | None) -> None:
        self.sources, self.id_field = sources, id_field
        self.name = "+".join(s.name for s in sources)

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield each source's records in turn."""
        for src in self.sources:
            async for record in src.records(skip=skip):
                yield record


def split_source(source: Source, n: int) -> list[Source]:
    """Return up to ``n`` partitions of ``source`` (fewer when it is small).

    Raises:
        ConfigError: ``n`` is not a positive int, or the source cannot be
            partitioned (expected a JSONL file, Parquet, or a list/tuple).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"partitions must be a positive int, got {n!r}")
    if type(source) is JsonlSource:
        return [JsonlRangeSource(source.path, a, b, line, id_field=source.id_field,
                                 chunk_bytes=source.chunk_bytes)
                for a, b, line in _jsonl_bounds(source.path, n)]
    if type(source) is CsvSource and source.fieldnames is None:
        header, bounds = _csv_bounds(source, n)
        return [CsvRangeSource(source, a, b, line, header) for a, b, line in bounds]
    if type(source) is ParquetSource:
        return _split_parquet(source, n)
    if isinstance(source, IterableSource) and isinstance(source.items, list | tuple):
        items = source.items
        return [IterableSource(items[a:b], id_field=source.id_field, name=f"{source.name}[{a}:{b}]")
                for a, b in _chunks(len(items), n)]
    raise ConfigError(
        f"cannot partition source {source.name!r} ({type(source).__name__}) for a multi-process "
        "engine; expected a JSONL file (dx.sources.jsonl), a CSV file with a header row, Parquet, "
        "or a list/tuple of records"
    )
