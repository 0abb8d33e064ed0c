"""One predictor call: the adapter's exchange, feedback retry, fallback.

:func:`complete_with_retries` is the engine behind ``Predict.acall``. It asks
the adapter for the whole exchange (``prepare`` the signature once,
``request`` the messages, ``acomplete`` the LM call and the parse, streamed
through the adapter's incremental parser when an emitter is listening).
A :class:`~dspex.errors.ParseError` leads to ``parse_retries`` more calls
with the error fed back (``adapter.feedback_messages``), then one call
formatted by the adapter's ``fallback``, then a final ``ParseError`` carrying
every attempt's reason and raw completion. Each retry is announced with a
``Retry`` event when streaming; a stream cut after its first token is
restarted inside the exchange (see ``dspex.adapters._exchange``).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from .._context import get_setting
from ..adapters._exchange import Live
from ..adapters._native import native_tools
from ..adapters._reasoning import ReasoningCapture, reasoning_plan, with_reasoning
from ..errors import ParseError, TruncatedOutputError
from ..telemetry._observe import observed_lm

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, Sequence

    from ..adapters._base import Adapter
    from ..adapters._exchange import EventSink, Exchange
    from ..adapters._native import NativePlan
    from ..adapters._prepared import Prepared
    from ..adapters._reasoning import ReasoningPlan
    from ..lm._types import LMUsage, Message
    from ..signatures import Signature

__all__ = ["CallResult", "complete_with_retries", "format_messages"]


class CallResult:
    """What a call produced: parsed outputs per completion, raw texts, usage."""

    __slots__ = ("messages", "raws", "usage", "values")

    def __init__(self, values: list[dict[str, Any]], raws: list[str], usage: LMUsage,
                 messages: list[Message]) -> None:
        self.values = values
        self.raws = raws
        self.usage = usage
        self.messages = messages


def format_messages(
    adapter: Adapter, signature: type[Signature], demos: Sequence[Any], inputs: Mapping[str, Any]
) -> list[Message]:
    """Return the messages of one call: the adapter's request plus any validation feedback.

    The adapter builds them from ``adapter.prepare(signature)``, so the
    system message and demo turns are formatted once per demo list (demos
    mutated in place after use are not noticed: assign a new list instead).
    Adapter callbacks, if any, see the call.
    """
    return _messages(adapter.prepare(signature), demos, inputs)


def _messages(prepared: Prepared, demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[Message]:
    messages = prepared.adapter.request(prepared, demos, inputs)
    feedback = get_setting("feedback", ())
    if feedback:
        messages = _with_feedback(messages, feedback)
    return messages


def _with_feedback(messages: list[Message], feedback: Sequence[str]) -> list[Message]:
    """Append validation feedback lines to the final user message."""
    note = "\n".join(f"Your previous response was rejected: {line}" for line in feedback)
    messages = list(messages)
    for i in range(len(messages) - 1, -1, -1):
        content = messages[i].get("content")
        if messages[i].get("role") == "user" and isinstance(content, str):
            messages[i] = {**messages[i], "content": f"{content}\n\n{note}"}
            return messages
        if messages[i].get("role") == "user" and isinstance(content, list):  # content parts (images …)
            messages[i] = {**messages[i], "content": [*content, {"type": "text", "text": f"\n\n{note}"}]}
            return messages
    messages.append({"role": "user", "content": note})
    return messages


def _attempt(lm: Any, prepared: Prepared, messages: list[Message], config: Mapping[str, Any],
             live: Live | None) -> Awaitable[Exchange]:
    """One exchange through the prepared adapter: its parameters under ``config``, the call, the parse.

    Returns the adapter's awaitable itself (the caller awaits it at once): a
    pass-through coroutine would be one more GC-tracked object per call in flight.
    """
    adapter = prepared.adapter
    return adapter.acomplete(lm, prepared, messages, adapter.request_params(prepared, lm, config), live)


async def complete_with_retries(
    lm: Any,
    adapter: Adapter,
    signature: type[Signature],
    demos: Sequence[Any],
    inputs: Mapping[str, Any],
    config: Mapping[str, Any],
    emitter: EventSink | None,
    name: str | None,
) -> CallResult:
    """Call ``lm`` for ``inputs`` and parse, retrying as the module doc says.

    Raises:
        ParseError: Every attempt failed to parse. The message lists each
            attempt's adapter and reason; ``.raw`` is the last completion,
            ``.attempts`` holds ``(adapter, reason, raw)`` per attempt, and the
            error is chained (``__cause__``) to the last attempt's error, each
            attempt's error to the one before it.
        LMError: The LM call failed (after the LM's retries and, for a stream
            cut after its first token, the restarts).
    """
    prepared = adapter.prepare(signature)
    thinking = reasoning_plan(prepared, lm, config)
    if thinking is not None:  # a dx.Reasoning output filled by the model's native reasoning
        return await _complete_thinking(lm, adapter, signature, thinking, demos, inputs, config, emitter, name)
    lm = observed_lm(lm)  # the LM span and callbacks (lm itself when nothing watches)
    live = Live(emitter, name, lm) if emitter is not None else None
    plan = adapter.native_plan(prepared, lm)
    if plan is not None:
        return await _complete_native(lm, prepared, plan, demos, inputs, config, live)
    messages = _messages(prepared, demos, inputs)
    done = await _attempt(lm, prepared, messages, config, live)
    if done.error is None:
        return CallResult(done.values, done.raws, done.usage, messages)
    failures = [(adapter.name, done.error, done.raws)]
    total = done.usage
    for _ in range(int(get_setting("parse_retries", 1) or 0)):
        if live is not None:
            await live.retry(f"parse error: {done.error.message}")
        retry_messages = [*messages, *adapter.feedback_messages(signature, done.raws[0], done.error)]
        done = await _attempt(lm, prepared, retry_messages, config, live)
        total = total + done.usage
        if done.error is None:
            return CallResult(done.values, done.raws, total, retry_messages)
        failures.append((adapter.name, done.error, done.raws))
    fallback = adapter.fallback
    if fallback is not None:
        if live is not None:
            await live.retry(f"falling back to {fallback.name}: {failures[-1][1].message}")
        backup = fallback.prepare(signature)
        messages = _messages(backup, demos, inputs)
        done = await _attempt(lm, backup, messages, config, live)
        total = total + done.usage
        if done.error is None:
            return CallResult(done.values, done.raws, total, messages)
        failures.append((fallback.name, done.error, done.raws))
    raise _final_parse_error(failures, name, signature, lm)


async def _complete_thinking(
    lm: Any,
    adapter: Adapter,
    signature: type[Signature],
    thinking: ReasoningPlan,
    demos: Sequence[Any],
    inputs: Mapping[str, Any],
    config: Mapping[str, Any],
    emitter: EventSink | None,
    name: str | None,
) -> CallResult:
    """Call with the model's native reasoning filling the ``dx.Reasoning`` output.

    Kept out of :func:`complete_with_retries`: its comprehension would make
    closure cells on every call, native reasoning or not.
    """
    capture = ReasoningCapture(lm)
    result = await complete_with_retries(capture, adapter, thinking.render, demos, inputs,
                                         {**config, "reasoning_effort": thinking.effort}, emitter, name)
    texts = capture.reasoning
    result.values = [with_reasoning(signature, thinking, v, texts[i] if i < len(texts) else None)
                     for i, v in enumerate(result.values)]
    return result


async def _complete_native(
    lm: Any,
    prepared: Prepared,
    plan: NativePlan,
    demos: Sequence[Any],
    inputs: Mapping[str, Any],
    config: Mapping[str, Any],
    live: Live | None,
) -> CallResult:
    """One native function-calling call: tools in the request, ToolCalls from the response.

    Raises:
        ParseError: A completion's text does not parse against the reduced
            signature (no feedback retry: the tool calls already arrived).
    """
    adapter, signature = prepared.adapter, prepared.signature
    render = adapter.prepare(plan.render)
    messages = _messages(render, demos, {k: v for k, v in inputs.items() if k != plan.tools_field})
    params = {**adapter.request_params(render, lm, config), "tools": native_tools(plan, inputs)}
    if adapter.parallel_tool_calls is not None:
        params.setdefault("parallel_tool_calls", adapter.parallel_tool_calls)
    try:
        done = await adapter.acomplete_native(lm, prepared, plan, messages, params, live)
    except ParseError as err:
        raise ParseError(
            f"{_name_of(live)}({signature.signature}): could not parse the LM output (native tool calling, "
            f"{adapter.name}): {err.message}",
            raw=err.raw, adapter=adapter.name, field=err.field, model=getattr(lm, "model", None),
        ) from err
    return CallResult(done.values, done.raws, done.usage, messages)


def _name_of(live: Live | None) -> str:
    """Return the streamed predictor's name for messages, else ``"Predict"``."""
    return (live.name if live is not None else None) or "Predict"


