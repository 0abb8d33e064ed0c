"""Exactly-once resume: the glue between the engine, its sinks and the run store.

The engine builds one :class:`Checkpointer` per run that has a ``run_id`` and a
keyed source. :meth:`Checkpointer.resume` (after the sinks are opened) rewinds
every sink to its last committed position and returns the ``skip`` predicate
for the source; :meth:`Checkpointer.commit` asks every sink for its position
(which flushes it) and then commits those positions together with the done keys
in one store transaction. After a crash, output written after the last commit
is cut by ``restore`` and its items run again, so each input appears exactly
once in the output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ..sinks._base import Sink
    from ._sqlite import Checkpoint, RunStore

__all__ = ["Checkpointer", "sink_ids"]


def sink_ids(sinks: Sequence[Sink]) -> list[str]:
    """Return a stable, unique id per sink: its name, suffixed ``#n`` on clashes."""
    seen: dict[str, int] = {}
    ids = []
    for sink in sinks:
        n = seen.get(sink.name, 0)
        seen[sink.name] = n + 1
        ids.append(sink.name if n == 0 else f"{sink.name}#{n}")
    return ids


class Checkpointer:
    """Commit progress and resume a run exactly once.

    Args:
        store: An open (or openable) :class:`RunStore`.
        run_id: The run's id; re-running with the same id resumes.
        sinks: Every sink of the flow, dead-letter sink included, in a stable
            order (positions are stored under :func:`sink_ids`).

    Contract for the engine:
        1. open the sinks, then ``skip = await checkpointer.resume()``;
        2. pass ``skip`` to ``source.records(skip=skip)``;
        3. periodically, with no ``write`` in progress, ``await
           checkpointer.commit(keys)`` where ``keys`` are the keys of every
           input whose outputs (all of them, dead letters too) have been
           passed to ``write`` since the last commit, and no other keys.
    """

    def __init__(self, store: RunStore, run_id: str, sinks: Sequence[Sink]) -> None:
        self.store = store
        self.run_id = run_id
        self.sinks = list(sinks)
        self._ids = sink_ids(self.sinks)
        self.resumed: Checkpoint | None = None
        self.committed = 0

    async def resume(self, *, load_done: bool = True) -> Callable[[str], bool]:
        """Rewind the sinks to the last commit and return the skip predicate.

        For a new run it records the sinks' starting positions, so that a
        crash before the first commit still rewinds to where the run began.
        With ``load_done=False`` the done keys stay in the store (the
        predicate then never skips; ask ``RunStore.claim_keys`` instead),
        which keeps memory flat however many keys the run has.
        """
        checkpoint = await self.store.load_checkpoint(self.run_id, with_done=load_done)
        self.resumed = checkpoint
        if checkpoint is None:
            await self.commit(())
            return _never
        for sink_id, sink in zip(self._ids, self.sinks, strict=True):
            if sink_id in checkpoint.positions:
                await sink.restore(checkpoint.positions[sink_id])
        done = checkpoint.done
        return done.__contains__ if done else _never

    async def commit(self, keys: Iterable[str]) -> None:
        """Checkpoint every sink, then commit the positions with ``keys`` at once."""
        positions = {}
        for sink_id, sink in zip(self._ids, self.sinks, strict=True):
            positions[sink_id] = await sink.checkpoint()
        key_list = list(keys)
        await self.store.commit(self.run_id, key_list, positions)
        self.committed += len(key_list)


def _never(key: str) -> bool:
    return False
