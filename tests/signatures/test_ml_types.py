"""ML types: validation and coercion of LM-ish values, clear errors, JSON forms."""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

import pydantic
import pytest
from pydantic import TypeAdapter

import dspex as dx
from dspex.errors import ToolError
from dspex.signatures import Citation, Confidence, Embedding, History, Reasoning, Tool, ToolCalls


def _validate(tp: Any, value: Any) -> Any:
    return TypeAdapter(tp).validate_python(value)


def _error(tp: Any, value: Any) -> str:
    with pytest.raises(pydantic.ValidationError) as info:
        _validate(tp, value)
    return str(info.value)


# -- Reasoning ----------------------------------------------------------------------------------


def test_reasoning_is_str_with_steps() -> None:
    r = _validate(Reasoning, "1. Paris is in France.\n2) France's capital is Paris.\n3. So: Paris.")
    assert isinstance(r, str)
    assert isinstance(r, Reasoning)
    assert r.steps == ["Paris is in France.", "France's capital is Paris.", "So: Paris."]
    assert r.content == str(r)


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("- first\n- second\n  continued", ["first", "second continued"]),
        ("Step 1: look. Step 2: think.", ["look.", "think."]),
        ("We compare step 3 and step 4 here.", ["We compare step 3 and step 4 here."]),
        ("line one\n\nline two", ["line one", "line two"]),
        ("It is big. It is red! Done?", ["It is big.", "It is red!", "Done?"]),
        ("   ", []),
        ("Step 1: look\nStep 2: leap", ["look", "leap"]),
    ],
)
def test_reasoning_step_splitting(text: str, steps: list[str]) -> None:
    assert Reasoning(text).steps == steps


def test_reasoning_coercion_and_errors() -> None:
    assert _validate(Reasoning, {"content": "native"}) == "native"
    assert _validate(Reasoning, ["look", "leap"]) == "1. look\n2. leap"
    assert _validate(Reasoning, ["look", "leap"]).steps == ["look", "leap"]
    assert "Reasoning expects text" in _error(Reasoning, 42)
    assert TypeAdapter(Reasoning).json_schema() == {"type": "string"}
    assert TypeAdapter(Reasoning).dump_python(Reasoning("x"), mode="json") == "x"


# -- Confidence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [("0.8", 0.8), ("80%", 0.8), (" 0.25. ", 0.25), (1, 1.0), (0, 0.0), ("100 %", 1.0)])
def test_confidence_coerces(raw: Any, value: float) -> None:
    got = _validate(Confidence, raw)
    assert isinstance(got, Confidence)
    assert got == pytest.approx(value)


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "150%", "high", True, None, float("nan"), math.inf, [0.5]])
def test_confidence_rejects_with_clear_message(raw: Any) -> None:
    message = _error(Confidence, raw)
    assert "Confidence expects a number between 0 and 1" in message
    assert repr(raw)[:20] in message


def test_confidence_schema_and_signature_field() -> None:
    assert TypeAdapter(Confidence).json_schema() == {"type": "number", "minimum": 0.0, "maximum": 1.0}
    sig = dx.Signature("q -> c: Confidence")
    assert sig(q="x", c="90%").c == pytest.approx(0.9)


# -- Embedding ----------------------------------------------------------------------------------


class _Array:
    def __init__(self, values: list[float]) -> None:
        self.values = values

    def tolist(self) -> list[float]:
        return list(self.values)


@pytest.mark.parametrize(
    ("raw", "vec"),
    [
        ([1, 2.5], [1.0, 2.5]),
        ((0.5,), [0.5]),
        ("[0.1, 0.2, 0.3]", [0.1, 0.2, 0.3]),
        ("0.1, 0.2 0.3", [0.1, 0.2, 0.3]),
        ("(1; 2)", [1.0, 2.0]),
        (_Array([3.0, 4.0]), [3.0, 4.0]),
    ],
)
def test_embedding_coerces(raw: Any, vec: list[float]) -> None:
    got = _validate(Embedding, raw)
    assert isinstance(got, Embedding)
    assert got == pytest.approx(vec)


@pytest.mark.parametrize("raw", [[], "", "abc", [1, "x"], [1, float("nan")], [True, 1.0], {"a": 1}, 3.0, [[1.0]]])
def test_embedding_rejects(raw: Any) -> None:
    assert "Embedding expects a non-empty list of finite numbers" in _error(Embedding, raw)


