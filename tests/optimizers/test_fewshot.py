"""LabeledFewShot / BootstrapFewShot / RandomSearch: contracts beyond DSPy equivalence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex as dx
from dspex.errors import ConfigError
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dspex.lm import LMResponse

PAIRS = [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red"),
         ("banana", "yellow"), ("carrot", "orange"), ("violet", "purple")]
TRAIN = [dx.Example(question=q, answer=a).with_inputs("question") for q, a in PAIRS]
RIGHT = {f"## question ## ]]\n{q}\n": {"answer": a} for q, a in PAIRS}


class SlowLM(ScriptedLM):
    """Answers like ScriptedLM, but earlier questions take longer (completion order reversed)."""

    async def acall(self, messages: list[Any], **params: Any) -> LMResponse:
        last = str(messages[-1]["content"])
        rank = next((i for i, (q, _) in enumerate(PAIRS) if f"]]\n{q}\n" in last), 0)
        await anyio.sleep(0.002 * (len(PAIRS) - rank))
        return await super().acall(messages, **params)


class RolloutLM(ScriptedLM):
    """Wrong on round 0; ``copy(rollout_id=1, ...)`` (round 1) answers right."""

    def __init__(self) -> None:
        super().__init__({key: {"answer": "wrong"} for key in RIGHT})
        self.copies: list[dict[str, Any]] = []

    def copy(self, **params: Any) -> ScriptedLM:
        self.copies.append(params)
        return ScriptedLM(RIGHT)


def questions(demos: Sequence[Any]) -> list[tuple[str, bool]]:
    return [(d.question, bool(d.get("augmented"))) for d in demos]


async def test_compile_returns_a_new_program_and_leaves_the_student_alone() -> None:
    student = dx.Predict("question -> answer")
    student.demos = [TRAIN[0]]
    lm = ScriptedLM(RIGHT)
    student.lm = lm
    with dx.context(lm=lm):  # as in DSPy, copies are reset: they use the context's LM
        compiled = await dx.BootstrapFewShot(metric=dx.metrics.exact_match, max_bootstrapped_demos=2,
                                             max_labeled_demos=3).acompile(student, trainset=TRAIN)
    assert compiled is not student
    assert compiled._compiled
    assert compiled.lm is None
    assert student.demos == [TRAIN[0]]
    assert student.lm is lm
    assert not student._compiled
    assert questions(compiled.demos)[:2] == [("sky", True), ("grass", True)]


def test_sync_compile_works_from_sync_code() -> None:
    with dx.context(lm=ScriptedLM(RIGHT)):
        compiled = dx.BootstrapFewShot(max_bootstrapped_demos=1, max_labeled_demos=2).compile(
            dx.Predict("question -> answer"), trainset=TRAIN)
    assert len(compiled.demos) == 2
    assert compiled.demos[0].augmented is True


async def test_same_seed_same_demos_whatever_the_completion_order() -> None:
    results = []
    for concurrency in (1, 8):
        opt = dx.BootstrapFewShot(metric=dx.metrics.exact_match, max_bootstrapped_demos=3,
                                  max_labeled_demos=5, concurrency=concurrency)
        with dx.context(lm=SlowLM({"]]\ngrass\n": {"answer": "no"}, **RIGHT})):
            results.append(questions((await opt.acompile(dx.Predict("question -> answer"), trainset=TRAIN)).demos))
    assert results[0] == results[1]
    assert results[0][:3] == [("sky", True), ("snow", True), ("coal", True)]


async def test_later_rounds_use_a_fresh_rollout_of_the_lm() -> None:
    for rounds, expected in [(1, 0), (2, 2)]:
        lm = RolloutLM()
        opt = dx.BootstrapFewShot(metric=dx.metrics.exact_match, max_bootstrapped_demos=2,
                                  max_labeled_demos=0, max_rounds=rounds)
        with dx.context(lm=lm):
            compiled = await opt.acompile(dx.Predict("question -> answer"), trainset=TRAIN)
        assert sum(1 for d in compiled.demos if d.get("augmented")) == expected
        assert all(c == {"rollout_id": 1, "temperature": 1.0} for c in lm.copies)
        assert bool(lm.copies) is (rounds > 1)


async def test_metric_threshold_applies_to_numeric_scores() -> None:
    lm = ScriptedLM({"]]\nsky\n": {"answer": "blue sky"}, **RIGHT})  # F1 0.67 for sky
    for threshold, first in [(0.5, "sky"), (0.9, "grass")]:
        opt = dx.BootstrapFewShot(metric=dx.metrics.f1, metric_threshold=threshold,
                                  max_bootstrapped_demos=1, max_labeled_demos=0)
        with dx.context(lm=lm):
            compiled = await opt.acompile(dx.Predict("question -> answer"), trainset=TRAIN)
        assert questions(compiled.demos) == [(first, True)]


async def test_a_failing_example_is_skipped_not_fatal() -> None:
    def metric(example: dx.Example, pred: dx.Prediction, trace: Any = None) -> bool:
        if example.question == "sky":
            raise RuntimeError("metric bug")
        return dx.metrics.exact_match(example, pred)

    opt = dx.BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=0)
    with dx.context(lm=ScriptedLM(RIGHT)):
        compiled = await opt.acompile(dx.Predict("question -> answer"), trainset=TRAIN)
    assert questions(compiled.demos) == [("grass", True), ("snow", True)]
    assert opt.error_count == 1
    strict = dx.BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=0, max_errors=1)
    with dx.context(lm=ScriptedLM(RIGHT)), pytest.raises(RuntimeError, match="metric bug"):
        await strict.acompile(dx.Predict("question -> answer"), trainset=TRAIN)


async def test_when_every_attempt_fails_the_error_is_raised() -> None:
    with pytest.raises(dx.errors.LMNotConfiguredError):
        await dx.BootstrapFewShot(max_labeled_demos=0).acompile(dx.Predict("question -> answer"), trainset=TRAIN)


async def test_structure_and_student_errors() -> None:
    opt = dx.BootstrapFewShot()
    with pytest.raises(ConfigError, match="differs from the teacher"):
        await opt.acompile(dx.Predict("question -> answer"), trainset=TRAIN,
                           teacher=dx.Predict("question -> reply"))
    compiled = dx.Predict("question -> answer")
    compiled._compiled = True
    with pytest.raises(ConfigError, match="must be uncompiled"):
        await opt.acompile(compiled, trainset=TRAIN)
    with pytest.raises(ConfigError, match="expects a dspex Module"):
        await dx.LabeledFewShot().acompile(lambda question: question, trainset=TRAIN)
    with pytest.raises(ConfigError, match="max_rounds must be an int >= 0"):
        dx.BootstrapFewShot(max_rounds=-1)
    with pytest.raises(ConfigError, match="k must be an int"):
        dx.LabeledFewShot(k="4")  # type: ignore[arg-type]


async def test_labeled_few_shot_with_empty_trainset_returns_a_reset_copy() -> None:
    student = dx.Predict("question -> answer")
    student.demos = [TRAIN[0]]
    program = await dx.LabeledFewShot(k=2).acompile(student, trainset=[])
    assert program.demos == []
    assert student.demos == [TRAIN[0]]


async def test_random_search_restrict_and_stop_at_score() -> None:
    opt = dx.BootstrapFewShotWithRandomSearch(metric=dx.metrics.exact_match, max_bootstrapped_demos=2,
                                              max_labeled_demos=2, num_candidate_programs=3, stop_at_score=50)
    with dx.context(lm=ScriptedLM({"]]\nsky\n": {"answer": "x"}, **RIGHT})):
        best = await opt.acompile(dx.Predict("question -> answer"), trainset=TRAIN, restrict=[-2, 0, 1])
    # Scores are 87.5 everywhere: the first seed reaches stop_at_score, the search keeps only it.
    assert [c["seed"] for c in best.candidate_programs] == [-2]
    assert best is best.candidate_programs[0]["program"]
    with pytest.raises(ConfigError, match="matches no candidate seed"):
        await opt.acompile(dx.Predict("question -> answer"), trainset=TRAIN, restrict=[99])
    with pytest.raises(ConfigError, match="callable metric"):
        dx.BootstrapFewShotWithRandomSearch(metric=None)  # type: ignore[arg-type]


class PeakLM(ScriptedLM):
    """Counts how many calls are in flight at once."""

    def __init__(self) -> None:
        super().__init__(RIGHT)
        self.now = self.peak = 0

    async def acall(self, messages: list[Any], **params: Any) -> LMResponse:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await anyio.sleep(0.001)
            return await super().acall(messages, **params)
        finally:
            self.now -= 1


async def test_random_search_bounds_all_lm_calls_by_concurrency() -> None:
    lm = PeakLM()
    opt = dx.BootstrapFewShotWithRandomSearch(metric=dx.metrics.exact_match, max_bootstrapped_demos=4,
                                              max_labeled_demos=4, num_candidate_programs=5, concurrency=3)
    with dx.context(lm=lm):
        best = await opt.acompile(dx.Predict("question -> answer"), trainset=TRAIN)
    assert len(best.candidate_programs) == 8
    assert lm.peak == 3  # six bootstraps at once, still 3 calls at most
