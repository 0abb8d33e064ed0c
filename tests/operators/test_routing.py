"""branch, route, broadcast, merge and ab_split."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import dspex as dx
import dspex.flows as fl
from dspex.errors import ConfigError, FlowFailed
from dspex.sinks import collect
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from collections.abc import Hashable

    from dspex.sinks import CollectSink


async def test_branch_splits_by_predicate() -> None:
    evens, odds = collect("evens"), collect("odds")
    flow = fl.Flow("branch")
    yes, no = flow.source([{"i": i} for i in range(10)]).branch(lambda r: r["i"] % 2 == 0)
    yes.sink(evens)
    no.map(lambda r: {**r, "odd": True}).sink(odds)
    report = await flow.run(progress=False)
    assert [r["i"] for r in evens.items] == [0, 2, 4, 6, 8]
    assert [r["i"] for r in odds.items] == [1, 3, 5, 7, 9]
    assert all(r["odd"] for r in odds.items)
    assert report.items_out == 10
    assert report.nodes["branch-2"].items_out == 10


async def test_route_by_key_with_default_and_unknown_keys() -> None:
    sinks: dict[Hashable, CollectSink] = {k: collect(k) for k in ("a", "b")}
    flow = fl.Flow("route")
    routes = flow.source(["a", "b", "c", "a"]).map(lambda r: {"k": r}).route(
        lambda r: r["k"], ["a", "b"], default="b")
    for key, handle in routes.items():
        handle.sink(sinks[key])
    await flow.run(progress=False)
    assert [r["k"] for r in sinks["a"].items] == ["a", "a"]
    assert [r["k"] for r in sinks["b"].items] == ["b", "c"]

    strict = fl.Flow("strict")
    routes = strict.source(["a", "z"]).map(lambda r: {"k": r}).route(lambda r: r["k"], ["a"])
    routes["a"].sink(collect())
    with pytest.raises(FlowFailed, match="selector returned 'z', expected one of \\['a'\\]"):
        await strict.run(progress=False)


async def test_broadcast_copies_records_to_every_consumer() -> None:
    left, right = collect("l"), collect("r")
    flow = fl.Flow("bc")
    a, b = flow.source([{"i": 1}, {"i": 2}]).broadcast()

    def mutate(r: dict[str, Any]) -> dict[str, Any]:
        r["touched"] = True
        return r

    a.map(mutate).sink(left)
    b.sink(right)
    report = await flow.run(progress=False)
    assert left.items == [{"i": 1, "touched": True}, {"i": 2, "touched": True}]
    assert right.items == [{"i": 1}, {"i": 2}]
    assert report.items_in == 2
    assert report.items_out == 4


async def test_merge_joins_branches() -> None:
    out = collect()
    flow = fl.Flow("merge")
    yes, no = flow.source(range(6)).map(lambda r: {"i": r}).branch(lambda r: r["i"] < 3)
    flow.merge(yes.map(lambda r: {**r, "s": "low"}), no.map(lambda r: {**r, "s": "high"})) \
        .sink(out)
    report = await flow.run(progress=False)
    assert sorted((r["i"], r["s"]) for r in out.items) == [
        (0, "low"), (1, "low"), (2, "low"), (3, "high"), (4, "high"), (5, "high")]
    assert report.nodes["merge-6"].items_in == 6
    with pytest.raises(Exception, match="at least two"):
        flow.merge(yes)


@pytest.mark.parametrize("ordered", [True, False])
async def test_ab_split_reports_per_variant(ordered: bool) -> None:
    async def variant_b(r: dict[str, int]) -> dict[str, Any]:
        if r["i"] == 0:
            raise ValueError("b fails on 0")
        return {**r, "score": 1.0}

    out = collect()
    flow = fl.Flow("ab")
    flow.source([{"i": i} for i in range(400)]).ab_split(
        0.25, lambda r: {**r, "score": 0.0}, variant_b, metric=lambda r: r["score"],
        concurrency=4, ordered=ordered, on_error="skip", name="ab").sink(out)
    report = await flow.run(progress=False)
    variants = report.to_dict()["nodes"]["ab"]["extra"]["variants"]
    assert variants["a"]["items"] + variants["b"]["items"] == 400
    assert 60 < variants["b"]["items"] < 140
    assert variants["a"]["metric"] == 0.0
    assert variants["b"]["metric"] == 1.0
    tags = {r["_variant"] for r in out.items}
    assert tags == {"a", "b"}
    failed_b = variants["b"]["failed"]
    assert report.items_out == 400 - failed_b
    assert report.items_failed == failed_b
    again = fl.Flow("ab2")
    out2 = collect()
    again.source([{"i": i} for i in range(400)]).ab_split(
        0.25, lambda r: r, lambda r: r, name="ab").sink(out2)
    await again.run(progress=False)
    first = {r["i"]: r["_variant"] for r in out.items}
    second = {r["i"]: r["_variant"] for r in out2.items}
    assert all(second[i] == v for i, v in first.items())  # the split is stable


def test_ab_split_fraction_checked() -> None:
    with pytest.raises(ConfigError, match="fraction must be in"):
        fl.Flow("x").source([1]).ab_split(1.5, lambda r: r, lambda r: r)


async def test_ab_split_usage_belongs_to_each_run() -> None:
    lm = ScriptedLM({"question": {"answer": "ok"}})
    flow = fl.Flow("ab-usage")
    flow.source([{"question": f"q{i}"} for i in range(20)]).ab_split(
        0.5, dx.Predict("question -> answer"), dx.Predict("question -> answer"), name="ab",
    ).sink(collect())
    first = (await flow.run(progress=False, lm=lm)).to_dict()["nodes"]["ab"]["extra"]["variants"]
    second = (await flow.run(progress=False, lm=lm)).to_dict()["nodes"]["ab"]["extra"]["variants"]
    for name in ("a", "b"):
        assert first[name]["usage"]["calls"] == first[name]["items"] > 0
        assert second[name]["usage"] == first[name]["usage"]
