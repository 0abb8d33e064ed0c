"""The one JSON Schema rewriter: each profile keeps the promises of its provider's subset."""

from __future__ import annotations

import copy
import enum
import json
from typing import Any, Literal

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dspex._jsonschema import (
    ANTHROPIC,
    GEMINI,
    GEMINI_WIRE,
    OPENAI_SDK_STRICT,
    OPENAI_STRICT,
    SchemaProfile,
    UnsupportedSchema,
    rewrite_schema,
)

PROFILES = [OPENAI_STRICT, OPENAI_SDK_STRICT, ANTHROPIC, GEMINI, GEMINI_WIRE]


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


_LEAVES: list[Any] = [str, int, float, bool, Literal["a", "b"], Literal[1, 2], Shade,
                      pydantic.conint(ge=0, le=9), pydantic.constr(min_length=1, max_length=5)]


def _models() -> st.SearchStrategy[type[pydantic.BaseModel]]:
    """Random pydantic models: leaves, lists, optionals and nested models, up to three levels."""
    counter = iter(range(10**9))

    def build(fields: list[tuple[Any, bool]]) -> type[pydantic.BaseModel]:
        spec = {f"f{i}": ((tp | None, None) if optional else (tp, ...)) for i, (tp, optional) in enumerate(fields)}
        return pydantic.create_model(f"M{next(counter)}", **spec)  # type: ignore[call-overload, no-any-return]

    leaf = st.sampled_from(_LEAVES)
    types = st.recursive(
        leaf,
        lambda inner: st.one_of(
            inner.map(lambda tp: list[tp]),  # type: ignore[valid-type]
            st.lists(st.tuples(inner, st.booleans()), min_size=1, max_size=3).map(build),
        ),
        max_leaves=6,
    )
    return st.lists(st.tuples(types, st.booleans()), min_size=1, max_size=4).map(build)


def _nodes(schema: Any) -> list[dict[str, Any]]:
    """Every schema object in ``schema``, root first."""
    found: list[dict[str, Any]] = []
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            found.append(node)
            todo.extend(node.get("properties", {}).values())
            todo.extend(node.get("$defs", {}).values())
            todo.extend(node.get("anyOf", []))
            if isinstance(node.get("items"), dict):
                todo.append(node["items"])
    return found


def _check_promises(out: dict[str, Any], profile: SchemaProfile) -> None:
    nodes = _nodes(out)
    for node in nodes:
        if profile.close_objects and node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])
        if profile.keywords is not None:
            assert set(node) <= profile.keywords, set(node) - profile.keywords
        if profile.refs == "inline":
            assert "$ref" not in node
            assert "$defs" not in node
        if profile.refs == "siblings" and "$ref" in node:
            assert set(node) == {"$ref"}  # a reference with siblings was inlined
        if profile.nullable_keyword:
            assert node.get("type") != "null"
            assert all(v.get("type") != "null" for v in node.get("anyOf", []))
        if profile.upper_types and "type" in node:
            assert node["type"] == node["type"].upper()
        if profile.enums_as_strings and "enum" in node:
            assert node["format"] == "enum"
            assert all(isinstance(v, str) for v in node["enum"])
        if profile.property_ordering and "properties" in node:
            assert node["propertyOrdering"] == list(node["properties"])
        for key in profile.drop:
            assert key not in node
        if profile.formats is not None and "format" in node and node["format"] != "enum":
            allowed = profile.formats.get(str(node.get("type")).lower(), profile.formats.get("*", frozenset()))
            assert node["format"] in allowed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=_models())
def test_every_profile_keeps_its_promises_for_generated_models(model: type[pydantic.BaseModel]) -> None:
    schema = model.model_json_schema()
    before = json.dumps(schema)
    for profile in PROFILES:
        out = rewrite_schema(schema, profile)
        _check_promises(out, profile)
        json.dumps(out)  # JSON-ready
    assert json.dumps(schema) == before  # the input is never mutated


class Tree(pydantic.BaseModel):
    value: int
    children: list[Tree] = []


class Bag(pydantic.BaseModel):
    counts: dict[str, int]


