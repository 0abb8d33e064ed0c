"""Routing: ``route``/``branch`` (by predicate), ``merge`` and ``ab_split``.

``branch(predicate)`` sends each record to its ``trues`` or ``falses``
output; ``route(selector, keys)`` sends it to the output named by
``selector(record)`` (a key not listed fails the item through the node's error
policy, or goes to ``default`` when one is given). Fan-out to several
consumers (``broadcast``) needs no node: every node output may feed many
nodes, each getting its own copy. ``merge`` joins several upstreams into one
stream (fan-in through cloned send ends of one bounded edge). ``ab_split``
sends a stable ``fraction`` of items (by hash of the item id, so a resumed run
splits identically) to ``variant_b`` and the rest to ``variant_a``, and
reports counts, failures, busy time, usage and an optional metric per variant
(in ``RunReport.nodes[name].extra["variants"]``): a compiled program can be
tried on a fraction of live traffic and compared with the current one.
"""

from __future__ import annotations

import inspect
import time
import zlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InputError
from ..modules import Example
from ._base import Operator
from ._callables import RecordCall
from ._map import MapOperator
from ._usage import UsageTotals

if TYPE_CHECKING:
    from ..backpressure._edge import EdgeReceiver
    from ._base import NodeContext, Outputs
    from ._item import Item

__all__ = ["ABSplitOperator", "BranchOperator", "MergeOperator", "RouteOperator"]


