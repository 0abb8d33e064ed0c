"""A Parquet source streamed by row group (pyarrow, optional extra ``parquet``).

``dx.sources.parquet(path)`` reads one file, or every ``*.parquet`` file of a
directory in name order (the layout the Parquet sink writes), in record batches
of at most ``batch_size`` rows, each read and converted to dicts in a worker
thread; memory holds one batch. pyarrow is imported only when reading starts;
without it a :class:`~dspex.errors.ConfigError` says what to install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._util._pyarrow import import_pyarrow
from ..errors import SourceError
from ._base import SkipFn, Source, SourceRecord

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Generator, Sequence

__all__ = ["ParquetSource", "parquet"]


class ParquetSource(Source):
    """Stream rows of a Parquet file (or a directory of them) as dicts.

    Attributes:
        max_chunk_records: The most rows converted in one thread hop.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, id_field: str | None = None,
        columns: Sequence[str] | None = None, batch_size: int = 8192,
    ) -> None:
        self.path = os.fspath(path)
        self.id_field = id_field
        self.columns = list(columns) if columns is not None else None
        if self.columns is not None and id_field is not None and id_field not in self.columns:
            self.columns.append(id_field)
        self.batch_size = batch_size
        self.name = f"parquet:{self.path}"
        self.max_chunk_records = 0

    def _files(self) -> list[str]:
        import_pyarrow()
        root = Path(self.path)
        if root.is_dir():
            return [str(p) for p in sorted(root.glob("*.parquet")) if p.is_file()]
        if not root.is_file():
            raise SourceError(f"no Parquet file or directory at {self.path!r}", path=self.path)
        return [self.path]

    def _batches(self, file: str) -> Generator[list[dict[str, Any]], None, None]:
        pq = import_pyarrow()
        try:
            pf = pq.ParquetFile(file)
            for batch in pf.iter_batches(batch_size=self.batch_size, columns=self.columns):
                yield batch.to_pylist()
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise SourceError(f"cannot read Parquet file {file!r}: {exc}", path=file) from exc

    def _record(self, row: dict[str, Any], file: str, index: int) -> SourceRecord:
        if self.id_field is None:
            return SourceRecord(row)
        key = row.get(self.id_field)
        if key is None:
            err = SourceError(
                f"{file}: row {index} has no id field {self.id_field!r}; expected a value",
                path=file, line=index, field=self.id_field,
            )
            return SourceRecord(row, None, err)
        return SourceRecord(row, str(key))

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield one record per row, file by file; see :meth:`Source.records`.

        Raises:
            ConfigError: pyarrow is not installed.
            SourceError: The path does not exist or a file is not valid Parquet.
        """
        files = await anyio.to_thread.run_sync(self._files)
        for file in files:
            batches = self._batches(file)
            index = 0
            try:
                while True:
                    rows = await anyio.to_thread.run_sync(next, batches, None)
                    if rows is None:
                        break
                    self.max_chunk_records = max(self.max_chunk_records, len(rows))
                    for row in rows:
                        index += 1
                        record = self._record(row, file, index)
                        if skip is None or record.key is None or not skip(record.key):
                            yield record
            finally:
                batches.close()


def parquet(
    path: str | os.PathLike[str], id_field: str | None = None, columns: Sequence[str] | None = None,
    *, batch_size: int = 8192,
) -> ParquetSource:
    """Return a source streaming Parquet rows by row group (``dx.sources.parquet``).

    Args:
        path: A ``.parquet`` file or a directory of them (read in name order).
        id_field: Makes the source keyed (resumable).
        columns: Read only these columns (the id field is always read).
        batch_size: Most rows held in memory at once.
    """
    return ParquetSource(path, id_field=id_field, columns=columns, batch_size=batch_size)
