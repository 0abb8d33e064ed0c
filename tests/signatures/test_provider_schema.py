"""Per-provider JSON schemas: every rule of each provider's subset holds on rich signatures."""

from __future__ import annotations

import datetime
import enum
import typing
import uuid
from typing import Any, Literal, Optional

import pydantic
import pytest

import dspex as dx
from dspex.errors import SignatureError, ToolError
from dspex.signatures import (
    Confidence,
    Embedding,
    Reasoning,
    Tool,
    output_json_schema,
    tool_json_schema,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(pydantic.BaseModel):
    street: str = pydantic.Field(description="street and number")
    zip_code: Optional[str] = None  # noqa: UP045


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1)
    age: int = pydantic.Field(ge=0)
    tags: list[str] = []
    address: Address
    favourite: Color
    born: datetime.date
    ident: uuid.UUID


class Bag(pydantic.BaseModel):
    counts: dict[str, int]


class Holder(pydantic.BaseModel):
    bag: Bag


class TreeNode(pydantic.BaseModel):
    value: int
    children: list[TreeNode] = []


class Extract(dx.Signature):
    """Extract people."""

    text: str = dx.InputField()
    people: list[Person] = dx.OutputField(desc="everyone mentioned")
    main: Person | None = dx.OutputField()
    label: Literal["news", "blog"] = dx.OutputField()
    stars: Literal[1, 2, 3] = dx.OutputField()
    colour: Color = dx.OutputField()
    score: float = dx.OutputField(ge=0, le=10)
    confidence: Confidence = dx.OutputField()
    reasoning: Reasoning = dx.OutputField()
    vector: Embedding = dx.OutputField()
    note: str = dx.OutputField(default="none")
    when: datetime.datetime | None = dx.OutputField(default=None)


_OPENAI_FORBIDDEN = {"default", "minLength", "maxLength", "uniqueItems", "oneOf", "allOf", "not", "if", "const",
                     "prefixItems", "patternProperties", "minProperties", "maxProperties", "discriminator"}
_OPENAI_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
_GEMINI_KEYS = {"type", "format", "description", "nullable", "enum", "items", "minItems", "maxItems", "properties",
                "required", "propertyOrdering", "anyOf", "minimum", "maximum"}
_GEMINI_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}


