"""Signatures and tools whose provider JSON schemas are pinned in ``schema.json``.

Shared by ``make_schema_golden.py`` (which records what the schema rewriting
produces) and ``tests/signatures/test_schema_golden.py`` (which checks it still
does, byte for byte). Every case is a function returning a fresh signature
class or ``Tool``, so a case cannot leak state into another.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, Union

import pydantic

import dspex as dx
from dspex.adapters._structured import response_format
from dspex.errors import DspexError
from dspex.lm.providers._gemini import gemini_schema
from dspex.signatures import (
    Citation,
    Confidence,
    Embedding,
    History,
    Reasoning,
    Tool,
    ToolCalls,
    output_json_schema,
    tool_json_schema,
)

if TYPE_CHECKING:
    from collections.abc import Callable


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(pydantic.BaseModel):
    street: str = pydantic.Field(description="street and number")
    zip_code: Optional[str] = None  # noqa: UP045


class Person(pydantic.BaseModel):
    """A person."""

    name: str = pydantic.Field(min_length=1, max_length=40)
    age: int = pydantic.Field(ge=0, le=150)
    tags: list[str] = []
    address: Address
    home: Address | None = pydantic.Field(default=None, description="where they live")
    favourite: Color
    born: datetime.date
    ident: uuid.UUID


class Team(pydantic.BaseModel):
    lead: Person = pydantic.Field(description="the boss")
    members: list[Person]


class TreeNode(pydantic.BaseModel):
    value: int
    children: list[TreeNode] = []


class Cat(pydantic.BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int = 9


class Dog(pydantic.BaseModel):
    kind: Literal["dog"] = "dog"
    good: bool = True


class Shelter(pydantic.BaseModel):
    pets: list[Annotated[Cat | Dog, pydantic.Field(discriminator="kind")]]
    counts: dict[str, int] = {}


class Measured(pydantic.BaseModel):
    code: str = pydantic.Field(pattern=r"^[A-Z]{3}$")
    price: decimal.Decimal
    ratio: float = pydantic.Field(gt=0, lt=1, multiple_of=0.25)
    tags: set[str] = set()
    items: list[int] = pydantic.Field(min_length=1, max_length=3)
    at: datetime.datetime
    duration: datetime.timedelta
    site: pydantic.AnyUrl


def _sig(name: str, outputs: dict[str, Any], doc: str = "Do it.") -> Any:
    items: dict[str, Any] = {"question": (str, dx.InputField())}
    for field, spec in outputs.items():
        tp, kwargs = spec if isinstance(spec, tuple) else (spec, {})
        items[field] = (tp, dx.OutputField(**kwargs))
    return dx.make_signature(items, doc, name)


SIGNATURES: dict[str, Callable[[], Any]] = {
    "plain_str": lambda: dx.Signature("question -> answer"),
    "scalars": lambda: dx.Signature("question -> a: int, b: float, c: bool, d: list[str]"),
    "described": lambda: _sig("Described", {"answer": (str, {"desc": "a short fact"}), "n": (int, {"desc": "how many"})}),
    "optional": lambda: _sig("Opt", {"maybe": Optional[int], "pipe": (str | None, {"default": None})}),  # noqa: UP045
    "defaults": lambda: _sig("Defaults", {"note": (str, {"default": "none"}), "n": (int, {"default": 3}),
                                          "xs": (list[int], {"default_factory": list})}),
    "literal_str": lambda: _sig("LitS", {"label": Literal["news", "blog"]}),
    "literal_int": lambda: _sig("LitI", {"stars": Literal[1, 2, 3]}),
    "literal_bool": lambda: _sig("LitB", {"flag": Literal[True]}),
    "literal_mixed": lambda: _sig("LitM", {"x": Literal["a", 1, 2.5]}),
    "literal_const": lambda: _sig("LitC", {"only": Literal["yes"]}),
    "enum_str": lambda: _sig("EnumS", {"colour": Color}),
    "enum_int": lambda: _sig("EnumI", {"level": Level}),
    "nested_model": lambda: _sig("Nested", {"person": Person}),
    "list_of_models": lambda: _sig("ListM", {"people": (list[Person], {"desc": "everyone mentioned"})}),
    "optional_model": lambda: _sig("OptM", {"main": Person | None}),
    "recursive": lambda: _sig("Rec", {"tree": TreeNode}),
    "described_model": lambda: _sig("Described", {"team": Team, "lead": (Person, {"desc": "who leads"})}),
    "union_models": lambda: _sig("UnionM", {"pet": Union[Cat, Dog]}),  # noqa: UP007
    "discriminated": lambda: _sig("Disc", {"shelter": Shelter}),
    "union_scalars": lambda: _sig("UnionS", {"v": int | str}),
    "dict_field": lambda: _sig("DictF", {"counts": dict[str, int]}),
    "dict_any": lambda: _sig("DictA", {"data": dict[str, Any]}),
    "any_field": lambda: _sig("AnyF", {"x": Any}),
    "tuple_field": lambda: _sig("TupleF", {"pair": tuple[int, str]}),
    "constrained": lambda: _sig("Constr", {"score": (float, {"ge": 0, "le": 10}),
                                           "word": (str, {"min_length": 2, "max_length": 8}),
                                           "m": Measured}),
    "formats": lambda: _sig("Formats", {"when": datetime.datetime, "day": datetime.date,
                                        "at": (datetime.datetime | None, {"default": None}),
                                        "id": uuid.UUID, "amount": decimal.Decimal}),
    "ml_types": lambda: _sig("ML", {"confidence": Confidence, "reasoning": Reasoning, "vector": Embedding,
                                    "cite": Citation}),
    "tool_calls": lambda: _sig("Calls", {"calls": ToolCalls}),
    "optional_tool_calls": lambda: _sig("OptCalls", {"answer": str, "calls": ToolCalls | None}),
    "history_out": lambda: _sig("Hist", {"history": History}),
    "list_of_lists": lambda: _sig("LoL", {"grid": list[list[int]]}),
    "bytes_field": lambda: _sig("Bytes", {"blob": bytes}),
}


class Query(pydantic.BaseModel):
    text: str
    limit: int = 10
    filters: dict[str, str] = {}


def search(query: str, k: int = 3) -> list[str]:
    """Search the web."""
    return [query] * k


def locate(place: str, near: Address, when: datetime.date, level: Level) -> str:
    """Find a place."""
    return place


def ping() -> str:
    """Ping."""
    return "pong"


def walk(tree: TreeNode) -> int:
    """Walk a tree."""
    return tree.value


def query(q: Query, extra: dict[str, Any] | None = None) -> str:
    return q.text


def pick(choice: Literal["a", "b"], colour: Color, maybe: int | None = None, many: list[Person] | None = None) -> str:
    """Pick one."""
    return choice


def untyped(x, y=2):  # type: ignore[no-untyped-def]
    """No annotations."""
    return x


TOOLS: dict[str, Callable[[], Any]] = {
    "search": lambda: Tool(search),
    "locate": lambda: Tool(locate),
    "ping": lambda: Tool(ping),
    "walk": lambda: Tool(walk),
    "query": lambda: Tool(query),
    "pick": lambda: Tool(pick),
    "untyped": lambda: Tool(untyped),
    "described_args": lambda: Tool(search, arg_desc={"query": "what to look for"}, desc="Search the news."),
    "bad_name": lambda: Tool(search, name="web search"),
}

PROVIDERS = ("openai", "anthropic", "gemini")


def _attempt(fn: Callable[[], Any]) -> Any:
    """Return ``{"ok": value}``, or ``{"error": type name, "message": ...}`` for a raised error."""
    try:
        return {"ok": fn()}
    except (DspexError, ValueError, RecursionError, KeyError, TypeError) as exc:
        message = str(exc) if not isinstance(exc, RecursionError) else "maximum recursion depth exceeded"
        return {"error": type(exc).__name__, "message": message}


def _inner_schema(rf: dict[str, Any]) -> dict[str, Any] | None:
    return rf["json_schema"]["schema"] if rf.get("type") == "json_schema" else None


def signature_outputs(name: str) -> dict[str, Any]:
    """Every schema the codebase derives from signature ``name``'s outputs."""
    sig = SIGNATURES[name]()
    out: dict[str, Any] = {f"output_json_schema/{p}": _attempt(lambda p=p: output_json_schema(sig, p)) for p in PROVIDERS}
    rf = _attempt(lambda: response_format(sig))
    out["response_format"] = rf
    inner = _inner_schema(rf["ok"]) if "ok" in rf else None
    if inner is not None:  # what the Gemini provider sends for JSONAdapter's request
        out["gemini_schema/response_format"] = _attempt(lambda: gemini_schema(json.loads(json.dumps(inner))))
    for p in ("openai", "anthropic"):
        got = out[f"output_json_schema/{p}"]
        if "ok" in got:
            out[f"gemini_schema/{p}"] = _attempt(lambda got=got: gemini_schema(json.loads(json.dumps(got["ok"]))))
    return out


def tool_outputs(name: str) -> dict[str, Any]:
    """Every declaration the codebase derives from tool ``name``."""
    made = _attempt(TOOLS[name])
    if "error" in made:
        return {"Tool": made}
    tool = made["ok"]
    out: dict[str, Any] = {f"tool_json_schema/{p}": _attempt(lambda p=p: tool_json_schema(tool, p)) for p in PROVIDERS}
    openai = out["tool_json_schema/openai"]
    if "ok" in openai:  # what the Gemini provider sends for a tool the adapters declared
        params = openai["ok"]["function"]["parameters"]
        out["gemini_schema/tool"] = _attempt(lambda: gemini_schema(json.loads(json.dumps(params))))
    return out


def all_outputs() -> dict[str, Any]:
    """Every case's outputs, keyed ``signature:<name>`` / ``tool:<name>``."""
    out = {f"signature:{n}": signature_outputs(n) for n in SIGNATURES}
    out.update({f"tool:{n}": tool_outputs(n) for n in TOOLS})
    return out
