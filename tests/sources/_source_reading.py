"""Reading a source in tests: all its records, with its generator closed."""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from dspex.sources import SkipFn, Source, SourceRecord


def generator(records: AsyncIterator[SourceRecord]) -> AsyncGenerator[SourceRecord, None]:
    """Return ``records`` as the async generator it is.

    ``Source.records`` is typed ``AsyncIterator`` so that any async iterator
    may implement it, but its contract (what the engine relies on when it
    closes it with ``aclosing``) is an async generator, and every built-in
    source returns one.
    """
    return cast("AsyncGenerator[SourceRecord, None]", records)


async def read(src: Source, skip: SkipFn | None = None) -> list[SourceRecord]:
    """Return every record ``src`` yields (``skip`` as for ``Source.records``)."""
    async with aclosing(generator(src.records(skip=skip))) as agen:
        return [r async for r in agen]
