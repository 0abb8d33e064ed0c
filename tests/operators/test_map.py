"""map / flat_map / filter: concurrency bounds, ordering, threads, modules."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex as dx
import dspex.flows as fl
from dspex.events import Event, PredictionDone, TokenDelta
from dspex.sinks import Sink, collect
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class EventCollector(Sink):
    """An event-aware sink keeping both events and final records."""

    wants_events = True

    def __init__(self) -> None:
        self.name = "events"
        self.items: list[Any] = []
        self.events: list[Event] = []

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.items.extend(records)

    async def write_event(self, event: Event) -> None:
        self.events.append(event)


@pytest.mark.parametrize("ordered", [True, False])
async def test_concurrency_is_bounded_and_order_kept(ordered: bool) -> None:
    active = peak = 0

    async def work(r: dict[str, int]) -> dict[str, int]:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(30 if r["x"] % 5 == 0 else 1):
            await anyio.lowlevel.checkpoint()
        active -= 1
        return {"x": r["x"]}

    out = collect()
    flow = fl.Flow("bounded")
    flow.source([{"x": i} for i in range(200)]).map(work, concurrency=7, ordered=ordered).sink(out)
    report = await flow.run(progress=False)
    got = [r["x"] for r in out.items]
    assert 1 < peak <= 7
    assert sorted(got) == list(range(200))
    if ordered:
        assert got == list(range(200))
    else:
        assert got != list(range(200))  # the fast items overtake
    assert report.nodes["map-2"].items_out == 200


async def test_sync_function_runs_inline_by_default_at_any_concurrency() -> None:
    threads: set[int] = set()

    def cheap(r: dict[str, int]) -> dict[str, int]:
        threads.add(threading.get_ident())
        return {"x": r["x"] * 10}

    out = collect()
    flow = fl.Flow("inline")
    flow.source([{"x": i} for i in range(20)]).map(cheap, concurrency=4).sink(out)
    await flow.run(progress=False)
    assert [r["x"] for r in out.items] == [10 * i for i in range(20)]
    assert threads == {threading.get_ident()}  # no thread trip per record


async def test_sync_function_with_threads_executor_runs_in_threads() -> None:
    threads: set[int] = set()

    def blocking(r: dict[str, int]) -> dict[str, int]:
        threads.add(threading.get_ident())
        return {"x": r["x"] * 10}

    out = collect()
    flow = fl.Flow("threads")
    flow.source([{"x": i} for i in range(20)]).map(blocking, concurrency=4, executor="threads").sink(out)
    await flow.run(progress=False)
    assert [r["x"] for r in out.items] == [10 * i for i in range(20)]
    assert threads
    assert threading.get_ident() not in threads


async def test_function_returning_awaitable_is_awaited() -> None:
    async def double(x: int) -> dict[str, int]:
        return {"x": 2 * x}

    out = collect()
    flow = fl.Flow("aw")
    flow.source([1, 2]).map(lambda r: double(r)).sink(out)
    await flow.run(progress=False)
    assert out.items == [{"x": 2}, {"x": 4}]


@pytest.mark.parametrize("ordered", [True, False])
async def test_flat_map_and_filter_concurrent(ordered: bool) -> None:
    async def explode(r: dict[str, int]) -> list[dict[str, int]]:
        await anyio.lowlevel.checkpoint()
        return [{"x": r["x"], "k": k} for k in range(r["x"] % 3)]

    out = collect()
    flow = fl.Flow("fm")
    (flow.source([{"x": i} for i in range(30)])
         .flat_map(explode, concurrency=4, ordered=ordered)
         .filter(lambda r: r["k"] == 1)
         .sink(out))
    report = await flow.run(progress=False)
    assert sorted(r["x"] for r in out.items) == [x for x in range(30) if x % 3 == 2]
    assert report.nodes["filter-3"].extra["dropped"] == report.nodes["filter-3"].items_in - 10


async def test_flat_map_must_return_iterable() -> None:
    flow = fl.Flow("bad-fm")
    flow.source([1]).flat_map(lambda r: 5, on_error="dead_letter").sink(collect())
    report = await flow.run(progress=False)
    assert "must return an iterable" in str(report.dead_letters[0].error)


@pytest.mark.parametrize("ordered", [True, False])
async def test_module_node_merges_outputs_into_the_record(ordered: bool) -> None:
    lm = ScriptedLM({"Capital of France?": {"answer": "Paris"}, "Capital of Italy?": {"answer": "Rome"}})
    out = collect()
    flow = fl.Flow("qa")
    rows = [{"id": 1, "question": "Capital of France?"}, {"id": 2, "question": "Capital of Italy?"}]
    flow.source(rows).map(dx.Predict("question -> answer"), concurrency=2, ordered=ordered).sink(out)
    report = await flow.run(progress=False, lm=lm)
    by_id = {r["id"]: r for r in out.items}
    assert by_id[1] == {"id": 1, "question": "Capital of France?", "answer": "Paris"}
    assert by_id[2]["answer"] == "Rome"
    assert report.usage["input_tokens"] > 0
    assert report.usage["calls"] == 2


async def test_module_events_reach_event_aware_sinks_only() -> None:
    lm = ScriptedLM([{"answer": "Paris"}, {"answer": "Rome"}], stream_chunk=2)
    live, files = EventCollector(), collect()
    flow = fl.Flow("live")
    flow.source([{"question": "a"}, {"question": "b"}]).map(dx.Predict("question -> answer"),
                                                            name="qa").sink(live, files)
    report = await flow.run(progress=False, lm=lm, run_id=None)
    assert [r["answer"] for r in files.items] == ["Paris", "Rome"]
    assert live.items == files.items
    kinds = {type(e).__name__ for e in live.events}
    assert {"TokenDelta", "FieldDone", "PredictionDone", "RunDone"} <= kinds
    done = [e for e in live.events if isinstance(e, PredictionDone)]
    assert [(e.node, e.item_id, e.outputs) for e in done] == [
        ("qa", "1", {"answer": "Paris"}), ("qa", "2", {"answer": "Rome"})
    ]
    seqs = [e.seq for e in live.events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert all(e.run == report.run_id for e in live.events)
    assert any(isinstance(e, TokenDelta) and e.item_id == "1" for e in live.events)


async def test_module_with_non_mapping_record_fails_clearly() -> None:
    flow = fl.Flow("nm")
    flow.source([3]).map(dx.Predict("question -> answer"), on_error="dead_letter").sink(collect())
    report = await flow.run(progress=False, lm=ScriptedLM([{"answer": "x"}]))
    assert "must be a mapping" in str(report.dead_letters[0].error)
