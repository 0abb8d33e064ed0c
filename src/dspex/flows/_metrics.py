"""Live run metrics for event-aware sinks: a ``Metrics`` event every half second.

While a flow with an event-aware sink (the WebSocket sink and its live page)
runs, :class:`LiveMetrics` samples the engine's counters every ``interval_s``
seconds on the run's clock (real time unless a test injects a ``FakeClock``)
and puts one run-level :class:`~dspex.events.Metrics`
event on the event bus. Its ``values`` use the names the live page reads:
``items_in``, ``items_done`` (records written by the sinks), ``items_failed``,
``items_per_s`` (over the last interval), ``in_flight``, ``queue_depths``
(items waiting on each node's input edge), ``tokens``, ``cost``, ``retries``,
``cache_hits`` and ``memory_pauses``; with an OpenTelemetry meter provider
the same sample feeds the metric instruments (no bus needed then). Sampling
only reads counters, and the event is dropped rather than waited for when the
bus is full, so metrics never slow the flow down.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from .._util._clock import default_clock
from ..events import Metrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.streams.memory import MemoryObjectSendStream

    from ..events import Event
    from ._runner import Runner

__all__ = ["LiveMetrics"]


class LiveMetrics:
    """Publish the run's counters as ``Metrics`` events (a runner helper task).

    Args:
        runner: The running flow (its node stats, limiter and usage totals).
        send: The event bus's send end (None: no event-aware sink).
        interval_s: Seconds between two events.
        recorder: Also given each sample (the OpenTelemetry instruments).
    """

    def __init__(
        self, runner: Runner, send: MemoryObjectSendStream[Event] | None, interval_s: float = 0.5,
        recorder: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.runner = runner
        self.send = send
        self.recorder = recorder
        self.interval_s = interval_s
        self.published = 0
        # the run's clock times the interval and the rate (FakeClock in tests)
        self.clock = getattr(runner, "clock", None) or default_clock()
        self._last = (self.clock.now(), 0)

    def values(self) -> dict[str, Any]:
        """Return the current counters (and the rate since the previous call)."""
        runner = self.runner
        items_in = items_done = failed = 0
        depths: dict[str, int] = {}
        for stats in runner.stats.values():
            failed += stats.items_failed
            if stats.kind == "source":
                items_in += stats.items_in
            elif stats.kind == "sink":
                items_done += stats.items_out
            if stats.edge is not None:
                depths[stats.name] = max(0, stats.edge.queued)
        now = self.clock.now()
        since, before = self._last
        self._last = (now, items_done)
        rate = (items_done - before) / (now - since) if now > since else 0.0
        services = getattr(runner, "services", None)
        usage = runner.usage
        return {
            "items_in": items_in,
            "items_done": items_done,
            "items_failed": failed,
            "items_per_s": round(rate, 2),
            "in_flight": services.limiter.in_flight if services is not None else 0,
            "queue_depths": depths,
            "tokens": usage.tokens,
            "cost": round(usage.cost, 6),
            "elapsed_s": round(time.perf_counter() - runner.started, 3),
            "retries": sum(s.extra.get("retries", 0) for s in runner.stats.values()),
            "cache_hits": usage.cache_hits,
            "memory_pauses": runner.monitor.pauses if runner.monitor is not None else 0,
        }

    def publish(self) -> bool:
        """Put one ``Metrics`` event on the bus now; False if it was full or closed."""
        values = self.values()
        if self.recorder is not None:
            self.recorder(values)
        if self.send is None:
            return False
        services = self.runner.services
        event = Metrics(values=values, run=self.runner.run_id, seq=next(services.seq))
        try:
            self.send.send_nowait(event)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        self.published += 1
        return True

    async def run(self) -> None:
        """Publish every ``interval_s`` seconds until cancelled."""
        self._last = (self.clock.now(), 0)
        while True:
            await self.clock.sleep(self.interval_s)
            self.publish()
