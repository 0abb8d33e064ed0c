"""Sinks without files: stdout, an in-memory collector, and a callback.

``collect()`` keeps every record in ``.items`` (its position is the item count,
so ``restore`` trims the list); ``stdout()`` prints one JSON object per line;
``callback(fn)`` calls a sync or async function with each record, in order.
"""

from __future__ import annotations

import inspect
import sys
from typing import IO, TYPE_CHECKING, Any

import anyio.to_thread

from ..errors import ConfigError, SinkError
from ._base import Sink
from ._encode import encode_jsonl

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

__all__ = ["CallbackSink", "CollectSink", "StdoutSink", "callback", "collect", "stdout"]


class CollectSink(Sink):
    """Keep every record received, in order, in :attr:`items`.

    Its position is ``len(items)``: ``restore(n)`` drops items beyond ``n``.
    """

    def __init__(self, name: str = "collect") -> None:
        self.name = name
        self.items: list[Any] = []

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append the batch to :attr:`items`."""
        self.items.extend(records)

    async def checkpoint(self) -> int:
        """Return the number of items kept."""
        return len(self.items)

    async def restore(self, position: Any) -> None:
        """Drop the items after ``position`` (an item count)."""
        if position is not None:
            del self.items[int(position):]


class StdoutSink(Sink):
    """Print each record as one JSON line on stdout (or another text stream).

    Args:
        stream: The text stream; default ``sys.stdout`` at write time.
        name: The sink's name.
    """

    def __init__(self, stream: IO[str] | None = None, *, name: str = "stdout") -> None:
        self.stream = stream
        self.name = name

    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stdout

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Write the batch as JSON lines, in a worker thread (stdout may block)."""
        if not records:
            return
        text = encode_jsonl(records, sink=self.name).decode("utf-8")
        out = self._out()
        await anyio.to_thread.run_sync(out.write, text)

    async def flush(self) -> None:
        """Flush the stream."""
        await anyio.to_thread.run_sync(self._out().flush)

    async def aclose(self) -> None:
        """Flush the stream (it is not closed)."""
        try:
            await self.flush()
        except (OSError, ValueError) as exc:  # closed pipe or stream: nothing more to do
            raise SinkError(f"could not flush {self.name}: {exc}", path=self.name) from exc


class CallbackSink(Sink):
    """Call ``fn(record)`` for each record, in order; ``fn`` may be async.

    A sync ``fn`` runs in the event loop, so it must be quick; errors it
    raises propagate as they are.
    """

    def __init__(
        self, fn: Callable[[Any], Awaitable[Any] | Any], *, name: str | None = None
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"sinks.callback() expects a callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or f"callback:{getattr(fn, '__name__', type(fn).__name__)}"
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        )

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Call the function once per record."""
        for record in records:
            result = self.fn(record)
            if self._is_async or inspect.isawaitable(result):
                await result


def collect(name: str = "collect") -> CollectSink:
    """Return a sink that keeps records in memory in ``.items`` (``dx.sinks.collect``)."""
    return CollectSink(name)


def stdout(stream: IO[str] | None = None, *, name: str = "stdout") -> StdoutSink:
    """Return a sink printing one JSON object per line to stdout."""
    return StdoutSink(stream, name=name)


def callback(fn: Callable[[Any], Awaitable[Any] | Any], *, name: str | None = None) -> CallbackSink:
    """Return a sink calling ``fn(record)`` (sync or async) for each record."""
    return CallbackSink(fn, name=name)
