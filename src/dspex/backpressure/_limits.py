"""In-flight limits: the global admission count and the source gate.

:class:`InFlightLimiter` counts the items admitted by the sources and not yet
finished (written to a sink, dropped, or dead-lettered). Sources wait for room
before admitting more, so the number of items inside a running flow never
exceeds ``limit`` (plus the children of ``flat_map``, which only ever shrink
back). The limit can be *shrunk* under memory pressure and restored later.
:class:`SourceGate` is the switch the memory monitor flips to pause every
source at once. Both are plain counters plus ``anyio.Event``: checking them
costs an attribute read, waiting is a single event.
"""

from __future__ import annotations

import anyio

from ..errors import ConfigError

__all__ = ["InFlightLimiter", "SourceGate"]


class InFlightLimiter:
    """The global in-flight limit, counted in items.

    Args:
        limit: The most items admitted and not yet finished.
        floor: The limit never shrinks below this (so that a ``batch`` of
            ``floor`` items can always fill).
    """

    __slots__ = ("_room", "base_limit", "floor", "in_flight", "limit", "peak")

    def __init__(self, limit: int, *, floor: int = 1) -> None:
        if limit < 1:
            raise ConfigError(f"max_in_flight must be >= 1, got {limit!r}")
        self.base_limit = limit
        self.limit = limit
        self.floor = max(1, min(floor, limit))
        self.in_flight = 0
        self.peak = 0
        self._room: anyio.Event | None = None

    @property
    def full(self) -> bool:
        """Return True when no more items may be admitted right now."""
        return self.in_flight >= self.limit

    def admit(self, n: int = 1) -> None:
        """Count ``n`` more items in flight (never blocks; call ``wait`` first)."""
        self.in_flight += n
        if self.in_flight > self.peak:
            self.peak = self.in_flight

    def release(self, n: int = 1) -> None:
        """Count ``n`` items as finished and wake a waiting source if room."""
        self.in_flight -= n
        room = self._room
        if room is not None and self.in_flight < self.limit:
            self._room = None
            room.set()

    async def wait(self) -> None:
        """Block until fewer than ``limit`` items are in flight."""
        while self.in_flight >= self.limit:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()

    def shrink(self, factor: float) -> None:
        """Lower the limit to ``factor`` of its base (not below ``floor``)."""
        self.limit = max(self.floor, int(self.base_limit * factor))

    def restore(self) -> None:
        """Put the limit back to its base value and wake waiters."""
        self.limit = self.base_limit
        self.release(0)


class SourceGate:
    """A switch that pauses every source of a run; sources poll ``paused``."""

    __slots__ = ("_resumed", "paused", "pauses")

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self._resumed = anyio.Event()

    def pause(self) -> None:
        """Pause the sources (they stop pulling before their next record)."""
        if not self.paused:
            self.paused = True
            self.pauses += 1
            self._resumed = anyio.Event()

    def resume(self) -> None:
        """Let the sources pull again."""
        if self.paused:
            self.paused = False
            self._resumed.set()

    async def wait(self) -> None:
        """Block while the gate is paused."""
        while self.paused:
            await self._resumed.wait()
