"""The sink contract: where final records go, with checkpoint and restore.

A :class:`Sink` receives final records in batches (:meth:`Sink.write`) and makes
them durable on :meth:`Sink.flush`. For exactly-once resume it reports a
JSON-able position (:meth:`Sink.checkpoint`, e.g. a byte offset or a row
count) that the run store commits together with the done keys, and on resume
it rewinds to that position (:meth:`Sink.restore`), dropping whatever was
written after the last commit. File sinks never leave a torn last record: they
append whole records, and a partial tail left by a crash is cut on open.

Lifecycle (driven by the engine): ``open()``, then on resume ``restore(pos)``,
then any number of ``write``/``write_event``/``flush``/``checkpoint`` calls,
then ``aclose()`` — called under ``CancelScope(shield=True)`` plus
``fail_after`` so output is flushed even when the run is cancelled.

The engine never sets anything on a sink: one sink object may serve several
runs at once. A sink that groups its output by run asks, in any of its
methods, which run is calling (:func:`dspex.sinks.current_run_id`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

    from ..events import Event

__all__ = ["Sink"]


class Sink(ABC):
    """Base class of every sink.

    Subclasses set :attr:`name` and implement :meth:`write`; the other
    methods have sensible defaults for sinks that keep no durable state.
    A sink is usable as an async context manager (``open`` / ``aclose``).

    Attributes:
        name: A short readable name, unique within a flow (positions are
            stored under it), e.g. ``"jsonl:answers.jsonl"``.
        wants_events: ``True`` for event-aware sinks (WebSocket) that also
            get module events live through :meth:`write_event`.

    A sink with background work (a server, a reconnecting client) may also
    define ``async def serve(self, *, task_status)``: the engine starts it
    with ``task_group.start`` before :meth:`open`, in a task group that
    outlives :meth:`aclose`, and cancels it once every sink has closed.
    ``serve`` calls ``task_status.started()`` when the sink is ready.
    """

    name: str = "sink"
    wants_events: bool = False

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (files, connections). Called once before writes.

        File sinks opened in append mode cut a partial last record here.
        """

    @abstractmethod
    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append a batch of final records, in order.

        A batch is written whole (one syscall for file sinks); it may be
        buffered in memory until :meth:`flush`. An empty batch is a no-op.

        Raises:
            SinkError: A record cannot be encoded (names the field) or the
                output cannot be written.
        """

    async def write_event(self, event: Event) -> None:  # noqa: B027 - optional hook
        """Receive one live module event; only called when :attr:`wants_events`."""

    async def flush(self) -> None:  # noqa: B027 - optional hook
        """Make everything written so far durable (fsync for files)."""

    async def checkpoint(self) -> Any:
        """Flush, then return a JSON-able position covering everything written.

        The engine stores the position with the keys that are done, in one
        transaction. ``None`` means the sink cannot be rewound (stdout,
        callbacks, sockets).
        """
        await self.flush()
        return None

    async def restore(self, position: Any) -> None:  # noqa: B027 - optional hook
        """Rewind to ``position`` (from :meth:`checkpoint`); called after open.

        Output written after that position (by a run that crashed before it
        could commit) is dropped. ``None`` is a no-op.

        Raises:
            SinkError: The output is shorter than the position (it was
                replaced or truncated since the checkpoint).
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources. Idempotent; safe to call when not open."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
