"""The ends of a flow: source tasks, sink tasks, dead letters and the event bus.

A *source task* pulls records from a :class:`~dspex.sources.Source` (wrapped
in ``aclosing``), wraps them in items and sends them downstream in chunks. It
stops pulling while the memory monitor has the sources paused and while the
run's in-flight limit is reached, and sends a partial chunk when it would
wait, or after ``linger_s`` on the run's clock (so a slow source still
delivers promptly); a helper task sends that lingering chunk, and it is
stopped only once it holds no items (see :meth:`SourceTask.flush`). In a
checkpointed run each chunk is keyed against the run store's index on its way
out (done records dropped, bad and repeated ones dead-lettered under their
position key). A *sink task* writes whole chunks
(coalescing whatever else is already queued) to its sinks. Dead letters and
module events each go through one bounded channel to one task that writes
them.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ..operators._item import DeadLetter, Item

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream

    from ..backpressure._edge import BufferPolicy, EdgeReceiver
    from ..backpressure._limits import SourceGate
    from ..errors import SourceError
    from ..events import Event
    from ..operators._base import NodeContext, Outputs
    from ..sinks._base import Sink
    from ..sources._base import Source
    from ._tracking import KeyIndex, WriteBarrier

__all__ = ["SourceTask", "run_dead_letters", "run_events", "run_sink"]

MAX_SINK_BATCH = 4096
MAX_EVENT_BATCH = 1024


class SourceTask:
    """Pull one source into the flow, in chunks, under pause and admission."""

    def __init__(
        self, source: Source, out: Outputs, ctx: NodeContext, gate: SourceGate,
        buffer: BufferPolicy, *, prefix: str = "", index: KeyIndex | None = None,
    ) -> None:
        self.source = source
        self.out = out
        self.ctx = ctx
        self.gate = gate
        self.chunk = buffer.chunk
        self.linger_s = buffer.linger_s
        self.prefix = prefix
        self.index = index
        self.pending: list[Item] = []
        self.meta: list[tuple[int, SourceError | None]] = []  # per pending item, with index
        self.started = 0.0
        self.have_pending = anyio.Event()
        self.sending = anyio.Lock()

    async def flush(self) -> None:
        """Send the pending partial chunk, if any.

        Invariant: items leave ``pending`` only under ``sending``, which is
        held until ``send`` returns. The linger task is cancelled when the
        source ends, so :meth:`run` flushes first: that waits for a linger
        send in flight (blocked on a full edge) to finish. Cancelling the
        linger mid-send would drop its chunk silently: the run would report
        ``completed`` without those items (never committed, never written).
        """
        async with self.sending:
            if self.pending:
                limiter = self.ctx.services.limiter
                if limiter.in_flight > limiter.peak:
                    limiter.peak = limiter.in_flight
                chunk, self.pending = self.pending, []
                self.have_pending = anyio.Event()
                if self.index is not None:
                    meta, self.meta = self.meta, []
                    chunk = await self._admit(self.index, chunk, meta)
                if chunk:
                    await self.out.send(chunk)

    async def _admit(
        self, index: KeyIndex, chunk: list[Item], meta: list[tuple[int, SourceError | None]]
    ) -> list[Item]:
        """Key a chunk against the run store: drop done records, dead-letter bad ones.

        A bad record, and a record repeating an id met earlier in this pass,
        is committed under its position key, so a resumed run skips it
        instead of dead-lettering it again: ``"@line:N"`` when the error names
        a line of the source's own file (one file, so lines are unique), else
        ``"@pos:N"``, the record's 1-based number in the source.
        """
        entries = []
        path = getattr(self.source, "path", None)
        for item, (seq, error) in zip(chunk, meta, strict=True):
            line = getattr(error, "line", None)
            own = path is not None and getattr(error, "path", None) == path
            where = f"@line:{line}" if own and isinstance(line, int) else f"@pos:{seq}"
            entries.append((item.key if error is None else None, seq, self.prefix + where))
        verdicts = await index.claim(entries)
        tracker, keep, dropped = self.ctx.services.tracker, [], 0
        for item, (seq, error), (ident, first, done) in zip(chunk, meta, verdicts, strict=True):
            if done:  # committed by an earlier pass: skip it, as a source's skip would
                dropped += 1
                continue
            if tracker is not None:
                tracker.admit(ident)
            if error is None and first is None:
                keep.append(item)
                continue
            if error is None:
                error = index.duplicate(item.key or "", seq, first or 0)
            item.id = item.key = ident
            await self._bad_record(item, error)
        if dropped:
            self.ctx.stats.items_in -= dropped
            self.ctx.services.limiter.release(dropped)
        return keep

    async def _wait_room(self) -> None:
        limiter = self.ctx.services.limiter
        if self.gate.paused or limiter.full:
            await self.flush()
            await self.gate.wait()
            await limiter.wait()
            await self.gate.wait()

    def _records(self) -> Any:
        # with an index every record is yielded (no ``skip``), so that a record's
        # number in the source (its ordinal) is the same in every pass
        return self.source.records()

    async def run(self) -> None:
        """Pull until the source ends; a lingering partial chunk is sent by a helper."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._linger)
            try:
                await self._pull()
                await self.flush()  # also waits for a linger send in flight
            finally:
                tg.cancel_scope.cancel()  # on success the linger holds no items now

    async def _pull(self) -> None:
        ctx, stats = self.ctx, self.ctx.stats
        limiter, tracker = ctx.services.limiter, ctx.services.tracker
        prefix, chunk, seq, index = self.prefix, self.chunk, 0, self.index
        async with aclosing(self._records()) as records:
            gate = self.gate
            await self._wait_room()
            async for record in records:
                seq += 1
                stats.items_in += 1
                key = None if record.key is None else prefix + record.key
                item = Item(key if key is not None else f"{prefix}{seq}", record.data, key)
                limiter.in_flight += 1  # inlined limiter.admit(); peak noted on flush
                if index is not None:
                    self.meta.append((seq, record.error))  # keyed and admitted on flush
                elif tracker is not None:
                    tracker.admit(key)
                if record.error is not None and index is None:
                    await self._bad_record(item, record.error)
                else:
                    if not self.pending:
                        self.started = self.ctx.clock.now()
                        self.have_pending.set()
                    self.pending.append(item)
                    if len(self.pending) >= chunk:
                        await self.flush()
                # wait *before* pulling the next record: a paused source is not pulled
                if gate.paused or limiter.in_flight >= limiter.limit:
                    await self._wait_room()

    async def _bad_record(self, item: Item, error: BaseException) -> None:
        self.ctx.stats.items_failed += 1
        dead_letter = self.ctx.services.dead_letter
        if dead_letter is None:
            self.ctx.drop([item])
        else:
            await dead_letter(DeadLetter(item, error, self.ctx.name))

    async def _linger(self) -> None:
        # Timed on the run's clock, so a FakeClock run flushes only when the
        # test advances time (or the source waits or ends), never by accident.
        clock = self.ctx.clock
        while True:
            await self.have_pending.wait()
            wait = self.started + self.linger_s - clock.now()
            if wait > 0:
                await clock.sleep(wait)
            elif self.pending:
                await self.flush()
            else:
                await anyio.lowlevel.checkpoint()


