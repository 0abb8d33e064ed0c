"""Admission under memory pressure: high/low watermarks with hysteresis.

:class:`MemoryMonitor` samples memory every ``interval_s``. At or above the
high watermark it pauses every source (through the :class:`SourceGate`) and
shrinks the global in-flight limit; it resumes only once memory falls below
the *low* watermark, so it does not flap around a single threshold (the
high/low scheme of websockets' message assembler), or once nothing of the
run is in flight any more (the memory is not the flow's; waiting would stall). Every pause and resume is
reported to a callback (the engine turns them into ``Metrics`` events) and
counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._memory import MB, MemoryWatermarks, Sampler, resolve_sampler

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._limits import InFlightLimiter, SourceGate

__all__ = ["MemoryMonitor"]


class MemoryMonitor:
    """Pause sources above the high watermark, resume below the low one.

    Args:
        watermarks: The thresholds, interval and sampler.
        gate: The gate every source of the run polls.
        limiter: The global in-flight limit, shrunk while paused.
        on_change: Called with a dict (``memory_paused``, ``memory_mb``,
            ``high_mb``, ``low_mb``) on each pause and resume.
    """

    def __init__(
        self,
        watermarks: MemoryWatermarks,
        gate: SourceGate,
        limiter: InFlightLimiter | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.watermarks = watermarks
        self.high, self.low = watermarks.thresholds()
        self.sampler: Sampler = resolve_sampler(watermarks.sampler)
        self.gate = gate
        self.limiter = limiter
        self.on_change = on_change
        self.samples = 0
        self.peak_bytes = 0.0
        self.paused_s = 0.0
        self._paused_at: float | None = None

    @property
    def pauses(self) -> int:
        """Return how many times the sources were paused."""
        return self.gate.pauses

    def update(self, used: float, now: float = 0.0) -> None:
        """Apply one sample (bytes in use) taken at time ``now``."""
        self.samples += 1
        self.peak_bytes = max(self.peak_bytes, used)
        if not self.gate.paused and used >= self.high:
            self.gate.pause()
            if self.limiter is not None:
                self.limiter.shrink(self.watermarks.shrink)
            self._paused_at = now
            self._notify(True, used)
        elif self.gate.paused and (used < self.low or self._drained()):
            self.gate.resume()
            if self.limiter is not None:
                self.limiter.restore()
            if self._paused_at is not None:
                self.paused_s += max(0.0, now - self._paused_at)
                self._paused_at = None
            self._notify(False, used)

    def _drained(self) -> bool:
        # Nothing of ours is in flight, so waiting cannot free memory: resume
        # (one interval's worth at a time) rather than stall the run forever.
        return self.limiter is not None and self.limiter.in_flight == 0

    def _notify(self, paused: bool, used: float) -> None:
        if self.on_change is not None:
            self.on_change(
                {
                    "memory_paused": paused,
                    "memory_mb": round(used / MB, 1),
                    "high_mb": round(self.high / MB, 1),
                    "low_mb": round(self.low / MB, 1),
                }
            )

    async def run(self, clock: Any) -> None:
        """Sample forever on ``clock`` (``now()``, ``sleep()``); cancel to stop.

        The sources are resumed when the monitor is cancelled, so a paused
        run can always finish draining.
        """
        try:
            while True:
                self.update(self.sampler(), clock.now())
                await clock.sleep(self.watermarks.interval_s)
        finally:
            self.gate.resume()
            if self.limiter is not None:
                self.limiter.restore()

    def stats(self) -> dict[str, Any]:
        """Return the monitor's counters for the run report."""
        return {
            "pauses": self.pauses,
            "paused_s": round(self.paused_s, 3),
            "peak_mb": round(self.peak_bytes / MB, 1),
            "samples": self.samples,
            "high_mb": round(self.high / MB, 1),
            "low_mb": round(self.low / MB, 1),
        }
