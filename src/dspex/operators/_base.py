"""The operator contract: a task over channels, and what the engine gives it.

An :class:`Operator` is one node of a flow. The engine runs
``await op.run(receive, out, ctx)`` as a task: ``receive`` yields chunks
(lists) of :class:`~dspex.flows.Item` until the upstream closes, ``out``
sends chunks downstream (blocking while the edge is full) and ``ctx`` is the
node's :class:`NodeContext`: its counters, error policy, clock and the hooks
that keep the run's in-flight count and resume keys exact (``drop``,
``expand``, ``fail``) and forward events to event-aware sinks (``emit``).
Operators never hold a task group across a ``yield``; they are plain tasks.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from ..errors import DspexError, ItemFailed
from ..events import ItemError
from ._item import DeadLetter

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..backpressure._edge import EdgeReceiver, EdgeSender
    from ..backpressure._limits import InFlightLimiter
    from ..events import Event
    from ..flows._policy import ErrorPolicy
    from ..flows._report import NodeStats
    from ._item import Item
    from ._usage import UsageTotals

__all__ = ["NodeContext", "Operator", "Outputs", "RunServices"]


class RunServices:
    """What every node of one run shares (built by the engine).

    Attributes:
        run_id: The run's id, stamped on events.
        clock: The run's clock (``now()``, ``async sleep(s)``).
        limiter: The global in-flight limit.
        tracker: Resume-key tracker, or None when not checkpointing.
        usage: LM usage totals of the run.
        telemetry: The run's OpenTelemetry hooks, or None (nothing listens).
    """

    def __init__(
        self,
        run_id: str,
        clock: Any,
        limiter: InFlightLimiter,
        usage: UsageTotals,
        *,
        tracker: Any = None,
        dead_letter: Callable[[DeadLetter], Any] | None = None,
        event_send: Any = None,
    ) -> None:
        self.run_id = run_id
        self.clock = clock
        self.limiter = limiter
        self.usage = usage
        self.tracker = tracker
        self.dead_letter = dead_letter
        self.event_send = event_send
        self.seq = itertools.count(1)
        self.validation_failures = 0
        self.telemetry: Any = None  # the run's Telemetry when OpenTelemetry listens


class NodeContext:
    """One node's view of the run: counters, policy, and bookkeeping hooks."""

    __slots__ = ("events", "name", "policy", "services", "stats")

    def __init__(
        self, name: str, stats: NodeStats, policy: ErrorPolicy, services: RunServices, *,
        events: bool = False,
    ) -> None:
        self.name = name
        self.stats = stats
        self.policy = policy
        self.services = services
        self.events = events and services.event_send is not None

    @property
    def clock(self) -> Any:
        """Return the run's clock."""
        return self.services.clock

    def drop(self, items: list[Item]) -> None:
        """Finish ``items`` without output (filtered, skipped, deduplicated)."""
        services = self.services
        services.limiter.release(len(items))
        if services.tracker is not None:
            services.tracker.done(items)

    def expand(self, item: Item, extra: int) -> None:
        """Count ``extra`` more items derived from ``item`` (fan-out, flat_map)."""
        if extra == 0:
            return
        services = self.services
        if extra > 0:
            services.limiter.admit(extra)
        else:
            services.limiter.release(-extra)
        if services.tracker is not None:
            services.tracker.fork(item, extra)

    def combined(self, n: int) -> None:
        """Count ``n`` items as having become one (batch, window)."""
        if n > 1:
            self.services.limiter.release(n - 1)

    def add_usage(self, usage: Any) -> None:
        """Add one LM usage record to the run's totals."""
        if usage is not None:
            self.services.usage.add(usage)

    async def fail(self, item: Item, error: BaseException, *, node: str | None = None) -> None:
        """Apply the node's error policy to a failed ``item``.

        Raises:
            ItemFailed: The policy is ``"raise"`` (chained from ``error``).
        """
        name = node or self.name
        if self.events:
            await self.emit(ItemError(error_type=type(error).__name__, message=str(error)), item)
        action = self.policy.action
        if action == "raise":
            if isinstance(error, DspexError) and error.node == name:  # already names this node
                raise error
            raise ItemFailed(
                f"node {name!r} failed on item {item.id!r}: {type(error).__name__}: {error}",
                node=name,
                item_id=item.id,
            ) from error
        self.stats.items_failed += 1
        if self.services.telemetry is not None:
            self.services.telemetry.item_failed(item, error)
        if action == "skip":
            self.drop([item])
            return
        sink = self.services.dead_letter
        if sink is None:
            self.drop([item])
            return
        await sink(DeadLetter(item, error, name))

    async def emit(self, event: Event, item: Item | None) -> None:
        """Stamp ``event`` with run, node, item id, seq (and trace id) and forward it.

        Waits only while the event bus is full: events emitted back to back
        (a token and the field text it completes) reach the bus together, so
        sinks get them in one batch.
        """
        send = self.services.event_send
        if send is None:
            return
        update: dict[str, Any] = {
            "run": self.services.run_id,
            "node": self.name,
            "item_id": item.id if item is not None else event.item_id,
            "seq": next(self.services.seq),
        }
        if item is not None and item.trace is not None:  # an OpenTelemetry SpanContext
            update["trace_id"] = f"{item.trace.trace_id:032x}"
        stamped = event.model_copy(update=update)
        try:
            send.send_nowait(stamped)
        except anyio.WouldBlock:
            await send.send(stamped)


