"""Output coercion: DSPy's parse_value rules, constraints, field-level errors."""

from __future__ import annotations

import enum
from typing import Any, Literal, Optional

import pydantic
import pytest

import dspex as dx
from dspex.errors import ParseError
from dspex.signatures import Confidence, Reasoning
from dspex.signatures._coerce import (
    annotation_allows_none,
    annotation_name,
    coerce_value,
    parse_field,
    parse_value,
    type_adapter,
)


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Point(pydantic.BaseModel):
    x: int
    y: int


@pytest.mark.parametrize(
    ("text", "annotation", "expected"),
    [
        ("  keep  as is ", str, "  keep  as is "),
        ("0.8", float, 0.8),
        ("42", int, 42),
        ("yes", bool, True),
        ("no", bool, False),
        ("true", bool, True),
        ("True", bool, True),
        ("0.8", Confidence, 0.8),
        ("80%", Confidence, 0.8),
        ("happy", Mood, Mood.HAPPY),
        ("SAD", Mood, Mood.SAD),
        ("a", Literal["a", "b"], "a"),
        ("Literal['b']", Literal["a", "b"], "b"),
        ("'b'", Literal["a", "b"], "b"),
        ("  str[a] ", Literal["a", "b"], "a"),
        ("2", Literal[1, 2], 2),
        ("None", Optional[str], "None"),  # noqa: UP045 - DSPy's Optional[str] rule
        ('["x", "y"]', list[str], ["x", "y"]),
        ("['x', 'y']", list[str], ["x", "y"]),
        ('```json\n{"x": 1, "y": 2}\n```', Point, Point(x=1, y=2)),
        ("{'x': 1, 'y': 2}", Point, Point(x=1, y=2)),
        ("{'k': 123_456.5}", dict[str, float], {"k": 123456.5}),
        ("null", int | None, None),
        ("step one", Reasoning, "step one"),
    ],
)
def test_parse_value_follows_dspy_rules(text: str, annotation: Any, expected: Any) -> None:
    got = parse_value(text, annotation)
    assert got == expected
    assert type(got) is type(expected) or isinstance(got, type(expected))


def test_parse_value_accepts_structured_values_like_dspy() -> None:
    assert parse_value(42, str) == "42"
    assert parse_value({"x": 1, "y": "2"}, Point) == Point(x=1, y=2)
    assert parse_value(Mood.SAD.value, Mood) is Mood.SAD


@pytest.mark.parametrize(
    ("text", "annotation", "expected_type", "fragment"),
    [
        ("forty", int, "int", "valid integer"),
        ("maybe", bool, "bool", "valid boolean"),
        ("angry", Mood, "Mood", "not a valid name or value"),
        ("c", Literal["a", "b"], "Literal['a', 'b']", "Input should be 'a' or 'b'"),
        ('{"x": 1}', Point, "Point", "at y: Field required"),
        ("150%", Confidence, "Confidence", "between 0 and 1"),
    ],
)
def test_parse_value_errors_name_field_type_and_value(text: str, annotation: Any, expected_type: str,
                                                      fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_value(text, annotation, field="out")
    message = info.value.message
    assert message.startswith(f"field `out`: expected {expected_type}, got {text!r}")
    assert fragment in message
    assert info.value.field == "out"


def test_error_message_truncates_long_values() -> None:
    with pytest.raises(ParseError) as info:
        parse_value("x" * 5000, int)
    assert len(info.value.message) < 600
    assert "..." in info.value.message


def test_constraints_are_enforced_on_outputs() -> None:

    class S(dx.Signature):
        q: str = dx.InputField()
        p: float = dx.OutputField(ge=0, le=1)
        name: str = dx.OutputField(min_length=2)

    assert parse_field("p", "0.5", S.output_fields["p"]) == 0.5
    with pytest.raises(ParseError) as info:
        parse_field("p", "1.5", S.output_fields["p"])
    assert "field `p`: expected float, got '1.5'" in info.value.message
    assert "less than or equal to 1" in info.value.message
    with pytest.raises(ParseError, match="at least 2 characters"):
        parse_field("name", "A", S.output_fields["name"])


def test_coerce_value_structured_input() -> None:
    field = dx.OutputField(gt=0)
    assert coerce_value(3, int, field) == 3
    assert coerce_value("3", int, field) == 3
    with pytest.raises(ParseError, match="greater than 0"):
        coerce_value(0, int, field, field="n")
    assert coerce_value([1, "2"], list[int]) == [1, 2]


def test_type_adapters_are_cached() -> None:
    assert type_adapter(list[str]) is type_adapter(list[str])
    assert type_adapter(int) is not type_adapter(float)


def test_arbitrary_types_are_supported() -> None:
    class Opaque:
        pass

    value = Opaque()
    assert coerce_value(value, Opaque) is value


@pytest.mark.parametrize(
    ("annotation", "name"),
    [
        (str, "str"),
        (list[str], "list[str]"),
        (dict[str, Any], "dict[str, Any]"),
        (Optional[int], "Union[int, NoneType]"),  # noqa: UP045
        (int | None, "Union[int, NoneType]"),
        (Literal["yes", "no"], "Literal['yes', 'no']"),
        (Literal["she's", "ok"], "Literal[\"she's\", 'ok']"),
        (Literal["a\"b'c"], "Literal['a\"b\\'c']"),
        (Literal[True, 3, "foo"], "Literal[True, 3, 'foo']"),
        (Point, "Point"),
        (Reasoning, "str"),
    ],
)
def test_annotation_name_matches_dspy(annotation: Any, name: str) -> None:
    assert annotation_name(annotation) == name


def test_annotation_allows_none() -> None:
    assert annotation_allows_none(int | None)
    assert annotation_allows_none(Optional[str])  # noqa: UP045
    assert not annotation_allows_none(int)
    assert not annotation_allows_none(list[int | None])
