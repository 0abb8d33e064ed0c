"""Exactly-once bookkeeping: which source keys are fully done, and when to commit.

With a keyed source and a ``run_id`` the engine counts, per source key, the
items still in flight that descend from it (fan-out and ``flat_map`` add to
the count, sinks, filters and dead letters take away). A key whose count
reaches zero is *done*: all of its outputs have been passed to the sinks. The
:class:`WriteBarrier` keeps sink writes and commits apart, so that a commit
sees sink positions that contain exactly the outputs of the done keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ..errors import DuplicateKeyError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ..operators._item import Item

__all__ = ["DUPLICATE_POLICIES", "KeyIndex", "KeyTracker", "WriteBarrier"]

DUPLICATE_POLICIES = ("dead_letter", "raise")
"""What a run does with a repeated source id: dead-letter the repeat, or fail."""


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
        for key in item.keys():  # noqa: SIM118 - Item.keys(): its source keys, not a dict
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


class KeyIndex:
    """One keyed source's view of the run store's key index (see ``claim_keys``).

    The source task hands it each chunk of records; the store answers, per
    record, the key to commit it under, whether it repeats an id already met
    in this pass, and (on a resumed run) whether it is already done. Nothing
    per key is kept in memory, so a run of millions of keys stays flat.

    Args:
        store: The open ``RunStore``.
        run_id: The run.
        pass_no: The lease's pass number (tells this pass from a crashed one).
        check_done: Look up done keys (only a resumed run has any).
        on_duplicate: One of :data:`DUPLICATE_POLICIES`.
        source: The source's name, for error messages.
    """

    __slots__ = ("check_done", "on_duplicate", "pass_no", "run_id", "source", "store")

    def __init__(
        self, store: Any, run_id: str, pass_no: int, *, check_done: bool,
        on_duplicate: str, source: str,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.pass_no = pass_no
        self.check_done = check_done
        self.on_duplicate = on_duplicate
        self.source = source

    async def claim(
        self, entries: Sequence[tuple[str | None, int, str]]
    ) -> list[tuple[str, int | None, bool]]:
        """Return ``(ident, first, done)`` per ``(key, ordinal, position_key)``."""
        return await self.store.claim_keys(  # type: ignore[no-any-return]
            self.run_id, self.pass_no, entries, check_done=self.check_done
        )

    def duplicate(self, key: str, ordinal: int, first: int) -> DuplicateKeyError:
        """Return the error for record ``ordinal`` repeating ``key`` of record ``first``.

        Raises:
            DuplicateKeyError: With ``on_duplicate="raise"`` (fails the run).
        """
        err = DuplicateKeyError(
            f"{self.source}: record {ordinal} repeats id {key!r} of record {first}; expected "
            "unique ids (ids compare as strings, so 7 and \"7\" are the same id); the first "
            "copy is kept",
            path=self.source,
        )
        if self.on_duplicate == "raise":
            raise err
        return err


class WriteBarrier:
    """Many concurrent sink writes, or one commit, never both.

    ``torn`` is set when a write ended with an exception (cancelled or
    failed): the sinks may then hold part of a batch whose keys are not done,
    so no commit may follow.
    """

    __slots__ = ("_idle", "_open", "committing", "torn", "writers")

    def __init__(self) -> None:
        self.torn = False
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

    def exit_write(self, torn: bool = False) -> None:
        """Count a write as finished (``torn``: it raised part-way)."""
        self.torn = self.torn or torn
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
