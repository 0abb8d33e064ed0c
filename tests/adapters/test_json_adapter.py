"""JSONAdapter: format pieces, structured-output params, repair and bad input."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

import dspex as dx
from dspex.adapters import JSONAdapter
from dspex.adapters._json_repair import extract_object, first_balanced_object, loads
from dspex.errors import ParseError


class Inner(pydantic.BaseModel):
    label: str
    weight: float | None = None


class Out(dx.Signature):
    """Classify."""

    text: str = dx.InputField()
    label: str = dx.OutputField()
    score: float = dx.OutputField()
    inner: Inner = dx.OutputField()
    tags: list[Inner] = dx.OutputField()


def test_format_skeleton_reminder_and_demo() -> None:
    sig = dx.Signature("question -> answer, n: int")
    messages = JSONAdapter().format(sig, [{"question": "q", "answer": "a", "n": 1}], {"question": "Q"})
    system = messages[0]["content"]
    assert "Inputs will have the following structure:\n\n[[ ## question ## ]]\n{question}" in system
    assert ('Outputs will be a JSON object with the following fields.\n\n{\n  "answer": "{answer}",\n'
            '  "n": "{n}        # note: the value you produce must be a single int value"\n}') in system
    assert messages[2] == {"role": "assistant", "content": '{\n  "answer": "a",\n  "n": 1\n}'}
    assert messages[3]["content"].endswith(
        "Respond with a JSON object in the following order of fields: `answer`, then `n` "
        "(must be formatted as a valid Python int)."
    )


def test_lm_params_strict_schema() -> None:
    params = JSONAdapter().lm_params(Out, "openai")
    fmt = params["response_format"]
    assert fmt["type"] == "json_schema"
    inner = fmt["json_schema"]
    assert inner["name"] == "DSPyProgramOutputs"
    assert inner["strict"] is True
    schema = inner["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["label", "score", "inner", "tags"]
    inner_def = schema["$defs"]["Inner"]
    assert inner_def["required"] == ["label", "weight"]
    assert inner_def["additionalProperties"] is False
    assert "default" not in inner_def["properties"]["weight"]
    json.dumps(params)  # JSON-ready


def test_lm_params_open_dict_uses_json_mode() -> None:
    sig = dx.Signature("q -> data: dict[str, Any]")
    assert JSONAdapter().lm_params(sig) == {"response_format": {"type": "json_object"}}


@pytest.mark.parametrize(
    "completion",
    [
        '{"answer": "Paris"}',
        '```json\n{"answer": "Paris"}\n```',
        '```\n{"answer": "Paris"}\n```\nThat is all.',
        'Here you go: {"answer": "Paris"}. Anything else?',
        "{'answer': 'Paris'}",
        '{"answer": "Paris"',
        '{"answer": "Paris", "unknown": [1, 2]}',
        '{\n  "answer": "Paris",\n}',
    ],
)
def test_parse_repairs_common_damage(completion: str) -> None:
    assert JSONAdapter().parse(dx.Signature("question -> answer"), completion) == {"answer": "Paris"}


def test_parse_truncated_nested_value() -> None:
    got = JSONAdapter().parse(Out, '{"label": "x", "score": 0.5, "inner": {"label": "y"}, "tags": [{"label": "z", "we')
    assert got["inner"] == Inner(label="y")
    assert got["tags"][0].label == "z"


@pytest.mark.parametrize("completion", ["just prose", "[1, 2]", "42", "{{{{"])
def test_non_object_completion_raises(completion: str) -> None:
    with pytest.raises(ParseError, match="cannot be serialized to a JSON object") as info:
        JSONAdapter().parse(dx.Signature("question -> answer"), completion)
    assert info.value.raw == completion
    assert info.value.adapter == "JSONAdapter"


def test_wrong_type_names_field_and_type() -> None:
    with pytest.raises(ParseError) as info:
        JSONAdapter().parse(Out, '{"label": "x", "score": "lots", "inner": {"label": "y"}, "tags": []}')
    assert info.value.field == "score"
    assert str(info.value).startswith("field `score`: expected float, got 'lots'")
    assert "Adapter JSONAdapter failed to parse the LM response" in str(info.value)


def test_missing_field_names_field() -> None:
    with pytest.raises(ParseError) as info:
        JSONAdapter().parse(Out, '{"label": "x", "score": 1, "tags": []}')
    assert info.value.field == "inner"
    assert "`inner` (Inner)" in str(info.value)


def test_empty_completion() -> None:
    with pytest.raises(ParseError, match="empty or null response"):
        JSONAdapter().parse(Out, "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a {b} c", "{b}"),
        ("{ {inner} never closed", "{inner}"),
        ('x {"a": {"b": 1}} y {"c": 2}', '{"a": {"b": 1}}'),
        ("} {ok}", "{ok}"),
        ("no braces", None),
        ("{unbalanced", None),
    ],
)
def test_first_balanced_object(text: str, expected: str | None) -> None:
    assert first_balanced_object(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('noise {"a": {"b": [1, 2]}} more {"c": 3}', {"a": {"b": [1, 2]}}),
        ('```json\n{"a": "fenced"}\n```', {"a": "fenced"}),
        ('Intro then ```json\n{"a": 2}\n```', {"a": 2}),
        ("{'a': True, 'b': None}", {"a": True, "b": None}),
        ('{"a": "cut off', {"a": "cut off"}),
        ("nothing here", None),
        ("[1, 2, 3]", None),
    ],
)
def test_extract_object(text: str, expected: dict[str, Any] | None) -> None:
    assert extract_object(text) == expected


@pytest.mark.parametrize("garbage", ["", "\x00{[", "{" * 50, '"\\u12', "}}}]]]"])
def test_loads_never_raises(garbage: str) -> None:
    assert loads(garbage) is not None or garbage == "null"
    assert loads('{"a": 1}') == {"a": 1}


def test_well_formed_object_before_prose_is_decoded_strictly() -> None:
    # json-repair alone (and DSPy's brace regex) reads this as ["}"].
    text = '{"answer": ["}0"]}\n\n[[ ## completed ## ]]\n'
    assert extract_object(text) == {"answer": ["}0"]}
    assert JSONAdapter().parse(dx.Signature("q -> answer: list[str]"), text) == {"answer": ["}0"]}
