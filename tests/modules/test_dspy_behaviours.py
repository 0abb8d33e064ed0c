"""DSPy behaviours programs rely on: input warnings, missing inputs, positional-argument text, deepcopy fallback."""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

import pytest

import dspex as dx
from dspex.errors import ConfigError, InputError
from dspex.modules._inputs import value_matches
from dspex.testing import ScriptedLM

LOGGER = "dspex.modules"


def test_positional_arguments_get_dspys_error_text() -> None:
    predict = dx.Predict("question, context -> answer")
    with pytest.raises(InputError, match="Positional arguments are not allowed") as info:
        predict("what?")
    assert "input fields: 'question, context'" in str(info.value)
    assert "`predict(question=input_value, ...)`" in str(info.value)
    assert isinstance(info.value, ValueError)  # code catching DSPy's ValueError still works


async def test_extra_inputs_are_ignored_with_dspys_warning(caplog: pytest.LogCaptureFixture) -> None:
    lm = ScriptedLM([{"answer": "a"}])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        pred = await dx.Predict("question -> answer").acall(question="q", colour="red", lm=lm)
    assert pred.answer == "a"
    assert "Input contains fields not in signature. These fields will be ignored: ['colour']" in caplog.text
    assert "[[ ## colour ## ]]" not in lm.history[-1]["messages"][-1]["content"]


async def test_type_mismatch_warns_unless_switched_off(caplog: pytest.LogCaptureFixture) -> None:
    predict = dx.Predict("count: int, tags: list[str] -> answer")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await predict.acall(count="three", tags=["a"], lm=ScriptedLM([{"answer": "a"}]))
    assert "Type mismatch for field 'count': expected int based on given Signature" in caplog.text
    assert "'tags'" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER), dx.context(warn_on_type_mismatch=False):
        await predict.acall(count="three", tags=["a"], lm=ScriptedLM([{"answer": "a"}]))
    assert "Type mismatch" not in caplog.text


async def test_missing_input_raises_by_default_and_warns_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    predict = dx.Predict("question, context -> answer")
    with pytest.raises(InputError, match="missing required input\\(s\\) 'context'"):
        await predict.acall(question="q", lm=ScriptedLM([{"answer": "a"}]))
    with caplog.at_level(logging.WARNING, logger=LOGGER), dx.context(missing_inputs="warn"):
        pred = await predict.acall(question="q", lm=ScriptedLM([{"answer": "a"}]))
    assert pred.answer == "a"
    assert "Not all input fields were provided to module. Present: ['question']. Missing: ['context']." in caplog.text
    with dx.context(missing_inputs="maybe"), pytest.raises(ConfigError, match="'raise' or 'warn'"):
        await predict.acall(question="q", lm=ScriptedLM([{"answer": "a"}]))


@pytest.mark.parametrize(("value", "annotation", "ok"), [
    ("x", str, True), (1, str, False), ([1, 2], list[int], True), ([1, "a"], list[int], False),
    ({"a": 1}, dict[str, int], True), ({1: 1}, dict[str, int], False), ("b", Literal["a", "b"], True),
    ("c", Literal["a", "b"], False), (None, int | None, True), ((1, "a"), tuple[int, str], True),
    ((1, 2, 3), tuple[int, ...], True), ((1,), tuple[int, str], False), ({1}, set[int], True), (3, Any, True),
])
def test_value_matches_like_dspy(value: Any, annotation: Any, ok: bool) -> None:
    assert value_matches(value, annotation) is ok


class WithLock(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dx.Predict("question -> answer")
        self.lock = threading.Lock()
        self.notes = ["a"]

    def forward(self, question: str) -> Any:
        return self.predict(question=question)


def test_deepcopy_falls_back_to_shallow_copies(caplog: pytest.LogCaptureFixture) -> None:
    prog = WithLock()
    prog.predict.demos = [dx.Example(question="q", answer="a")]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        copied = prog.deepcopy()
    assert "Failed to deep copy attribute 'lock' of WithLock" in caplog.text
    assert copied.lock is prog.lock  # a lock cannot be copied at all: shared
    assert copied.notes == prog.notes
    assert copied.notes is not prog.notes
    assert copied.predict is not prog.predict
    assert copied.predict.demos == prog.predict.demos
    copied.predict.demos.append(dx.Example(question="q2", answer="b"))
    assert len(prog.predict.demos) == 1
    assert copied(question="x", lm=ScriptedLM([{"answer": "ok"}])).answer == "ok"


class Outer(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = WithLock()

    def forward(self, question: str, direct: bool = False) -> Any:
        return self.inner.forward(question=question) if direct else self.inner(question=question)


class AsyncForward(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dx.Predict("question -> answer")

    async def forward(self, question: str) -> Any:
        return await self.predict.acall(question=question)


def test_calling_forward_directly_logs_dspys_warning(caplog: pytest.LogCaptureFixture) -> None:
    lm = ScriptedLM([{"answer": "a"}] * 4)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        Outer()(question="q", lm=lm)
    assert "directly is discouraged" not in caplog.text
    with caplog.at_level(logging.WARNING, logger=LOGGER), dx.context(lm=lm):
        WithLock().forward(question="q")
    assert "Calling module.forward(...) on WithLock directly is discouraged. Please use module(...) instead." \
        in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        Outer()(question="q", direct=True, lm=lm)  # a sub-module's forward called inside forward
    assert "on WithLock directly" in caplog.text
    assert "on Outer directly" not in caplog.text


async def test_acall_does_not_warn_for_sync_or_async_forward(caplog: pytest.LogCaptureFixture) -> None:
    lm = ScriptedLM([{"answer": "a"}] * 3)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await Outer().acall(question="q", lm=lm)).answer == "a"
        assert (await AsyncForward().acall(question="q", lm=lm)).answer == "a"
    assert "directly is discouraged" not in caplog.text
    with caplog.at_level(logging.WARNING, logger=LOGGER), dx.context(lm=lm):
        await AsyncForward().forward(question="q")
    assert "on AsyncForward directly" in caplog.text


async def test_trace_starts_as_a_list_and_is_bounded() -> None:
    from dspex._context import KNOWN_SETTINGS, get_setting

    assert isinstance(KNOWN_SETTINGS["trace"], list)  # DSPy: settings.trace starts as []
    trace = get_setting("trace")
    assert isinstance(trace, list)
    predict = dx.Predict("question -> answer")
    with dx.context(max_trace_size=2):
        for i in range(4):
            await predict.acall(question=f"q{i}", lm=ScriptedLM([{"answer": str(i)}]))
        assert len(trace) == 2
    assert [entry[1]["question"] for entry in trace] == ["q2", "q3"]
    assert trace[-1][0] is predict


class Refined(WithLock):
    def forward(self, question: str) -> Any:
        return super().forward(question=question.strip())


def test_super_forward_inside_forward_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert Refined()(question=" q ", lm=ScriptedLM([{"answer": "a"}])).answer == "a"
    assert "directly is discouraged" not in caplog.text