def test_inlining_profiles_refuse_recursive_models_and_name_the_place() -> None:
    for profile in (GEMINI, GEMINI_WIRE):
        with pytest.raises(UnsupportedSchema, match="recursive model 'Tree'") as info:
            rewrite_schema(Tree.model_json_schema(), profile)
        assert info.value.path == ("properties", "children", "items")
    kept = rewrite_schema(Tree.model_json_schema(), OPENAI_STRICT)
    assert kept["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    assert kept["$defs"]["Tree"]["additionalProperties"] is False


def test_open_mappings_raise_only_where_the_profile_says() -> None:
    schema = Bag.model_json_schema()
    for profile in (OPENAI_STRICT, OPENAI_SDK_STRICT, GEMINI):
        with pytest.raises(UnsupportedSchema, match="open mapping"):
            rewrite_schema(schema, profile)
    assert rewrite_schema(schema, ANTHROPIC)["properties"]["counts"]["additionalProperties"] == {"type": "integer"}
    assert rewrite_schema(schema, GEMINI_WIRE)["properties"]["counts"] == {"type": "object"}


def test_unresolvable_reference_raises() -> None:
    with pytest.raises(UnsupportedSchema, match="unresolvable reference '#/\\$defs/Nope'"):
        rewrite_schema({"type": "object", "properties": {"x": {"$ref": "#/$defs/Nope"}}}, GEMINI)


def test_reference_with_siblings_is_inlined_siblings_first() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/A", "description": "the a"}},
              "$defs": {"A": {"type": "object", "description": "an A", "properties": {"x": {"type": "string"}}}}}
    out = rewrite_schema(schema, OPENAI_STRICT)
    assert list(out["properties"]["a"]) == ["description", "type", "properties", "required", "additionalProperties"]
    assert out["properties"]["a"]["description"] == "the a"
    assert rewrite_schema(schema, ANTHROPIC)["properties"]["a"] == {"$ref": "#/$defs/A", "description": "the a"}


def test_gemini_spells_nullable_enums_and_const_its_way() -> None:
    schema = {"type": "object", "properties": {
        "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "maybe"},
        "level": {"enum": [1, 2]},
        "flag": {"const": True},
        "v": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    }}
    props = rewrite_schema(schema, GEMINI)["properties"]
    assert props["n"] == {"description": "maybe", "type": "INTEGER", "nullable": True}
    assert props["level"] == {"enum": ["1", "2"], "type": "INTEGER", "format": "enum"}
    assert props["flag"] == {"type": "BOOLEAN"}
    assert props["v"] == {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]}
    wire = rewrite_schema(schema, GEMINI_WIRE)["properties"]
    assert wire["n"] == {"description": "maybe", "type": "integer", "nullable": True}
    assert wire["flag"] == {}  # best effort: const is outside the wire subset


def test_openai_sdk_profile_matches_the_openai_sdk() -> None:
    """OPENAI_SDK_STRICT is what DSPy's requests get from the OpenAI SDK, byte for byte."""
    sdk = pytest.importorskip("openai.lib._pydantic")

    class Inner(pydantic.BaseModel):
        label: str
        weight: float | None = None

    class Outer(pydantic.BaseModel):
        inner: Inner = pydantic.Field(description="the inner one")
        maybe: Inner | None = None
        many: list[Inner] = []
        tree: Tree
        shade: Shade = Shade.DARK
        tags: set[str] = pydantic.Field(default_factory=set, max_length=3)

    schema = Outer.model_json_schema()
    mutated = copy.deepcopy(schema)  # the SDK rewrites in place, resolving against the same dict
    expected = sdk._ensure_strict_json_schema(mutated, path=(), root=mutated)
    assert json.dumps(rewrite_schema(schema, OPENAI_SDK_STRICT)) == json.dumps(expected)


def _containers(value: Any) -> list[Any]:
    found: list[Any] = []
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict | list):
            found.append(item)
            todo.extend(item.values() if isinstance(item, dict) else item)
    return found


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: f"{p.name}-{p.refs}-{p.strict}")
def test_the_output_shares_no_dict_or_list_with_the_input(profile: SchemaProfile) -> None:
    class Inner(pydantic.BaseModel):
        tags: list[Literal["x", "y"]] = pydantic.Field(default_factory=list, examples=[["x"]])
        shade: Shade

    class Outer(pydantic.BaseModel):
        inner: Inner = pydantic.Field(description="the inner one")
        maybe: Inner | None = None

    schema = Outer.model_json_schema()
    ids = {id(c) for c in _containers(schema)}
    assert not [c for c in _containers(rewrite_schema(schema, profile)) if id(c) in ids]
