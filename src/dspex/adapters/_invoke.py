"""The adapter call surface: ``adapter(lm, lm_kwargs, signature, demos, inputs)`` as in DSPy.

One call of DSPy's ``Adapter.__call__``/``acall``: plan native tool calling
(or strip ``tools``/``tool_choice``/``parallel_tool_calls`` from the kwargs in
text mode, as DSPy does), format the messages, make one LM call with the
adapter's own request parameters under the caller's ``lm_kwargs``, and parse
every completion into a dict of outputs. A completion that fails to parse is
retried once with the adapter's ``fallback`` (ChatAdapter → JSONAdapter), as
DSPy's ChatAdapter does; there is no feedback turn here (that belongs to
``Predict``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ParseError
from ._callbacks import parse_notified
from ._native import native_tools, native_values
from ._reasoning import ReasoningCapture, reasoning_plan, with_reasoning

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..signatures import Signature
    from ._base import Adapter

__all__ = ["invoke"]

_TOOL_KWARGS = ("tools", "tool_choice", "parallel_tool_calls")


async def invoke(adapter: Adapter, lm: Any, lm_kwargs: Mapping[str, Any], signature: type[Signature],
                 demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Format, call ``lm.acall`` once, and parse each completion (DSPy's ``Adapter.acall``).

    Returns:
        One dict of output values per completion (``n`` > 1 gives several),
        keys in signature order.

    Raises:
        ParseError: A completion parses neither with ``adapter`` nor with its
            fallback (the fallback makes its own LM call).
        SignatureError: Native mode with a ``ToolCalls`` output but no tools input.
        LMError: The LM call failed.
    """
    kwargs = dict(lm_kwargs)
    original = lm
    thinking = reasoning_plan(adapter.prepare(signature), lm, kwargs)
    target = signature  # the outputs parsed from the text (without a native Reasoning field)
    if thinking is not None:
        kwargs["reasoning_effort"] = thinking.effort
        target = thinking.render
        lm = ReasoningCapture(lm)
    plan = adapter.native_plan(adapter.prepare(target), lm)
    if plan is None:
        for key in _TOOL_KWARGS:  # text mode: the tools are described in the prompt instead
            kwargs.pop(key, None)
        render = target
    else:
        kwargs["tools"] = native_tools(plan, inputs)
        if adapter.parallel_tool_calls is not None and kwargs.get("parallel_tool_calls") is None:
            kwargs["parallel_tool_calls"] = adapter.parallel_tool_calls
        render = plan.render
    if kwargs.get("parallel_tool_calls") is not None:
        kwargs.setdefault("tool_choice", "auto")
    prepared = adapter.prepare(render)
    messages = adapter.request(prepared, demos, inputs)
    params = adapter.request_params(prepared, lm, kwargs)
    response = await lm.acall(messages, **params)
    calls = response.tool_calls or [[] for _ in response.outputs]
    try:
        if plan is not None:
            values = [native_values(adapter, plan, target, text, c)
                      for text, c in zip(response.outputs, calls, strict=False)]
        else:
            values = []
            for text in response.outputs:
                if not text:
                    raise ParseError("The LM returned an empty or null response.", raw="", adapter=adapter.name)
                values.append(parse_notified(adapter, target, text))
    except ParseError:
        if adapter.fallback is None or adapter.fallback is adapter:
            raise
        return await invoke(adapter.fallback, original, lm_kwargs, signature, demos, inputs)
    if thinking is None:
        return values
    texts = lm.reasoning
    return [with_reasoning(signature, thinking, v, texts[i] if i < len(texts) else None) for i, v in enumerate(values)]