def _walk(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    """Every subschema with its path (property names, items, anyOf, $defs)."""
    out = [(path, node)]
    for key in ("properties", "$defs"):
        for name, sub in node.get(key, {}).items():
            out += _walk(sub, f"{path}.{key}.{name}")
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"], f"{path}.items")
    for i, sub in enumerate(node.get("anyOf", [])):
        out += _walk(sub, f"{path}.anyOf[{i}]")
    return out


def assert_openai_strict(schema: dict[str, Any]) -> None:
    assert schema["type"] == "object"
    assert "anyOf" not in schema
    for path, node in _walk(schema):
        assert not (_OPENAI_FORBIDDEN & node.keys()), (path, _OPENAI_FORBIDDEN & node.keys())
        if "$ref" in node:
            assert set(node) == {"$ref"}, path
            name = node["$ref"].removeprefix("#/$defs/")
            assert name in schema["$defs"], path
            continue
        assert node.get("type") or node.get("anyOf") or node.get("enum"), path
        if node.get("type") == "object":
            assert node["additionalProperties"] is False, path
            assert node["required"] == list(node["properties"]), path
            assert node["properties"], path
        if "format" in node:
            assert node["format"] in _OPENAI_FORMATS, path


def assert_gemini(schema: dict[str, Any]) -> None:
    assert schema["type"] == "OBJECT"
    for path, node in _walk(schema):
        assert set(node) <= _GEMINI_KEYS, (path, set(node) - _GEMINI_KEYS)
        if "anyOf" not in node:
            assert node["type"] in _GEMINI_TYPES, path
        if "enum" in node:
            assert node["format"] == "enum", path
            assert all(isinstance(v, str) for v in node["enum"]), path
        if node.get("type") == "OBJECT":
            assert node["properties"], path
            assert node["propertyOrdering"] == list(node["properties"]), path
            assert set(node["required"]) <= set(node["properties"]), path
        if "format" in node and node["format"] != "enum":
            assert (node["type"], node["format"]) in {("STRING", "date-time"), ("NUMBER", "float"),
                                                      ("NUMBER", "double"), ("INTEGER", "int32"),
                                                      ("INTEGER", "int64")}, path


def test_openai_strict_rules_hold() -> None:
    schema = output_json_schema(Extract, "openai")
    assert_openai_strict(schema)
    props = schema["properties"]
    assert list(props) == list(Extract.output_fields)
    assert props["people"]["description"] == "everyone mentioned"
    assert props["main"]["anyOf"][1] == {"type": "null"}
    assert props["when"]["anyOf"] == [{"format": "date-time", "type": "string"}, {"type": "null"}]
    assert props["note"] == {"type": "string"}  # a default alone does not make it nullable
    assert props["label"]["enum"] == ["news", "blog"]
    assert props["stars"] == {"enum": [1, 2, 3], "type": "integer"}
    assert props["score"] == {"maximum": 10, "minimum": 0, "type": "number"}
    assert props["confidence"] == {"maximum": 1.0, "minimum": 0.0, "type": "number"}
    person = schema["$defs"]["Person"]
    assert person["properties"]["age"]["minimum"] == 0
    assert person["properties"]["name"] == {"title": "Name", "type": "string"}  # minLength dropped
    assert person["properties"]["ident"]["format"] == "uuid"
    assert schema["$defs"]["Address"]["properties"]["zip_code"]["anyOf"][1] == {"type": "null"}


def test_openai_keeps_recursive_models_as_refs() -> None:
    sig = dx.Signature("q -> tree: TreeNode", types={"TreeNode": TreeNode})
    schema = output_json_schema(sig, "openai")
    assert_openai_strict(schema)
    assert schema["$defs"]["TreeNode"]["properties"]["children"]["items"] == {"$ref": "#/$defs/TreeNode"}


def test_gemini_rules_hold() -> None:
    schema = output_json_schema(Extract, "gemini")
    assert_gemini(schema)
    props = schema["properties"]
    assert schema["propertyOrdering"] == list(Extract.output_fields)
    assert "note" not in schema["required"]
    assert "when" not in schema["required"]
    assert props["main"]["nullable"] is True
    assert props["main"]["type"] == "OBJECT"
    assert props["when"] == {"type": "STRING", "format": "date-time", "nullable": True}
    assert props["stars"] == {"type": "INTEGER", "format": "enum", "enum": ["1", "2", "3"]}
    assert props["colour"] == {"type": "STRING", "format": "enum", "enum": ["red", "green"]}
    person = props["people"]["items"]
    assert person["properties"]["address"]["properties"]["street"]["description"] == "street and number"
    assert person["properties"]["address"]["properties"]["zip_code"] == {"type": "STRING", "nullable": True}
    assert person["properties"]["ident"] == {"type": "STRING"}  # uuid format is not in Gemini's subset
    assert person["required"] == ["name", "age", "address", "favourite", "born", "ident"]


def test_gemini_unions_use_any_of() -> None:
    sig = dx.Signature("q -> v: int | str | None, flag: Literal[True]")
    schema = output_json_schema(sig, "gemini")
    assert_gemini(schema)
    assert schema["properties"]["v"] == {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}], "nullable": True}
    assert schema["properties"]["flag"] == {"type": "BOOLEAN"}


def test_anthropic_input_schema_is_plain_json_schema() -> None:
    schema = output_json_schema(Extract, "anthropic")
    assert schema["type"] == "object"
    assert list(schema["properties"]) == list(Extract.output_fields)
    assert "note" not in schema["required"]
    assert "when" not in schema["required"]
    assert set(schema["required"]) <= set(schema["properties"])
    assert "$defs" in schema  # references are fine in plain JSON Schema
    dict_sig = dx.Signature("q -> counts: dict[str, int]")
    assert output_json_schema(dict_sig, "anthropic")["properties"]["counts"] == {
        "additionalProperties": {"type": "integer"}, "type": "object"
    }


