"""A source over a Python iterable or async iterable.

``dx.sources.iterable(it)`` yields the items of ``it`` as records. A sync
iterable is iterated in the event loop (with a checkpoint every few items so
that other tasks run); an async iterable is wrapped in ``aclosing`` so that an
early stop closes it. With ``id_field`` the source is keyed: each item's key is
``str(item[id_field])`` (or the attribute), and an item without that field is
yielded as a bad record for the dead letters.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from contextlib import aclosing
from typing import Any

import anyio.lowlevel

from ..errors import ConfigError, SourceError
from ._base import SkipFn, Source, SourceRecord, record_key

__all__ = ["IterableSource", "iterable"]

_YIELD_EVERY = 64


class IterableSource(Source):
    """Yield the items of an iterable or async iterable.

    Args:
        items: Any iterable or async iterable. A one-shot iterator can be
            read once; a list (or other re-iterable) on every call.
        id_field: The field whose value is each item's key, or ``None``.
        name: The source's name (default ``"iterable"``).
    """

    def __init__(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        id_field: str | None = None,
        name: str = "iterable",
    ) -> None:
        if not isinstance(items, Iterable | AsyncIterable) or isinstance(items, str | bytes):
            raise ConfigError(
                f"sources.iterable() expects an iterable or async iterable of records, "
                f"got {type(items).__name__}"
            )
        self.items = items
        self.id_field = id_field
        self.name = name

    def _record(self, index: int, item: Any) -> SourceRecord:
        if self.id_field is None:
            return SourceRecord(item)
        try:
            return SourceRecord(item, record_key(item, self.id_field))
        except KeyError:
            err = SourceError(
                f"item {index} has no id field {self.id_field!r}; expected every item "
                f"to carry it", field=self.id_field, line=index + 1, path=self.name,
            )
            return SourceRecord(item, None, err)

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield one record per item, in order; see :meth:`Source.records`."""
        if isinstance(self.items, AsyncIterable):
            index = 0
            async with aclosing(_aiter(self.items)) as agen:
                async for item in agen:
                    rec = self._record(index, item)
                    index += 1
                    if skip is None or rec.key is None or not skip(rec.key):
                        yield rec
            return
        for index, item in enumerate(self.items):
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await anyio.lowlevel.checkpoint()
            rec = self._record(index, item)
            if skip is None or rec.key is None or not skip(rec.key):
                yield rec


async def _aiter(items: AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
    it = aiter(items)
    try:
        async for item in it:
            yield item
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


def iterable(
    items: Iterable[Any] | AsyncIterable[Any], id_field: str | None = None, *, name: str = "iterable"
) -> IterableSource:
    """Return a source over a Python iterable or async iterable (``dx.sources.iterable``).

    Args:
        items: The records (usually dicts). Async iterables are closed when the
            flow stops early.
        id_field: Makes the source keyed (resumable): each record's key is
            ``str(record[id_field])``.
        name: The name shown in reports and errors.

    Raises:
        ConfigError: ``items`` is not an iterable (or is a string).
    """
    return IterableSource(items, id_field=id_field, name=name)
