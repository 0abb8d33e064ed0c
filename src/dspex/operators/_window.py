"""``batch`` and ``window``: group records by count and/or time.

``batch(size, timeout)`` emits a list of records when ``size`` have arrived
or ``timeout`` seconds after the first record of the batch, whichever comes
first. ``window(seconds, key=None, size=None)`` groups records into tumbling
windows of ``seconds`` aligned to the start of the run (optionally per key,
and emitted early when a group reaches ``size``); each window is emitted as
``{"key", "start", "end", "items"}``. Time is read from the run's clock, so
tests drive both operators with a ``FakeClock`` on either backend. A timer
task lives in the node's own task group; it never outlives the node, and it
is cancelled only once it holds no items (its emits share a lock with the
node's final emit, which therefore waits for a timer send in flight).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import ConfigError
from ._base import Operator
from ._item import Item

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..backpressure._edge import EdgeReceiver
    from ._base import NodeContext, Outputs

__all__ = ["BatchOperator", "WindowOperator"]


def _group(members: list[Item], item_id: str, data: Any) -> Item:
    parts = tuple(k for m in members for k in m.keys())  # noqa: SIM118 - Item.keys(), not a dict
    return Item(item_id, data, None, tuple(m.id for m in members), members[0].trace, parts)


class BatchOperator(Operator):
    """Group records into lists by count and/or time.

    Args:
        size: Emit when this many records are buffered.
        timeout: Emit this many seconds after the batch's first record.
        name: Node name (default ``"batch-<n>"``).
    """

    kind = "batch"

    def __init__(
        self, size: int | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        if size is None and timeout is None:
            raise ConfigError("batch needs a size, a timeout, or both")
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ConfigError(f"batch size must be an int >= 1, got {size!r}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"batch timeout must be > 0 seconds, got {timeout!r}")
        self.size = size
        self.timeout = timeout

    def output_fields(self, upstream: dict[str, Any] | None) -> dict[str, Any] | None:
        return None

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        state = _BatchState(self, out, ctx)
        async with anyio.create_task_group() as tg:
            if self.timeout is not None:
                tg.start_soon(state.timer)
            async for chunk in receive:
                ctx.stats.items_in += len(chunk)
                for item in chunk:
                    await state.add(item)
            await state.emit()
            tg.cancel_scope.cancel()


class _BatchState:
    def __init__(self, op: BatchOperator, out: Outputs, ctx: NodeContext) -> None:
        self.op, self.out, self.ctx = op, out, ctx
        self.buf: list[Item] = []
        self.generation = 0
        self.count = 0
        self.deadline = 0.0
        self.started = anyio.Event()
        self.sending = anyio.Lock()

    async def add(self, item: Item) -> None:
        if not self.buf:
            self.deadline = self.ctx.clock.now() + (self.op.timeout or 0.0)
            self.started.set()
        self.buf.append(item)
        if self.op.size is not None and len(self.buf) >= self.op.size:
            await self.emit()

    async def emit(self, generation: int | None = None) -> None:
        # Items leave ``buf`` only under ``sending``, held until the send is
        # done: the node's final emit waits for a timer send blocked on a full
        # edge, so cancelling the timer afterwards cannot drop a batch.
        async with self.sending:
            if not self.buf or (generation is not None and generation != self.generation):
                return
            members, self.buf = self.buf, []
            self.generation += 1
            self.started = anyio.Event()
            self.count += 1
            batch = _group(members, f"{self.ctx.name}:{self.count}", [m.data for m in members])
            self.ctx.combined(len(members))
            await self.out.send([batch])

    async def timer(self) -> None:
        clock = self.ctx.clock
        while True:
            await self.started.wait()
            generation = self.generation
            await clock.sleep(max(0.0, self.deadline - clock.now()))
            if generation == self.generation and self.buf:
                await self.emit(generation)


class WindowOperator(Operator):
    """Tumbling time windows, optionally per key and capped by count.

    Args:
        seconds: Window length; windows are aligned to the start of the run.
        key: ``record -> hashable`` to window per key (default: one group).
        size: Emit a group early when it reaches this many records.
        name: Node name (default ``"window-<n>"``).
    """

    kind = "window"

    def __init__(
        self, seconds: float, *, key: Callable[[Any], Any] | None = None,
        size: int | None = None, name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if seconds is None or seconds <= 0:
            raise ConfigError(f"window seconds must be > 0, got {seconds!r}")
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ConfigError(f"window size must be an int >= 1, got {size!r}")
        self.seconds = float(seconds)
        self.key = key
        self.size = size

    def output_fields(self, upstream: dict[str, Any] | None) -> dict[str, Any] | None:
        return {"key": None, "start": float, "end": float, "items": list}

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        state = _WindowState(self, out, ctx)
        async with anyio.create_task_group() as tg:
            tg.start_soon(state.timer)
            async for chunk in receive:
                ctx.stats.items_in += len(chunk)
                for item in chunk:
                    await state.add(item)
            await state.close_window()
            tg.cancel_scope.cancel()


class _WindowState:
    def __init__(self, op: WindowOperator, out: Outputs, ctx: NodeContext) -> None:
        self.op, self.out, self.ctx = op, out, ctx
        self.origin: float = ctx.clock.now()
        self.index = 0
        self.groups: dict[Any, list[Item]] = {}
        self.count = 0
        self.sending = anyio.Lock()

    def _index_at(self, now: float) -> int:
        return max(0, math.floor((now - self.origin) / self.op.seconds))

    async def add(self, item: Item) -> None:
        index = self._index_at(self.ctx.clock.now())
        if index > self.index:
            await self.close_window()
            self.index = index
        key = self.op.key(item.data) if self.op.key is not None else None
        group = self.groups.setdefault(key, [])
        group.append(item)
        if self.op.size is not None and len(group) >= self.op.size:
            del self.groups[key]
            await self._emit([(key, group)])

    async def close_window(self) -> None:
        # The timer closes windows too: ``sending`` makes the node's final
        # close wait for a timer send in flight before the timer is cancelled.
        async with self.sending:
            groups, self.groups = self.groups, {}
            await self._emit(list(groups.items()))

    async def _emit(self, groups: list[tuple[Any, list[Item]]]) -> None:
        start = self.index * self.op.seconds
        chunk = []
        for key, members in groups:
            self.count += 1
            data = {
                "key": key,
                "start": start,
                "end": start + self.op.seconds,
                "items": [m.data for m in members],
            }
            chunk.append(_group(members, f"{self.ctx.name}:{self.count}", data))
            self.ctx.combined(len(members))
        await self.out.send(chunk)

    async def timer(self) -> None:
        clock = self.ctx.clock
        while True:
            end = self.origin + (self.index + 1) * self.op.seconds
            await clock.sleep(max(0.0, end - clock.now()))
            index = self._index_at(clock.now())
            if index > self.index:
                await self.close_window()
                self.index = index
