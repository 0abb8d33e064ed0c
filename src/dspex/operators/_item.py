"""The item envelope: what travels along the edges of a flow.

An :class:`Item` wraps one record (``data``) with its ``id``, the ``key`` of
the source record it descends from (keyed sources, used for resume), its
``lineage`` (the ids of the items it was derived from) and its trace context.
Operators replace ``data`` in place when a record maps one-to-one, so a plain
``map`` allocates nothing per item. A :class:`DeadLetter` is what a failed
item becomes: the item plus the error and the node that failed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DeadLetter", "Item"]


@dataclass(slots=True)
class Item:
    """One record in flight.

    Attributes:
        id: Unique within the run: the source key, or a sequence number;
            derived items append ``.n`` (flat_map) or use the node name.
        data: The record itself (usually a dict).
        key: The source key this item descends from (keyed sources only).
        lineage: Ids of the items this one was derived from, oldest first.
        trace: Trace context (e.g. an OpenTelemetry span context) or None.
        parts: For grouped items (batch/window): the source keys of members.
    """

    id: str
    data: Any
    key: str | None = None
    lineage: tuple[str, ...] = ()
    trace: Any = None
    parts: tuple[str | None, ...] | None = None

    def child(self, data: Any, index: int) -> Item:
        """Return the ``index``-th item derived from this one (flat_map)."""
        return Item(
            f"{self.id}.{index}", data, self.key, (*self.lineage, self.id), self.trace, self.parts
        )

    def copy(self) -> Item:
        """Return a copy for another branch (dict records are copied shallowly)."""
        data = dict(self.data) if type(self.data) is dict else self.data
        return Item(self.id, data, self.key, self.lineage, self.trace, self.parts)

    def keys(self) -> tuple[str | None, ...]:
        """Return the source keys this item accounts for."""
        return self.parts if self.parts is not None else (self.key,)


@dataclass(slots=True)
class DeadLetter:
    """A failed item: the input that failed, the error, and where.

    Attributes:
        item: The item as it entered the failing node.
        error: The exception (for a bad source record, a ``SourceError``).
        node: The name of the node that failed it.
    """

    item: Item
    error: BaseException
    node: str

    def to_record(self) -> dict[str, Any]:
        """Return the JSON-able record written to a dead-letter sink."""
        data = self.item.data
        if not isinstance(data, (Mapping, list, str, int, float, bool, type(None))):
            data = repr(data)
        elif isinstance(data, Mapping):
            data = dict(data)
        record: dict[str, Any] = {
            "id": self.item.id,
            "node": self.node,
            "error_type": type(self.error).__name__,
            "error": str(self.error),
            "data": data,
        }
        if self.item.key is not None:
            record["key"] = self.item.key
        for attr in ("line", "path"):
            value = getattr(self.error, attr, None)
            if value is not None:
                record[attr] = str(value) if attr == "path" else value
        return record
