"""Tool: callables described for LMs, argument validation, sync/async calls on both backends."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Literal

import anyio
import anyio.lowlevel
import pydantic
import pytest
from pydantic import TypeAdapter

import dspex as dx
from dspex.errors import ToolError
from dspex.signatures import Tool


class Point(pydantic.BaseModel):
    x: int
    y: int


def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


async def fetch(url: str, retries: int = 0) -> str:
    """Fetch a URL."""
    await anyio.lowlevel.checkpoint()
    return f"{url}#{retries}"


def distance(p: Point, q: Point, unit: Literal["m", "km"] = "m") -> float:
    return float(abs(p.x - q.x) + abs(p.y - q.y))


def test_tool_describes_a_function_like_dspy() -> None:
    tool = Tool(add)
    assert tool.name == "add"
    assert tool.desc == "Add two numbers."
    assert tool.args == {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}}
    assert tool.arg_types == {"a": int, "b": int}
    assert str(tool) == (
        "add, whose description is <desc>Add two numbers.</desc>. It takes arguments "
        "{'a': {'type': 'integer'}, 'b': {'type': 'integer', 'default': 1}}."
    )
    assert tool.parameters_schema() == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}},
        "required": ["a"],
    }


def test_nested_models_are_inlined_and_overrides_apply() -> None:
    tool = Tool(distance, name="dist", desc="Manhattan distance.", arg_desc={"unit": "length unit"})
    assert tool.name == "dist"
    assert tool.desc == "Manhattan distance."
    assert tool.args["p"]["properties"] == {"x": {"title": "X", "type": "integer"}, "y": {"title": "Y", "type": "integer"}}
    assert "$ref" not in str(tool.args)
    assert tool.args["unit"] == {"enum": ["m", "km"], "type": "string", "default": "m", "description": "length unit"}
    assert Tool(lambda x: x).args == {"x": {}}
    assert Tool(lambda x: x).desc is None


def test_validate_args_coerces_and_keeps_defaults() -> None:
    tool = Tool(distance)
    parsed = tool.validate_args({"p": {"x": 1, "y": 2}, "q": '{"x": 4, "y": 6}'})
    assert parsed == {"p": Point(x=1, y=2), "q": Point(x=4, y=6)}
    assert tool(**parsed) == 7.0
    assert Tool(add).validate_args('{"a": "5"}') == {"a": 5}
    with pytest.raises(ToolError, match=r"argument .a. is required"):
        Tool(add).validate_args(None)  # None means "no arguments"


@pytest.mark.parametrize(
    ("args", "fragment", "field"),
    [
        ({}, "argument 'a' is required", "a"),
        ({"a": "five"}, "argument 'a' is invalid", "a"),
        ({"a": 1, "c": 2}, "got unknown argument 'c'; expected arguments ['a', 'b']", "c"),
        ({"a": 1, "b": [1]}, "argument 'b' is invalid", "b"),
    ],
)
def test_validate_args_errors_name_the_argument(args: dict[str, Any], fragment: str, field: str) -> None:
    with pytest.raises(ToolError) as info:
        Tool(add).validate_args(args)
    assert fragment in str(info.value)
    assert "'add'" in str(info.value)
    assert info.value.field == field


def test_validate_args_rejects_non_objects() -> None:
    with pytest.raises(ToolError, match="expects its arguments as a JSON object"):
        Tool(add).validate_args("[1, 2]")


def test_kwargs_positional_only_and_private_names() -> None:
    def flexible(a: int, /, _hidden: str = "h", **rest: Any) -> tuple[Any, ...]:
        return (a, _hidden, rest)

    tool = Tool(flexible)
    assert tool.has_kwargs
    assert list(tool.args) == ["a", "_hidden"]
    assert tool(a="3", _hidden="x", extra=1) == (3, "x", {"extra": 1})


def test_callable_objects_partials_and_bad_input() -> None:
    class Scaler:
        """Scale a number."""

        def __call__(self, v: float, k: float = 2.0) -> float:
            return v * k

    scaled = Tool(Scaler())
    assert scaled.name == "Scaler"
    assert scaled.desc == "Scale a number."
    assert scaled(v="1.5") == 3.0
    partial = Tool(functools.partial(add, b=10))
    assert partial.name == "add"
    assert partial.args == {"a": {"type": "integer"}, "b": {"type": "integer", "default": 10}}
    assert partial(a=1) == 11
    with pytest.raises(ToolError, match="expects a callable"):
        Tool(42)  # type: ignore[arg-type]


def test_sync_call_of_async_tool() -> None:
    tool = Tool(fetch)
    assert tool.is_async
    assert tool(url="u", retries="2") == "u#2"


async def test_acall_async_and_sync_tools() -> None:
    assert await Tool(fetch).acall(url="v") == "v#0"
    main_thread = threading.get_ident()

    def where() -> int:
        return threading.get_ident()

    worker = await Tool(where).acall()
    assert worker != main_thread  # sync tools run in a worker thread


async def test_acall_validates_before_running() -> None:
    calls: list[int] = []

    def record(n: int) -> int:
        calls.append(n)
        return n

    with pytest.raises(ToolError, match="argument 'n' is invalid"):
        await Tool(record).acall(n="many")
    assert calls == []


async def test_acall_timeout_for_sync_and_async_tools() -> None:
    async def slow_async() -> None:
        await anyio.sleep(5)

    def slow_sync() -> None:
        time.sleep(0.3)

    with pytest.raises(ToolError, match=r"timed out after 0.05 s"):
        await Tool(slow_async, timeout=0.05).acall()
    with pytest.raises(ToolError, match="'slow_sync' timed out"):
        await Tool(slow_sync, timeout=0.05).acall()


async def test_tool_errors_propagate_unchanged() -> None:
    def boom() -> None:
        raise ValueError("tool blew up")

    async def aboom() -> None:
        raise KeyError("k")

    with pytest.raises(ValueError, match="tool blew up"):
        await Tool(boom).acall()
    with pytest.raises(KeyError):
        await Tool(aboom).acall()


def test_tool_as_signature_input_type() -> None:
    sig = dx.Signature("question, tools: list[Tool] -> answer")
    inst = sig(question="q", tools=[add, Tool(fetch)], answer="a")
    assert [t.name for t in inst.tools] == ["add", "fetch"]
    dumped = TypeAdapter(list[Tool]).dump_python(inst.tools, mode="json")
    assert dumped[0] == str(Tool(add))
    with pytest.raises(pydantic.ValidationError, match=r"Tool expects a dx.Tool or a callable"):
        sig(question="q", tools=[3], answer="a")
