"""File sinks: JSONL and CSV, appended in whole-record batches, never torn.

Records are encoded in the event loop, buffered up to ``buffer_bytes`` and
appended with one ``os.write`` per drain in a worker thread (a file opened with
``O_APPEND``). :meth:`flush` drains and fsyncs; :meth:`checkpoint` flushes and
returns the file size in bytes; :meth:`restore` truncates the file back to such
a size. On :meth:`open` in append mode a partial last record (no line ending,
left by a crash mid-write) is cut, so the file always ends on a whole record.
"""

from __future__ import annotations

import csv as _csv
import io
import math
import os
import threading
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from ..errors import ConfigError, SinkError
from ._base import Sink
from ._encode import dumps, encode_jsonl

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["CsvSink", "FileSink", "JsonlSink", "csv", "jsonl"]

PathLike = str | os.PathLike[str]
_TAIL_BLOCK = 1 << 16


class FileSink(Sink):
    """Shared machinery: buffered O_APPEND writes, fsync, torn-tail repair, truncate.

    Subclasses implement :meth:`_encode` (a batch → bytes ending with the
    record terminator :attr:`terminator`).
    """

    terminator = b"\n"
    kind = "file"

    def __init__(
        self, path: PathLike, *, mode: Literal["a", "w"] = "a", buffer_bytes: int = 1 << 16
    ) -> None:
        if mode not in ("a", "w"):
            raise ConfigError(f"{self.kind} sink mode must be 'a' (append) or 'w', got {mode!r}")
        self.path = os.fspath(path)
        self.mode = mode
        self.buffer_bytes = buffer_bytes
        self.name = f"{self.kind}:{self.path}"
        self._fd: int | None = None
        self._buf: list[bytes] = []
        self._buffered = 0
        self.size = 0  # bytes on disk
        self._lock = threading.Lock()  # overlapping writes stay whole and in order
        self.repaired = 0  # bytes cut from a torn tail on open

    # -- blocking helpers (worker thread) ----------------------------------------

    def _open_sync(self) -> None:
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if self.mode == "w" else 0)
        fd = os.open(self.path, flags, 0o644)
        try:
            size = os.fstat(fd).st_size
            end = _last_terminator_end(self.path, size, self.terminator)
            if end < size:
                os.ftruncate(fd, end)
                os.fsync(fd)
                self.repaired = size - end
            self.size = end
            self._after_open_sync()
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _after_open_sync(self) -> None:
        """Hook run in the worker thread once the file is open and repaired."""

    def _write_sync(self, data: bytes) -> None:
        with self._lock:
            assert self._fd is not None
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                self.size += n
                view = view[n:]

    def _fsync_sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    async def _io(self, fn: Any, *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        except OSError as exc:
            raise SinkError(f"{self.name}: {exc.strerror or exc}", path=self.path) from exc

    # -- the Sink contract --------------------------------------------------------

    async def open(self) -> None:
        """Open (create) the file; in append mode cut a torn last record."""
        if self._fd is None:
            await self._io(self._open_sync)

    def _encode(self, records: Sequence[Mapping[str, Any]]) -> bytes:
        raise NotImplementedError

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Encode the batch and append it (buffered up to ``buffer_bytes``).

        Raises:
            SinkError: A value cannot be encoded (``field`` names it), the
                sink is not open, or the disk write failed.
        """
        if not records:
            return
        if self._fd is None:
            raise SinkError(f"{self.name}: write() before open()", path=self.path)
        data = self._encode(records)
        self._buf.append(data)
        self._buffered += len(data)
        if self._buffered >= self.buffer_bytes:
            await self._drain()

    async def _drain(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._buffered = 0
        await self._io(self._write_sync, data)

    async def flush(self) -> None:
        """Append what is buffered and fsync the file."""
        if self._fd is None:
            return
        await self._drain()
        await self._io(self._fsync_sync)

    async def checkpoint(self) -> int:
        """Flush and return the file size in bytes."""
        await self.flush()
        return self.size

    async def restore(self, position: Any) -> None:
        """Truncate the file to ``position`` bytes, dropping later records.

        Raises:
            SinkError: The file is shorter than ``position`` or the sink is
                not open.
        """
        if position is None:
            return
        if self._fd is None:
            raise SinkError(f"{self.name}: restore() before open()", path=self.path)
        self._buf.clear()  # buffered records come after any checkpoint
        self._buffered = 0
        pos = int(position)
        if pos > self.size:
            raise SinkError(
                f"{self.name}: file is {self.size} bytes, shorter than the checkpoint "
                f"position {pos}; it was replaced or truncated since (mode='w' cannot resume)",
                path=self.path,
            )
        fd = self._fd

        def truncate() -> None:
            with self._lock:
                os.ftruncate(fd, pos)
                os.fsync(fd)
                self.size = pos
                self._after_open_sync()

        await self._io(truncate)

    async def aclose(self) -> None:
        """Append what is buffered, fsync and close. Idempotent."""
        if self._fd is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self.flush()
            finally:
                fd, self._fd = self._fd, None
                os.close(fd)


def _last_terminator_end(path: str, size: int, terminator: bytes) -> int:
    """Return the offset just after the last ``terminator`` in the file (0 if none)."""
    if size == 0:
        return 0
    with open(path, "rb") as f:
        f.seek(size - len(terminator))
        if f.read(len(terminator)) == terminator:
            return size
        end = size
        while end > 0:
            start = max(0, end - _TAIL_BLOCK)
            f.seek(start)
            block = f.read(end - start + len(terminator) - 1)
            hit = block.rfind(terminator)
            if hit >= 0:
                return start + hit + len(terminator)
            end = start
    return 0


class JsonlSink(FileSink):
    """Append each record as one JSON object per line (UTF-8)."""

    kind = "jsonl"

    def _encode(self, records: Sequence[Mapping[str, Any]]) -> bytes:
        return encode_jsonl(records, sink=self.name)


class CsvSink(FileSink):
    """Append records as CSV rows; the header comes from the first record.

    Columns keep the header's order; a missing value is written empty; a
    nested value (list, dict, model) is written as JSON text. A record with a
    field not in the header raises :class:`SinkError` unless
    ``extrasaction="ignore"``. Appending to an existing file reuses its header.
    Rows end with ``\\r\\n`` (RFC 4180); a value that itself contains ``\\r\\n``
    may defeat the torn-tail repair on open (checkpoint positions stay exact).
    """

    kind = "csv"
    terminator = b"\r\n"

    def __init__(
        self, path: PathLike, *, mode: Literal["a", "w"] = "a", fieldnames: Sequence[str] | None = None,
        extrasaction: Literal["raise", "ignore"] = "raise", delimiter: str = ",",
        buffer_bytes: int = 1 << 16,
    ) -> None:
        super().__init__(path, mode=mode, buffer_bytes=buffer_bytes)
        self._given = list(fieldnames) if fieldnames is not None else None
        self.fieldnames: list[str] | None = self._given
        self.extrasaction = extrasaction
        self.delimiter = delimiter

    def _after_open_sync(self) -> None:
        self.fieldnames = self._given
        if self.size == 0:
            return
        with open(self.path, encoding="utf-8", newline="") as f:
            header = next(_csv.reader(f, delimiter=self.delimiter), None)
        if header and self._given is None:
            self.fieldnames = header

    def _cell(self, key: str, value: Any) -> Any:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return ""  # NaN and infinities are written as a missing value, like None
        if isinstance(value, str | int | float):
            return value
        try:
            return dumps(value)
        except (TypeError, ValueError) as exc:
            raise SinkError(
                f"{self.name}: field {key!r} cannot be written ({exc}); expected text, a number "
                "or JSON data", field=key, path=self.path,
            ) from exc

    def _encode(self, records: Sequence[Mapping[str, Any]]) -> bytes:
        out = io.StringIO()
        writer = _csv.writer(out, delimiter=self.delimiter, lineterminator="\r\n")
        if self.fieldnames is None:
            self.fieldnames = [str(k) for k in records[0]]
        fields = self.fieldnames
        if self.size == 0 and self._buffered == 0:
            writer.writerow(fields)
        known = set(fields)
        for record in records:
            if self.extrasaction == "raise":
                extra = [k for k in record if k not in known]
                if extra:
                    raise SinkError(
                        f"{self.name}: field {extra[0]!r} is not a column; expected only "
                        f"{fields} (or extrasaction='ignore')", field=str(extra[0]), path=self.path,
                    )
            writer.writerow([self._cell(k, record.get(k)) for k in fields])
        return out.getvalue().encode("utf-8")


def jsonl(path: PathLike, *, mode: Literal["a", "w"] = "a", buffer_bytes: int = 1 << 16) -> JsonlSink:
    """Return a sink appending JSON lines to ``path`` (``dx.sinks.jsonl``).

    Args:
        path: The output file (parent directories are created).
        mode: ``"a"`` appends (and supports resume); ``"w"`` truncates on open.
        buffer_bytes: Encoded bytes kept in memory before a write; flush,
            checkpoint and close always write everything.
    """
    return JsonlSink(path, mode=mode, buffer_bytes=buffer_bytes)


def csv(
    path: PathLike, *, mode: Literal["a", "w"] = "a", fieldnames: Sequence[str] | None = None,
    extrasaction: Literal["raise", "ignore"] = "raise", delimiter: str = ",",
) -> CsvSink:
    """Return a sink appending CSV rows to ``path``; see :class:`CsvSink`."""
    return CsvSink(path, mode=mode, fieldnames=fieldnames, extrasaction=extrasaction,
                   delimiter=delimiter)
