"""On FakeLLMServer's student task, optimizers lift the dev score (both backends).

The student answers a question right only when its prompt holds a correct
demo of the same rule (``dspex.testing.StudentTask``), so the uncompiled
program scores 0 % and a correct optimizer must put the right demos in.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import dspex as dx
from dspex.testing import FakeLLMServer, StudentTask

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TASK = StudentTask()
TRAIN = TASK.examples(24, seed=1)
DEV = TASK.examples(30, seed=2)


@asynccontextmanager
async def student_lm() -> AsyncIterator[dx.LM]:
    """Yield an LM talking to a student server; close both afterwards."""
    async with FakeLLMServer(student=TASK) as server:
        lm = dx.LM("openai/student", api_base=server.url + "/v1", api_key="sk-test", cache=False)
        try:
            yield lm
        finally:
            await lm.aclose()


async def test_bootstrap_few_shot_lifts_the_dev_score() -> None:
    student = dx.Predict("question -> answer")
    evaluate = dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, concurrency=16)
    optimizer = dx.BootstrapFewShot(metric=dx.metrics.exact_match, max_bootstrapped_demos=4,
                                    max_labeled_demos=8, concurrency=8)
    async with student_lm() as lm:
        with dx.context(lm=lm):
            before = await evaluate.acall(student)
            compiled = await optimizer.acompile(student, trainset=TRAIN)
            after = await evaluate.acall(compiled)
            again = await evaluate.acall(student)
    assert before.score == 0.0 == again.score  # the student itself is untouched
    assert after.score >= 80.0, after.score  # stated margin: +80 points
    augmented = [d for d in compiled.demos if d.get("augmented")]
    assert len(augmented) == 4
    assert all(TASK.answer(d.question) == d.answer for d in augmented)


async def test_bootstrapped_demos_alone_teach_their_rules_only() -> None:
    # Two traced demos and no labeled ones: exactly the rules of those two demos are learned.
    # With max_labeled_demos=0 the teacher gets no demos of its own (DSPy), so it is given one.
    teacher = await dx.LabeledFewShot(k=12).acompile(dx.Predict("question -> answer"), trainset=TRAIN)
    optimizer = dx.BootstrapFewShot(metric=dx.metrics.exact_match, max_bootstrapped_demos=2,
                                    max_labeled_demos=0, concurrency=4)
    async with student_lm() as lm:
        with dx.context(lm=lm):
            compiled = await optimizer.acompile(dx.Predict("question -> answer"), trainset=TRAIN,
                                                teacher=teacher)
            result = await dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, concurrency=16).acall(compiled)
    taught = {d.question.split()[0] for d in compiled.demos}
    assert len(taught) == 2
    expected = [e.question.split()[0] in taught for e in DEV]
    assert [bool(s) for _, _, s in result.results] == expected


async def test_random_search_lifts_the_dev_score_and_keeps_the_best() -> None:
    teacher = await dx.LabeledFewShot(k=12).acompile(dx.Predict("question -> answer"), trainset=TRAIN)
    optimizer = dx.BootstrapFewShotWithRandomSearch(
        metric=dx.metrics.exact_match, max_bootstrapped_demos=3, max_labeled_demos=0,
        num_candidate_programs=4, concurrency=16)
    async with student_lm() as lm:
        with dx.context(lm=lm):
            best = await optimizer.acompile(dx.Predict("question -> answer"), trainset=TRAIN, valset=DEV[:12],
                                            teacher=teacher)
            score = (await dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match).acall(best)).score
    scores = [c["score"] for c in best.candidate_programs]
    assert scores == sorted(scores, reverse=True)
    assert len(scores) == 7
    assert best is best.candidate_programs[0]["program"] or scores[0] == scores[1]
    zero_shot = next(c for c in best.candidate_programs if c["seed"] == -3)
    assert zero_shot["score"] == 0.0
    assert scores[0] >= 40.0
    assert score >= 40.0
