"""Time as an injectable dependency: the ``Clock`` protocol and its clocks.

Backoff, rate limits and circuit breakers read time and sleep only through a
``Clock``, so tests can swap in :class:`SteppingClock` and run in virtual time on
both anyio backends. :class:`AnyioClock` is the real one: ``now`` is the
monotonic clock and ``sleep`` is ``anyio.sleep``.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio
import anyio.lowlevel

__all__ = ["AnyioClock", "Clock", "SteppingClock", "default_clock"]


@runtime_checkable
class Clock(Protocol):
    """Where dspex reads time and sleeps."""

    def now(self) -> float:
        """Return monotonic seconds (the origin is arbitrary)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (cancellable)."""
        ...


class AnyioClock:
    """The real clock: ``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep with ``anyio.sleep`` (a checkpoint even for 0)."""
        await anyio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "AnyioClock()"


class SteppingClock:
    """A virtual clock: ``sleep`` advances time instantly and records the delay.

    (``dspex.testing.FakeClock`` is the manually advanced one; this one never
    blocks, which suits backoff and rate-limit arithmetic.)

    Each ``sleep(d)`` moves ``now`` forward by ``d`` and yields once to the
    scheduler, so code that backs off or waits for a token bucket runs at full
    speed while observing the time it would have waited. ``sleeps`` lists every
    requested delay, in order.

    Args:
        start: The initial value of ``now()``.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self.sleeps: list[float] = []

    def now(self) -> float:
        """Return the virtual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move virtual time forward without sleeping."""
        if seconds < 0:
            raise ValueError(f"cannot move a SteppingClock backwards (got {seconds!r})")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record ``seconds``, advance virtual time by it, then yield once."""
        seconds = max(0.0, float(seconds))
        self.sleeps.append(seconds)
        self._now += seconds
        await anyio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"SteppingClock(now={self._now!r})"


_DEFAULT = AnyioClock()


def default_clock() -> Clock:
    """Return the process-wide real clock."""
    return _DEFAULT
