"""The runner runs a plan of its own: a flow and its operators are never changed by a run."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import dspex as dx
import dspex.flows as fl
from dspex.errors import FlowFailed
from dspex.operators._callables import RecordCall
from dspex.sinks import CollectSink, collect
from dspex.testing import ScriptedLM

QUESTIONS = [{"question": f"what is {i} + {i}?"} for i in range(6)]
RULE = "no bad answers"


def _qa_flow(out: CollectSink) -> fl.Flow:
    flow = fl.Flow("qa")
    (flow.source(QUESTIONS)
         .map(dx.ChainOfThought("question -> answer"), concurrency=3, name="qa")
         .validate(lambda r: "bad" not in r["answer"], RULE, retries=1, name="check")
         .batch(2, name="pairs")
         .sink(out))
    return flow


async def test_one_flow_runs_twice_at_once_with_independent_reports() -> None:
    # run "a": every first answer fails the fused check and is retried with feedback
    lm_a = ScriptedLM({RULE: {"reasoning": "r", "answer": "a good"},
                       "question": {"reasoning": "r", "answer": "a bad"}})
    lm_b = ScriptedLM({"question": {"reasoning": "r", "answer": "b good"}})
    out = collect()
    flow = _qa_flow(out)
    reports: dict[str, fl.RunReport] = {}

    async def run(tag: str, lm: ScriptedLM) -> None:
        reports[tag] = await flow.run(progress=False, lm=lm)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "a", lm_a)
        tg.start_soon(run, "b", lm_b)

    a, b = reports["a"], reports["b"]
    assert a.run_id != b.run_id
    assert (a.status, a.items_in, a.items_out) == ("completed", 6, 3)
    assert (b.status, b.items_in, b.items_out) == ("completed", 6, 3)
    assert (a.validation_failures, b.validation_failures) == (6, 0)
    assert a.nodes["check"].extra["validation_failures"] == 6
    assert "validation_failures" not in b.nodes["check"].extra
    for report in (a, b):
        check = report.nodes["check"]
        assert (check.items_in, check.items_out, check.items_failed) == (6, 6, 0)
        assert report.nodes["qa"].items_in == 6
    assert (len(lm_a.history), len(lm_b.history)) == (12, 6)
    # each batch holds records of one run only; together, every question once per run
    runs = sorted(",".join(sorted({r["answer"] for r in batch})) for batch in out.items)
    assert runs == ["a good"] * 3 + ["b good"] * 3
    for tag in ("a", "b"):
        asked = [r["question"] for batch in out.items for r in batch if r["answer"] == f"{tag} good"]
        assert sorted(asked) == sorted(q["question"] for q in QUESTIONS)


def _state(obj: Any) -> dict[str, Any]:
    """Return ``obj``'s attributes (slots too), with a RecordCall's expanded."""
    names = list(getattr(obj, "__dict__", {})) + list(getattr(type(obj), "__slots__", ()))
    state = {name: getattr(obj, name) for name in names if hasattr(obj, name)}
    return {k: _state(v) if isinstance(v, RecordCall) else v for k, v in state.items()}


def _snapshot(flow: fl.Flow) -> list[Any]:
    return [
        (node.name, node.kind, [(p.name, port) for p, port in node.inputs], list(node.children),
         _state(node.op) if node.op is not None else None)
        for node in flow.nodes
    ]


async def test_a_run_leaves_the_flow_and_its_operators_as_they_were() -> None:
    def double(r: dict[str, int]) -> dict[str, int]:
        return {**r, "y": r["x"] * 2}

    out = collect()
    flow = fl.Flow("fused")
    (flow.source([{"x": i} for i in range(10)])
         .map(double, concurrency=2, executor="threads", name="m")
         .validate(lambda r: r["y"] % 4 == 0, "odd half", mode="suggest", name="v")
         .timeout(5, name="t")
         .sink(out))
    before = _snapshot(flow)
    assert before[1][4]["checks"] == ()
    report = await flow.run(progress=False)
    assert _snapshot(flow) == before
    assert report.nodes["v"].extra["flagged"] == 5
    assert [r["y"] for r in out.items] == [2 * i for i in range(10)]
    again = await flow.run(progress=False)  # a second run counts from zero
    assert (again.nodes["v"].items_in, again.nodes["v"].extra["flagged"]) == (10, 5)
    assert _snapshot(flow) == before


async def test_a_flow_runs_again_after_a_failed_run() -> None:
    broken = [True]

    def answer(r: dict[str, int]) -> dict[str, Any]:
        if broken[0] and r["x"] == 3:
            raise ValueError("the service is down")
        return {**r, "answer": str(r["x"])}

    out = collect()
    flow = fl.Flow("again")
    (flow.source([{"x": i} for i in range(5)])
         .map(answer, name="m")
         .validate(lambda r: r["answer"].isdigit(), "digits only", retries=1, name="v")
         .sink(out))
    with pytest.raises(FlowFailed, match="service is down") as info:
        await flow.run(progress=False)
    assert info.value.node == "m"
    broken[0] = False
    out.items.clear()
    report = await flow.run(progress=False)
    assert report.status == "completed"
    assert (report.nodes["v"].items_in, report.nodes["v"].items_out) == (5, 5)
    assert [r["answer"] for r in out.items] == ["0", "1", "2", "3", "4"]
