"""Native function calling: tools sent as the provider's tools, calls read back natively.

DSPy's rule: when an adapter has ``use_native_function_calling`` and the
signature has a ``ToolCalls`` output plus an input holding ``Tool`` objects
(``list[dx.Tool]``), both fields leave the prompt; the tools go into the
request as ``tools`` (OpenAI's function shape, which the Anthropic and Gemini
providers translate to ``tool_use`` and ``functionDeclarations``) and the
``ToolCalls`` output is filled from the provider's tool calls. The rest of
the completion text is parsed against the reduced signature; an empty text
(a pure tool-call turn) leaves the other outputs None. ``Adapter.native_plan``
decides (with :func:`plan_for`), :func:`native_tools` builds the request entry, :func:`native_values`
assembles the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args, get_origin

from ..errors import ParseError, SignatureError
from ..signatures._schema import tool_json_schema
from ..signatures._tool import Tool
from ..signatures._types import ToolCalls
from ._callbacks import parse_notified

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..lm._types import NativeToolCall
    from ..signatures import Signature
    from ._base import Adapter

__all__ = ["NativePlan", "native_tools", "native_values", "plan_for", "supports_function_calling"]

_NATIVE_PROVIDERS = frozenset({"openai", "anthropic", "gemini"})


@dataclass(frozen=True)
class NativePlan:
    """How one signature goes native: the reduced signature and the two moved fields."""

    render: type[Signature]
    tools_field: str
    calls_field: str


def supports_function_calling(lm: Any) -> bool:
    """Return True if ``lm`` can take native tools (its flag, else its provider)."""
    flag = getattr(lm, "supports_function_calling", None)
    if flag is not None:
        return bool(flag)
    return getattr(lm, "provider", None) in _NATIVE_PROVIDERS


def _holds_tool(annotation: Any) -> bool:
    if annotation is Tool:
        return True
    return get_origin(annotation) is not None and any(_holds_tool(a) for a in get_args(annotation))


def plan_for(signature: type[Signature]) -> NativePlan | None:
    """Return how ``signature`` goes native, or None without a ``ToolCalls`` output.

    Computed once per (adapter, signature) by ``Adapter.native_plan``.

    Raises:
        SignatureError: A ``ToolCalls`` output but no input holding tools.
    """
    tools_field = next((n for n, f in signature.input_fields.items() if _holds_tool(f.annotation)), None)
    calls_field = next((n for n, f in signature.output_fields.items() if f.annotation is ToolCalls), None)
    if calls_field is None:
        return None
    if tools_field is None:
        raise SignatureError(
            f"output {calls_field!r} of {signature.signature!r} receives tool calls, but no input holds the "
            "tools; expected an input field typed list[dx.Tool]",
            field=calls_field,
        )
    return NativePlan(signature.delete(calls_field).delete(tools_field), tools_field, calls_field)


def native_tools(plan: NativePlan, inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the request's ``tools`` entry (OpenAI function shape) for the call's tools.

    Raises:
        ToolError: An entry is not a Tool or callable, or its name or schema
            cannot be declared.
    """
    value = inputs.get(plan.tools_field) or []
    tools: Sequence[Any] = value if isinstance(value, list | tuple) else [value]
    return [tool_json_schema(t if isinstance(t, Tool) else Tool(t), "openai") for t in tools]


def native_values(
    adapter: Adapter, plan: NativePlan, signature: type[Signature], text: str, calls: Sequence[NativeToolCall]
) -> dict[str, Any]:
    """Return the outputs of one completion in signature order.

    Raises:
        ParseError: ``text`` does not parse against the reduced signature,
            which has more than one output or a non-str one, and there are
            no tool calls.
    """
    values: dict[str, Any] = {}
    if text and text.strip():
        try:
            values = parse_notified(adapter, plan.render, text)
        except ParseError:
            outputs = plan.render.output_fields
            if len(outputs) == 1 and next(iter(outputs.values())).annotation is str:
                values = {next(iter(outputs)): text.strip()}  # plain prose is that field's value
            elif not calls:
                raise
    if calls:
        values[plan.calls_field] = ToolCalls.from_dict_list(
            [{"name": c.name, "args": c.args, "id": c.id} for c in calls]
        )
    return {name: values.get(name) for name in signature.output_fields}
