"""dx.Assert / dx.Suggest inside module code: retry with feedback, then fail or flag."""

from __future__ import annotations

from typing import Any

import pytest

import dspex as dx
from dspex.errors import AssertionFailed
from dspex.events import PredictionDone, ValidationFailed
from dspex.testing import ScriptedLM

REJECTED = "Your previous response was rejected: "


class OneWord(dx.Module):
    def __init__(self, hard: bool = True) -> None:
        super().__init__()
        self.qa = dx.Predict("question -> answer")
        self.check = dx.Assert if hard else dx.Suggest

    async def aforward(self, question: str) -> Any:
        pred = await self.qa.acall(question=question)
        self.check(len(pred.answer.split()) == 1, f"answer {pred.answer!r} in one word")
        return pred


class SyncOneWord(OneWord):
    def forward(self, question: str) -> Any:  # type: ignore[override]
        pred = self.qa(question=question)
        self.check(len(pred.answer.split()) == 1, "one word please")
        return pred

    aforward = dx.Module.aforward  # type: ignore[assignment]


def _last_user(lm: ScriptedLM, i: int) -> str:
    return str(lm.history[i]["messages"][-1]["content"])


async def test_assert_retries_with_the_message_as_feedback() -> None:
    lm = ScriptedLM([{"answer": "It is Paris"}, {"answer": "Paris"}])
    pred = await OneWord().acall(question="Capital?", lm=lm)
    assert pred.answer == "Paris"
    assert "_flags" not in pred
    assert REJECTED not in _last_user(lm, 0)
    assert _last_user(lm, 1).endswith(f"\n\n{REJECTED}answer 'It is Paris' in one word")


async def test_assert_fails_after_max_backtracks_with_accumulated_feedback() -> None:
    lm = ScriptedLM([{"answer": "a b"}, {"answer": "c d"}, {"answer": "e f"}, {"answer": "never"}])
    with pytest.raises(AssertionFailed, match="in OneWord after all retries: answer 'e f' in one word"):
        await OneWord().acall(question="Q", lm=lm)
    assert lm.calls == 3  # 1 + max_backtracks (2)
    assert _last_user(lm, 2).endswith(f"{REJECTED}answer 'a b' in one word\n{REJECTED}answer 'c d' in one word")


async def test_suggest_continues_and_flags_the_prediction() -> None:
    lm = ScriptedLM([{"answer": "a b"}, {"answer": "c d"}])
    with dx.context(max_backtracks=1):
        pred = await OneWord(hard=False).acall(question="Q", lm=lm)
    assert pred.answer == "c d"
    assert lm.calls == 2
    assert pred["_flags"] == [{"module": "OneWord", "message": "answer 'c d' in one word"}]


def test_sync_forward_and_sync_call_retry_the_same_way() -> None:
    lm = ScriptedLM([{"answer": "two words"}, {"answer": "one"}])
    assert SyncOneWord()(question="Q", lm=lm).answer == "one"
    assert _last_user(lm, 1).endswith(f"{REJECTED}one word please")
    lm = ScriptedLM([{"answer": "two words"}] * 3)
    with pytest.raises(AssertionFailed, match="one word please"):
        SyncOneWord()(question="Q", lm=lm)


async def test_sync_forward_under_acall_retries_in_its_worker_thread() -> None:
    lm = ScriptedLM([{"answer": "two words"}, {"answer": "one"}])
    assert (await SyncOneWord().acall(question="Q", lm=lm)).answer == "one"


async def test_stream_emits_validation_failed_per_failure() -> None:
    with dx.context(lm=ScriptedLM([{"answer": "a b"}, {"answer": "ok"}])):
        events = [ev async for ev in OneWord().stream(question="Q")]
    failed = [ev for ev in events if isinstance(ev, ValidationFailed)]
    assert [(f.attempt, f.message) for f in failed] == [(1, "answer 'a b' in one word")]
    assert isinstance(events[-1], PredictionDone)
    assert events[-1].outputs["answer"] == "ok"


async def test_stream_announces_a_flagged_suggestion() -> None:
    with dx.context(lm=ScriptedLM([{"answer": "a b"}, {"answer": "c d"}]), max_backtracks=1):
        events = [ev async for ev in OneWord(hard=False).stream(question="Q")]
    failed = [(ev.attempt, ev.message) for ev in events if isinstance(ev, ValidationFailed)]
    assert failed == [(1, "answer 'a b' in one word"), (2, "answer 'c d' in one word")]
    assert events[-1].outputs["_flags"] == [{"module": "OneWord", "message": "answer 'c d' in one word"}]


class Outer(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = OneWord()
        self.calls = 0

    async def aforward(self, question: str) -> Any:
        self.calls += 1
        return await self.inner.acall(question=question)


async def test_innermost_module_retries_and_its_final_failure_is_not_retried_again() -> None:
    outer = Outer()
    with pytest.raises(AssertionFailed):
        await outer.acall(question="Q", lm=ScriptedLM([{"answer": "x y"}] * 9))
    assert outer.calls == 1


def test_outside_a_module_assert_raises_and_suggest_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    dx.Assert(True, "fine")
    with pytest.raises(AssertionFailed, match=r"dx\.Assert failed: nope"):
        dx.Assert(0, "nope")
    dx.Suggest(False, "meh")
    assert "dx.Suggest failed outside a module call: meh" in caplog.text