def _final_parse_error(
    failures: list[tuple[str, ParseError, list[str]]], name: str | None, signature: type[Signature], lm: Any
) -> ParseError:
    """Return the error naming every failed attempt, chained through their errors."""
    for (_, before, _), (_, after, _) in itertools.pairwise(failures):
        if after is not before and after.__cause__ is None:
            after.__cause__ = before  # the traceback then shows every attempt, first to last
    reasons = "; ".join(f"{i}. {used}: {_reason(err).rstrip('.')}" for i, (used, err, _) in enumerate(failures, 1))
    used, last, raws = failures[-1]
    # a truncated last attempt keeps its type: the caller's fix is max_tokens
    error = (TruncatedOutputError if isinstance(last, TruncatedOutputError) else ParseError)(
        f"{name or 'Predict'}({signature.signature}): could not parse the LM output after "
        f"{len(failures)} attempt(s): {reasons}",
        raw=raws[0] if raws else last.raw,
        adapter=used,
        field=getattr(last, "field", None),
        model=getattr(lm, "model", None),
        attempts=[(a, _reason(err), r[0] if r else err.raw) for a, err, r in failures],
    )
    error.__cause__ = last
    return error


def _reason(err: ParseError) -> str:
    """Return the first line of a parse error (the rest repeats the raw completion)."""
    return err.message.strip().split("\n", 1)[0]
