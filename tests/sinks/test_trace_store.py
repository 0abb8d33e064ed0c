"""dx.sinks.trace_store records a flow's traces; dx.traces.to_trainset turns them into Examples."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex as dx
from dspex.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from pathlib import Path


def answer(record: dict[str, Any]) -> dict[str, Any]:
    question = record["question"]
    return {**record, "answer": question.upper() if len(question) > 4 else "?"}


async def test_flow_traces_become_a_trainset(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    questions = ["sky", "grass", "snow", "coal", "banana"]
    flow = dx.Flow("answers")
    flow.source(dx.sources.iterable({"question": q} for q in questions)).map(answer).sink(
        dx.sinks.trace_store("qa", inputs=["question"], outputs=["answer"], store=path, run_id="r1",
                             metric=lambda inputs, outputs: outputs["answer"] != "?"))
    await flow.run()
    train = await dx.traces.ato_trainset(run_id="r1", min_score=1.0, store=path)
    assert sorted(e.question for e in train) == ["banana", "grass"]
    assert all(e.answer == e.question.upper() and e.inputs().keys() == ["question"] for e in train)
    everything = dx.traces.to_trainset(program="qa", store=path)
    assert len(everything) == 5


async def test_score_from_a_record_field_and_async_metric(tmp_path: Path) -> None:
    store = dx.RunStore(tmp_path / "s.sqlite")
    async with store:
        sink = dx.sinks.trace_store("qa", inputs=["q"], outputs=["a"], store=store)
        async with sink:
            await sink.write([{"q": "x", "a": "1", "score": 0.25}, {"q": "y", "a": "2", "score": True}])

        async def judge(inputs: dict[str, Any], outputs: dict[str, Any]) -> float:
            return 0.5

        judged = dx.sinks.trace_store("qa", inputs=["q"], outputs=["a"], store=store, metric=judge, run_id="j")
        async with judged:
            await judged.write([{"q": "z", "a": "3"}])
        scores = [t["score"] for t in await store.traces("qa")]
        assert scores == [0.25, 1.0, 0.5]
        assert sink.recorded == 2
        assert [e.q for e in await dx.traces.ato_trainset(run_id=sink.run_id, store=store)] == ["x", "y"]


async def test_bad_arguments_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="program name"):
        dx.sinks.trace_store("", inputs=["q"], outputs=["a"])
    with pytest.raises(ConfigError, match="input and output"):
        dx.sinks.trace_store("qa", inputs=[], outputs=["a"])
    with pytest.raises(ConfigError, match="run_id= or program="):
        await dx.traces.ato_trainset(store=tmp_path / "s.sqlite")
    async with dx.RunStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(StoreError, match="program= or run_id="):
            await store.traces()


async def test_the_sink_takes_the_flows_run_id(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    sink = dx.sinks.trace_store("qa", inputs=["question"], outputs=["answer"], store=path)
    flow = dx.Flow("answers")
    flow.source(dx.sources.iterable({"question": q} for q in ["sky", "banana"])).map(answer).sink(sink)
    own = sink.run_id
    await flow.run(run_id="r1")
    assert sink.run_id == own != "r1"  # the run's id went to the traces, not onto the sink
    train = await dx.traces.ato_trainset(run_id="r1", store=path)
    assert sorted(e.question for e in train) == ["banana", "sky"]


async def test_an_explicit_sink_run_id_overrides_the_flows(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    flow = dx.Flow("answers")
    flow.source(dx.sources.iterable([{"question": "grass"}])).map(answer).sink(
        dx.sinks.trace_store("qa", inputs=["question"], outputs=["answer"], store=path, run_id="mine"))
    await flow.run(run_id="r1")
    assert [e.question for e in await dx.traces.ato_trainset(run_id="mine", store=path)] == ["grass"]
    assert await dx.traces.ato_trainset(run_id="r1", store=path) == []


async def test_without_a_run_id_the_traces_share_the_reports_run_id(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    sink = dx.sinks.trace_store("qa", inputs=["question"], outputs=["answer"], store=path)
    flow = dx.Flow("answers")
    flow.source(dx.sources.iterable([{"question": "snow"}])).map(answer).sink(sink)
    own = sink.run_id
    report = await flow.run()
    assert sink.run_id == own != report.run_id
    assert [e.question for e in await dx.traces.ato_trainset(run_id=report.run_id, store=path)] == ["snow"]


async def test_two_concurrent_runs_sharing_the_sink_keep_their_own_run_ids(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    sink = dx.sinks.trace_store("qa", inputs=["question"], outputs=["answer"], store=path)
    seen: set[str | None] = set()
    both = anyio.Event()

    async def answer_once_both_run(record: dict[str, Any]) -> dict[str, Any]:
        # every item waits until both runs are inside the flow: their writes overlap
        seen.add(dx.sinks.current_run_id())
        if len(seen) == 2:
            both.set()
        with anyio.fail_after(10):
            await both.wait()
        return answer(record)

    flow = dx.Flow("answers")
    questions = [{"question": q} for q in ["sky", "grass", "banana"]]
    flow.source(dx.sources.iterable(questions)).map(answer_once_both_run).sink(sink)
    before = {k: v for k, v in vars(sink).items() if k != "recorded"}
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(flow.run, run_id="run-a"))
        tg.start_soon(partial(flow.run, run_id="run-b"))
    assert seen == {"run-a", "run-b"}
    for run_id in ("run-a", "run-b"):
        train = await dx.traces.ato_trainset(run_id=run_id, store=path)
        assert sorted(e.question for e in train) == ["banana", "grass", "sky"]
    assert {k: v for k, v in vars(sink).items() if k != "recorded"} == before
    assert sink.recorded == 6
    assert await dx.traces.ato_trainset(run_id=sink.run_id, store=path) == []
