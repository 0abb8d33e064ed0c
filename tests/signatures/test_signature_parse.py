"""String signature parsing: types, malformed input, and a round-trip property."""

from __future__ import annotations

import datetime
import decimal
import enum
import keyword
import typing
from typing import Any, Literal, Optional

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dspex as dx
from dspex.errors import SignatureError
from dspex.signatures import Confidence, Embedding, Reasoning, Tool, ToolCalls
from dspex.signatures._make import signature_from_string


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Custom:
    pass


def test_untyped_inputs_are_marked_and_typed_are_not() -> None:
    sig = dx.Signature("a, b: int -> c")
    assert sig.input_fields["a"].json_schema_extra["IS_TYPE_UNDEFINED"] is True  # type: ignore[index]
    assert sig.input_fields["b"].json_schema_extra["IS_TYPE_UNDEFINED"] is False  # type: ignore[index]
    assert sig.output_fields["c"].annotation is str


def test_ml_and_stdlib_types_need_no_types_argument() -> None:
    sig = dx.Signature(
        "q, tools: list[Tool], when: datetime, amount: Decimal -> r: Reasoning, c: Confidence, "
        "e: Embedding, calls: ToolCalls, d: date"
    )
    got = {n: f.annotation for n, f in sig.fields.items()}
    assert got == {
        "q": str,
        "tools": list[Tool],
        "when": datetime.datetime,
        "amount": decimal.Decimal,
        "r": Reasoning,
        "c": Confidence,
        "e": Embedding,
        "calls": ToolCalls,
        "d": datetime.date,
    }


def test_custom_types_literals_and_enum_members() -> None:
    sig = dx.Signature(
        "x: Custom, y: mod.Color -> z: Literal[Color.RED, 'x', -1, None, True]",
        types={"Custom": Custom, "Color": Color, "mod.Color": Color},
    )
    assert sig.input_fields["x"].annotation is Custom
    assert sig.input_fields["y"].annotation is Color
    assert sig.output_fields["z"].annotation == Literal[Color.RED, "x", -1, None, True]  # noqa: PYI061  # as the string wrote it


def test_multiline_signature_and_output_only() -> None:
    sig = dx.Signature("context: list[str],\n   question\n -> answer")
    assert list(sig.fields) == ["context", "question", "answer"]
    only = dx.Signature("-> output")
    assert list(only.input_fields) == []
    assert only.instructions == "Given the fields , produce the fields `output`."


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a -> b -> c", "expected exactly one '->'"),
        ("a, b", "expected exactly one '->'"),
        ("a b -> c", "cannot read the inputs 'a b'; expected comma-separated"),
        ("a, , b -> c", "cannot read the inputs"),
        ("a: -> b", "cannot read the inputs"),
        ("a=1 -> b", "cannot read the inputs"),
        ("*a -> b", "cannot read the inputs"),
        ("a, *, b -> c", "cannot read the inputs"),
        ("a): pass\ndef g(b -> c", "cannot read the inputs"),
        ("class -> b", "cannot read the inputs 'class'"),
        ("a ->", "expected at least one output field"),
        ("a -> ", "expected at least one output field"),
        ("a: Foo -> b", "unknown type 'Foo' for field 'a'"),
        ("a -> b: pkg.Foo", "unknown type 'pkg'"),
        ("a: list[Foo] -> b", "pass it explicitly: types={'Foo': Foo}"),
        ("a: list[5] -> b", "invalid type '5' for field 'a'"),
        ("a: str[int] -> b", "invalid type 'str[int]'"),
        ("a: Optional[int, str] -> b", "Optional takes exactly one type"),
        ("a: Literal[int] -> b", "Literal[...] takes str, int, bool, None or enum member values"),
        ("a: 'int' -> b", "invalid type \"'int'\""),
        ("a: f(x) -> b", "invalid type 'f(x)'"),
        ("a, a -> b", "field 'a' appears twice among the inputs"),
        ("a -> b, b", "field 'b' appears twice among the outputs"),
        ("a, b -> b", "'b' is both an input and an output"),
    ],
)
def test_malformed_signatures_raise_signature_error(text: str, fragment: str) -> None:
    with pytest.raises(SignatureError) as info:
        dx.Signature(text)
    message = str(info.value)
    assert fragment in message
    assert repr(text) in message or text.strip() in message or "'Foo'" in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TypeError)