class RouteOperator(Operator):
    """Send each record to the output named by ``selector(record)``.

    Args:
        selector: ``record -> key`` (sync).
        keys: The possible keys, one output each (in this order).
        default: A key whose output also takes records with unlisted keys.
        name: Node name (default ``"route-<n>"``).
    """

    kind = "route"

    def __init__(
        self, selector: Callable[[Any], Hashable], keys: Sequence[Hashable], *,
        default: Hashable | None = None, name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not callable(selector):
            raise ConfigError(f"route expects a callable selector, got {selector!r}")
        keys = list(keys)
        if not keys or len(set(keys)) != len(keys):
            raise ConfigError(f"route needs distinct keys, got {keys!r}")
        if default is not None and default not in keys:
            raise ConfigError(f"route default {default!r} is not one of the keys {keys!r}")
        self.selector = selector
        self.keys = keys
        self.index = {k: i for i, k in enumerate(keys)}
        self.default = None if default is None else self.index[default]
        self.port_names = tuple(str(k) for k in keys)

    def select(self, record: Any) -> int | None:
        """Return the output index for ``record`` (None: no such key)."""
        port = self.index.get(self.selector(record))
        return self.default if port is None else port

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        ports = len(self.port_names)
        async for chunk in receive:
            ctx.stats.items_in += len(chunk)
            start = time.perf_counter()
            buckets: list[list[Item]] = [[] for _ in range(ports)]
            failed: list[tuple[Item, Exception]] = []
            for item in chunk:
                try:
                    port = self.select(item.data)
                    if port is None:
                        raise InputError(
                            f"route node {ctx.name!r}: selector returned "
                            f"{self.selector(item.data)!r}, expected one of {self.keys!r}"
                        )
                except Exception as exc:
                    failed.append((item, exc))
                    continue
                buckets[port].append(item)
            ctx.stats.busy_s += time.perf_counter() - start
            for item, error in failed:
                await ctx.fail(item, error)
            for port, bucket in enumerate(buckets):
                await out.send(bucket, port)


class BranchOperator(RouteOperator):
    """Send each record to ``trues`` or ``falses`` by ``predicate(record)``."""

    kind = "branch"

    def __init__(self, predicate: Callable[[Any], Any], *, name: str | None = None) -> None:
        if not callable(predicate):
            raise ConfigError(f"branch expects a callable predicate, got {predicate!r}")
        super().__init__(predicate, [True, False], name=name)
        self.port_names = ("trues", "falses")

    def select(self, record: Any) -> int | None:
        return 0 if self.selector(record) else 1


class MergeOperator(Operator):
    """Pass through every record from several upstreams (fan-in)."""

    kind = "merge"

    def output_fields(self, upstream: dict[str, Any] | None) -> dict[str, Any] | None:
        return None

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        async for chunk in receive:
            ctx.stats.items_in += len(chunk)
            await out.send(chunk)


class ABSplitOperator(MapOperator):
    """Run a stable fraction of items through ``variant_b``, the rest through ``variant_a``.

    Args:
        fraction: Share of items (0..1) sent to ``variant_b``.
        variant_a: Function or Module for the other items.
        variant_b: Function or Module for ``fraction`` of the items.
        metric: Optional score of each output, averaged per variant: either
            ``metric(output)`` or DSPy-style ``metric(example, prediction)``
            (the input record as an ``Example``), sync or async, returning a
            bool, a number or a score with feedback. A metric that raises
            is counted in the variant's ``metric_errors``; the item goes on.
        tag: Field set on dict outputs to ``"a"``/``"b"`` (None: no tag).
        concurrency: As for ``map``.
        ordered: As for ``map``.
        name: As for ``map``.
    """

    kind = "ab_split"

    def __init__(
        self, fraction: float, variant_a: Any, variant_b: Any, *,
        metric: Callable[[Any], float] | None = None, tag: str | None = "_variant",
        concurrency: int = 1, ordered: bool = True, name: str | None = None,
    ) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"ab_split fraction must be in [0, 1], got {fraction!r}")
        super().__init__(variant_a, concurrency=concurrency, ordered=ordered, name=name)
        self.fraction = fraction
        self.calls = {"a": self.call, "b": RecordCall(variant_b, what="ab_split")}
        self.call.sync = False  # never take the chunk fast path: counts are per variant
        self.metric = metric
        self._metric_pair = metric is not None and _positional_arity(metric) >= 2
        self.tag = tag

    def input_fields(self) -> dict[str, Any] | None:
        a, b = self.calls["a"].inputs, self.calls["b"].inputs
        if a is None and b is None:
            return None
        return {**(a or {}), **(b or {})}

    def output_fields(self, upstream: dict[str, Any] | None) -> dict[str, Any] | None:
        return None

    def variant(self, item: Item) -> str:
        """Return ``"b"`` for a stable ``fraction`` of item ids, else ``"a"``."""
        share = zlib.crc32(item.id.encode()) / 0x1_0000_0000
        return "b" if share < self.fraction else "a"

    async def _call_once(
        self, record: Any, ctx: NodeContext, item: Item, feedback: tuple[str, ...]
    ) -> Any:
        name = self.variant(item)
        stats = _variant_stats(ctx, name)
        call = self.calls[name]
        stats["items"] += 1
        start = time.perf_counter()
        try:
            result = await call(record, ctx, item, feedback, usage=stats["_usage"])
        except Exception:
            stats["failed"] += 1
            raise
        finally:
            stats["busy_s"] += time.perf_counter() - start
        if self.metric is not None:
            await self._score(stats, record, result)
        if self.tag is not None and isinstance(result, dict):
            result[self.tag] = name
        return result


    async def _score(self, stats: dict[str, Any], record: Any, result: Any) -> None:
        assert self.metric is not None
        try:
            if self._metric_pair:
                example = Example(record) if isinstance(record, Mapping) else record
                value = self.metric(example, result)  # type: ignore[call-arg]
            else:
                value = self.metric(result)
            if inspect.isawaitable(value):
                value = await value
            stats["metric_sum"] += float(getattr(value, "score", value))
            stats["metric_n"] += 1
        except Exception:
            stats["metric_errors"] += 1


def _positional_arity(fn: Callable[..., Any]) -> int:
    """Return how many positional arguments ``fn`` takes (2 for ``*args``); 1 when unknown."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


def _variant_stats(ctx: NodeContext, name: str) -> dict[str, Any]:
    variants: dict[str, _VariantDict] = ctx.stats.extra.setdefault("variants", {})
    stats = variants.get(name)
    if stats is None:
        stats = variants[name] = _VariantDict(
            items=0, failed=0, busy_s=0.0, metric_sum=0.0, metric_n=0, metric_errors=0, _usage=UsageTotals()
        )
    return stats


class _VariantDict(dict[str, Any]):
    """Per-variant counters; ``to_dict`` adds the mean metric and usage."""

    def to_dict(self) -> dict[str, Any]:
        n = self["metric_n"]
        return {
            "items": self["items"],
            "failed": self["failed"],
            "busy_s": round(self["busy_s"], 6),
            "metric": (self["metric_sum"] / n) if n else None,
            "metric_errors": self["metric_errors"],
            "usage": self["_usage"].to_dict(),
        }
