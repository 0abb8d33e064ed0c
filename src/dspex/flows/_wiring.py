"""Run wiring helpers: the sinks of a run, event routes, and checkpointing.

``unique_sinks`` lists each sink object once (a sink may end several
branches). ``event_routes`` finds, for every node, the event-aware sinks
downstream of it, so module events reach only the sinks they feed.
:class:`Checkpointing` ties a run with a ``run_id`` and a keyed source to the
run store: it holds the run's lease, resumes (rewinding sinks; done keys are
skipped through the store's key index), commits done keys with sink
positions every N keys or T seconds, once at the end, and once more on
cancellation or failure.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import RunLeaseError
from ..store import Checkpointer, RunStore
from ._tracking import KeyIndex, KeyTracker, WriteBarrier

if TYPE_CHECKING:
    from ..sinks._base import Sink
    from ._graph import NodeSpec, Plan
    from ._runner import RunOptions

__all__ = ["Checkpointing", "event_routes", "unique_sinks"]

log = logging.getLogger("dspex.flows")


def unique_sinks(nodes: list[NodeSpec], dead_letter: Sink | None) -> list[Sink]:
    """Return every sink of the flow once, in graph order, dead-letter sink last."""
    seen: dict[int, Sink] = {}
    for node in nodes:
        for sink in node.sinks:
            seen.setdefault(id(sink), sink)
    if dead_letter is not None:
        seen.setdefault(id(dead_letter), dead_letter)
    return list(seen.values())


def event_routes(plan: Plan) -> tuple[dict[str | None, list[Sink]], set[str]]:
    """Return (node name -> event-aware sinks downstream, names with any).

    The ``None`` entry lists every event-aware sink (for run-level events).
    """
    below: dict[NodeSpec, list[Sink]] = {}
    for node in reversed(plan.nodes):
        found: dict[int, Sink] = {}
        for sink in node.sinks:
            if sink.wants_events:
                found[id(sink)] = sink
        for port in node.children:
            for child in port:
                for sink in below[child]:
                    found[id(sink)] = sink
        below[node] = list(found.values())
    everyone: dict[int, Sink] = {}
    for sinks in below.values():
        for sink in sinks:
            everyone[id(sink)] = sink
    if not everyone:
        return {}, set()
    routes: dict[str | None, list[Sink]] = {n.name: s for n, s in below.items() if s}
    routes[None] = list(everyone.values())
    return routes, {name for name in routes if name is not None}


class Checkpointing:
    """Exactly-once resume for one run (store, lease, checkpointer, key tracker).

    :meth:`create` opens the store and takes the run's lease *before* any
    sink is opened, so a second live runner fails without touching the
    output. While the run lives, :meth:`heartbeat` renews the lease.
    """

    def __init__(
        self, store: Any, owns_store: bool, checkpointer: Any, lease: Any, options: RunOptions
    ) -> None:
        self.store = store
        self.owns_store = owns_store
        self.checkpointer = checkpointer
        self.lease = lease
        self.lost = False  # the lease was taken over: never commit again
        self.ttl_s = options.lease_ttl_s
        self.on_duplicate = options.on_duplicate
        self.tracker = KeyTracker(options.checkpoint_every)
        self.barrier = WriteBarrier()
        self.interval = options.checkpoint_interval_s
        self.resumed = False

    @property
    def committed(self) -> int:
        """Return how many keys this run committed."""
        return int(self.checkpointer.committed)

    @classmethod
    async def create(
        cls, plan: Plan, sinks: list[Sink], options: RunOptions, run_id: str
    ) -> Checkpointing | None:
        """Return the checkpointing for a run, or None (no run_id / no keyed source).

        Raises:
            RunLeaseError: Another live runner holds the run (nothing opened).
            StoreError: The store cannot be opened.
        """
        if options.run_id is None:
            return None
        if not any(getattr(n.source, "id_field", None) for n in plan.nodes if n.source):
            log.info("run %s: no keyed source, so no checkpoints", run_id)
            return None
        store = options.store
        owns = not isinstance(store, RunStore)
        if owns:
            store = RunStore() if store is None else RunStore(os.fspath(store))
        try:
            await store.open()
            lease = await store.acquire_lease(run_id, uuid.uuid4().hex, ttl_s=options.lease_ttl_s)
        except BaseException:
            if owns:
                with anyio.CancelScope(shield=True):
                    await store.aclose()
            raise
        if lease.took_over:
            log.warning("run %s: took over the lease of a dead runner (expired, or its pid is gone)", run_id)
        return cls(store, owns, Checkpointer(store, run_id, sinks), lease, options)

    async def resume(self) -> None:
        """Rewind the sinks to the last commit (done keys are asked per chunk)."""
        await self.checkpointer.resume(load_done=False)
        self.resumed = self.checkpointer.resumed is not None

    def index(self, source: Any) -> KeyIndex | None:
        """Return the key index for ``source`` (``None`` for an unkeyed one)."""
        if not getattr(source, "id_field", None):
            return None
        return KeyIndex(
            self.store, self.lease.run_id, self.lease.pass_no, check_done=self.resumed,
            on_duplicate=self.on_duplicate, source=getattr(source, "name", "source"),
        )

    async def commit(self) -> None:
        """Commit the keys done so far with the sinks' positions (no write in between).

        Shielded: once the keys are taken, the commit finishes even if the
        helper task running it is cancelled (so no done key is ever lost).
        Nothing is committed once a sink write was torn (the run is failing
        and the sinks may hold part of a batch) or the lease was lost.
        """
        with anyio.CancelScope(shield=True):
            await self.barrier.enter_commit()
            try:
                keys = self.tracker.take()
                if keys and not self.lost and not self.barrier.torn:
                    await self.checkpointer.commit(keys)
            finally:
                self.barrier.exit_commit()

    async def salvage(self, timeout_s: float) -> None:
        """Commit once more after a cancelled or failed run, shielded, within ``timeout_s``.

        The keys done so far had all their outputs written, so committing
        them with the sinks' flushed positions keeps exactly-once and saves
        redoing them (their LM calls) on resume. Skipped when a sink write was
        torn (the sinks may hold part of an unfinished batch) or the lease was
        lost; a store error here is logged, not raised (the run's own error
        or cancellation matters more).
        """
        if self.barrier.torn or self.lost or not self.tracker.done_keys:
            if self.barrier.torn:
                log.warning("run %s: a sink write was interrupted; not committing", self.lease.run_id)
            return
        with anyio.move_on_after(timeout_s, shield=True) as scope:
            try:
                await self.commit()
            except Exception as exc:
                log.warning("run %s: final commit failed: %s", self.lease.run_id, exc)
        if scope.cancelled_caught:
            log.warning("run %s: final commit timed out after %s s", self.lease.run_id, timeout_s)

    async def loop(self, clock: Any) -> None:
        """Commit every ``every`` done keys or ``interval`` seconds (cancel to stop)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._tick, clock)
            while True:
                await self.tracker.ready.wait()
                await self.commit()

    async def _tick(self, clock: Any) -> None:
        while True:
            await clock.sleep(self.interval)
            if self.tracker.done_keys:
                self.tracker.ready.set()

    async def heartbeat(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Renew the lease every third of its ttl until cancelled.

        Real time (``anyio.sleep``), not the run's clock: the lease is read by
        other processes, which only share the wall clock.

        Raises:
            RunLeaseError: Another runner took the lease over (fails the run).
        """
        task_status.started()
        while True:
            await anyio.sleep(self.ttl_s / 3)
            try:
                self.lease = await self.store.renew_lease(self.lease, ttl_s=self.ttl_s)
            except RunLeaseError:
                self.lost = True
                raise

    async def aclose(self) -> None:
        """Release the lease, and close the store if this run opened it."""
        with anyio.CancelScope(shield=True):
            try:
                if not self.lost:
                    await self.store.release_lease(self.lease)
            finally:
                if self.owns_store:
                    await self.store.aclose()