def test_embedding_math() -> None:
    e = Embedding([3.0, 4.0])
    assert e.dim == 2
    assert e.dot([1.0, 1.0]) == 7.0
    assert e.cosine([6.0, 8.0]) == pytest.approx(1.0)
    assert e.cosine([0.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="dimension 2 and 3"):
        e.dot([1.0, 2.0, 3.0])
    assert TypeAdapter(Embedding).dump_python(e, mode="json") == [3.0, 4.0]
    assert TypeAdapter(Embedding).json_schema() == {"type": "array", "items": {"type": "number"}}


# -- Citation -----------------------------------------------------------------------------------


def test_citation_coercion() -> None:
    assert _validate(Citation, "the sky is blue") == Citation(text="the sky is blue")
    dspy_style = {"cited_text": "q", "document_index": 0, "start_char_index": 1, "end_char_index": 2}
    assert _validate(Citation, dspy_style) == Citation(text="q", source="0")
    assert _validate(Citation, {"quote": "z", "url": "http://x"}) == Citation(text="z", source="http://x")
    assert _validate(list[Citation], json.loads('[{"text": "a", "source": "doc1"}, "b"]')) == [
        Citation(text="a", source="doc1"),
        Citation(text="b"),
    ]
    assert "text" in _error(Citation, {"source": "x"})
    assert Citation(text="a").format() == {"text": "a"}
    assert "description" not in TypeAdapter(Citation).json_schema()


# -- History ------------------------------------------------------------------------------------


def test_history_is_dspy_compatible_and_immutable() -> None:
    turns = [{"question": "Capital of France?", "answer": "Paris"}]
    h = History(messages=turns)
    assert h.messages == turns
    assert len(h) == 1
    assert _validate(History, turns) == h
    longer = h.append({"question": "And Germany?", "answer": "Berlin"})
    assert len(longer) == 2
    assert len(h) == 1
    assert longer.last(1).messages == [{"question": "And Germany?", "answer": "Berlin"}]
    assert longer.last(0).messages == []
    with pytest.raises(pydantic.ValidationError):
        h.messages = []  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        History(messages=[{"a": 1}], extra=1)  # type: ignore[call-arg]
    assert "valid dictionary" in _error(History, ["not a dict"])


# -- ToolCalls ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"tool_calls": [{"name": "search", "args": {"q": "cats"}}]},
        '{"tool_calls": [{"name": "search", "args": {"q": "cats"}}]}',
        [{"name": "search", "args": {"q": "cats"}}],
        {"name": "search", "arguments": '{"q": "cats"}'},
        {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": "cats"}'}},
        "{'tool_calls': [{'name': 'search', 'args': {'q': 'cats'}}]}",
    ],
)
def test_tool_calls_accepts_lm_shapes(raw: Any) -> None:
    calls = _validate(ToolCalls, raw)
    assert calls.format() == {"tool_calls": [{"name": "search", "args": {"q": "cats"}}]}
    assert len(calls) == 1


def test_tool_calls_errors_and_schema() -> None:
    assert "ToolCalls expects a JSON object like" in _error(ToolCalls, "no calls here")
    assert "ToolCalls expects" in _error(ToolCalls, 7)
    # Byte-identical to dspy.ToolCalls.model_json_schema() (rendered in DSPy prompts).
    assert TypeAdapter(ToolCalls).json_schema() == {
        "$defs": {
            "ToolCall": {
                "properties": {
                    "name": {"title": "Name", "type": "string"},
                    "args": {"additionalProperties": True, "title": "Args", "type": "object"},
                },
                "required": ["name", "args"],
                "title": "ToolCall",
                "type": "object",
            }
        },
        "properties": {"tool_calls": {"items": {"$ref": "#/$defs/ToolCall"}, "title": "Tool Calls", "type": "array"}},
        "required": ["tool_calls"],
        "title": "ToolCalls",
        "type": "object",
    }
    assert ToolCalls.description().startswith("Tool calls must be a JSON object with `tool_calls`")
    calls = ToolCalls.from_dict_list([{"name": "a", "args": {}}])
    assert calls.model_dump() == {"tool_calls": [{"name": "a", "args": {}}]}
    assert pickle.loads(pickle.dumps(calls)) == calls


def test_tool_call_execute() -> None:
    call = ToolCalls.ToolCall(name="add", args={"x": 1, "y": 2})

    def add(x: int, y: int) -> int:
        return x + y

    assert call.execute({"add": add}) == 3
    assert call.execute([Tool(add)]) == 3
    with pytest.raises(ToolError, match=r"unknown tool 'add'; expected one of \['sub'\]"):
        call.execute({"sub": add})


def test_ml_type_names_for_prompts() -> None:
    names = {tp.__name__ for tp in (Reasoning, Confidence, Embedding, Citation, History, Tool, ToolCalls)}
    assert names == {"Reasoning", "Confidence", "Embedding", "Citation", "History", "Tool", "ToolCalls"}
    for tp in (Reasoning, Confidence, Embedding, Citation, ToolCalls):
        assert isinstance(tp.description(), str)