@pytest.mark.parametrize(
    ("text", "provider", "fragment"),
    [
        ("q -> counts: dict[str, int]", "openai", "open mapping"),
        ("q -> counts: dict[str, int]", "gemini", "open mapping"),
        ("q -> anything: Any", "openai", "Any"),
        ("q -> anything: Any", "gemini", "Any"),
        ("q -> pair: tuple[int, str]", "openai", "tuple"),
        ("q -> pair: tuple[int, str]", "gemini", "tuple"),
        ("q -> tree: TreeNode", "gemini", "recursive model 'TreeNode'"),
        # OpenAI keeps $defs: the failure sits in a definition, two references below the field
        ("q, a -> answer, calls: ToolCalls", "openai", "open mapping"),
        ("q -> holder: Holder", "openai", "open mapping"),
    ],
)
def test_inexpressible_outputs_name_the_field(text: str, provider: str, fragment: str) -> None:
    sig = dx.Signature(text, types={"TreeNode": TreeNode, "Holder": Holder})
    with pytest.raises(SignatureError) as info:
        output_json_schema(sig, provider)
    message = str(info.value)
    assert fragment in message
    assert provider in message
    assert info.value.field == list(sig.output_fields)[-1]


def test_unknown_provider_and_caching() -> None:
    with pytest.raises(SignatureError, match=r"unknown schema provider 'mistral'; expected one of"):
        output_json_schema(Extract, "mistral")
    first = output_json_schema(Extract, "OpenAI")
    first["properties"].clear()
    again = output_json_schema(Extract, "openai")
    assert again["properties"]
    assert again == output_json_schema(Extract, "openai")


# -- tools --------------------------------------------------------------------------------------


def search(query: str, limit: int = 5) -> list[str]:
    """Search the web."""
    return []


def locate(address: Address, precise: bool) -> str:
    """Locate an address."""
    return ""


def ping() -> str:
    """Ping."""
    return "pong"


def test_openai_tool_schemas() -> None:
    strict = tool_json_schema(Tool(locate), "openai")
    assert strict["type"] == "function"
    fn = strict["function"]
    assert fn["name"] == "locate"
    assert fn["description"] == "Locate an address."
    assert fn["strict"] is True
    assert_openai_strict(fn["parameters"])
    loose = tool_json_schema(Tool(search), "openai")["function"]
    assert loose["strict"] is False  # an optional argument cannot be strict without changing meaning
    assert loose["parameters"]["required"] == ["query"]
    assert loose["parameters"]["additionalProperties"] is False


def test_anthropic_and_gemini_tool_schemas() -> None:
    anthropic = tool_json_schema(Tool(search), "anthropic")
    assert anthropic == {
        "name": "search",
        "description": "Search the web.",
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "default": 5}},
            "required": ["query"],
        },
    }
    gemini = tool_json_schema(Tool(locate), "gemini")
    assert gemini["name"] == "locate"
    assert_gemini(gemini["parameters"])
    assert gemini["parameters"]["required"] == ["address", "precise"]
    assert tool_json_schema(Tool(ping), "gemini") == {"name": "ping", "description": "Ping."}


def test_tool_schema_errors() -> None:
    with pytest.raises(ToolError, match="tool name '<lambda>' is not valid for openai"):
        tool_json_schema(Tool(lambda x: x), "openai")
    with pytest.raises(ToolError, match="argument 'x' cannot be declared to gemini"):
        tool_json_schema(Tool(lambda x: x, name="echo"), "gemini")
    untyped = tool_json_schema(Tool(lambda x: x, name="echo"), "openai")["function"]
    assert untyped["strict"] is False
    assert untyped["parameters"]["properties"] == {"x": {}}


def test_union_order_is_the_written_order_whatever_was_built_before() -> None:
    # typing caches Union[...] by arguments that compare equal in any order: a pairwise
    # build of `int | str | None` returned an earlier `str | int | None` (a flaky Gemini test).
    first = dx.Signature("q -> w: str | int | None")
    second = dx.Signature("q -> v: int | str | None")
    assert typing.get_args(first.output_fields["w"].annotation) == (str, int, type(None))
    assert typing.get_args(second.output_fields["v"].annotation) == (int, str, type(None))