class Outputs:
    """The output ports of a node; each port fans out to one or more edges."""

    __slots__ = ("ctx", "max_chunk", "ports")

    def __init__(self, ports: list[list[EdgeSender]], ctx: NodeContext) -> None:
        self.ports = ports
        self.ctx = ctx
        sizes = [edge.edge.policy.chunk for edges in ports for edge in edges]
        self.max_chunk = min(sizes) if sizes else 1 << 30

    async def send(self, chunk: list[Item], port: int = 0) -> None:
        """Send ``chunk`` on ``port`` (to every edge of it), blocking while full.

        A chunk larger than the edges' ``chunk`` size is split, so an edge
        never holds more than ``size * chunk`` items.
        """
        if not chunk:
            return
        step = self.max_chunk
        if len(chunk) > step:
            for start in range(0, len(chunk), step):
                await self.send(chunk[start:start + step], port)
            return
        edges = self.ports[port]
        self.ctx.stats.items_out += len(chunk)
        if len(edges) == 1:
            await edges[0].send(chunk)
            return
        if not edges:  # an unconnected port (validated away): drop
            self.ctx.drop(chunk)
            return
        extra = len(edges) - 1
        for item in chunk:
            self.ctx.expand(item, extra)
        copies = [[item.copy() for item in chunk] for _ in range(extra)]
        await edges[0].send(chunk)
        for edge, copy in zip(edges[1:], copies, strict=True):
            await edge.send(copy)

    def close(self) -> None:
        """Close every output edge (downstream sees the end of stream)."""
        for edges in self.ports:
            for edge in edges:
                edge.close()


class Operator(ABC):
    """Base of every operator node.

    Subclasses set :attr:`kind` (the auto-name prefix, e.g. ``"map"``) and
    implement :meth:`run`. ``port_names`` lists the output ports of
    operators with several (``branch``: ``("trues", "falses")``).
    """

    kind: ClassVar[str] = "op"
    port_names: tuple[str, ...] = ("out",)

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name

    @abstractmethod
    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        """Consume chunks from ``receive`` until it ends, sending results to ``out``."""

    def input_fields(self) -> dict[str, Any] | None:
        """Return the record fields this node needs (name -> type), if known."""
        return None

    def output_fields(self, upstream: dict[str, Any] | None) -> dict[str, Any] | None:
        """Return the record schema after this node given the upstream one."""
        return upstream

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
