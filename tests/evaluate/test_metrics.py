"""dx.metrics: DSPy's normalisation and scores, plus the LM judges."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

import dspex as dx
from dspex.errors import InputError
from dspex.evaluate import metrics
from dspex.testing import ScriptedLM

GOLDEN = json.loads((Path(__file__).parents[1] / "optimizers" / "golden" / "dspy_golden.json").read_text())


def golden(kind: str) -> list[dict[str, Any]]:
    found = [c for c in GOLDEN["cases"] if c["kind"] == kind]
    assert found
    return found


@pytest.mark.parametrize("case", golden("metric"), ids=lambda c: f"{c['pred']!r}-{c['gold']!r}")
def test_text_metrics_match_dspy(case: dict[str, Any]) -> None:
    example, pred = dx.Example(answer=case["gold"]), dx.Prediction(answer=case["pred"])
    assert metrics.normalize_text(case["pred"]) == case["normalized"]
    assert metrics.exact_match(example, pred) is case["exact_match"]
    assert metrics.answer_exact_match(example, pred, frac=0.5) is case["frac_half"]
    assert metrics.f1(example, pred) == pytest.approx(case["f1"])


@pytest.mark.parametrize("case", golden("passage"), ids=lambda c: repr(c["gold"]))
def test_answer_passage_match_matches_dspy(case: dict[str, Any]) -> None:
    pred = dx.Prediction(context=case["passages"])
    assert metrics.answer_passage_match(dx.Example(answer=case["gold"]), pred) is case["match"]


def test_normalisation_details() -> None:
    assert metrics.normalize_text("The,  Eiffel  Tower!") == "eiffel tower"
    assert metrics.normalize_text("Café") == unicodedata.normalize("NFD", "café")
    assert metrics.EM("The Eiffel Tower", ["Eiffel Tower", "Louvre"]) is True
    assert round(metrics.F1("Eiffel Tower is in Paris", ["Paris"]), 2) == 0.33


def test_list_answers_and_contains() -> None:
    example = dx.Example(answer=["Eiffel Tower", "Louvre"])
    assert metrics.exact_match(example, dx.Prediction(answer="the louvre")) is True
    assert metrics.exact_match(example, dx.Prediction(answer="Big Ben")) is False
    assert metrics.contains(dx.Example(answer="Paris"), dx.Prediction(answer="It is Paris, France.")) is True
    assert metrics.contains(dx.Example(answer="Paris"), dx.Prediction(answer="Parisian food")) is False


def test_bad_inputs_are_named() -> None:
    with pytest.raises(InputError, match="example has no field 'answer'"):
        metrics.exact_match(dx.Example(question="q"), dx.Prediction(answer="a"))
    with pytest.raises(InputError, match=r"example\.answer must be a string or a non-empty list"):
        metrics.exact_match(dx.Example(answer=3), dx.Prediction(answer="3"))
    with pytest.raises(InputError, match="answers_list"):
        metrics.EM("a", [])


EXAMPLE = dx.Example(question="What is water?", response="Water is H2O, a liquid.")
PRED = dx.Prediction(response="Water is H2O.", context="Water is a molecule of H2O.")


async def test_semantic_f1_is_an_lm_judge() -> None:
    lm = ScriptedLM([{"reasoning": "half covered", "recall": 0.5, "precision": 1.0}] * 2)
    judge = metrics.SemanticF1(threshold=0.7)
    with dx.context(lm=lm):
        score = await judge.acall(example=EXAMPLE, pred=PRED)
        passed = await judge.acall(example=EXAMPLE, pred=PRED, trace=[])
    assert float(score) == pytest.approx(2 / 3)
    assert passed.score is False  # 0.667 < 0.7 in bootstrapping mode
    prompt = lm.history[0]["messages"][0]["content"]
    assert "Compare a system's response to the ground truth to compute its recall and precision." in prompt


def test_semantic_f1_is_callable_like_a_dspy_metric() -> None:
    lm = ScriptedLM([{"reasoning": "r", "recall": 2.0, "precision": 1.0}])
    with dx.context(lm=lm):
        assert float(metrics.SemanticF1()(EXAMPLE, PRED)) == 1.0  # clamped to [0, 1]


async def test_complete_and_grounded_combines_two_judges() -> None:
    lm = ScriptedLM({
        "ground_truth": {"reasoning": "r", "ground_truth_key_ideas": "a", "system_response_key_ideas": "a",
                         "discussion": "d", "completeness": 1.0},
        "retrieved_context": {"reasoning": "r", "system_response_claims": "c", "discussion": "d",
                              "groundedness": 0.5},
    })
    with dx.context(lm=lm):
        result = await metrics.CompleteAndGrounded().acall(example=EXAMPLE, pred=PRED)
    assert float(result) == pytest.approx(2 / 3)
    assert lm.calls == 2
