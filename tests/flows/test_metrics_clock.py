"""Live metrics tick on the run's clock, so a FakeClock run controls them exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from dspex.flows import Flow
from dspex.flows._runner import Runner, RunOptions
from dspex.sinks import Sink
from dspex.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class Watcher(Sink):
    """An event-aware sink keeping the engine's run-level metrics."""

    wants_events = True
    name = "watcher"

    def __init__(self) -> None:
        self.metrics: list[dict[str, Any]] = []
        self.written = 0

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.written += len(records)

    async def write_event(self, event: Any) -> None:
        if event.type == "metrics" and event.node is None:
            self.metrics.append(dict(event.values))


@pytest.mark.reliability
async def test_metrics_interval_and_rate_use_the_run_clock() -> None:
    clock, hold, watcher = FakeClock(), anyio.Event(), Watcher()

    async def rows() -> Any:
        for i in range(4):
            yield {"i": i}
        await hold.wait()  # keep the run alive while the test moves time

    flow = Flow("metrics-clock")
    flow.source(rows()).sink(watcher)
    options = RunOptions(progress=False, metrics_interval_s=2.0, clock=clock)
    runner = Runner("metrics-clock", flow.check(), None, options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        await clock.step(0.0)  # the source's 4 items linger; no time has passed
        assert watcher.metrics == []
        await clock.step(1.0)  # past linger_s: the items are written; no tick yet
        assert watcher.written == 4
        assert watcher.metrics == []
        await clock.step(1.0)  # 2 s of virtual time: exactly one tick
        assert len(watcher.metrics) == 1
        assert watcher.metrics[0]["items_done"] == 4
        assert watcher.metrics[0]["items_per_s"] == 2.0  # 4 items over 2 virtual seconds
        hold.set()
    assert watcher.metrics[-1]["items_done"] == 4  # the final publish at the end
