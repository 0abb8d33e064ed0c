"""Replaying a ``History`` as chat turns, tool calls and their results included (DSPy 3.4.1).

Each turn becomes a user message (its inputs, with the output reminder when
it has any) and an assistant message (its outputs). A turn whose
``ToolCalls`` output carries ``tool_call_results`` is replayed with those
results: in native function-calling mode as an assistant message holding
OpenAI ``tool_calls`` followed by one ``tool`` message per result (only when
every call has an id matching its result); in text mode as the assistant's
``[[ ## ... ## ]]`` turn without the results, then a user turn with a
``[[ ## tool_call_results ## ]]`` block.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..signatures._fields import InputField
from ..signatures._make import make_signature
from ..signatures._tool_results import ToolCallResults
from ..signatures._types import ToolCalls
from ._fmt import serialize_for_json, to_mapping

if TYPE_CHECKING:
    from ..lm._types import Message
    from ..signatures import Signature
    from ._chat import ChatAdapter

__all__ = ["history_messages"]

_RESULTS_SIGNATURE = make_signature({"tool_call_results": (ToolCallResults, InputField())})


def _tool_calls_of(turn: Mapping[str, Any]) -> tuple[str | None, ToolCalls | None]:
    for name, value in turn.items():
        if isinstance(value, ToolCalls) or (isinstance(value, Mapping) and "tool_calls" in value):
            return name, ToolCalls.model_validate(value)
    return None, None


def _result_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(serialize_for_json(value), ensure_ascii=False)


def _openai_call(call: Any) -> dict[str, Any]:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(serialize_for_json(call.args),
                                                                    ensure_ascii=False)}}


def _native_turn(adapter: ChatAdapter, signature: type[Signature], turn: dict[str, Any], calls: ToolCalls,
                 results: ToolCallResults | None) -> list[Message]:
    content_sig = signature
    for name, field in signature.output_fields.items():
        if field.annotation is ToolCalls or turn.get(name) is None:
            content_sig = content_sig.delete(name)
    content = adapter.format_assistant_message_content(content_sig, turn) if content_sig.output_fields else ""
    if results is not None:
        ids = [getattr(c, "id", None) for c in calls.tool_calls]
        if ids != [r.call_id for r in results.tool_call_results] or not all(ids):
            results = None  # results that cannot be matched to calls are dropped, as in DSPy
    out: list[Message] = []
    if content or results is not None:
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if results is not None:
            message["tool_calls"] = [_openai_call(c) for c in calls.tool_calls]
        out.append(message)
    out.extend({"role": "tool", "tool_call_id": result.call_id, "name": result.name,
                "content": _result_text(result.value)}
               for result in (results.tool_call_results if results is not None else ()))
    return out


def history_messages(adapter: ChatAdapter, signature: type[Signature], turns: Sequence[Any]) -> list[Message]:
    """Return ``turns`` as messages for ``signature`` (the signature without its history field)."""
    messages: list[Message] = []
    for raw in turns:
        turn = to_mapping(raw)
        calls_field, calls = _tool_calls_of(turn)
        results = (ToolCallResults.model_validate(calls.tool_call_results)
                   if calls is not None and calls.tool_call_results is not None else None)
        has_input = any(n in turn for n in signature.input_fields)
        user = adapter.format_user_message_content(signature, turn, main_request=has_input)
        if user:
            messages.append({"role": "user", "content": user})
        if adapter.use_native_function_calling and calls is not None:
            messages.extend(_native_turn(adapter, signature, turn, calls, results))
            continue
        values = turn
        if calls_field is not None and calls is not None and results is not None:
            values = {**turn, calls_field: calls.model_copy(update={"tool_call_results": None})}
        messages.append({"role": "assistant", "content": adapter.format_assistant_message_content(signature, values)})
        if results is not None:
            messages.append({"role": "user", "content": adapter.format_user_message_content(
                _RESULTS_SIGNATURE, {"tool_call_results": results})})
    return messages