async def run_sink(
    receive: EdgeReceiver, sinks: Sequence[Sink], ctx: NodeContext, barrier: WriteBarrier | None
) -> None:
    """Write every chunk from ``receive`` to each sink, coalescing queued chunks."""
    stats = ctx.stats
    services = ctx.services
    async for chunk in receive:
        batch = chunk
        more = receive.receive_nowait()
        if more is not None:
            batch = list(chunk)
            while more is not None:
                batch.extend(more)
                if len(batch) >= MAX_SINK_BATCH:
                    break
                more = receive.receive_nowait()
        n = len(batch)
        stats.items_in += n
        start = time.perf_counter()
        records = [item.data for item in batch]
        if barrier is not None:
            await barrier.enter_write()
        torn = True
        try:
            for sink in sinks:
                await sink.write(records)
            stats.items_out += n
            if services.tracker is not None:
                services.tracker.done(batch)
            torn = False
        finally:
            if barrier is not None:
                barrier.exit_write(torn)
        services.limiter.release(n)
        stats.busy_s += time.perf_counter() - start


async def run_dead_letters(
    receive: MemoryObjectReceiveStream[DeadLetter], sink: Sink | None, kept: list[DeadLetter],
    ctx: NodeContext, barrier: WriteBarrier | None, *, keep_max: int,
) -> None:
    """Write dead letters to ``sink`` (or keep up to ``keep_max`` in ``kept``)."""
    with receive:
        await _dead_letter_loop(receive, sink, kept, ctx, barrier, keep_max=keep_max)


async def _dead_letter_loop(
    receive: MemoryObjectReceiveStream[DeadLetter], sink: Sink | None, kept: list[DeadLetter],
    ctx: NodeContext, barrier: WriteBarrier | None, *, keep_max: int,
) -> None:
    services = ctx.services
    async for first in receive:
        batch = [first]
        while len(batch) < MAX_SINK_BATCH:
            try:
                batch.append(receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        items = [dl.item for dl in batch]
        ctx.stats.items_in += len(batch)
        if barrier is not None:
            await barrier.enter_write()
        torn = True
        try:
            if sink is not None:
                await sink.write([dl.to_record() for dl in batch])
            else:
                kept.extend(batch[: max(0, keep_max - len(kept))])
            ctx.stats.items_out += len(batch)
            if services.tracker is not None:
                services.tracker.done(items)
            torn = False
        finally:
            if barrier is not None:
                barrier.exit_write(torn)
        services.limiter.release(len(batch))


async def run_events(
    receive: MemoryObjectReceiveStream[Event], routes: dict[str | None, list[Sink]]
) -> None:
    """Deliver each event to the event-aware sinks downstream of its node.

    Events are forwarded as soon as this task runs, never held back for a
    batch to fill: it takes the first event, plus whatever else is already
    queued (at most ``MAX_EVENT_BATCH``), and hands that to each sink in one
    call (``write_events`` when the sink has it, else ``write_event`` per
    event). Under load this coalesces naturally, so a WebSocket client gets
    one socket write per batch instead of one per event.
    """
    everyone = routes.get(None, [])
    with receive:
        async for first in receive:
            batch = [first]
            while len(batch) < MAX_EVENT_BATCH:
                try:
                    batch.append(receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            await _deliver(batch, routes, everyone)


async def _deliver(batch: list[Event], routes: dict[str | None, list[Sink]], everyone: list[Sink]) -> None:
    per_sink: dict[int, tuple[Sink, list[Event]]] = {}
    for event in batch:
        for sink in routes.get(event.node, everyone):
            entry = per_sink.get(id(sink))
            if entry is None:
                per_sink[id(sink)] = (sink, [event])
            else:
                entry[1].append(event)
    for sink, events in per_sink.values():
        write_events = getattr(sink, "write_events", None)
        if write_events is not None:
            await write_events(events)
        else:
            for event in events:
                await sink.write_event(event)
