"""MultiChainComparison (byte-identical prompt to DSPy 3.4.1) and majority voting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import dspex as dx
from dspex.errors import InputError
from dspex.events import FieldDone, PredictionDone
from dspex.testing import ScriptedLM

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))

import module_cases as cases

GOLD = json.loads((GOLDEN / "modules_golden.json").read_text())


def _completions() -> list[dx.Prediction]:
    return [dx.Prediction(**c) for c in cases.MCC_COMPLETIONS]


async def test_mcc_prompt_is_byte_identical_to_dspy() -> None:
    lm = ScriptedLM([cases.MCC_ANSWER])
    pred = await dx.MultiChainComparison("question -> answer", M=3).acall(_completions(), lm=lm, **cases.QUESTION)
    assert pred.rationale == "Most attempts say Brussels."
    assert pred.answer == "Brussels"
    assert lm.history[0]["messages"] == GOLD["mcc"]["calls"][0]["messages"]
    assert lm.history[0]["params"]["temperature"] == 0.7


def test_mcc_sync_call_takes_completions_positionally_or_by_name() -> None:
    mcc = dx.MultiChainComparison("question -> answer", M=3)
    lm = ScriptedLM([cases.MCC_ANSWER, cases.MCC_ANSWER])
    assert mcc(_completions(), lm=lm, **cases.QUESTION).answer == "Brussels"
    assert mcc(completions=_completions(), lm=lm, **cases.QUESTION).answer == "Brussels"
    assert lm.history[0]["messages"] == lm.history[1]["messages"] == GOLD["mcc"]["calls"][0]["messages"]


async def test_mcc_streams_the_inner_predictor() -> None:
    mcc = dx.MultiChainComparison("question -> answer", M=3)
    with dx.context(lm=ScriptedLM([cases.MCC_ANSWER])):
        events = [ev async for ev in mcc.stream(_completions(), **cases.QUESTION)]
    assert [ev.field for ev in events if isinstance(ev, FieldDone)] == ["rationale", "answer"]
    assert isinstance(events[-1], PredictionDone)
    assert events[-1].outputs["answer"] == "Brussels"


async def test_mcc_rejects_the_wrong_number_of_attempts() -> None:
    mcc = dx.MultiChainComparison("question -> answer", M=2)
    with pytest.raises(InputError, match=r"number of attempts \(3\) doesn't match the expected number M \(2\)"):
        await mcc.acall(_completions(), lm=ScriptedLM([]), **cases.QUESTION)
    with pytest.raises(InputError, match="needs 'rationale'"):
        await mcc.acall([{"answer": "x"}, {"answer": "y"}], lm=ScriptedLM([]), **cases.QUESTION)


def test_majority_votes_on_the_last_field_after_normalising() -> None:
    pred = dx.Prediction.from_completions(
        [{"reasoning": "r1", "answer": "Paris."}, {"reasoning": "r2", "answer": "Lyon"},
         {"reasoning": "r3", "answer": "the paris"}, {"reasoning": "r4", "answer": "Lyon"}]
    )
    winner = dx.majority(pred)
    assert winner.answer == "Paris."
    assert winner.reasoning == "r1"
    assert dx.majority(pred, field="reasoning").reasoning == "r1"
    assert dx.majority([{"a": "x"}, {"a": "y"}, {"a": "y"}]).a == "y"


def test_majority_uses_the_signature_and_skips_none_normalisations() -> None:
    sig = dx.ensure_signature("q -> answer, note")
    comps = dx.Completions([{"answer": "A", "note": "..."}, {"answer": "B", "note": "b"}, {"answer": "B", "note": "!"}],
                           signature=sig)
    # "note" is the last output field; "..." and "!" normalise to "" -> None and are ignored
    assert dx.majority(comps).note == "b"
    assert dx.majority(comps, normalize=None, field="answer").answer == "B"


def test_majority_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="expects a Prediction, Completions or a list"):
        dx.majority("not completions")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least one completion"):
        dx.majority([])
    with pytest.raises(InputError, match="no field 'missing'"):
        dx.majority([{"a": "x"}], field="missing")
