"""Operator factories: the lowercase verbs behind ``dx.ops.map`` and friends.

Each factory returns an operator object that ``NodeHandle.then(op)`` (or
``flow.add``) places in a flow; the fluent ``NodeHandle.map(...)`` methods are
shorthands for the same objects. ``merge`` and ``broadcast`` need no object:
``flow.merge(*handles)`` and fan-out from any handle cover them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._control import DedupeOperator, RateLimitOperator, TapOperator, TimeoutOperator
from ._map import FilterOperator, FlatMapOperator, MapOperator
from ._routing import ABSplitOperator, BranchOperator, MergeOperator, RouteOperator
from ._validate import ValidateOperator
from ._window import BatchOperator, WindowOperator

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

__all__ = [
    "ab_split",
    "batch",
    "branch",
    "dedupe",
    "filter",
    "flat_map",
    "map",
    "merge",
    "rate_limit",
    "route",
    "tap",
    "timeout",
    "validate",
    "window",
]


def map(
    fn: Any, *, concurrency: int = 1, ordered: bool = True, timeout: float | None = None,
    name: str | None = None, executor: str = "inline",
) -> MapOperator:
    """Return a ``map`` operator (function, async function or Module).

    ``executor`` places a sync ``fn``: ``"inline"``, ``"threads"`` or
    ``"processes"`` (see :class:`~dspex.operators.MapOperator`).
    """
    return MapOperator(fn, concurrency=concurrency, ordered=ordered, timeout=timeout, name=name,
                       executor=executor)


def flat_map(
    fn: Any, *, concurrency: int = 1, ordered: bool = True, name: str | None = None,
    executor: str = "inline",
) -> FlatMapOperator:
    """Return a ``flat_map`` operator (``record -> iterable of records``)."""
    return FlatMapOperator(fn, concurrency=concurrency, ordered=ordered, name=name, executor=executor)


def filter(
    fn: Callable[[Any], Any], *, name: str | None = None, concurrency: int = 1,
    ordered: bool = True, executor: str = "inline",
) -> FilterOperator:
    """Return a ``filter`` operator (keep records where ``fn`` is true)."""
    return FilterOperator(fn, name=name, concurrency=concurrency, ordered=ordered, executor=executor)


def validate(
    fn: Callable[[Any], Any], msg: str | Callable[[Any], str] = "validation failed", *,
    retries: int = 0, mode: str = "assert", name: str | None = None,
) -> ValidateOperator:
    """Return a ``validate`` operator (assert/suggest with retry-with-feedback)."""
    return ValidateOperator(fn, msg, retries=retries, mode=mode, name=name)


def batch(
    size: int | None = None, timeout: float | None = None, *, name: str | None = None
) -> BatchOperator:
    """Return a ``batch`` operator (lists by count and/or time)."""
    return BatchOperator(size, timeout, name=name)


def window(
    seconds: float, *, key: Callable[[Any], Any] | None = None, size: int | None = None,
    name: str | None = None,
) -> WindowOperator:
    """Return a tumbling ``window`` operator."""
    return WindowOperator(seconds, key=key, size=size, name=name)


def route(
    selector: Callable[[Any], Hashable], keys: Sequence[Hashable], *,
    default: Hashable | None = None, name: str | None = None,
) -> RouteOperator:
    """Return a ``route`` operator (one output per key)."""
    return RouteOperator(selector, keys, default=default, name=name)


def branch(predicate: Callable[[Any], Any], *, name: str | None = None) -> BranchOperator:
    """Return a ``branch`` operator (``trues`` / ``falses`` outputs)."""
    return BranchOperator(predicate, name=name)


def merge(*, name: str | None = None) -> MergeOperator:
    """Return a ``merge`` operator (pass-through fan-in)."""
    return MergeOperator(name=name)


def tap(fn: Callable[[Any], Any], *, name: str | None = None) -> TapOperator:
    """Return a ``tap`` operator (side effect, records pass unchanged)."""
    return TapOperator(fn, name=name)


def rate_limit(per_second: float, *, burst: int = 1, name: str | None = None) -> RateLimitOperator:
    """Return a ``rate_limit`` operator (token bucket on the run's clock)."""
    return RateLimitOperator(per_second, burst=burst, name=name)


def dedupe(
    key: Callable[[Any], Hashable] | str | None = None, *, max_keys: int | None = None,
    name: str | None = None,
) -> DedupeOperator:
    """Return a ``dedupe`` operator (drop records with an already seen key)."""
    return DedupeOperator(key, max_keys=max_keys, name=name)


def timeout(seconds: float, *, name: str | None = None) -> TimeoutOperator:
    """Return a ``timeout`` operator (per-item deadline of the map before it)."""
    return TimeoutOperator(seconds, name=name)


def ab_split(
    fraction: float, variant_a: Any, variant_b: Any, *,
    metric: Callable[[Any], float] | None = None, tag: str | None = "_variant",
    concurrency: int = 1, ordered: bool = True, name: str | None = None,
) -> ABSplitOperator:
    """Return an ``ab_split`` operator (stable fraction to ``variant_b``)."""
    return ABSplitOperator(
        fraction, variant_a, variant_b, metric=metric, tag=tag,
        concurrency=concurrency, ordered=ordered, name=name,
    )
