"""Malformed signature strings: a SignatureError or a valid signature, never anything else.

Regressions for issue 12 (item 8): ``History.model_fields[...]`` raised a bare
``KeyError``, ``X[()]`` an ``IndexError``, and attribute chains such as
``str.mro`` or ``datetime.max`` were walked with ``getattr`` and became
"types". Attributes are now followed only through explicit ``types=``
entries: a dotted key, a public class of a module passed in, or an enum
member inside ``Literal[...]``.
"""

from __future__ import annotations

import datetime
import enum
import types
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dspex as dx
from dspex.errors import SignatureError
from dspex.signatures._make import signature_from_string
from dspex.signatures._parse import base_type_names

pytestmark = pytest.mark.reliability


class Color(enum.Enum):
    RED = "red"


def _check(text: str, **kwargs: object) -> None:
    """Building the signature succeeds or raises SignatureError (nothing else)."""
    try:
        sig = signature_from_string(text, **kwargs)  # type: ignore[arg-type]
    except SignatureError as exc:
        error: SignatureError | None = exc
    else:
        error = None
    if error is not None:
        assert str(error)  # names what was wrong
        return
    for field in sig.fields.values():  # a valid signature holds types, not stray objects
        assert field.annotation is not None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("q -> a: History.model_fields[History | time]", "attributes of types are not followed"),
        ("q: Citation[()] -> a", "expected at least one argument inside [...]"),
        ("q: list[()] -> a", "expected at least one argument inside [...]"),
        ("a: str.mro -> b", "invalid type 'str.mro' for field 'a'"),
        ("a: int.__class__ -> b", "attributes of types are not followed"),
        ("a: str.__mro__ -> b", "attributes of types are not followed"),
        ("a: datetime.max -> b", "attributes of types are not followed"),
        ("a: list[str.join] -> b", "attributes of types are not followed"),
        ("a: Literal[str.mro] -> b", "Literal[...] takes str, int, bool, None or enum member"),
        ("a: int | str.mro -> b", "attributes of types are not followed"),
        ("a: Reasoning.model_fields -> b", "attributes of types are not followed"),
        ("a: str[int] -> b", "str is not a generic type"),
        ("a: 0a -> b", "cannot read the inputs"),
        ("a\x00 -> b", "cannot read the inputs"),
    ],
)
def test_malformed_types_raise_signature_error(text: str, fragment: str) -> None:
    with pytest.raises(SignatureError) as info:
        dx.Signature(text)
    assert fragment in str(info.value)


def test_explicit_types_still_allow_dotted_names_modules_and_enum_members() -> None:
    sig = signature_from_string(
        "a: mod.Color, d: dt.date -> z: Literal[Color.RED]",
        types={"mod.Color": Color, "dt": datetime, "Color": Color},
    )
    got = {n: f.annotation for n, f in sig.fields.items()}
    assert got == {"a": Color, "d": datetime.date, "z": Literal[Color.RED]}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: dt.MINYEAR -> b", "unknown type 'dt.MINYEAR'"),  # a module's int, not a class
        ("a: dt._time -> b", "attributes of types are not followed"),  # private
        ("a -> z: Literal[Color.BLUE]", "Literal[...] takes"),  # not a member
        ("a -> z: Literal[Color.__class__]", "Literal[...] takes"),
        ("a: Color['RED'] -> b", "Color is not a generic type"),  # EnumMeta.__getitem__
        ("a: table[1] -> b", "table is not a generic type"),  # a dict passed in types=
    ],
)
def test_explicit_types_do_not_open_attribute_or_item_access(text: str, fragment: str) -> None:
    spaces = {"dt": datetime, "Color": Color, "table": {1: int}}
    with pytest.raises(SignatureError) as info:
        signature_from_string(text, types=spaces)
    assert fragment in str(info.value)


_LEAVES = [
    *sorted(base_type_names()),
    "1", "'x'", "None", "...", "()", "[]", "-1", "1.5", "b'x'", "True", "x", "{}", "Color", "mod",
]
_ATTRS = ["mro", "__class__", "x", "real", "RED", "__mro__", "model_fields", "__args__", "date", "_x"]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, inner).map(lambda p: f"{p[0]}[{p[1]}]"),
        st.tuples(inner, inner, inner).map(lambda p: f"{p[0]}[{p[1]}, {p[2]}]"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]} | {p[1]}"),
        st.tuples(inner, st.sampled_from(_ATTRS)).map(lambda p: f"{p[0]}.{p[1]}"),
        inner.map(lambda t: f"({t})"),
        inner.map(lambda t: f"[{t}]"),
    )


_TYPE_EXPRS = st.recursive(st.sampled_from(_LEAVES), _extend, max_leaves=5)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TYPE_EXPRS, st.booleans())
def test_any_type_expression_gives_a_signature_or_signature_error(tp: str, as_output: bool) -> None:
    text = f"q -> a: {tp}" if as_output else f"q: {tp} -> a"
    _check(text, types={"Color": Color, "mod": types.SimpleNamespace(date=datetime.date)})


_PIECES = st.sampled_from(
    [*"ab:,->[]|().'\"*=\n _0#\\{}@!;\t\x00é", "->", "str", "int", "list", "Literal", "None", "mro", "__class__", "ﬁ"]
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_any_text_gives_a_signature_or_signature_error(text: str) -> None:
    _check(text)
