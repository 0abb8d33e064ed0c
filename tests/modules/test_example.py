"""Example and Prediction: DSPy record semantics."""

from __future__ import annotations

import copy
import pickle

import pytest

import dspex as dx
from dspex.errors import InputError
from dspex.lm import LMUsage
from dspex.modules import Completions


def test_access_and_split() -> None:
    ex = dx.Example(question="2+2?", answer="4", dspy_uuid="x").with_inputs("question")
    assert ex.question == ex["question"] == "2+2?"
    assert ex.inputs().toDict() == {"question": "2+2?"}
    assert ex.labels().toDict() == {"answer": "4", "dspy_uuid": "x"}
    assert ex.keys() == ["question", "answer"]
    assert ex.keys(include_dspy=True) == ["question", "answer", "dspy_uuid"]
    assert ex.values() == ["2+2?", "4"]
    assert ex.items() == [("question", "2+2?"), ("answer", "4")]
    assert len(ex) == 2
    assert "answer" in ex
    assert "missing" not in ex
    assert ex.get("missing", "d") == "d"
    assert list(ex) == ["question", "answer", "dspy_uuid"]
    with pytest.raises(AttributeError, match="missing"):
        ex.missing  # noqa: B018


def test_inputs_without_with_inputs_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="with_inputs"):
        dx.Example(a=1).inputs()


def test_mutation_copy_without() -> None:
    ex = dx.Example({"a": 1}, b=2).with_inputs("a")
    ex.c = 3
    ex["d"] = 4
    assert ex.toDict() == {"a": 1, "b": 2, "c": 3, "d": 4}
    copied = ex.copy(b=20)
    assert copied.b == 20
    assert ex.b == 2
    assert copied.inputs().toDict() == {"a": 1}
    smaller = ex.without("c", "d", "nope")
    assert smaller.toDict() == {"a": 1, "b": 2}
    assert smaller.input_keys == frozenset({"a"})
    del ex["d"]
    assert "d" not in ex
    base = dx.Example(ex)
    assert base == ex
    assert base.input_keys == ex.input_keys


def test_equality_and_hash_including_unhashable_values() -> None:
    a = dx.Example(q="x", tags=["a", "b"], meta={"k": [1]})
    b = dx.Example(q="x", tags=["a", "b"], meta={"k": [1]})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != dx.Example(q="y")
    assert a != {"q": "x"}


def test_to_dict_is_recursive() -> None:
    ex = dx.Example(inner=dx.Example(x=1), hist=dx.History(messages=[{"q": "a"}]), items=[dx.Example(y=2)])
    assert ex.toDict() == {"inner": {"x": 1}, "hist": {"messages": [{"q": "a"}]}, "items": [{"y": 2}]}


def test_pickle_and_deepcopy_round_trip() -> None:
    ex = dx.Example(q="x", a=[1]).with_inputs("q")
    for clone in (pickle.loads(pickle.dumps(ex)), copy.deepcopy(ex), copy.copy(ex)):
        assert clone == ex
        assert clone.input_keys == ex.input_keys


def test_prediction_completions_and_usage() -> None:
    pred = dx.Prediction.from_completions([{"answer": "a1", "n": 1}, {"answer": "a2", "n": 2}])
    assert pred.answer == "a1"
    assert pred.completions.answer == ["a1", "a2"]
    assert pred.completions["n"] == [1, 2]
    assert pred.completions[1].answer == "a2"
    assert pred.completions[-1].n == 2
    assert len(pred.completions) == 2
    assert [p.answer for p in pred.completions] == ["a1", "a2"]
    assert "answer" in pred.completions
    with pytest.raises(IndexError):
        pred.completions[2]
    with pytest.raises(AttributeError, match="fields are"):
        pred.completions.nope  # noqa: B018
    assert pred.usage == LMUsage()
    pred.usage = LMUsage(input_tokens=3)
    assert pred.get_lm_usage().input_tokens == 3
    assert "completions omitted" in repr(pred)


def test_single_prediction_has_one_completion() -> None:
    pred = dx.Prediction(answer="x")
    assert pred.completions.answer == ["x"]
    assert pred.toDict() == {"answer": "x"}


def test_one_completion_is_a_snapshot_with_lists_built_on_read() -> None:
    values = {"reasoning": "r", "answer": "4"}
    pred = dx.Prediction.from_completions([values], signature="question -> answer")
    values["answer"] = "changed"  # the caller's dict is not shared with the prediction
    pred["reasoning"] = "rewritten"  # nor is the prediction's store shared with its completions
    assert pred.answer == "4"
    assert pred.completions.answer == ["4"]
    assert pred.completions.reasoning == ["r"]
    assert pred.completions.answer is pred.completions["answer"]  # built once, then the same list
    assert pred.completions.signature == "question -> answer"
    assert len(pred.completions) == 1
    assert [p.toDict() for p in pred.completions] == [{"reasoning": "r", "answer": "4"}]
    for clone in (pickle.loads(pickle.dumps(pred)), copy.deepcopy(pred), copy.copy(pred)):
        assert clone.completions.answer == ["4"]
        assert clone.answer == "4"
    assert len(Completions([{}])) == 0


def test_completions_from_dict_of_lists_and_length_mismatch() -> None:
    comps = Completions({"a": [1, 2], "b": [3, 4]})
    assert comps[0].toDict() == {"a": 1, "b": 3}
    with pytest.raises(InputError, match="same"):
        Completions({"a": [1, 2], "b": [3]})
    ragged = Completions([{"a": 1}, {"a": 2, "b": 5}])
    assert ragged.b == [None, 5]


def test_prediction_numeric_ops_need_a_score() -> None:
    p, q = dx.Prediction(score=0.5), dx.Prediction(score=1.5)
    assert float(p) == 0.5
    assert p + 1 == 1.5
    assert 1 + p == 1.5
    assert p + q == 2.0
    assert sum([p, q]) == 2.0
    assert q / 3 == 0.5
    assert 3 / q == 2.0
    assert q - p == 1.0
    assert 2 * p == 1.0
    assert p < q
    assert q > p
    assert p <= 0.5
    assert q >= 1.5
    assert max([p, q]) is q
    with pytest.raises(InputError, match="score"):
        float(dx.Prediction(answer="x"))
    with pytest.raises(TypeError):
        p + "x"
