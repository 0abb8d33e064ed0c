"""Bounded edges: the buffers that join the nodes of a flow.

Every edge is an ``anyio.create_memory_object_stream`` holding at most
``BufferPolicy.size`` *chunks* of at most ``BufferPolicy.chunk`` items each.
Items travel in chunks so that the per-item cost of the engine is a few
microseconds; the bound still holds, in items, at ``size * chunk``. A full
edge blocks its producer, which is how backpressure travels from a slow sink
back to the sources. Each edge keeps counters (items queued now, high-water
mark in items and chunks) that end up in the run report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import anyio

from ..errors import ConfigError

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["BufferPolicy", "Edge", "EdgeReceiver", "EdgeSender", "create_edge"]


@dataclass(frozen=True, slots=True)
class BufferPolicy:
    """How much an edge may hold before its producer blocks.

    Args:
        size: Chunks buffered on the edge (``0`` makes it a rendezvous).
        chunk: Most items per chunk. Items move in chunks to keep the
            per-item overhead low; ``1`` gives item-by-item hand-off.
        linger_s: How long a source may hold a partial chunk before it sends
            it anyway (latency bound for slow sources).

    An edge therefore holds at most ``size * chunk`` items.
    """

    size: int = 4
    chunk: int = 256
    linger_s: float = 0.005

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 0:
            raise ConfigError(f"BufferPolicy.size must be an int >= 0, got {self.size!r}")
        if not isinstance(self.chunk, int) or self.chunk < 1:
            raise ConfigError(f"BufferPolicy.chunk must be an int >= 1, got {self.chunk!r}")
        if self.linger_s < 0:
            raise ConfigError(f"BufferPolicy.linger_s must be >= 0, got {self.linger_s!r}")

    @property
    def capacity(self) -> int:
        """Return the most items the edge buffers (``size * chunk``)."""
        return self.size * self.chunk

    @classmethod
    def coerce(cls, value: BufferPolicy | int | None, default: BufferPolicy) -> BufferPolicy:
        """Return ``value`` as a policy: an int is a ``size``, None the default."""
        if value is None:
            return default
        if isinstance(value, BufferPolicy):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(size=value, chunk=default.chunk, linger_s=default.linger_s)
        raise ConfigError(f"buffer must be a BufferPolicy or an int size, got {value!r}")


class Edge:
    """Counters shared by both ends of one edge."""

    __slots__ = ("chunks_hwm", "items_hwm", "name", "policy", "queued", "received", "sent")

    def __init__(self, name: str, policy: BufferPolicy) -> None:
        self.name = name
        self.policy = policy
        self.queued = 0
        self.items_hwm = 0
        self.chunks_hwm = 0
        self.sent = 0
        self.received = 0

    def stats(self) -> dict[str, Any]:
        """Return the edge's counters as a dict for the run report."""
        return {
            "capacity_items": self.policy.capacity,
            "capacity_chunks": self.policy.size,
            "items_hwm": self.items_hwm,
            "chunks_hwm": self.chunks_hwm,
            "items_sent": self.sent,
        }


class EdgeSender:
    """The producer end of an edge; ``send`` blocks while the edge is full."""

    __slots__ = ("_stream", "edge")

    def __init__(self, edge: Edge, stream: MemoryObjectSendStream[list[Any]]) -> None:
        self.edge = edge
        self._stream = stream

    async def send(self, chunk: list[Any]) -> None:
        """Send one chunk, waiting for room (backpressure)."""
        edge = self.edge
        n = len(chunk)
        edge.queued += n
        edge.sent += n
        try:
            await self._stream.send(chunk)
        except BaseException:
            edge.queued -= n
            edge.sent -= n
            raise
        if edge.queued > edge.items_hwm:
            edge.items_hwm = edge.queued
        used = self._stream.statistics().current_buffer_used
        if used > edge.chunks_hwm:
            edge.chunks_hwm = used

    def clone(self) -> EdgeSender:
        """Return another producer end (fan-in); the edge ends when all close."""
        return EdgeSender(self.edge, self._stream.clone())

    def close(self) -> None:
        """Close this producer end."""
        self._stream.close()


class EdgeReceiver:
    """The consumer end of an edge; iterate it for chunks until the end."""

    __slots__ = ("_stream", "edge")

    def __init__(self, edge: Edge, stream: MemoryObjectReceiveStream[list[Any]]) -> None:
        self.edge = edge
        self._stream = stream

    def __aiter__(self) -> EdgeReceiver:
        return self

    async def __anext__(self) -> list[Any]:
        try:
            chunk = await self._stream.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        self.edge.queued -= len(chunk)
        self.edge.received += len(chunk)
        return chunk

    def receive_nowait(self) -> list[Any] | None:
        """Return a buffered chunk, or ``None`` if none is ready (or the end)."""
        try:
            chunk = self._stream.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            return None
        self.edge.queued -= len(chunk)
        self.edge.received += len(chunk)
        return chunk

    def close(self) -> None:
        """Close the consumer end: producers then fail with BrokenResourceError."""
        self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def create_edge(name: str, policy: BufferPolicy) -> tuple[EdgeSender, EdgeReceiver]:
    """Create a bounded edge and return its producer and consumer ends."""
    send, receive = anyio.create_memory_object_stream[list[Any]](policy.size)
    edge = Edge(name, policy)
    return EdgeSender(edge, send), EdgeReceiver(edge, receive)
