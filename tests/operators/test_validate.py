"""validate: assert/suggest, retry-with-feedback into the upstream map."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import dspex as dx
import dspex.flows as fl
from dspex._context import get_setting
from dspex.errors import AssertionFailed, FlowFailed
from dspex.events import Event, ValidationFailed
from dspex.sinks import Sink, collect
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class EventCollector(Sink):
    wants_events = True

    def __init__(self) -> None:
        self.name = "events"
        self.events: list[Event] = []

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        pass

    async def write_event(self, event: Event) -> None:
        self.events.append(event)


def _counting_map() -> tuple[Any, list[tuple[str, ...]]]:
    seen: list[tuple[str, ...]] = []

    def answer(r: dict[str, Any]) -> dict[str, Any]:
        feedback = get_setting("feedback")
        seen.append(feedback)
        return {**r, "answer": "word " * (3 - len(feedback))}

    return answer, seen


async def test_assert_retries_with_feedback_then_passes() -> None:
    fn, seen = _counting_map()
    out = collect()
    flow = fl.Flow("v")
    (flow.source([{"q": 1}]).map(fn)
         .validate(lambda r: len(r["answer"].split()) <= 1, "answer too long", retries=2)
         .sink(out))
    report = await flow.run(progress=False)
    assert seen == [(), ("answer too long",), ("answer too long", "answer too long")]
    assert out.items[0]["answer"].split() == ["word"]
    node = report.nodes["validate-3"]
    assert (node.items_in, node.items_out, node.items_failed) == (1, 1, 0)
    assert node.extra["validation_failures"] == 2
    assert report.validation_failures == 2


@pytest.mark.parametrize("policy", ["raise", "dead_letter"])
async def test_assert_gives_up_through_the_policy(policy: str) -> None:
    fn, seen = _counting_map()
    flow = fl.Flow("v")
    (flow.source([{"q": 1}]).map(fn)
         .validate(lambda r: not r["answer"], "must be empty", retries=1, on_error=policy,
                   name="check")
         .sink(collect()))
    if policy == "raise":
        with pytest.raises(FlowFailed, match=r"check.*must be empty") as info:
            await flow.run(progress=False)
        assert info.value.node == "check"
    else:
        report = await flow.run(progress=False)
        (dl,) = report.dead_letters
        assert isinstance(dl.error, AssertionFailed)
        assert dl.node == "check"
        assert report.nodes["check"].items_failed == 1
    assert len(seen) == 2


async def test_suggest_flags_and_passes() -> None:
    fn, _ = _counting_map()
    out = collect()
    flow = fl.Flow("s")
    (flow.source([{"q": 1}, {"q": 2}]).map(fn)
         .validate(lambda r: r["q"] == 1, lambda r: f"q={r['q']} is odd", mode="suggest",
                   name="soft")
         .sink(out))
    report = await flow.run(progress=False)
    assert "_flags" not in out.items[0]
    assert out.items[1]["_flags"] == [{"node": "soft", "message": "q=2 is odd"}]
    assert report.nodes["soft"].extra["flagged"] == 1


async def test_standalone_validate_and_assertion_error_message() -> None:
    def check(r: dict[str, int]) -> bool:
        assert r["x"] < 2, f"x={r['x']} too big"
        return True

    out = collect()
    flow = fl.Flow("standalone")
    (flow.source([{"x": i} for i in range(4)]).filter(lambda r: True)
         .validate(check, on_error="skip").sink(out))
    report = await flow.run(progress=False)
    assert [r["x"] for r in out.items] == [0, 1]
    assert report.nodes["validate-3"].items_failed == 2


async def test_validation_failed_events_and_module_feedback() -> None:
    lm = ScriptedLM([{"answer": "a very long answer"}, {"answer": "short"}])
    live = EventCollector()
    out = collect()
    flow = fl.Flow("m")
    (flow.source([{"question": "q"}]).map(dx.Predict("question -> answer"), name="qa")
         .validate(lambda r: len(r["answer"].split()) == 1, "one word only", retries=1)
         .sink(out, live))
    await flow.run(progress=False, lm=lm)
    assert [r["answer"] for r in out.items] == ["short"]
    failed = [e for e in live.events if isinstance(e, ValidationFailed)]
    assert [(e.message, e.attempt, e.node) for e in failed] == [("one word only", 1, "validate-3")]
    second_prompt = lm.history[-1]["messages"][-1]["content"]
    assert "one word only" in second_prompt
