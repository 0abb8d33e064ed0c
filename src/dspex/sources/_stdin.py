"""A source reading standard input: JSON lines or plain text lines.

``dx.sources.stdin()`` reads whatever is available (``read1``) in a worker
thread, so a live pipe yields records as they arrive while a large piped file
streams in chunks. ``format="jsonl"`` parses one JSON object per line (bad lines
become dead-letter records with their line number); ``format="lines"`` yields
``{"text": line}`` per line.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Literal

import anyio.to_thread

from ..errors import ConfigError
from ._base import SkipFn, Source, SourceRecord
from ._lines import LineChunker, parse_lines

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["StdinSource", "stdin"]


class StdinSource(Source):
    """Stream records from stdin (or any binary stream).

    Args:
        format: ``"jsonl"`` or ``"lines"``.
        id_field: Makes a JSONL stream keyed.
        stream: A binary stream to read instead of ``sys.stdin.buffer``.
        chunk_bytes: Most bytes read per thread hop.
    """

    def __init__(
        self, format: Literal["jsonl", "lines"] = "jsonl", *, id_field: str | None = None,
        stream: IO[bytes] | None = None, chunk_bytes: int = 1 << 16,
    ) -> None:
        if format not in ("jsonl", "lines"):
            raise ConfigError(f"stdin source format must be 'jsonl' or 'lines', got {format!r}")
        if format == "lines" and id_field is not None:
            raise ConfigError("stdin source: id_field needs format='jsonl' (lines have no fields)")
        self.format: Literal["jsonl", "lines"] = format
        self.id_field = id_field
        self.stream = stream
        self.chunk_bytes = chunk_bytes
        self.name = "stdin"

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield records as lines arrive; see :meth:`Source.records`.

        Cancelling while blocked on a read abandons that read's thread.
        """
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        read = getattr(stream, "read1", stream.read)
        chunker = LineChunker(read, self.chunk_bytes)

        def hop() -> list[SourceRecord]:
            lines = chunker.next_lines()
            return parse_lines(lines, path=self.name, id_field=self.id_field, fmt=self.format)

        while not chunker.eof:
            batch = await anyio.to_thread.run_sync(hop, abandon_on_cancel=True)
            for record in batch:
                if skip is None or record.key is None or not skip(record.key):
                    yield record


def stdin(
    format: Literal["jsonl", "lines"] = "jsonl", *, id_field: str | None = None,
    stream: IO[bytes] | None = None,
) -> StdinSource:
    """Return a source reading stdin (``dx.sources.stdin``).

    Args:
        format: ``"jsonl"`` (one JSON object per line) or ``"lines"``
            (``{"text": line}`` per line, blank lines included).
        id_field: Makes a JSONL stream keyed by ``str(record[id_field])``.
        stream: Read this binary stream instead of ``sys.stdin.buffer``.
    """
    return StdinSource(format, id_field=id_field, stream=stream)