def test_unknown_type_error_names_the_field() -> None:
    with pytest.raises(SignatureError) as info:
        dx.Signature("question, ctx: Doc -> answer")
    assert info.value.field == "ctx"


def test_non_string_signature() -> None:
    with pytest.raises(SignatureError, match="expected a signature string"):
        dx.Signature(42)  # type: ignore[call-overload]


def test_types_argument_must_map_names() -> None:
    with pytest.raises(SignatureError, match="types= must be a dict"):
        signature_from_string("a: X -> b", types={1: int})  # type: ignore[dict-item]


def test_no_code_is_executed() -> None:
    with pytest.raises(SignatureError):
        dx.Signature("a: __import__('os').system('false') -> b")


# -- property: rendered signatures parse back to the same fields and types --------------------

_BASE: list[tuple[str, Any]] = [
    ("str", str),
    ("int", int),
    ("float", float),
    ("bool", bool),
    ("bytes", bytes),
    ("Any", Any),
    ("Confidence", Confidence),
    ("Reasoning", Reasoning),
    ("Custom", Custom),
    ("Literal['a', 'b']", Literal["a", "b"]),
    ("Literal[1, -2, True]", Literal[1, -2, True]),
]


def _combine(inner: st.SearchStrategy[tuple[str, Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        inner.map(lambda t: (f"list[{t[0]}]", list[t[1]])),  # type: ignore[name-defined]
        inner.map(lambda t: (f"dict[str, {t[0]}]", dict[str, t[1]])),  # type: ignore[name-defined]
        inner.map(lambda t: (f"Optional[{t[0]}]", Optional[t[1]])),  # noqa: UP045
        inner.map(lambda t: (f"{t[0]} | None", typing.Union[t[1], None])),  # noqa: UP007
        st.tuples(inner, inner).map(lambda p: (f"tuple[{p[0][0]}, {p[1][0]}]", tuple[p[0][1], p[1][1]])),  # type: ignore[misc]
        st.tuples(inner, inner).map(lambda p: (f"Union[{p[0][0]}, {p[1][0]}]", typing.Union[p[0][1], p[1][1]])),  # noqa: UP007
    )


_TYPES = st.recursive(st.sampled_from(_BASE), _combine, max_leaves=4)
_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and not keyword.issoftkeyword(n)
)
_FIELD = st.tuples(_NAMES, st.one_of(st.none(), _TYPES))


@settings(max_examples=150, deadline=None)
@given(st.lists(_FIELD, min_size=1, max_size=6, unique_by=lambda f: f[0]), st.integers(min_value=0, max_value=5))
def test_rendered_signature_round_trips(fields: list[tuple[str, tuple[str, Any] | None]], split: int) -> None:
    split = min(split, len(fields) - 1)
    inputs, outputs = fields[:split], fields[split:]

    def render(side: list[tuple[str, tuple[str, Any] | None]]) -> str:
        return ", ".join(name if tp is None else f"{name}: {tp[0]}" for name, tp in side)

    text = f"{render(inputs)} -> {render(outputs)}"
    sig = signature_from_string(text, types={"Custom": Custom})
    assert list(sig.input_fields) == [n for n, _ in inputs]
    assert list(sig.output_fields) == [n for n, _ in outputs]
    for name, tp in fields:
        assert sig.fields[name].annotation == (str if tp is None else tp[1]), text


class _CallerAnswer(pydantic.BaseModel):
    text: str


def test_custom_types_is_dspys_name_for_types() -> None:
    sig = dx.Signature("q -> a: Answer", custom_types={"Answer": _CallerAnswer})
    assert sig.output_fields["a"].annotation is _CallerAnswer
    both = dx.Signature("q: Other -> a: Answer", custom_types={"Answer": _CallerAnswer}, types={"Other": int})
    assert both.input_fields["q"].annotation is int


def test_caller_types_resolve_only_when_asked() -> None:
    class LocalModel(pydantic.BaseModel):
        x: int

    with pytest.raises(SignatureError, match="resolve_caller_types=True"):
        dx.Signature("q: LocalModel -> a: _CallerAnswer")
    sig = dx.Signature("q: LocalModel -> a: _CallerAnswer", resolve_caller_types=True)
    assert sig.input_fields["q"].annotation is LocalModel
    assert sig.output_fields["a"].annotation is _CallerAnswer
    assert dx.Signature("q: list[str] -> a", resolve_caller_types=True).input_fields["q"].annotation == list[str]
