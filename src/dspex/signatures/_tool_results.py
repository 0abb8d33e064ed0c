"""``ToolCallResults``: what executed tool calls returned, for replaying a conversation (DSPy 3.4.1).

A ``ToolCalls`` value in a ``History`` turn may carry ``tool_call_results``;
the adapters then replay the turn as the calls plus their results (native
``tool`` messages in native function-calling mode, a
``[[ ## tool_call_results ## ]]`` user turn otherwise), as DSPy does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, model_validator

__all__ = ["ToolCallResult", "ToolCallResults"]


class ToolCallResult(BaseModel):
    """One tool call's outcome: the call id, the tool name, the value, and whether it failed."""

    call_id: str | None = None
    name: str
    value: Any
    is_error: bool = False


_Result = ToolCallResult  # the field annotation below must not see the ClassVar of the same name


class ToolCallResults(BaseModel):
    """The results of a turn's tool calls, in call order.

    Accepts a list of results, ``{"tool_call_results": [...]}`` or a single
    ``{"name", "value"}`` result.
    """

    ToolCallResult: ClassVar[type[_Result]] = ToolCallResult  # DSPy's ToolCallResults.ToolCallResult

    tool_call_results: list[_Result]

    @classmethod
    def from_tool_calls_and_values(cls, tool_calls: Any, values: Sequence[Any],
                                   is_errors: Sequence[bool] | None = None) -> ToolCallResults:
        """Pair each call of ``tool_calls`` (a ``ToolCalls`` or list of calls) with its value.

        Raises:
            ValueError: The lengths differ.
        """
        calls = list(getattr(tool_calls, "tool_calls", tool_calls))
        errors = list(is_errors) if is_errors is not None else [False] * len(calls)
        if len(calls) != len(values):
            raise ValueError(f"tool_calls ({len(calls)}) and values ({len(values)}) must have the same length")
        if len(errors) != len(calls):
            raise ValueError(f"is_errors ({len(errors)}) must have the same length as tool_calls ({len(calls)})")
        return cls(tool_call_results=[
            ToolCallResult(call_id=c.id, name=c.name, value=v, is_error=e)
            for c, v, e in zip(calls, values, errors, strict=True)
        ])

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, ToolCallResults):
            return data
        if isinstance(data, list):
            return {"tool_call_results": data}
        if isinstance(data, Mapping):
            if "tool_call_results" in data:
                return data
            if {"name", "value"} <= set(data):
                return {"tool_call_results": [data]}
        raise ValueError(f"ToolCallResults expects a list of {{'name', 'value'}} results, got {data!r:.120}")
