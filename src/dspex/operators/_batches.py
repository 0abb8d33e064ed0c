"""Driving a map-like node through a thread or process executor, batch by batch.

Each input chunk is split into batches (about ``chunk / concurrency``
records, at least the executor's ``min_batch``), and each batch makes one
trip to a worker: at most ``concurrency`` batches are in flight, one task
each (no task per record). Outcomes come back per record, so the node's
error policy (raise, skip, dead letter, retry) still applies record by
record. With ``ordered=True`` finished batches wait in a reorder buffer until
every earlier batch is emitted; a batch's slot is freed only once it is
emitted, so at most ``concurrency`` batches sit between input and output.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:
    from ..backpressure._edge import EdgeReceiver
    from ._base import NodeContext, Outputs
    from ._executors import Outcome
    from ._item import Item
    from ._map import MapOperator

__all__ = ["Executor", "call_one", "run_batches", "split"]


class Executor(Protocol):
    """What :func:`run_batches` needs of an executor."""

    min_batch: int

    async def run(self, records: list[Any]) -> list[Outcome]:
        """Apply the function to each record; one outcome per record, in order."""
        ...


def split(chunk: list[Item], parts: int, min_batch: int) -> list[list[Item]]:
    """Cut ``chunk`` into at most ``parts`` batches of at least ``min_batch`` items."""
    size = max(min_batch, -(-len(chunk) // parts))
    if size >= len(chunk):
        return [chunk]
    return [chunk[i:i + size] for i in range(0, len(chunk), size)]


async def call_one(executor: Executor, record: Any) -> Any:
    """Run one record through ``executor``; return its result or raise its error."""
    ok, value = (await executor.run([record]))[0]
    if not ok:
        raise value
    return value


async def run_batches(
    op: MapOperator, executor: Executor, receive: EdgeReceiver, out: Outputs, ctx: NodeContext
) -> None:
    """Feed every input chunk through ``executor`` in batches and emit the results."""
    slots = anyio.Semaphore(op.concurrency)
    emitter = _Emitter(out, slots, ordered=op.ordered)
    stats = ctx.stats
    seq = 0
    async with anyio.create_task_group() as tg:
        async for chunk in receive:
            stats.items_in += len(chunk)
            for batch in split(chunk, op.concurrency, executor.min_batch):
                await slots.acquire()
                tg.start_soon(_one_batch, op, executor, batch, seq, emitter, ctx)
                seq += 1


async def _one_batch(
    op: MapOperator, executor: Executor, batch: list[Item], seq: int, emitter: _Emitter,
    ctx: NodeContext,
) -> None:
    start = time.perf_counter()
    outcomes = await executor.run([item.data for item in batch])
    emitted: list[Item] = []
    finish = op.finish
    for item, (ok, value) in zip(batch, outcomes, strict=True):
        if ok:
            try:
                emitted.extend(finish(item, value, ctx))
                continue
            except Exception as exc:
                value = exc
        emitted.extend(await op.settle(item, value, ctx, executor.run))
    ctx.stats.busy_s += time.perf_counter() - start
    await emitter.put(seq, emitted)


class _Emitter:
    """Emit finished batches, in input order if ``ordered``; free their slots."""

    __slots__ = ("draining", "next", "ordered", "out", "ready", "slots")

    def __init__(self, out: Outputs, slots: anyio.Semaphore, *, ordered: bool) -> None:
        self.out, self.slots, self.ordered = out, slots, ordered
        self.ready: dict[int, list[Item]] = {}
        self.next = 0
        self.draining = False

    async def put(self, seq: int, items: list[Item]) -> None:
        """Hand over batch ``seq``'s results; returns once they are sent or queued."""
        if not self.ordered:
            try:
                await self.out.send(items)
            finally:
                self.slots.release()
            return
        self.ready[seq] = items
        if self.draining:  # the task draining now sends this batch too, in turn
            return
        self.draining = True
        try:
            while self.next in self.ready:
                ready = self.ready.pop(self.next)
                self.next += 1
                try:
                    await self.out.send(ready)
                finally:
                    self.slots.release()
        finally:
            self.draining = False
