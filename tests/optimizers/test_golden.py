"""dspex selects the same demos and gives the same scores as DSPy 3.4.1.

``golden/dspy_golden.json`` was written by ``golden/make_golden.py`` with the
real DSPy: the same trainsets, the same scripted LM answers (keyed by the
question block of the final message), the same settings. Each case is
replayed here with dspex on both backends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dspex as dx
from dspex.testing import ScriptedLM

GOLDEN = json.loads((Path(__file__).parent / "golden" / "dspy_golden.json").read_text())
COLORS = [tuple(p) for p in GOLDEN["colors"]]
ANSWERS: dict[str, str] = GOLDEN["answers"]


def examples(pairs: list[tuple[str, str]]) -> list[dx.Example]:
    return [dx.Example(question=q, answer=a).with_inputs("question") for q, a in pairs]


def scripted(cot: bool = False) -> ScriptedLM:
    def answer(q: str, a: str) -> dict[str, str]:
        return {"reasoning": f"{q} is {a}", "answer": a} if cot else {"answer": a}

    return ScriptedLM({f"## question ## ]]\n{q}\n": answer(q, a) for q, a in ANSWERS.items()})


def demos(program: dx.Module) -> dict[str, list[dict[str, Any]]]:
    return {name: [dict(d.toDict()) for d in p.demos] for name, p in program.named_predictors()}


class TwoStep(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dx.Predict("question -> answer")
        self.check = dx.Predict("question, answer -> verdict")


def cases(kind: str) -> list[dict[str, Any]]:
    found = [c for c in GOLDEN["cases"] if c["kind"] == kind]
    assert found, f"no {kind} cases in the golden file"
    return found


def case_id(case: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in sorted(case.items()) if isinstance(v, int | str | bool) and k != "kind")


@pytest.mark.parametrize("case", cases("labeled"), ids=case_id)
async def test_labeled_few_shot_picks_dspy_demos(case: dict[str, Any]) -> None:
    student = dx.Predict("question -> answer") if case["program"] == "predict" else TwoStep()
    compiled = await dx.LabeledFewShot(k=case["k"]).acompile(
        student, trainset=examples(COLORS[: case["train"]]), sample=case["sample"])
    assert demos(compiled) == case["demos"]
    assert all(not p.demos for p in student.predictors())  # the student is untouched


@pytest.mark.parametrize("concurrency", [1, 8])
@pytest.mark.parametrize("case", cases("bootstrap"), ids=case_id)
async def test_bootstrap_few_shot_picks_dspy_demos(case: dict[str, Any], concurrency: int) -> None:
    cot = case["program"] == "cot"
    student = dx.ChainOfThought("question -> answer") if cot else dx.Predict("question -> answer")
    optimizer = dx.BootstrapFewShot(
        metric=dx.metrics.answer_exact_match, max_bootstrapped_demos=case["max_bootstrapped_demos"],
        max_labeled_demos=case["max_labeled_demos"], concurrency=concurrency)
    with dx.context(lm=scripted(cot)):
        compiled = await optimizer.acompile(student, trainset=examples(COLORS[: case["train"]]))
    assert demos(compiled) == case["demos"]
    assert compiled._compiled
    assert not student._compiled
    assert all(not p.demos for p in student.predictors())


@pytest.mark.parametrize("case", cases("random_search"), ids=case_id)
async def test_random_search_matches_dspy_candidates(case: dict[str, Any]) -> None:
    optimizer = dx.BootstrapFewShotWithRandomSearch(
        metric=dx.metrics.answer_exact_match, max_bootstrapped_demos=case["max_bootstrapped_demos"],
        max_labeled_demos=case["max_labeled_demos"], num_candidate_programs=case["num_candidate_programs"],
        concurrency=8)
    lo, hi = case["train"]
    vlo, vhi = case["val"]
    with dx.context(lm=scripted()):
        best = await optimizer.acompile(dx.Predict("question -> answer"), trainset=examples(COLORS[lo:hi]),
                                        valset=examples(COLORS[vlo:vhi]))
    got = [{"seed": c["seed"], "score": c["score"], "subscores": [bool(s) for s in c["subscores"]],
            "demos": demos(c["program"])} for c in best.candidate_programs]
    assert got == case["candidates"]
    assert demos(best) == case["best_demos"]


@pytest.mark.parametrize("case", cases("evaluate"), ids=case_id)
async def test_evaluate_matches_dspy(case: dict[str, Any]) -> None:
    metric = dx.metrics.answer_exact_match if case["metric"] == "exact_match" else dx.metrics.f1
    with dx.context(lm=scripted()):
        result = await dx.Evaluate(devset=examples(COLORS), metric=metric, concurrency=4).acall(
            dx.Predict("question -> answer"))
    assert result.score == case["score"]
    assert [{"answer": p.get("answer"), "score": s} for _, p, s in result.results] == case["results"]
    assert [e.question for e, _, _ in result.results] == [q for q, _ in COLORS]
