"""A virtual clock for tests: time moves only when the test says so.

:class:`FakeClock` implements the ``Clock`` protocol (``now()``, ``async
sleep(s)``). A ``sleep`` blocks until the test calls :meth:`FakeClock.advance`
past its deadline (or, with ``autojump``, until every task is blocked, when
the clock jumps to the earliest deadline, like trio's ``MockClock``). So time
windows, batch timeouts and rate limits are tested exactly, on both anyio
backends, with no wall-clock sleeps.
"""

from __future__ import annotations

import heapq
import itertools

import anyio
import anyio.lowlevel

__all__ = ["FakeClock"]


class FakeClock:
    """A manually advanced clock (``now``, ``sleep``, ``advance``).

    Args:
        start: The initial value of ``now()``.

    Example:
        >>> clock = FakeClock()
        >>> clock.advance(1.5)
        >>> clock.now()
        1.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()
        self.sleeps: list[float] = []

    def now(self) -> float:
        """Return the virtual time."""
        return self._now

    @property
    def sleeping(self) -> int:
        """Return how many sleeps are waiting for time to advance."""
        return sum(1 for _, _, ev in self._sleepers if not ev.is_set())

    def next_deadline(self) -> float | None:
        """Return the earliest deadline of a waiting sleep, or None."""
        while self._sleepers and self._sleepers[0][2].is_set():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def sleep(self, seconds: float) -> None:
        """Block until virtual time reaches ``now() + seconds`` (cancellable)."""
        seconds = max(0.0, float(seconds))
        self.sleeps.append(seconds)
        if seconds == 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), event))
        try:
            await event.wait()
        finally:
            # A cancelled sleep is done too: ``sleeping`` and ``next_deadline``
            # (hence ``autojump``) must not count it (e.g. a flow's linger timer).
            event.set()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake the sleeps now due.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"cannot move a FakeClock backwards (got {seconds!r})")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            heapq.heappop(self._sleepers)[2].set()

    async def step(self, seconds: float) -> None:
        """Advance by ``seconds``, then wait until every task is blocked again."""
        await anyio.wait_all_tasks_blocked()
        self.advance(seconds)
        await anyio.wait_all_tasks_blocked()

    async def autojump(self, max_jumps: int = 100_000) -> None:
        """Jump to the next deadline whenever every task is blocked (run as a task).

        Cancel the task (or its scope) to stop; ``max_jumps`` bounds the loop.
        """
        for _ in range(max_jumps):
            await anyio.wait_all_tasks_blocked()
            deadline = self.next_deadline()
            if deadline is None:
                await anyio.sleep(0.001)
                continue
            self.advance(max(0.0, deadline - self._now))

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleeping={self.sleeping})"
