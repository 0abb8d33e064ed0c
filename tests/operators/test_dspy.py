"""``dx.ops.from_dspy``: DSPy modules as flow nodes (dspy is a dev dependency: these run in CI)."""

from __future__ import annotations

import json
import re
from typing import Any

import dspy
import pytest
from dspy.utils.dummies import DummyLM

import dspex as dx
import dspex.flows as fl
from dspex.errors import ConfigError, FlowFailed
from dspex.sinks import collect
from dspex.testing import FakeLLMServer


def _dummy(n: int) -> Any:
    """A DummyLM answering by question (deterministic whatever the call order)."""
    return DummyLM({f"question {i}": {"reasoning": f"because {i}", "answer": f"a{i}"} for i in range(n)})


async def test_chain_of_thought_in_a_flow_merges_outputs_and_counts_calls() -> None:
    out = collect()
    flow = fl.Flow("dspy-cot")
    records = [{"id": i, "question": f"question {i}", "extra": i} for i in range(6)]
    node = dx.ops.from_dspy(dspy.ChainOfThought("question -> answer"), lm=_dummy(6))
    flow.source(records).map(node, concurrency=3).sink(out)
    report = await flow.run(progress=False)
    assert report.items_failed == 0
    by_id = {r["id"]: r for r in out.items}
    assert sorted(by_id) == list(range(6))
    for i, record in by_id.items():
        assert record == {"id": i, "question": f"question {i}", "extra": i,
                          "reasoning": f"because {i}", "answer": f"a{i}"}
    assert report.usage["calls"] == 6  # one LM call per item, from each call's own history


async def test_configured_lm_and_custom_forward_take_only_their_inputs() -> None:
    class Answer(dspy.Module):  # type: ignore[misc]  # dspy ships no type information
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            return self.predict(question=question)

    out = collect()
    flow = fl.Flow("dspy-custom")
    flow.source([{"question": f"question {i}", "noise": "x"} for i in range(3)]) \
        .map(dx.ops.from_dspy(Answer())).sink(out)
    with dspy.context(lm=_dummy(3)):  # no lm=: DSPy's configured LM when the call starts
        await flow.run(progress=False)
    assert [r["answer"] for r in out.items] == ["a0", "a1", "a2"]
    assert all(r["noise"] == "x" for r in out.items)


async def test_missing_input_fails_the_item_with_a_typed_error() -> None:
    flow = fl.Flow("dspy-missing")
    node = dx.ops.from_dspy(dspy.Predict("question -> answer"), lm=_dummy(1))
    flow.source([{"query": "question 0"}]).map(node).sink(collect())
    with pytest.raises(FlowFailed, match=r"needs input field\(s\) 'question'; the record has 'query'"):
        await flow.run(progress=False)


async def test_without_any_lm_the_item_fails_naming_the_fix() -> None:
    flow = fl.Flow("dspy-nolm")
    flow.source([{"question": "q"}]).map(dx.ops.from_dspy(dspy.Predict("question -> answer"))).sink(collect())
    with dspy.context(lm=None), pytest.raises(FlowFailed, match=r"dspy.configure\(lm=\.\.\.\)"):
        await flow.run(progress=False)


def test_from_dspy_refuses_what_is_not_a_dspy_module() -> None:
    with pytest.raises(ConfigError, match=r"expects a dspy\.Module instance, got function"):
        dx.ops.from_dspy(lambda question: question)
    with pytest.raises(ConfigError, match=r"lm must be a dspy\.LM, got str"):
        dx.ops.from_dspy(dspy.Predict("q -> a"), lm="openai/gpt-4o")


def _responder(request: dict[str, Any]) -> str:
    number = re.findall(r"question (\d+)", json.dumps(request["messages"]))[-1]
    return f"[[ ## reasoning ## ]]\nthink {number}\n\n[[ ## answer ## ]]\nA{number}\n\n[[ ## completed ## ]]"


async def test_dspy_lm_against_fake_server_reports_token_usage() -> None:
    out = collect()
    async with FakeLLMServer(responder=_responder) as server:
        lm = dspy.LM("openai/fake", api_base=f"{server.url}/v1", api_key="x", cache=False, num_retries=0)
        flow = fl.Flow("dspy-server")
        node = dx.ops.from_dspy(dspy.ChainOfThought("question -> answer"), lm=lm)
        flow.source([{"question": f"question {i}"} for i in range(4)]).map(node, concurrency=2).sink(out)
        report = await flow.run(progress=False)
    assert sorted(r["answer"] for r in out.items) == ["A0", "A1", "A2", "A3"]
    assert {r["reasoning"] for r in out.items} == {"think 0", "think 1", "think 2", "think 3"}
    assert report.usage["calls"] == 4
    assert report.usage["input_tokens"] > 0
    assert report.usage["output_tokens"] > 0


class _Events(collect().__class__):  # type: ignore[misc]
    """A collect sink that also receives the live events."""

    wants_events = True

    def __init__(self) -> None:
        super().__init__("events")
        self.events: list[Any] = []

    async def write_event(self, event: Any) -> None:
        self.events.append(event)


async def test_event_aware_sink_gets_usage_then_prediction_done() -> None:
    sink = _Events()
    flow = fl.Flow("dspy-events")
    node = dx.ops.from_dspy(dspy.ChainOfThought("question -> answer"), lm=_dummy(2))
    flow.source([{"question": "question 0"}, {"question": "question 1"}]).map(node).sink(sink)
    await flow.run(progress=False)
    kinds = [e.type for e in sink.events if e.type in ("usage", "prediction_done")]
    assert kinds == ["usage", "prediction_done"] * 2
    done = [e for e in sink.events if e.type == "prediction_done"]
    assert [e.outputs["answer"] for e in done] == ["a0", "a1"]
    assert [r["answer"] for r in sink.items] == ["a0", "a1"]
