"""Exactly-once bookkeeping: which source keys are fully done, and when to commit.

With a keyed source and a ``run_id`` the engine counts, per source key, the
items still in flight that descend from it (fan-out and ``flat_map`` add to
the count, sinks, filters and dead letters take away). A key whose count
reaches zero is *done*: all of its outputs have been passed to the sinks. The
:class:`WriteBarrier` keeps sink writes and commits apart, so that a commit
sees sink positions that contain exactly the outputs of the done keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from ._item import Item

__all__ = ["KeyTracker", "WriteBarrier"]


class KeyTracker:
    """Reference counts of in-flight items per source key."""

    __slots__ = ("_ready", "done_keys", "every", "pending")

    def __init__(self, every: int = 1000) -> None:
        self.pending: dict[str, int] = {}
        self.done_keys: list[str] = []
        self.every = max(1, every)
        self._ready = anyio.Event()

    @property
    def ready(self) -> anyio.Event:
        """Return the event set once ``every`` keys are done since the last take."""
        return self._ready

    def admit(self, key: str | None) -> None:
        """Count one item for ``key`` (read from a source)."""
        if key is not None:
            self.pending[key] = self.pending.get(key, 0) + 1

    def fork(self, item: Item, extra: int) -> None:
        """Add ``extra`` (may be negative) items for each key of ``item``."""
        for key in item.keys():
            if key is not None:
                self._add(key, extra)

    def done(self, items: Iterable[Item]) -> None:
        """Finish ``items``: each of their keys has one item fewer in flight."""
        for item in items:
            parts = item.parts
            if parts is None:
                if item.key is not None:
                    self._add(item.key, -1)
            else:
                for key in parts:
                    if key is not None:
                        self._add(key, -1)

    def _add(self, key: str, delta: int) -> None:
        n = self.pending.get(key, 0) + delta
        if n > 0:
            self.pending[key] = n
            return
        self.pending.pop(key, None)
        self.done_keys.append(key)
        if len(self.done_keys) >= self.every:
            self._ready.set()

    def take(self) -> list[str]:
        """Return the keys done since the last call, and forget them."""
        keys, self.done_keys = self.done_keys, []
        self._ready = anyio.Event()
        return keys


class WriteBarrier:
    """Many concurrent sink writes, or one commit, never both."""

    __slots__ = ("_idle", "_open", "committing", "writers")

    def __init__(self) -> None:
        self.writers = 0
        self.committing = False
        self._idle: anyio.Event | None = None
        self._open: anyio.Event | None = None

    async def enter_write(self) -> None:
        """Wait for any commit to finish, then count a write in progress."""
        while self.committing:
            if self._open is None:
                self._open = anyio.Event()
            await self._open.wait()
        self.writers += 1

    def exit_write(self) -> None:
        """Count a write as finished."""
        self.writers -= 1
        if self.writers == 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def enter_commit(self) -> None:
        """Stop new writes and wait for the running ones to finish."""
        while self.committing:
            if self._open is None:
                self._open = anyio.Event()
            await self._open.wait()
        self.committing = True
        try:
            while self.writers:
                if self._idle is None:
                    self._idle = anyio.Event()
                await self._idle.wait()
        except BaseException:
            self.exit_commit()
            raise

    def exit_commit(self) -> None:
        """Let writes go on."""
        self.committing = False
        if self._open is not None:
            self._open.set()
            self._open = None
