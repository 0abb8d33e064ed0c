"""``map``, ``flat_map`` and ``filter``: one callable applied to every record.

A plain (sync) function runs where ``executor=`` says (see ``_executors``):
``"inline"`` (the default) calls it over a whole chunk on the event loop with
no per-item await, whatever the concurrency, since running cheap Python in
threads only adds trips; ``"threads"`` and ``"processes"`` send batches of
records to at most ``concurrency`` workers (``_batches``). Async functions and
modules run on the loop: with ``concurrency=1`` one item after the other in
the node's task, with ``concurrency=N`` in ``N`` long-lived worker tasks that
take items one at a time from the node's input (no task per item).
``ordered=True`` emits results in input order through a reorder buffer that is
bounded by ``concurrency`` (a slot is freed only when its item is emitted);
``ordered=False`` emits each result as soon as it is ready; at most
``2 * concurrency`` items are then between input and output (up to
``concurrency`` being processed, the rest finished and waiting for the one
worker that sends, so workers rarely wait for a send). Failures go
through the node's error policy (``retry(n)`` re-invokes the callable).
Validate and timeout nodes placed right after a map are fused into it, so that
a failed validation can re-invoke the module with the message as feedback: the
runner gives each run its own copy of the map (:meth:`MapOperator.staged`)
carrying the fused checks and deadline, so the operator the user built is never
changed by a run and one flow can run several times at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import ConfigError, ItemFailed
from ..events import Retry
from ._base import Operator
from ._batches import call_one, run_batches
from ._callables import RecordCall
from ._executors import ProcessExecutor, ThreadExecutor, check_executor

if TYPE_CHECKING:
    from ..backpressure._edge import EdgeReceiver
    from ._base import NodeContext, Outputs
    from ._executors import Outcome
    from ._item import Item
    from ._validate import Check

    Rerun = Callable[[list[Any]], Awaitable[list[Outcome]]]

__all__ = ["FilterOperator", "FlatMapOperator", "MapOperator", "NodeFailure"]


class NodeFailure(Exception):
    """Internal: an item failed in a *fused* node (validate, timeout)."""

    def __init__(self, ctx: NodeContext, error: BaseException) -> None:
        super().__init__(str(error))
        self.ctx = ctx
        self.error = error


class MapOperator(Operator):
    """Apply a function, an async function or a Module to every record.

    Args:
        fn: ``record -> record`` (sync or async) or a dspex Module (called
            with the record's input fields; outputs are merged in).
        concurrency: Most items processed at once by this node.
        ordered: Emit in input order (bounded reorder buffer) or as ready.
        timeout: Per-item deadline in seconds (``None``: none).
        name: Node name (default ``"map-<n>"``).
        executor: Where a sync ``fn`` runs: ``"inline"`` (on the event loop,
            chunk by chunk; the default, fastest for cheap functions),
            ``"threads"`` (functions that block: batches of records in up to
            ``concurrency`` threads) or ``"processes"`` (CPU-bound functions:
            a pool of ``concurrency`` processes; ``fn``, records and results
            must pickle). Async functions and modules need ``"inline"``.

    Raises:
        ConfigError: A bad ``concurrency``, ``timeout`` or ``executor``, or
            ``executor="processes"`` with a function that cannot be pickled.
    """

    kind = "map"

    def __init__(
        self, fn: Any, *, concurrency: int = 1, ordered: bool = True,
        timeout: float | None = None, name: str | None = None, executor: str = "inline",
    ) -> None:
        super().__init__(name=name)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"{self.kind} concurrency must be an int >= 1, got {concurrency!r}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"{self.kind} timeout must be > 0 seconds, got {timeout!r}")
        self.call = RecordCall(fn, what=self.kind)
        check_executor(executor, fn, mode=self.call.mode, what=self.kind)
        self.executor = executor
        self.concurrency = concurrency
        self.ordered = ordered
        self.timeout = timeout
        # set only on a per-run copy (``staged``), never on the operator a flow holds
        self.timeout_ctx: NodeContext | None = None
        self.checks: tuple[Check, ...] = ()

    def _copy(self) -> MapOperator:
        """Return a shallow copy whose attributes stay inline, like those of ``self``.

        ``copy.copy`` gives the copy a materialized ``__dict__``, on which CPython
        3.11 reads attributes about 3x slower (the per-item path reads many);
        setting the attributes one by one, in the order ``__init__`` set them,
        keeps the class's shared-key layout.
        """
        stage = object.__new__(type(self))
        for name, value in vars(self).items():
            setattr(stage, name, value)
        return stage

    def staged(
        self, *, checks: tuple[Check, ...] = (), timeout: float | None = None,
        timeout_ctx: NodeContext | None = None,
    ) -> MapOperator:
        """Return a copy of this operator for one run, with fused nodes folded in.

        ``checks`` are the fused validate nodes' checks (in flow order),
        ``timeout``/``timeout_ctx`` a fused timeout node's deadline and context
        (``None`` keeps the map's own ``timeout``). ``self`` is left unchanged.
        """
        stage = self._copy()
        stage.checks = checks
        if timeout is not None:
            stage.timeout, stage.timeout_ctx = timeout, timeout_ctx
        return stage

    # -- schema -------------------------------------------------------------
    def input_fields(self) -> dict[str, Any] | None:
        return self.call.inputs

    def output_fields(self, upstream: dict[str, Any] | None) -> dict[str, Any] | None:
        if self.call.mode != "module" or upstream is None or self.call.outputs is None:
            return None
        return {**upstream, **self.call.outputs}

    # -- per item -----------------------------------------------------------
    def finish(self, item: Item, result: Any, ctx: NodeContext) -> list[Item]:
        """Turn a call result into the items to emit."""
        item.data = result
        return [item]

    async def _call_once(
        self, record: Any, ctx: NodeContext, item: Item, feedback: tuple[str, ...]
    ) -> Any:
        if self.timeout is None:
            return await self.call(record, ctx, item, feedback)
        try:
            with anyio.fail_after(self.timeout):
                return await self.call(record, ctx, item, feedback)
        except TimeoutError:
            owner = self.timeout_ctx or ctx
            error = ItemFailed(
                f"node {owner.name!r}: item took longer than {self.timeout} s",
                node=owner.name, item_id=item.id,
            )
            if self.timeout_ctx is None:
                raise error from None
            raise NodeFailure(self.timeout_ctx, error) from None

    async def _apply(self, record: Any, ctx: NodeContext, item: Item) -> Any:
        if not self.checks:
            return await self._call_once(record, ctx, item, ())
        feedback: tuple[str, ...] = ()
        failures = [0] * len(self.checks)
        for check in self.checks:
            check.ctx.stats.items_in += 1
        while True:
            result = await self._call_once(record, ctx, item, feedback)
            retry_with: str | None = None
            for i, check in enumerate(self.checks):
                message = await check.evaluate(result, item)
                if message is None:
                    continue
                failures[i] += 1
                await check.note_failure(message, item, failures[i])
                if failures[i] <= check.retries:
                    retry_with = message
                    break
                result = check.reject(result, message, item)  # raises NodeFailure for assert
            if retry_with is None:
                for check in self.checks:
                    check.ctx.stats.items_out += 1
                return result
            feedback = (*feedback, retry_with)

    async def process(self, item: Item, ctx: NodeContext) -> list[Item]:
        """Apply the callable with retries and policy; return items to emit.

        When the run is traced, this is the item's span in this node.
        """
        telemetry = ctx.services.telemetry
        if telemetry is None:
            return await self._process(item, ctx)
        with telemetry.item(ctx.name, item):
            return await self._process(item, ctx)

    async def _process(self, item: Item, ctx: NodeContext) -> list[Item]:
        attempts: dict[int, int] = {}
        cls = type(self)
        plain = (
            not self.checks and self.timeout is None
            and cls._call_once is MapOperator._call_once and cls._apply is MapOperator._apply
        )
        while True:
            try:
                if plain:  # no fused validate/timeout: call straight through
                    result = await self.call(item.data, ctx, item, ())
                else:
                    result = await self._apply(item.data, ctx, item)
                return self.finish(item, result, ctx)
            except NodeFailure as failure:
                owner, error = failure.ctx, failure.error
            except Exception as exc:
                owner, error = ctx, exc
            n = attempts.get(id(owner), 0)
            if n < owner.policy.retries:
                attempts[id(owner)] = n + 1
                await _backoff(owner, item, error, n + 1)
                continue
            await owner.fail(item, error)
            return []

    async def settle(
        self, item: Item, error: BaseException, ctx: NodeContext, rerun: Rerun
    ) -> list[Item]:
        """Retry a failed ``item`` per the policy (``rerun`` re-applies the function), else fail it.

        Raises:
            ItemFailed: The policy is ``"raise"`` and every attempt failed.
        """
        for attempt in range(1, ctx.policy.retries + 1):
            await _backoff(ctx, item, error, attempt)
            ok, value = (await rerun([item.data]))[0]
            if ok:
                try:
                    return self.finish(item, value, ctx)
                except Exception as exc:
                    value = exc
            error = value
        await ctx.fail(item, error)
        return []

    # -- driving ------------------------------------------------------------
    def _fast(self) -> bool:
        return self.call.sync and not self.checks and self.timeout is None

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        if self.executor != "inline" and self.call.sync:
            await self._run_offloaded(receive, out, ctx)
        elif self._fast():  # inline sync: concurrency would only add overhead
            await self._run_chunks(receive, out, ctx)
        elif self.concurrency == 1:
            await self._run_sequential(receive, out, ctx)
        else:
            await self._run_concurrent(receive, out, ctx)

    async def _run_offloaded(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        kind = ThreadExecutor if self.executor == "threads" else ProcessExecutor
        async with kind(self.call.fn, self.concurrency, ctx.name) as executor:
            if self._fast():
                await run_batches(self, executor, receive, out, ctx)
                return
            # fused validate/timeout: items one at a time, each call on the executor
            # (through a copy: the executor belongs to this run, not to the operator)
            stage = self._copy()
            stage.call = self.call.offloaded(partial(call_one, executor))
            if self.concurrency == 1:
                await stage._run_sequential(receive, out, ctx)
            else:
                await stage._run_concurrent(receive, out, ctx)

    async def _run_chunks(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        fn = self.call.fn
        stats = ctx.stats
        finish = self.finish
        for_map = type(self).finish is MapOperator.finish
        rerun = partial(_rerun_inline, fn)
        async for chunk in receive:
            start = time.perf_counter()
            stats.items_in += len(chunk)
            emitted: list[Item] = []
            for item in chunk:
                try:
                    result = fn(item.data)
                    if hasattr(result, "__await__"):
                        result = await result
                    if for_map:
                        item.data = result
                        emitted.append(item)
                    else:
                        if isinstance(result, AsyncIterable):  # flat_map: an async generator
                            result = [x async for x in result]
                        emitted.extend(finish(item, result, ctx))
                except Exception as exc:
                    emitted.extend(await self.settle(item, exc, ctx, rerun))
            stats.busy_s += time.perf_counter() - start
            await out.send(emitted)

    async def _run_sequential(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        stats = ctx.stats
        async for chunk in receive:
            stats.items_in += len(chunk)
            for item in chunk:
                start = time.perf_counter()
                emitted = await self.process(item, ctx)
                stats.busy_s += time.perf_counter() - start
                await out.send(emitted)

    async def _run_concurrent(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        feed = _Feed()
        if self.ordered:
            worker = _OrderedEmitter(self, out, ctx, feed, anyio.Semaphore(self.concurrency)).worker
        else:
            worker = _unordered_worker(self, out, ctx, feed)
        stats = ctx.stats
        async with anyio.create_task_group() as tg:
            for _ in range(self.concurrency):
                tg.start_soon(worker)
            try:
                async for chunk in receive:
                    stats.items_in += len(chunk)
                    await feed.put(chunk)
            finally:
                feed.close()


class _Feed:
    """Items handed from the node's input to its ``N`` long-lived workers.

    Holds at most one input chunk: the node pulls the next chunk only once
    every item of the current one is taken by a worker (backpressure).
    """

    __slots__ = ("closed", "drained", "idle", "items")

    def __init__(self) -> None:
        self.items: deque[Item] = deque()
        self.idle: deque[anyio.Event] = deque()
        self.drained: anyio.Event | None = None
        self.closed = False

    async def put(self, chunk: list[Item]) -> None:
        """Offer ``chunk`` to the workers; return once all of it is taken."""
        items, idle = self.items, self.idle
        items.extend(chunk)
        for _ in range(min(len(idle), len(chunk))):
            idle.popleft().set()
        while items:
            self.drained = drained = anyio.Event()
            await drained.wait()

    def close(self) -> None:
        """No more items: wake every idle worker so it can stop."""
        self.closed = True
        while self.idle:
            self.idle.popleft().set()

    async def take(self) -> Item | None:
        """Return the next item, waiting while none is queued; None at the end."""
        items = self.items
        while not items:
            if self.closed:
                return None
            wake = anyio.Event()
            self.idle.append(wake)
            await wake.wait()
        return self.take_nowait()

    def take_nowait(self) -> Item:
        """Return the next queued item (there must be one)."""
        items = self.items
        item = items.popleft()
        if not items and self.drained is not None:
            self.drained.set()
            self.drained = None
        return item


def _unordered_worker(op: MapOperator, out: Outputs, ctx: NodeContext, feed: _Feed) -> Any:
    stats = ctx.stats
    process = op.process
    clock = time.perf_counter
    # Twice the workers: finished results wait for the sender without
    # stalling the workers, and coalesce into bigger output chunks (with
    # ``concurrency`` slots a trivial map costs ~20-60 % more CPU per item).
    slots = anyio.Semaphore(2 * op.concurrency)
    batch = _Batcher(out, slots)

    async def worker() -> None:
        while True:
            # A slot is taken before the item and freed once its results are
            # sent, so at most ``2 * concurrency`` items sit between the
            # node's input and its output edge.
            try:
                slots.acquire_nowait()
            except anyio.WouldBlock:
                await slots.acquire()
            item = feed.take_nowait() if feed.items else await feed.take()
            if item is None:
                slots.release()
                return
            start = clock()
            try:
                emitted = await process(item, ctx)
            except BaseException:
                slots.release()
                raise
            stats.busy_s += clock() - start
            await batch.emit(emitted)

    return worker


class _Batcher:
    """Coalesce results finished while another worker is sending.

    One worker at a time sends; the others append their results and go back
    to work. Each appended result set holds its item's slot until the chunk
    carrying it is sent, so the results waiting here (or being sent) plus the
    items being processed never exceed the number of slots (backpressure:
    workers then wait for a slot before taking more input).
    """

    __slots__ = ("out", "owners", "pending", "sending", "slots")

    def __init__(self, out: Outputs, slots: anyio.Semaphore) -> None:
        self.out = out
        self.slots = slots
        self.pending: list[Item] = []
        self.owners = 0  # slots held by the results in ``pending``
        self.sending = False

    async def emit(self, items: list[Item]) -> None:
        """Send ``items`` (with whatever else is waiting) or leave them to the sender.

        The caller holds one slot for ``items``; it is released once they are
        sent (at once if there are none).
        """
        if not items:
            self.slots.release()
            return
        self.pending.extend(items)
        self.owners += 1
        if self.sending:
            return
        self.sending = True
        try:
            while self.pending:
                chunk, self.pending = self.pending, []
                owners, self.owners = self.owners, 0
                try:
                    await self.out.send(chunk)
                finally:
                    for _ in range(owners):
                        self.slots.release()
        finally:
            self.sending = False


class _OrderedEmitter:
    """Reorder buffer: results wait until every earlier item is emitted.

    A worker takes a slot before taking an item; the slot is freed only when
    that item's results are emitted, so at most ``concurrency`` items are
    between input and output.
    """

    def __init__(
        self, op: MapOperator, out: Outputs, ctx: NodeContext, feed: _Feed, slots: anyio.Semaphore
    ) -> None:
        self.op, self.out, self.ctx, self.feed, self.slots = op, out, ctx, feed, slots
        self.ready: dict[int, list[Item]] = {}
        self.next = 0
        self.taken = 0
        self.draining = False

    async def worker(self) -> None:
        feed, slots, stats = self.feed, self.slots, self.ctx.stats
        while True:
            try:
                slots.acquire_nowait()
            except anyio.WouldBlock:
                await slots.acquire()
            item = feed.take_nowait() if feed.items else await feed.take()
            if item is None:
                slots.release()
                return
            seq = self.taken
            self.taken += 1
            try:
                start = time.perf_counter()
                emitted = await self.op.process(item, self.ctx)
                stats.busy_s += time.perf_counter() - start
            except BaseException:
                slots.release()
                raise
            self.ready[seq] = emitted
            if not self.draining:
                await self._drain()

    async def _drain(self) -> None:
        self.draining = True
        try:
            while self.next in self.ready:
                chunk: list[Item] = []
                popped = 0
                while self.next in self.ready:
                    chunk.extend(self.ready.pop(self.next))
                    self.next += 1
                    popped += 1
                try:
                    await self.out.send(chunk)
                finally:
                    for _ in range(popped):
                        self.slots.release()
        finally:
            self.draining = False


async def _rerun_inline(fn: Callable[[Any], Any], records: list[Any]) -> list[Outcome]:
    """Apply ``fn`` again on the event loop (a retry on the inline path)."""
    try:
        result = fn(records[0])
        if hasattr(result, "__await__"):
            result = await result
    except Exception as exc:
        return [(False, exc)]
    return [(True, result)]


async def _backoff(ctx: NodeContext, item: Item, error: BaseException, attempt: int) -> None:
    delay = ctx.policy.backoff_s * (2 ** (attempt - 1)) if ctx.policy.backoff_s else 0.0
    if ctx.events:
        reason = f"{type(error).__name__}: {error}"
        await ctx.emit(Retry(attempt=attempt, reason=reason, delay_s=delay), item)
    ctx.stats.extra["retries"] = ctx.stats.extra.get("retries", 0) + 1
    if delay:
        await ctx.clock.sleep(delay)


class FlatMapOperator(MapOperator):
    """Map each record to zero or more records (an iterable or async iterable)."""

    kind = "flat_map"

    def output_fields(self, upstream: dict[str, Any] | None) -> dict[str, Any] | None:
        return None

    def finish(self, item: Item, result: Any, ctx: NodeContext) -> list[Item]:
        if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
            raise ItemFailed(
                f"flat_map node {ctx.name!r} must return an iterable of records, "
                f"got {type(result).__name__}",
                node=ctx.name, item_id=item.id,
            )
        children = [item.child(data, i) for i, data in enumerate(result)]
        ctx.expand(item, len(children) - 1)
        return children

    async def _call_once(
        self, record: Any, ctx: NodeContext, item: Item, feedback: tuple[str, ...]
    ) -> Any:
        result = await super()._call_once(record, ctx, item, feedback)
        if isinstance(result, AsyncIterable):
            return [x async for x in result]
        return result


class FilterOperator(MapOperator):
    """Keep the records for which ``fn(record)`` is true (sync or async)."""

    kind = "filter"

    def output_fields(self, upstream: dict[str, Any] | None) -> dict[str, Any] | None:
        return upstream

    def finish(self, item: Item, result: Any, ctx: NodeContext) -> list[Item]:
        if result:
            return [item]
        ctx.drop([item])
        ctx.stats.extra["dropped"] = ctx.stats.extra.get("dropped", 0) + 1
        return []
