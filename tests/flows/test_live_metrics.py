"""Live metrics: the engine puts run-level ``Metrics`` events on the event bus."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

import dspex as dx
from dspex.flows import Flow
from dspex.flows._runner import Runner, RunOptions
from dspex.sinks import Sink, collect
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

N = 6


class Watcher(Sink):
    """An event-aware sink that keeps the engine's metrics events."""

    wants_events = True

    def __init__(self) -> None:
        self.name = "watcher"
        self.metrics: list[dict[str, Any]] = []
        self.first = anyio.Event()
        self.records: list[Any] = []

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records.extend(records)

    async def write_event(self, event: Any) -> None:
        if event.type == "metrics" and event.node is None:
            self.metrics.append(dict(event.values))
            self.first.set()

    async def flush(self) -> None:
        return None


def _flow(watcher: Watcher, out: Any) -> Flow:
    async def rows() -> Any:
        for i in range(N):
            if i == N // 2:
                with anyio.fail_after(20):
                    await watcher.first.wait()  # a periodic event arrives while items are in flight
            yield {"question": f"{i}+{i}?"}

    flow = Flow("metrics")
    flow.source(rows()).map(dx.Predict("question -> answer"), concurrency=2).sink(watcher, out)
    return flow


async def test_engine_publishes_metrics_while_running_and_at_the_end() -> None:
    watcher, out = Watcher(), collect()
    lm = ScriptedLM([{"answer": str(2 * i)} for i in range(N)])
    runner = Runner("metrics", _flow(watcher, out).check(), None, RunOptions(progress=False, metrics_interval_s=0.02))
    with dx.context(lm=lm):
        report = await runner.run()
    assert report.items_out == N
    assert len(watcher.metrics) >= 2
    early, final = watcher.metrics[0], watcher.metrics[-1]
    assert early["items_done"] < N  # published before the run ended
    assert final["items_in"] == report.items_in == N
    assert final["items_done"] == N
    assert final["items_failed"] == 0
    assert final["in_flight"] == 0
    assert final["tokens"] == report.usage["input_tokens"] + report.usage["output_tokens"]
    assert final["cost"] == round(report.cost, 6)
    assert set(final["queue_depths"]) == {name for name, node in report.nodes.items() if node.queue}
    assert all(depth == 0 for depth in final["queue_depths"].values())
    assert {"items_per_s", "elapsed_s"} <= set(final)


async def test_no_periodic_metrics_when_disabled() -> None:
    watcher, out = Watcher(), collect()
    watcher.first.set()  # the source does not wait
    lm = ScriptedLM([{"answer": str(2 * i)} for i in range(N)])
    runner = Runner("metrics", _flow(watcher, out).check(), None, RunOptions(progress=False, metrics_interval_s=None))
    with dx.context(lm=lm):
        await runner.run()
    assert watcher.metrics == []
    assert len(out.items) == N


async def test_websocket_sink_adds_only_client_figures_to_engine_metrics(anyio_backend: str) -> None:
    from dspex import events as ev
    from dspex.sinks import websocket

    async with websocket(metrics_interval=None) as sink:
        assert set(_own_metrics(sink)) >= {"items_done", "items_per_s", "ws_clients"}
        await sink.write_event(ev.Metrics(values={"items_done": 3, "in_flight": 1}, run="r"))
        assert set(_own_metrics(sink)) == {"ws_clients", "ws_dropped"}


def _own_metrics(sink: Any) -> dict[str, Any]:
    """Return the values of the sink's own next metrics message."""
    import json

    sent: list[bytes] = []
    broadcast = sink.server.broadcast
    sink.server.broadcast = lambda data, tier: sent.append(data)
    try:
        sink._broadcast_metrics()
    finally:
        sink.server.broadcast = broadcast
    return dict(json.loads(sent[0])["values"])
