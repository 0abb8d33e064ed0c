"""Flow builder and engine: runs, reports, settings, errors, cancellation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex.flows as fl
from dspex._context import get_setting
from dspex.backpressure import BufferPolicy
from dspex.errors import ConfigError, FlowFailed, GraphError, ItemFailed, SourceError
from dspex.sinks import Sink, collect
from dspex.sources import Source, SourceRecord

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence


class FlushTracking(Sink):
    """A sink that records its lifecycle calls."""

    def __init__(self) -> None:
        self.name = "tracking"
        self.items: list[Any] = []
        self.calls: list[str] = []

    async def open(self) -> None:
        self.calls.append("open")

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.items.extend(records)

    async def aclose(self) -> None:
        self.calls.append("aclose")


class BadLines(Source):
    name = "bad-lines"

    async def records(self, *, skip: Any = None) -> AsyncIterator[SourceRecord]:
        yield SourceRecord({"x": 1})
        yield SourceRecord("{not json", error=SourceError("bad JSON", line=2, path="in.jsonl"))
        yield SourceRecord({"x": 3})


async def test_map_pipeline_and_report() -> None:
    out = collect()
    flow = fl.Flow("double")
    flow.source([{"x": i} for i in range(100)]).map(lambda r: {**r, "y": r["x"] * 2}).sink(out)
    report = await flow.run(progress=False)
    assert [r["y"] for r in out.items] == [2 * i for i in range(100)]
    assert (report.items_in, report.items_out, report.items_failed) == (100, 100, 0)
    assert list(report.nodes) == ["source-1", "map-2", "sink-3"]
    assert report.nodes["map-2"].items_in == 100
    assert report.nodes["map-2"].items_out == 100
    assert report.status == "completed"
    assert report.to_dict()["nodes"]["sink-3"]["items_out"] == 100


@pytest.mark.parametrize("ordered", [True, False])
async def test_async_map_with_concurrency(ordered: bool) -> None:
    async def slow(r: dict[str, int]) -> dict[str, int]:
        await anyio.sleep(0.001 * (r["x"] % 3))
        return {"x": r["x"] + 1}

    out = collect()
    flow = fl.Flow("async")
    flow.source([{"x": i} for i in range(30)]).map(slow, concurrency=8, ordered=ordered).sink(out)
    await flow.run(progress=False)
    got = [r["x"] for r in out.items]
    assert sorted(got) == list(range(1, 31))
    if ordered:
        assert got == list(range(1, 31))


async def test_settings_apply_for_the_run() -> None:
    seen = []
    out = collect()
    flow = fl.Flow("settings")
    def remember(r: dict[str, int]) -> dict[str, int]:
        seen.append(get_setting("lm"))
        return r

    flow.source([{"x": 1}]).map(remember).sink(out)
    await flow.run(progress=False, lm="my-lm")
    assert seen == ["my-lm"]
    with pytest.raises(ConfigError, match="unknown setting"):
        await flow.run(progress=False, not_a_setting=1)


def test_run_sync() -> None:
    out = collect()
    flow = fl.Flow("sync")
    flow.source(range(5)).map(lambda r: {"v": r}).sink(out)
    report = flow.run_sync(progress=False)
    assert report.items_out == 5
    assert [r["v"] for r in out.items] == list(range(5))


async def test_raise_policy_fails_the_run_naming_the_node() -> None:
    def boom(r: dict[str, int]) -> dict[str, int]:
        if r["x"] == 3:
            raise ValueError("three is bad")
        return r

    sink = FlushTracking()
    flow = fl.Flow("fails")
    flow.source([{"x": i} for i in range(10)]).map(boom, name="parse").sink(sink)
    with pytest.raises(FlowFailed) as info:
        await flow.run(progress=False)
    err = info.value
    assert err.node == "parse"
    assert "three is bad" in str(err)
    assert isinstance(err.__cause__, BaseExceptionGroup)
    leaf = err.__cause__
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, ItemFailed)
    assert leaf.item_id == "4"
    assert isinstance(leaf.__cause__, ValueError)
    assert sink.calls == ["open", "aclose"]
    assert err.report.status == "failed"


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
async def test_skip_and_dead_letter_policies(policy: str) -> None:
    def odd_fails(r: dict[str, int]) -> dict[str, int]:
        if r["x"] % 2:
            raise ValueError(f"odd {r['x']}")
        return r

    out = collect()
    flow = fl.Flow("policies")
    flow.source([{"x": i} for i in range(10)]).map(odd_fails, on_error=policy).sink(out)
    report = await flow.run(progress=False)
    assert [r["x"] for r in out.items] == [0, 2, 4, 6, 8]
    assert report.items_failed == 5
    assert report.nodes["map-2"].items_failed == 5
    if policy == "dead_letter":
        assert report.dead_letter_count == 5
        assert sorted(dl.item.data["x"] for dl in report.dead_letters) == [1, 3, 5, 7, 9]
        assert all(isinstance(dl.error, ValueError) for dl in report.dead_letters)
        assert {dl.node for dl in report.dead_letters} == {"map-2"}
    else:
        assert report.dead_letters == []


async def test_dead_letter_sink_gets_records_with_errors() -> None:
    out, dead = collect(), collect("dead")
    flow = fl.Flow("dl").dead_letter(dead)
    flow.source([{"x": 0}, {"x": 1}]).map(lambda r: 1 / r["x"] and r, on_error="dead_letter").sink(out)
    report = await flow.run(progress=False)
    assert out.items == [{"x": 1}]
    assert report.dead_letters == []  # they went to the sink
    (record,) = dead.items
    assert record["error_type"] == "ZeroDivisionError"
    assert record["node"] == "map-2"
    assert record["data"] == {"x": 0}
    assert record["id"] == "1"


async def test_bad_source_record_goes_to_dead_letter_with_line() -> None:
    out, dead = collect(), collect("dead")
    flow = fl.Flow("bad").dead_letter(dead)
    flow.source(BadLines()).sink(out)
    report = await flow.run(progress=False)
    assert out.items == [{"x": 1}, {"x": 3}]
    assert dead.items[0]["line"] == 2
    assert dead.items[0]["error_type"] == "SourceError"
    assert report.items_in == 3
    assert report.items_failed == 1
    assert report.items_out == 2


async def test_retry_policy_recovers_transient_failures() -> None:
    attempts: dict[int, int] = {}

    def flaky(r: dict[str, int]) -> dict[str, int]:
        attempts[r["x"]] = attempts.get(r["x"], 0) + 1
        if attempts[r["x"]] < 3:
            raise ConnectionError("try again")
        return r

    out = collect()
    flow = fl.Flow("retry")
    flow.source([{"x": i} for i in range(4)]).map(flaky, on_error=fl.retry(2)).sink(out)
    report = await flow.run(progress=False)
    assert len(out.items) == 4
    assert set(attempts.values()) == {3}
    assert report.nodes["map-2"].extra["retries"] == 8

    attempts.clear()
    flow2 = fl.Flow("retry-then-dl")
    flow2.source([{"x": 1}]).map(flaky, on_error=("retry", 1, "dead_letter")).sink(collect())
    report2 = await flow2.run(progress=False)
    assert report2.dead_letter_count == 1
    assert attempts[1] == 2


async def test_cancellation_flushes_and_closes_sinks() -> None:
    reached = anyio.Event()

    async def hang(r: dict[str, int]) -> dict[str, int]:
        if r["x"] == 5:
            reached.set()
            await anyio.sleep_forever()
        return r

    sink = FlushTracking()
    flow = fl.Flow("cancel")
    src = flow.source([{"x": i} for i in range(10)])
    src.map(hang).sink(sink, buffer=BufferPolicy(size=0, chunk=1))
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: flow.run(progress=False, buffer=BufferPolicy(chunk=1)))
            await reached.wait()
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
    assert sink.calls == ["open", "aclose"]
    assert [r["x"] for r in sink.items] == [0, 1, 2, 3, 4]


async def test_sink_handle_cannot_be_extended_and_sink_needs_sinks() -> None:
    flow = fl.Flow("x")
    end = flow.source([1]).sink(collect())
    with pytest.raises(GraphError, match="has no output"):
        end.map(lambda r: r)
    with pytest.raises(GraphError, match="at least one sink"):
        flow.source([1]).sink()
    with pytest.raises(ConfigError, match="iterable of records"):
        flow.source(42)


async def test_async_iterable_source_and_flat_map_and_filter() -> None:
    async def gen() -> AsyncIterator[dict[str, Any]]:
        for i in range(5):
            yield {"words": " ".join(["w"] * i)}

    out = collect()
    flow = fl.Flow("words")
    (flow.source(gen())
         .flat_map(lambda r: [{"w": w} for w in r["words"].split()])
         .filter(lambda r: r["w"] == "w")
         .sink(out))
    report = await flow.run(progress=False)
    assert len(out.items) == 0 + 1 + 2 + 3 + 4
    assert report.nodes["flat_map-2"].items_out == 10
