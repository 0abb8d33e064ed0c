"""``ToolCalls``: the tool calls an LM asks for, in any of the shapes LMs produce.

``ToolCalls`` validates ``{"tool_calls": [{"name": ..., "args": {...}}]}`` and
also accepts a JSON string (repaired if needed), a bare list of calls, a
single call and OpenAI's ``{"function": {"name", "arguments": "<json>"}}``
wire shape. Its JSON schema and ``description()`` are DSPy's, byte for byte,
because adapters render them into prompts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import json_repair
from pydantic import Field, PrivateAttr, TypeAdapter, model_serializer, model_validator

from ..errors import ToolError
from ._model import _Model, _shown

__all__ = ["ToolCall", "ToolCalls"]


class ToolCall(_Model):
    """One requested tool call: a tool name and its arguments."""

    id: str | None = Field(default=None, exclude=True)
    name: str
    args: dict[str, Any] = Field(json_schema_extra={"additionalProperties": True})
    _registry: Any = PrivateAttr(default=None)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        out = super().__get_pydantic_json_schema__(schema, handler)
        out.get("properties", {}).pop("id", None)
        return out

    def format(self) -> dict[str, Any]:
        """Return ``{"name": ..., "args": {...}}``."""
        return {"name": self.name, "args": self.args}

    def __eq__(self, other: object) -> bool:
        # Equal calls are equal whether or not tools are bound to them.
        if not isinstance(other, ToolCall):
            return NotImplemented
        return (self.id, self.name, self.args) == (other.id, other.name, other.args)

    __hash__ = _Model.__hash__

    def __getstate__(self) -> dict[Any, Any]:
        # The bound tools are live functions: a pickled call (Ray, a process pool) travels without them.
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private:
            state["__pydantic_private__"] = {**private, "_registry": None}
        return state

    def execute(self, functions: Mapping[str, Callable[..., Any]] | Iterable[Any] | None = None) -> Any:
        """Call the matching function with ``args`` and return its result.

        Args:
            functions: ``{name: callable}`` or a list of ``Tool`` objects.
                Without it, the tools this call was produced for are used
                (``Predict`` binds the signature's ``list[Tool]`` input to
                its ``ToolCalls`` output); nothing else can run.

        Raises:
            ToolError: No function is called ``name``, or no tools were
                given or bound.
        """
        if functions is None:
            functions = self._registry
            if functions is None:
                raise ToolError(
                    f"ToolCall {self.name!r} has no tools to run: pass execute({{name: function}}) or a list of "
                    "dx.Tool, or produce it with a Predict whose signature has a list[dx.Tool] input"
                )
        if isinstance(functions, Mapping):
            func = functions.get(self.name)
            known = list(functions)
        else:
            tools = list(functions)
            known = [getattr(t, "name", None) for t in tools]
            func = next((t for t in tools if getattr(t, "name", None) == self.name), None)
        if func is None:
            raise ToolError(f"unknown tool {self.name!r}; expected one of {known}")
        return func(**self.args)


def _normalise_call(item: Any) -> Any:
    if not isinstance(item, Mapping):
        return item
    if "function" in item and isinstance(item["function"], Mapping):  # OpenAI wire shape
        fn = item["function"]
        args: Any = fn.get("arguments", {})
        name = fn.get("name", item.get("name"))
    else:
        args = item.get("args", item.get("arguments", item.get("input", {})))
        name = item.get("name")
    if isinstance(args, str):
        args = _loads(args) if args.strip() else {}
    return {"id": item.get("id") or item.get("call_id"), "name": name, "args": args}


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return json_repair.loads(text)


_ToolCallModel = ToolCall  # the class attribute ``ToolCalls.ToolCall`` shadows the name in the body


class ToolCalls(_Model):
    """Tool calls an LM asks for: ``{"tool_calls": [{"name": ..., "args": {...}}]}``.

    Also accepts a JSON string, a list of calls, a single call, and OpenAI's
    ``{"function": {"name", "arguments": "<json>"}}`` wire shape.
    """

    ToolCall: ClassVar[type[ToolCall]] = ToolCall

    tool_calls: list[_ToolCallModel]
    #: What the calls returned (a ``ToolCallResults``), for replaying a conversation; never in the schema.
    tool_call_results: Any | None = None

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        out = super().__get_pydantic_json_schema__(schema, handler)
        out.get("properties", {}).pop("tool_call_results", None)
        return out

    @classmethod
    def description(cls) -> str:
        """Return the prompt description of the type (DSPy's text)."""
        return (
            "Tool calls must be a JSON object with `tool_calls`, a list of calls. "
            "Each call must include `name` and `args`. "
            'Example: {"tool_calls": [{"name": "search", "args": {"query": "cats"}}]}'
        )

    @classmethod
    def from_dict_list(cls, calls: list[Mapping[str, Any]]) -> ToolCalls:
        """Build from ``[{"name": ..., "args": {...}}, ...]``."""
        return cls(tool_calls=[_normalise_call(c) for c in calls])

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        raw = data
        if isinstance(data, str):
            data = _loads(data) if data.strip() else None
        if isinstance(data, Mapping) and isinstance(data.get("tool_calls"), list):
            out: dict[str, Any] = {"tool_calls": [_normalise_call(c) for c in data["tool_calls"]]}
            if data.get("tool_call_results") is not None:
                out["tool_call_results"] = data["tool_call_results"]
            return out
        if isinstance(data, Mapping) and ("name" in data or "function" in data):
            return {"tool_calls": [_normalise_call(data)]}
        if isinstance(data, list):
            return {"tool_calls": [_normalise_call(c) for c in data]}
        raise ValueError(
            'ToolCalls expects a JSON object like {"tool_calls": [{"name": "...", "args": {...}}]}, '
            f"got {_shown(raw)}"
        )

    @model_serializer(mode="plain")
    def _serialise(self) -> dict[str, Any]:
        data = self.format()
        if self.tool_call_results is not None:  # kept in saved demos/history, as DSPy does
            data["tool_call_results"] = TypeAdapter(type(self.tool_call_results)).dump_python(
                self.tool_call_results, mode="json")
        return data

    def format(self) -> dict[str, Any]:
        """Return ``{"tool_calls": [{"name": ..., "args": {...}}, ...]}``."""
        return {"tool_calls": [c.format() for c in self.tool_calls]}

    def __len__(self) -> int:
        return len(self.tool_calls)

    def bind(self, tools: Iterable[Any] | None) -> ToolCalls:
        """Let each call's ``execute()`` run with no argument, among ``tools`` only; return self."""
        registry = {getattr(t, "name", None) or getattr(t, "__name__", repr(t)): t for t in tools or []}
        for call in self.tool_calls:
            call._registry = registry
        return self
