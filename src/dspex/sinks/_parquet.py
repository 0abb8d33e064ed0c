"""A Parquet sink (pyarrow, optional extra ``parquet``): one file per checkpoint.

Parquet files cannot be appended to, so the sink writes a *dataset directory*:
rows are buffered and written in row groups to ``part-NNNNN.parquet.tmp``, and
each :meth:`flush` (hence each checkpoint) closes the part, fsyncs it and
renames it to ``part-NNNNN.parquet`` — a part is either whole or absent. The
position is the number of finished parts; :meth:`restore` deletes later parts,
and :meth:`open` deletes unfinished ``.tmp`` parts. Read the result with
``dx.sources.parquet(dir)`` or ``pyarrow.parquet.read_table(dir)``. A path
ending in ``.parquet`` writes a single file instead, renamed into place on
close; it cannot checkpoint (use a directory to resume).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._util._pyarrow import import_pyarrow
from ..errors import SinkError
from ._base import Sink
from ._encode import to_plain

__all__ = ["ParquetSink", "parquet"]

_PART = re.compile(r"^part-(\d{5,})\.parquet$")
_NATIVE = (str, int, float, bool, bytes, type(None))


def _arrowable(value: Any) -> Any:
    if isinstance(value, _NATIVE):
        return value
    if isinstance(value, Mapping):
        return {str(k): _arrowable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_arrowable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value
    return _arrowable(to_plain(value))


class ParquetSink(Sink):
    """Write records to a Parquet dataset directory (or a single file).

    Args:
        path: A directory (one part per flush), or a file ending ``.parquet``.
        row_group_size: Rows buffered before a row group is written.
    """

    def __init__(self, path: str | os.PathLike[str], *, row_group_size: int = 10_000) -> None:
        self.path = os.fspath(path)
        self.single = self.path.endswith(".parquet")
        self.row_group_size = row_group_size
        self.name = f"parquet:{self.path}"
        self._rows: list[dict[str, Any]] = []
        self._writer: Any = None
        self._tmp: str | None = None
        self.parts = 0  # finished parts (directory mode)
        self._open = False

    def _part(self, index: int) -> str:
        return os.path.join(self.path, f"part-{index:05d}.parquet")

    def _scan_sync(self) -> None:
        if self.single:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            return
        os.makedirs(self.path, exist_ok=True)
        indexes = []
        for entry in os.listdir(self.path):
            if entry.startswith("part-") and entry.endswith(".tmp"):
                os.remove(os.path.join(self.path, entry))
            elif m := _PART.match(entry):
                indexes.append(int(m.group(1)))
        self.parts = max(indexes) + 1 if indexes else 0

    async def open(self) -> None:
        """Create the directory and delete unfinished parts."""
        import_pyarrow()
        if not self._open:
            await anyio.to_thread.run_sync(self._scan_sync)
            self._open = True

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Buffer the rows; write a row group every ``row_group_size`` rows."""
        if not self._open:
            raise SinkError(f"{self.name}: write() before open()", path=self.path)
        try:
            self._rows.extend({str(k): _arrowable(v) for k, v in r.items()} for r in records)
        except TypeError as exc:
            raise SinkError(f"{self.name}: a value cannot be stored ({exc})", path=self.path) from exc
        if len(self._rows) >= self.row_group_size:
            await self._run(self._write_group_sync)

    async def _run(self, fn: Any) -> None:
        try:
            await anyio.to_thread.run_sync(fn)
        except (OSError, ValueError, TypeError) as exc:  # pyarrow errors subclass these
            raise SinkError(f"{self.name}: {exc}", path=self.path) from exc

    def _write_group_sync(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows, self._rows = self._rows, []
        table = pa.Table.from_pylist(rows)
        if self._writer is not None:
            try:
                table = table.cast(self._writer.schema)
            except (ValueError, TypeError, pa.ArrowInvalid):
                if self.single:
                    raise
                self._finish_part_sync()  # a new schema starts a new part
        if self._writer is None:
            self._tmp = (self.path if self.single else self._part(self.parts)) + ".tmp"
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        self._writer.write_table(table, row_group_size=self.row_group_size)

    def _finish_part_sync(self) -> None:
        if self._writer is None or self._tmp is None:
            return
        self._writer.close()
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        final = self.path if self.single else self._part(self.parts)
        os.replace(self._tmp, final)
        self._writer, self._tmp = None, None
        if not self.single:
            self.parts += 1
        _fsync_dir(os.path.dirname(final) or ".")

    async def flush(self) -> None:
        """Directory mode: write buffered rows and finish the current part.

        Single-file mode: write buffered rows as a row group (the file becomes
        valid only on close).
        """
        if not self._open:
            return
        await self._run(self._write_group_sync)
        if not self.single:
            await self._run(self._finish_part_sync)

    async def checkpoint(self) -> int:
        """Finish the current part and return the number of finished parts.

        Raises:
            SinkError: In single-file mode, which cannot be resumed.
        """
        if self.single:
            raise SinkError(
                f"{self.name}: a single Parquet file cannot be checkpointed; give a directory "
                "path (without .parquet) to write one part per checkpoint",
                path=self.path,
            )
        await self.flush()
        return self.parts

    async def restore(self, position: Any) -> None:
        """Delete the parts numbered ``position`` and later."""
        if position is None or self.single:
            return
        keep = int(position)
        if keep > self.parts:
            raise SinkError(
                f"{self.name}: has {self.parts} parts, fewer than the checkpoint's {keep}",
                path=self.path,
            )

        def prune() -> None:
            for index in range(keep, self.parts):
                path = self._part(index)
                if os.path.exists(path):
                    os.remove(path)
            self.parts = keep
            _fsync_dir(self.path)

        self._rows.clear()
        await self._run(prune)

    async def aclose(self) -> None:
        """Write what is buffered and finish the file. Idempotent."""
        if not self._open:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self._run(self._write_group_sync)
                await self._run(self._finish_part_sync)
            finally:
                self._open = False


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def parquet(path: str | os.PathLike[str], *, row_group_size: int = 10_000) -> ParquetSink:
    """Return a Parquet sink (``dx.sinks.parquet``); see :class:`ParquetSink`.

    Raises:
        ConfigError: On open, when pyarrow is not installed
            (``pip install 'dspex[parquet]'``).
    """
    return ParquetSink(path, row_group_size=row_group_size)
