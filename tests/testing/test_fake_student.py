"""FakeLLMServer's student: right only with a relevant, correct demo or the instruction."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

import dspex as dx
from dspex.errors import ConfigError
from dspex.testing import FakeLLMServer, StudentTask

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TASK = StudentTask()


@asynccontextmanager
async def student_lm() -> AsyncIterator[dx.LM]:
    """Yield an LM talking to a student server; close both afterwards."""
    async with FakeLLMServer(student=TASK) as server:
        lm = dx.LM("openai/student", api_base=server.url + "/v1", api_key="sk-test", cache=False)
        try:
            yield lm
        finally:
            await lm.aclose()


def test_examples_are_deterministic_and_answer_follows_the_rule() -> None:
    first, again = TASK.examples(12, seed=3), TASK.examples(12, seed=3)
    assert [e.toDict() for e in first] == [e.toDict() for e in again]
    assert {e.question.split()[0] for e in first} == set(TASK.rules)
    for e in first:
        assert TASK.answer(e.question) == e.answer != e.question.split()[1]
    assert TASK.answer("mirror lantern") == "nretnal"
    assert TASK.answer("shift zebra") == "afcsb"


def test_bad_rules_and_questions_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="non-empty subset"):
        StudentTask(rules=["juggle"])
    with pytest.raises(ConfigError, match="<rule> <word>"):
        TASK.answer("juggle lantern")


async def test_student_needs_a_relevant_correct_demo() -> None:
    qa = dx.Predict("question -> answer")
    good = dx.Example(question="mirror falcon", answer="noclaf")
    wrong = dx.Example(question="mirror falcon", answer="falcon")
    other = dx.Example(question="double falcon", answer="falconfalcon")
    async with student_lm() as lm:
        assert (await qa.acall(question="mirror lantern", lm=lm)).answer == "lantern"
        assert (await qa.acall(question="mirror lantern", lm=lm, demos=[other])).answer == "lantern"
        assert (await qa.acall(question="mirror lantern", lm=lm, demos=[wrong])).answer == "lantern"
        assert (await qa.acall(question="mirror lantern", lm=lm, demos=[good])).answer == "nretnal"
        taught = qa.signature.with_instructions(TASK.instruction)
        assert (await qa.acall(question="mirror lantern", lm=lm, signature=taught)).answer == "nretnal"
        # Not one of its questions: the usual prompt-derived fake answer.
        plain = await dx.Predict("topic -> summary").acall(topic="rivers", lm=lm)
        assert plain.summary
        assert plain.summary != "rivers"


async def test_student_fills_every_output_field() -> None:
    cot = dx.ChainOfThought("question -> answer")
    async with student_lm() as lm:
        pred = await cot.acall(question="rotate anchor", lm=lm,
                               demos=[dx.Example(question="rotate falcon", reasoning="r", answer="alconf")])
    assert pred.answer == "nchora"
    assert pred.reasoning == "The rule is rotate."
