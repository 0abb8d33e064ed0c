"""Flow control: ``tap``, ``rate_limit``, ``dedupe`` and ``timeout``.

``tap(fn)`` calls ``fn(record)`` for its side effect and passes the record on.
``rate_limit(per_second, burst=1)`` spaces records with a token bucket on the
run's clock (the wait blocks the node, so backpressure reaches the source).
``dedupe(key=None, max_keys=None)`` drops records whose key was already seen
(the item key, else the record itself); ``max_keys`` bounds memory by
forgetting the oldest keys. ``timeout(seconds)`` sets a per-item deadline on
the ``map`` right before it: an item that takes longer fails through the
timeout node's error policy.
"""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import Operator

if TYPE_CHECKING:
    from ..backpressure._edge import EdgeReceiver
    from ._base import NodeContext, Outputs
    from ._item import Item

__all__ = ["DedupeOperator", "RateLimitOperator", "TapOperator", "TimeoutOperator"]


class TapOperator(Operator):
    """Call ``fn(record)`` (sync or async) for its side effect; pass records on."""

    kind = "tap"

    def __init__(self, fn: Callable[[Any], Any], *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not callable(fn):
            raise ConfigError(f"tap expects a callable, got {fn!r}")
        self.fn = fn

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        fn = self.fn
        async for chunk in receive:
            ctx.stats.items_in += len(chunk)
            start = time.perf_counter()
            emitted: list[Item] = []
            for item in chunk:
                try:
                    result = fn(item.data)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    await ctx.fail(item, exc)
                    continue
                emitted.append(item)
            ctx.stats.busy_s += time.perf_counter() - start
            await out.send(emitted)


class RateLimitOperator(Operator):
    """Let at most ``per_second`` records through per second (token bucket).

    Args:
        per_second: Sustained rate.
        burst: Records allowed back to back after an idle spell.
        name: Node name (default ``"rate_limit-<n>"``).
    """

    kind = "rate_limit"

    def __init__(self, per_second: float, *, burst: int = 1, name: str | None = None) -> None:
        super().__init__(name=name)
        if per_second is None or per_second <= 0:
            raise ConfigError(f"rate_limit per_second must be > 0, got {per_second!r}")
        if not isinstance(burst, int) or burst < 1:
            raise ConfigError(f"rate_limit burst must be an int >= 1, got {burst!r}")
        self.rate = float(per_second)
        self.burst = burst

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        clock = ctx.clock
        tokens = float(self.burst)
        last = clock.now()
        async for chunk in receive:
            ctx.stats.items_in += len(chunk)
            pending: list[Item] = []
            for item in chunk:
                now = clock.now()
                tokens = min(float(self.burst), tokens + (now - last) * self.rate)
                last = now
                if tokens < 1.0:
                    await out.send(pending)
                    pending = []
                    await clock.sleep((1.0 - tokens) / self.rate)
                    now = clock.now()
                    tokens = min(float(self.burst), tokens + (now - last) * self.rate)
                    last = now
                tokens -= 1.0
                pending.append(item)
            await out.send(pending)


def _freeze(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, set):
        return frozenset(_freeze(v) for v in value)
    return value  # type: ignore[no-any-return]


class DedupeOperator(Operator):
    """Drop records whose key was already seen.

    Args:
        key: ``record -> hashable`` (a field name works too); default: the
            item's source key, else the whole record.
        max_keys: Remember at most this many keys (oldest forgotten first);
            ``None`` remembers every key of the run.
        name: Node name (default ``"dedupe-<n>"``).
    """

    kind = "dedupe"

    def __init__(
        self, key: Callable[[Any], Hashable] | str | None = None, *,
        max_keys: int | None = None, name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if max_keys is not None and (not isinstance(max_keys, int) or max_keys < 1):
            raise ConfigError(f"dedupe max_keys must be an int >= 1, got {max_keys!r}")
        if isinstance(key, str):
            field = key
            key = lambda record: record[field]  # noqa: E731
        elif key is not None and not callable(key):
            raise ConfigError(f"dedupe key must be a callable or a field name, got {key!r}")
        self.key = key
        self.max_keys = max_keys

    def _key_of(self, item: Item) -> Hashable:
        if self.key is not None:
            return _freeze(self.key(item.data))
        return ("key", item.key) if item.key is not None else _freeze(item.data)

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        seen: OrderedDict[Hashable, None] = OrderedDict()
        limit = self.max_keys
        async for chunk in receive:
            ctx.stats.items_in += len(chunk)
            emitted: list[Item] = []
            dropped: list[Item] = []
            for item in chunk:
                try:
                    key = self._key_of(item)
                    if key in seen:
                        dropped.append(item)
                        continue
                except Exception as exc:
                    await ctx.fail(item, exc)
                    continue
                seen[key] = None
                if limit is not None and len(seen) > limit:
                    seen.popitem(last=False)
                emitted.append(item)
            if dropped:
                ctx.drop(dropped)
                ctx.stats.extra["dropped"] = ctx.stats.extra.get("dropped", 0) + len(dropped)
            await out.send(emitted)


class TimeoutOperator(Operator):
    """Fail items whose upstream ``map`` call takes longer than ``seconds``.

    The node is fused into the map right before it (a graph error otherwise);
    ``on_error`` of the timeout node decides what happens to late items.
    """

    kind = "timeout"

    def __init__(self, seconds: float, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if seconds is None or seconds <= 0:
            raise ConfigError(f"timeout seconds must be > 0, got {seconds!r}")
        self.seconds = float(seconds)

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        async for chunk in receive:  # only reached if not fused: pass through
            ctx.stats.items_in += len(chunk)
            await out.send(chunk)
