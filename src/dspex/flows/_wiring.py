"""Run wiring helpers: the sinks of a run, event routes, and checkpointing.

``unique_sinks`` lists each sink object once (a sink may end several
branches). ``event_routes`` finds, for every node, the event-aware sinks
downstream of it, so module events reach only the sinks they feed.
:class:`Checkpointing` ties a run with a ``run_id`` and a keyed source to the
run store: it resumes (rewinding sinks, skipping done keys), commits done keys
with sink positions every N keys or T seconds, and once at the end.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import anyio

from ._tracking import KeyTracker, WriteBarrier

if TYPE_CHECKING:
    from collections.abc import Callable

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
    """Exactly-once resume for one run (store, checkpointer, key tracker)."""

    def __init__(self, store: Any, owns_store: bool, checkpointer: Any, every: int, interval: float) -> None:
        self.store = store
        self.owns_store = owns_store
        self.checkpointer = checkpointer
        self.tracker = KeyTracker(every)
        self.barrier = WriteBarrier()
        self.interval = interval
        self.resumed = False

    @property
    def committed(self) -> int:
        """Return how many keys this run committed."""
        return int(self.checkpointer.committed)

    @classmethod
    async def create(
        cls, plan: Plan, sinks: list[Sink], options: RunOptions, run_id: str
    ) -> Checkpointing | None:
        """Return the checkpointing for a run, or None (no run_id / no keyed source)."""
        if options.run_id is None:
            return None
        if not any(getattr(n.source, "id_field", None) for n in plan.nodes if n.source):
            log.info("run %s: no keyed source, so no checkpoints", run_id)
            return None
        from ..store import Checkpointer, RunStore

        store = options.store
        owns = not isinstance(store, RunStore)
        if owns:
            store = RunStore() if store is None else RunStore(os.fspath(store))
        await store.open()
        return cls(store, owns, Checkpointer(store, run_id, sinks),
                   options.checkpoint_every, options.checkpoint_interval_s)

    async def resume(self) -> Callable[[str], bool]:
        """Rewind the sinks to the last commit; return the skip predicate."""
        skip = await self.checkpointer.resume()
        self.resumed = self.checkpointer.resumed is not None
        return skip  # type: ignore[no-any-return]

    async def commit(self) -> None:
        """Commit the keys done so far with the sinks' positions (no write in between).

        Shielded: once the keys are taken, the commit finishes even if the
        helper task running it is cancelled (so no done key is ever lost).
        """
        with anyio.CancelScope(shield=True):
            await self.barrier.enter_commit()
            try:
                keys = self.tracker.take()
                if keys:
                    await self.checkpointer.commit(keys)
            finally:
                self.barrier.exit_commit()

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

    async def aclose(self) -> None:
        """Close the store if this run opened it."""
        if self.owns_store:
            await self.store.aclose()
