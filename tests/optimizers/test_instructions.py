"""COPRO and MIPROv2 on FakeLLMServer's student task: the instruction phrase is found (both backends).

The student answers right given a demo of the rule or the task's instruction
phrase; asked to propose an instruction it answers one of four phrasings
(by a hash of the prompt), only one of which teaches. So the uncompiled
program scores 0 % and an instruction optimizer must find that phrase by
scoring its candidates.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

import dspex as dx
from dspex.errors import ConfigError
from dspex.testing import FakeLLMServer, StudentTask

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

TASK = StudentTask()
TRAIN = TASK.examples(24, seed=1)
DEV = TASK.examples(30, seed=2)


@asynccontextmanager
async def student_lm() -> AsyncIterator[dx.LM]:
    async with FakeLLMServer(student=TASK) as server:
        lm = dx.LM("openai/student", api_base=server.url + "/v1", api_key="sk-test", cache=False)
        try:
            yield lm
        finally:
            await lm.aclose()


async def test_copro_finds_the_instruction_and_lifts_the_dev_score() -> None:
    student = dx.Predict("question -> answer")
    evaluate = dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, concurrency=16)
    optimizer = dx.COPRO(metric=dx.metrics.exact_match, breadth=4, depth=2, concurrency=16)
    async with student_lm() as lm:
        with dx.context(lm=lm):
            before = await evaluate.acall(student)
            compiled = await optimizer.acompile(student, trainset=TRAIN[:12])
            after = await evaluate.acall(compiled)
    assert before.score == 0.0
    assert compiled.signature.instructions == TASK.instruction
    assert after.score == 100.0  # stated margin: +100 points
    assert student.signature.instructions != TASK.instruction  # untouched
    scores = [c["score"] for c in compiled.candidate_programs]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == 100.0
    assert min(scores) == 0.0
    assert compiled.total_calls == 4 + 4  # round 1: 3 proposed + the original; round 2: 4 new ones


async def test_copro_same_settings_same_result() -> None:
    results = []
    for _ in range(2):
        async with student_lm() as lm:
            with dx.context(lm=lm):
                compiled = await dx.COPRO(metric=dx.metrics.exact_match, breadth=3, depth=2).acompile(
                    dx.Predict("question -> answer"), trainset=TRAIN[:6])
        results.append([(c["instruction"], c["score"]) for c in compiled.candidate_programs])
    assert results[0] == results[1]


def test_copro_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="breadth"):
        dx.COPRO(metric=dx.metrics.exact_match, breadth=1)
    with pytest.raises(ConfigError, match="metric"):
        dx.COPRO(metric=None)


async def test_mipro_finds_instruction_and_demos_and_lifts_the_dev_score() -> None:
    student = dx.Predict("question -> answer")
    evaluate = dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, concurrency=16)
    optimizer = dx.MIPROv2(metric=dx.metrics.exact_match, max_bootstrapped_demos=2, max_labeled_demos=2,
                           auto=None, num_candidates=4, seed=9, concurrency=16)
    async with student_lm() as lm:
        with dx.context(lm=lm):
            before = await evaluate.acall(student)
            compiled = await optimizer.acompile(student, trainset=TRAIN, valset=DEV[:20], num_trials=6,
                                                minibatch_size=10, minibatch_full_eval_steps=2)
            after = await evaluate.acall(compiled)
    assert before.score == 0.0
    assert compiled.signature.instructions == TASK.instruction
    assert after.score == 100.0
    assert compiled.score == 100.0
    assert student.signature.instructions != TASK.instruction
    assert student.demos == []
    full = [c["score"] for c in compiled.candidate_programs]
    assert full[0] == 100.0
    assert full == sorted(full, reverse=True)
    assert len(compiled.mb_candidate_programs) == 6


async def test_mipro_same_seed_same_result() -> None:
    runs = []
    for _ in range(2):
        optimizer = dx.MIPROv2(metric=dx.metrics.exact_match, max_bootstrapped_demos=0, max_labeled_demos=0,
                               auto=None, num_candidates=4, seed=3, concurrency=16)
        async with student_lm() as lm:
            with dx.context(lm=lm):
                compiled = await optimizer.acompile(dx.Predict("question -> answer"), trainset=TRAIN,
                                                    valset=DEV[:20], num_trials=5, minibatch_size=8,
                                                    minibatch_full_eval_steps=2)
        runs.append((compiled.signature.instructions,
                     [(k, sorted(v.items(), key=str)) for k, v in compiled.trial_logs.items()]))
    assert runs[0] == runs[1]
    assert len(runs[0][1]) == 1 + 5 + 3  # the baseline, 5 minibatch trials, 3 full evaluations


def test_mipro_rejects_inconsistent_sizes() -> None:
    with pytest.raises(ConfigError, match="auto"):
        dx.MIPROv2(metric=dx.metrics.exact_match, auto="huge")
    with pytest.raises(ConfigError, match=r"LM in dx\.context"):
        dx.MIPROv2(metric=dx.metrics.exact_match).compile(dx.Predict("question -> answer"), trainset=TRAIN)
    lm = dx.LM("openai/unused", api_base="http://127.0.0.1:9/v1")  # never called: the checks come first
    with pytest.raises(ConfigError, match=r"num_trials=\) \(about 6\)"):
        dx.MIPROv2(metric=dx.metrics.exact_match, auto=None, num_candidates=3, task_model=lm, prompt_model=lm).compile(
            dx.Predict("question -> answer"), trainset=TRAIN, valset=DEV)
    with pytest.raises(ConfigError, match="neither"):
        dx.MIPROv2(metric=dx.metrics.exact_match, num_candidates=3, task_model=lm, prompt_model=lm).compile(
            dx.Predict("question -> answer"), trainset=TRAIN, valset=DEV)
    with pytest.raises(ConfigError, match="minibatch_size 35 exceeds"):
        dx.MIPROv2(metric=dx.metrics.exact_match, auto=None, num_candidates=3, task_model=lm, prompt_model=lm).compile(
            dx.Predict("question -> answer"), trainset=TRAIN, valset=DEV, num_trials=2)


def feedback_metric(gold: dx.Example, pred: dx.Prediction, trace: object = None, pred_name: object = None,
                    pred_trace: object = None) -> dx.Prediction:
    ok = gold.answer == pred.answer
    return dx.Prediction(score=float(ok), feedback="Correct." if ok else
                         f"Wrong: the right answer to '{gold.question}' is {gold.answer}.")


async def test_gepa_reflects_on_feedback_and_lifts_the_dev_score() -> None:
    student = dx.Predict("question -> answer")
    evaluate = dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, concurrency=16)
    async with student_lm() as lm:
        optimizer = dx.GEPA(metric=feedback_metric, max_metric_calls=60, reflection_lm=lm,
                            reflection_minibatch_size=3, track_stats=True, seed=0, concurrency=16)
        with dx.context(lm=lm):
            before = await evaluate.acall(student)
            compiled = await optimizer.acompile(student, trainset=TRAIN[:12], valset=DEV[:10])
            after = await evaluate.acall(compiled)
    assert before.score == 0.0
    assert compiled.signature.instructions == TASK.instruction
    assert after.score == 100.0  # stated margin: +100 points
    assert student.signature.instructions != TASK.instruction  # untouched
    details = compiled.detailed_results
    assert details["val_aggregate_scores"][0] == 0.0
    assert max(details["val_aggregate_scores"]) == 1.0
    assert details["parents"][details["best_idx"]] == [0]  # evolved from the seed candidate


def test_gepa_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="five arguments"):
        dx.GEPA(metric=lambda gold, pred: 1.0, auto="light", reflection_lm=object())
    with pytest.raises(ConfigError, match="exactly one"):
        dx.GEPA(metric=feedback_metric, auto="light", max_metric_calls=10, reflection_lm=object())
    with pytest.raises(ConfigError, match="reflection_lm"):
        dx.GEPA(metric=feedback_metric, auto="light")
    with pytest.raises(ConfigError, match="use_wandb"):
        dx.GEPA(metric=feedback_metric, auto="light", reflection_lm=object(), use_wandb=True)
    with pytest.raises(ConfigError, match="'pareto' or 'current_best', got 'best'"):
        dx.GEPA(metric=feedback_metric, auto="light", reflection_lm=object(),
                candidate_selection_strategy="best")  # type: ignore[arg-type]  # the bad input under test


async def test_mipro_bootstrap_errors_surface_as_themselves() -> None:
    class Broken:
        model = "broken"

        async def acall(self, *args: object, **kwargs: object) -> None:
            raise ConfigError("the LM is broken")

        def copy(self, **kwargs: object) -> Broken:
            return self

    optimizer = dx.MIPROv2(metric=dx.metrics.exact_match, auto=None, num_candidates=3, task_model=Broken(),
                           prompt_model=Broken())
    with pytest.raises(ConfigError, match="broken"):
        await optimizer.acompile(dx.Predict("question -> answer"), trainset=TRAIN, valset=DEV[:5], num_trials=2,
                                 minibatch=False)


async def test_gepa_log_dir_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    results = []
    for _ in range(2):  # the second run finds the first one's state in log_dir and resumes from it
        async with student_lm() as lm:
            optimizer = dx.GEPA(metric=feedback_metric, max_metric_calls=40, reflection_lm=lm, seed=1,
                                log_dir=str(tmp_path / "gepa"), track_stats=True)
            with dx.context(lm=lm):
                best = await optimizer.acompile(dx.Predict("question -> answer"), trainset=TRAIN[:9],
                                                valset=DEV[:6])
        results.append((best.signature.instructions, best.detailed_results["val_aggregate_scores"]))
    assert results[0] == results[1]
    assert any((tmp_path / "gepa").iterdir())
