"""The run report: what a flow run did, per node and in total.

While a flow runs every node updates its :class:`NodeStats` (items in, out
and failed, busy time) and every edge its high-water marks; LM usage is summed
in a :class:`~dspex.operators._usage.UsageTotals`. When the run ends these become an immutable-ish
:class:`RunReport` with counts, usage and cost, timings, queue high-water
marks, dead letters and memory pauses; ``to_dict()`` makes it JSON-able.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backpressure._edge import Edge
    from ..operators._item import DeadLetter

__all__ = ["NodeReport", "NodeStats", "RunReport"]


class NodeStats:
    """Live counters of one node (mutated by the node's task only)."""

    __slots__ = ("busy_s", "edge", "extra", "items_failed", "items_in", "items_out", "kind", "name")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.items_in = 0
        self.items_out = 0
        self.items_failed = 0
        self.busy_s = 0.0
        self.edge: Edge | None = None
        self.extra: dict[str, Any] = {}

    def report(self) -> NodeReport:
        """Freeze the counters into a :class:`NodeReport`."""
        queue = self.edge.stats() if self.edge is not None else {}
        return NodeReport(
            name=self.name,
            kind=self.kind,
            items_in=self.items_in,
            items_out=self.items_out,
            items_failed=self.items_failed,
            busy_s=round(self.busy_s, 6),
            queue_hwm=queue.get("items_hwm", 0),
            queue_capacity=queue.get("capacity_items", 0),
            queue=queue,
            extra=dict(self.extra),
        )


@dataclass(frozen=True, slots=True)
class NodeReport:
    """Per-node figures: counts, busy time, input queue high-water mark.

    ``queue_hwm`` is the most items ever waiting on the node's input edge;
    ``extra`` holds operator-specific figures (e.g. ``variants`` for
    ``ab_split``, ``retries`` and ``flagged`` for ``validate``).
    """

    name: str
    kind: str
    items_in: int
    items_out: int
    items_failed: int
    busy_s: float
    queue_hwm: int
    queue_capacity: int
    queue: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the node figures as a dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "items_in": self.items_in,
            "items_out": self.items_out,
            "items_failed": self.items_failed,
            "busy_s": self.busy_s,
            "queue_hwm": self.queue_hwm,
            "queue_capacity": self.queue_capacity,
            **({"extra": _jsonable(self.extra)} if self.extra else {}),
        }


@dataclass(slots=True)
class RunReport:
    """What a flow run did.

    Attributes:
        flow: The flow's name.
        run_id: The run id (given, or generated).
        status: ``"completed"``, ``"failed"`` or ``"cancelled"``. A run that
            ends normally is ``"failed"`` when too many items failed: every
            item read, or more than ``max_failure_rate`` of them (see
            ``Flow.run``); the CLI then exits non-zero.
        items_in: Records read from the sources (bad records included).
        items_out: Records written to the sinks.
        items_failed: Items that failed in a node (skipped or dead-lettered)
            plus bad source records.
        usage: Token totals (``input_tokens``, ``output_tokens``, ...).
        cost: Total cost in USD, as priced by the LMs.
        duration_s: Wall time of the run.
        nodes: Per-node figures by node name, in graph order.
        dead_letters: Failed items kept in memory (when no dead-letter sink).
        dead_letter_count: Items dead-lettered in total.
        memory_pauses: How many times memory pressure paused the sources.
        memory: Memory-monitor figures (peak, time paused), when enabled.
        resumed: True when the run resumed from a checkpoint.
        committed_keys: Keys committed to the run store by this run.
    """

    flow: str
    run_id: str
    status: str = "completed"
    items_in: int = 0
    items_out: int = 0
    items_failed: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    duration_s: float = 0.0
    nodes: dict[str, NodeReport] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dead_letter_count: int = 0
    memory_pauses: int = 0
    memory: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False
    committed_keys: int = 0
    validation_failures: int = 0

    @property
    def items_per_s(self) -> float:
        """Return the output rate over the whole run."""
        return self.items_out / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-able dict (dead letters as records)."""
        return {
            "flow": self.flow,
            "run_id": self.run_id,
            "status": self.status,
            "items_in": self.items_in,
            "items_out": self.items_out,
            "items_failed": self.items_failed,
            "usage": dict(self.usage),
            "cost": self.cost,
            "duration_s": round(self.duration_s, 6),
            "nodes": {name: node.to_dict() for name, node in self.nodes.items()},
            "dead_letters": [dl.to_record() for dl in self.dead_letters],
            "dead_letter_count": self.dead_letter_count,
            "memory_pauses": self.memory_pauses,
            "memory": dict(self.memory),
            "resumed": self.resumed,
            "committed_keys": self.committed_keys,
            "validation_failures": self.validation_failures,
        }


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return repr(value)
