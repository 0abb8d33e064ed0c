"""One predictor call: LM request, parsing, feedback retry, fallback, streaming.

:func:`complete_with_retries` is the engine behind ``Predict.acall``. It
formats the request with the adapter, calls the LM (streamed through the
adapter's incremental parser when an emitter is listening, in one response
otherwise) and parses the completions. A :class:`~dspex.errors.ParseError`
leads to ``parse_retries`` more calls with the error fed back
(``adapter.feedback_messages``), then one call formatted by the adapter's
``fallback``, then a final ``ParseError`` carrying every attempt's reason and
raw completion. Each retry is announced with a ``Retry`` event when streaming.

A streamed call that fails with a retryable LM error (reset, truncation,
malformed chunk, timeout) *after* its first token — which the LM itself no
longer retries, its output having been seen — is restarted from scratch here,
within the LM's retry policy (``max_retries`` restarts per predictor call,
with its backoff, on its clock). Before the new attempt a ``Retry`` event
(``attempt``, ``reason``, ``delay_s``, ``predictor``) tells clients to discard
the partial token and field events of that predictor for that item: the new
attempt streams every field again from the start. The interrupted attempt's
usage is not counted (providers report usage only in a stream's last chunk,
which never came; a provider may still bill the partial output), and nothing
of it reaches the cache or the history. The LM's own retries before a
stream's first chunk are announced too, as ``Retry`` events sent just before
that chunk (there are no partial fields to discard then).
"""

from __future__ import annotations

import random
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from .._context import get_setting
from .._util._clock import Clock, default_clock
from ..adapters._callbacks import adapter_callbacks, notify_end, notify_start, parse_notified
from ..adapters._native import NativePlan, native_plan, native_tools, native_values
from ..adapters._parts import split_content_parts, split_message
from ..adapters._reasoning import ReasoningCapture, reasoning_plan, with_reasoning
from ..errors import LMError, ParseError, TruncatedOutputError, is_retryable
from ..events import FieldDone, Retry, TokenDelta, Usage
from ..lm._engine import RETRY_LISTENER, Endpoint
from ..lm._retry import RetryPolicy, retry_delay
from ..lm._types import LMUsage, Message
from ..signatures import History
from ..telemetry._observe import observed_lm

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..adapters._base import Adapter
    from ..signatures import Signature
    from ._stream import Emitter

__all__ = ["CallResult", "complete_with_retries", "format_messages"]

_PARAMS: dict[tuple[Any, ...], dict[str, Any]] = {}
_PREFIX: dict[tuple[Any, ...], tuple[list[Message], tuple[Any, ...]]] = {}
_CACHE_MAX = 4096


class CallResult:
    """What a call produced: parsed outputs per completion, raw texts, usage."""

    __slots__ = ("messages", "raws", "usage", "values")

    def __init__(self, values: list[dict[str, Any]], raws: list[str], usage: LMUsage, messages: list[Message]):
        self.values = values
        self.raws = raws
        self.usage = usage
        self.messages = messages


def _lm_params(adapter: Adapter, signature: type[Signature], lm: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    provider = getattr(lm, "provider", None)
    key = (adapter, signature, provider if isinstance(provider, str | None) else id(provider))
    extra = _PARAMS.get(key)
    if extra is None:
        extra = dict(adapter.lm_params(signature, provider))
        if len(_PARAMS) >= _CACHE_MAX:
            _PARAMS.clear()
        _PARAMS[key] = extra
    return {**extra, **config} if extra else dict(config)


_CHAT_FORMAT: Any = None
_HAS_HISTORY: dict[Any, bool] = {}


def _cacheable(adapter: Adapter, signature: type[Signature]) -> bool:
    """Return True if ``adapter.format`` is ChatAdapter's and no input is a History."""
    global _CHAT_FORMAT
    if _CHAT_FORMAT is None:
        from ..adapters._chat import ChatAdapter

        _CHAT_FORMAT = ChatAdapter.format
    if type(adapter).format is not _CHAT_FORMAT:
        return False
    has = _HAS_HISTORY.get(signature)
    if has is None:
        has = any(f.annotation is History for f in signature.input_fields.values())
        if len(_HAS_HISTORY) >= _CACHE_MAX:
            _HAS_HISTORY.clear()
        _HAS_HISTORY[signature] = has
    return not has


def format_messages(
    adapter: Adapter, signature: type[Signature], demos: Sequence[Any], inputs: Mapping[str, Any]
) -> list[Message]:
    """Return ``adapter.format(signature, demos, inputs)``, reusing the system and demo turns.

    For adapters using ``ChatAdapter.format`` (chat and JSON), the system
    message and demo turns are cached per (adapter, signature, demo
    objects); only the request turn is built per call. Demos mutated in
    place after use are not noticed: assign a new list instead. Adapter
    callbacks, if any, see the call.
    """
    if adapter_callbacks(adapter):
        call_id = notify_start(adapter, "format", {"signature": signature, "demos": demos, "inputs": inputs})
        try:
            messages = _format_messages(adapter, signature, demos, inputs)
        except Exception as exc:
            notify_end(adapter, "format", call_id, None, exc)
            raise
        notify_end(adapter, "format", call_id, messages, None)
        return messages
    return _format_messages(adapter, signature, demos, inputs)


def _format_messages(
    adapter: Adapter, signature: type[Signature], demos: Sequence[Any], inputs: Mapping[str, Any]
) -> list[Message]:
    if not _cacheable(adapter, signature):
        messages = adapter.format(signature, demos, inputs)
    else:
        key = (adapter, signature, *map(id, demos))
        hit = _PREFIX.get(key)
        if hit is None:
            prefix = [{"role": "system", "content": adapter.format_system_message(signature)}]  # type: ignore[attr-defined]
            prefix.extend(adapter.format_demos(signature, demos))  # type: ignore[attr-defined]
            prefix = split_content_parts(prefix)  # images in demos go as content parts, as in format()
            if len(_PREFIX) >= _CACHE_MAX:
                _PREFIX.clear()
            hit = _PREFIX[key] = (prefix, tuple(demos))  # demos kept alive so their ids stay unique
        messages = list(hit[0])
        content = adapter.format_user_message_content(signature, inputs, main_request=True)  # type: ignore[attr-defined]
        if content:
            messages.append(split_message({"role": "user", "content": content}))
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


async def _once(
    lm: Any, adapter: Adapter, signature: type[Signature], messages: list[Message], params: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str], LMUsage, ParseError | None]:
    response = await lm.acall(messages, **params)
    outputs = response.outputs
    if not outputs:
        err = ParseError("the LM returned no completion", raw="", adapter=adapter.name)
        return [], [""], response.usage, err
    values = []
    reasons = response.finish_reasons
    for i, text in enumerate(outputs):
        try:
            values.append(parse_notified(adapter, signature, text))
        except ParseError as err:
            finish = reasons[i] if i < len(reasons) else None
            return [], [text], response.usage, _truncated(err, finish, params, lm)
    return values, list(outputs), response.usage, None


def _truncated(err: ParseError, finish_reason: str | None, params: Mapping[str, Any], lm: Any) -> ParseError:
    """Return ``err`` as a :class:`TruncatedOutputError` when the LM stopped at ``max_tokens``."""
    if finish_reason != "length" or isinstance(err, TruncatedOutputError):
        return err
    defaults = getattr(lm, "kwargs", None)
    merged = {**defaults, **params} if isinstance(defaults, dict) else params
    limit = merged.get("max_tokens") or merged.get("max_completion_tokens")
    out = TruncatedOutputError(
        f"the completion was cut off at max_tokens={limit} (finish_reason 'length') before it parsed; "
        f"raise max_tokens or ask for shorter outputs: {err.message}",
        raw=err.raw, adapter=err.adapter, field=err.field,
    )
    out.feedback = getattr(err, "feedback", err.message)  # type: ignore[attr-defined]
    return out


class _Attempts:
    """The retry count of one predictor call, and its budget for restarting streams.

    ``number`` numbers the ``Retry`` events of the call (parse retries and
    stream restarts alike); ``restarts`` is bounded by the LM's retry policy.
    """

    __slots__ = ("clock", "endpoint", "number", "policy", "restarts", "rng")

    def __init__(self, lm: Any) -> None:
        endpoint = getattr(lm, "endpoint", None)
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else None
        self.policy: RetryPolicy = self.endpoint.config.retry if self.endpoint else RetryPolicy()
        self.clock: Clock = self.endpoint.clock if self.endpoint else default_clock()
        self.rng: random.Random = self.endpoint.rng if self.endpoint else random.Random()
        self.number = 0
        self.restarts = 0

    def next(self) -> int:
        """Return the number of the coming retry."""
        self.number += 1
        return self.number

    def listener(self, pending: list[Retry]) -> Callable[[int, BaseException, float], None]:
        """Return a ``RETRY_LISTENER`` queueing a ``Retry`` per LM retry (and calling any outer one)."""
        outer = RETRY_LISTENER.get()

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            if outer is not None:
                outer(attempt, exc, delay)
            reason = f"LM call failed before any output, retrying: {type(exc).__name__}: {exc}"
            pending.append(Retry(attempt=self.next(), reason=reason, delay_s=delay))

        return on_retry

    async def restart(self, exc: LMError, emitter: Emitter, name: str | None) -> bool:
        """Announce and wait out a restart after ``exc``; False when it is not allowed."""
        if not is_retryable(exc) or self.restarts >= self.policy.max_retries:
            return False
        self.restarts += 1
        if self.endpoint is not None:
            self.endpoint.retries += 1
        delay = retry_delay(self.policy, self.restarts, getattr(exc, "retry_after", None), self.rng)
        reason = f"stream interrupted after output, restarting: {type(exc).__name__}: {exc}"
        await emitter.emit(Retry(attempt=self.next(), reason=reason, delay_s=delay), name)
        await self.clock.sleep(delay)
        return True


async def _streamed(
    lm: Any,
    adapter: Adapter,
    signature: type[Signature],
    messages: list[Message],
    params: dict[str, Any],
    emitter: Emitter,
    name: str | None,
    attempts: _Attempts,
) -> tuple[list[dict[str, Any]], list[str], LMUsage, ParseError | None]:
    parser, usage = await _restarting(lm, lambda: adapter.parse_stream(signature), messages, params, emitter,
                                      name, attempts)
    call_id = notify_start(adapter, "parse", {"signature": signature, "completion": parser.text}) \
        if adapter_callbacks(adapter) else None
    try:
        tail = parser.finish()
    except ParseError as err:
        if call_id is not None:
            notify_end(adapter, "parse", call_id, None, err)
        await _emit_usage(emitter, lm, usage)
        return [], [parser.text], usage, err
    if call_id is not None:
        notify_end(adapter, "parse", call_id, dict(parser.values), None)
    for event in tail:
        await emitter.emit(event, name)
    await _emit_usage(emitter, lm, usage)
    return [dict(parser.values)], [parser.text], usage, None


async def _restarting(
    lm: Any,
    new_parser: Callable[[], Any],
    messages: list[Message],
    params: dict[str, Any],
    emitter: Emitter,
    name: str | None,
    attempts: _Attempts,
    calls: list[Any] | None = None,
) -> tuple[Any, LMUsage]:
    """Stream into a fresh parser, restarting a stream cut after its first output; return it and the usage.

    ``calls``, when given, collects the native tool calls of the attempt that
    completed. Raises the LM's error when restarting is not allowed.
    """
    while True:
        parser = new_parser()
        if calls is not None:
            calls.clear()
        try:
            return parser, await _stream_into(lm, parser, messages, params, emitter, name, attempts, calls)
        except LMError as exc:
            # before the first output the LM retried by itself; after it, restart here
            if not (parser.text or calls) or not await attempts.restart(exc, emitter, name):
                raise


class _TextOnly:
    """The parser of a native tool-calling stream: it keeps the text (parsed once complete)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def feed(self, text: str) -> tuple[()]:
        self.parts.append(text)
        return ()


async def _stream_into(
    lm: Any,
    parser: Any,
    messages: list[Message],
    params: dict[str, Any],
    emitter: Emitter,
    name: str | None,
    attempts: _Attempts,
    calls: list[Any] | None = None,
) -> LMUsage:
    """Stream one attempt through ``parser``, emitting its events; return its usage.

    Native tool calls go to ``calls`` when given. The LM's own retries before
    the first chunk (429, 5xx, resets) are sent as ``Retry`` events just
    before that chunk: the LM reports them through a synchronous listener,
    where nothing can be awaited.
    """
    usage: LMUsage | None = None
    pending: list[Retry] = []
    token = RETRY_LISTENER.set(attempts.listener(pending))
    try:
        chunks = lm.stream(messages, **params)
        if not hasattr(chunks, "aclose"):
            chunks = _closable(chunks)
        async with aclosing(chunks) as stream:
            async for chunk in stream:
                while pending:
                    await emitter.emit(pending.pop(0), name)
                if chunk.text:
                    await emitter.emit(TokenDelta(text=chunk.text), name)
                    for event in parser.feed(chunk.text):
                        await emitter.emit(event, name)
                if calls is not None:
                    calls.extend(chunk.tool_calls)
                if chunk.usage is not None:
                    usage = chunk.usage
    finally:
        RETRY_LISTENER.reset(token)
    return usage or LMUsage()


async def _closable(iterable: Any) -> Any:
    async for item in iterable:
        yield item


async def _emit_usage(emitter: Emitter, lm: Any, usage: LMUsage) -> None:
    await emitter.emit(
        Usage(
            model=getattr(lm, "model", None),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost=usage.cost,
            cache_hit=usage.cache_hit,
        )
    )


async def _attempt(
    lm: Any,
    adapter: Adapter,
    signature: type[Signature],
    messages: list[Message],
    params: dict[str, Any],
    emitter: Emitter | None,
    name: str | None,
    attempts: _Attempts,
) -> tuple[list[dict[str, Any]], list[str], LMUsage, ParseError | None]:
    if emitter is None:
        return await _once(lm, adapter, signature, messages, params)
    if (params.get("n") or 1) == 1:
        return await _streamed(lm, adapter, signature, messages, params, emitter, name, attempts)
    values, raws, usage, err = await _once(lm, adapter, signature, messages, params)
    await _emit_usage(emitter, lm, usage)
    if err is None:
        for field, value in values[0].items():
            await emitter.emit(FieldDone(field=field, value=value), name)
    return values, raws, usage, err


async def complete_with_retries(
    lm: Any,
    adapter: Adapter,
    signature: type[Signature],
    demos: Sequence[Any],
    inputs: Mapping[str, Any],
    config: Mapping[str, Any],
    emitter: Emitter | None,
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
    thinking = reasoning_plan(signature, lm, config)
    if thinking is not None:  # a dx.Reasoning output filled by the model's native reasoning
        capture = ReasoningCapture(lm)
        result = await complete_with_retries(capture, adapter, thinking.render, demos, inputs,
                                             {**config, "reasoning_effort": thinking.effort}, emitter, name)
        texts = capture.reasoning
        result.values = [with_reasoning(signature, thinking, v, texts[i] if i < len(texts) else None)
                         for i, v in enumerate(result.values)]
        return result
    lm = observed_lm(lm)  # the LM span and callbacks (lm itself when nothing watches)
    plan = native_plan(adapter, signature, lm)
    if plan is not None:
        return await _complete_native(lm, adapter, plan, signature, demos, inputs, config, emitter, name)
    attempts = _Attempts(lm)
    messages = format_messages(adapter, signature, demos, inputs)
    params = _lm_params(adapter, signature, lm, config)
    values, raws, usage, err = await _attempt(lm, adapter, signature, messages, params, emitter, name, attempts)
    if err is None:
        return CallResult(values, raws, usage, messages)
    failures = [(adapter.name, err, raws)]
    total = usage
    for _ in range(int(get_setting("parse_retries", 1) or 0)):
        if emitter is not None:
            await emitter.emit(Retry(attempt=attempts.next(), reason=f"parse error: {err.message}"), name)
        retry_messages = [*messages, *adapter.feedback_messages(signature, raws[0], err)]
        values, raws, usage, err = await _attempt(
            lm, adapter, signature, retry_messages, params, emitter, name, attempts
        )
        total = total + usage
        if err is None:
            return CallResult(values, raws, total, retry_messages)
        failures.append((adapter.name, err, raws))
    fallback = adapter.fallback
    if fallback is not None:
        if emitter is not None:
            reason = f"falling back to {fallback.name}: {err.message}"
            await emitter.emit(Retry(attempt=attempts.next(), reason=reason), name)
        messages = format_messages(fallback, signature, demos, inputs)
        params = _lm_params(fallback, signature, lm, config)
        values, raws, usage, err = await _attempt(lm, fallback, signature, messages, params, emitter, name, attempts)
        total = total + usage
        if err is None:
            return CallResult(values, raws, total, messages)
        failures.append((fallback.name, err, raws))
    raise _final_parse_error(failures, name, signature, lm)


async def _native_response(
    lm: Any, messages: list[Message], params: dict[str, Any], emitter: Emitter | None, name: str | None,
    attempts: _Attempts,
) -> tuple[list[str], list[list[Any]], LMUsage]:
    """Return the texts, native tool calls and usage of one LM call.

    Streamed when listened to, with the restarts of :func:`_restarting` (a
    stream cut after its first output starts again after a ``Retry`` event).
    """
    if emitter is None or (params.get("n") or 1) != 1:
        response = await lm.acall(messages, **params)
        calls = list(response.tool_calls) + [[]] * (len(response.outputs) - len(response.tool_calls))
        return list(response.outputs), calls, response.usage
    found: list[Any] = []
    parser, usage = await _restarting(lm, _TextOnly, messages, params, emitter, name, attempts, found)
    return [parser.text], [found], usage


async def _complete_native(
    lm: Any,
    adapter: Adapter,
    plan: NativePlan,
    signature: type[Signature],
    demos: Sequence[Any],
    inputs: Mapping[str, Any],
    config: Mapping[str, Any],
    emitter: Emitter | None,
    name: str | None,
) -> CallResult:
    """One native function-calling call: tools in the request, ToolCalls from the response.

    Raises:
        ParseError: A completion's text does not parse against the reduced
            signature (no feedback retry: the tool calls already arrived).
    """
    rest = {k: v for k, v in inputs.items() if k != plan.tools_field}
    messages = format_messages(adapter, plan.render, demos, rest)
    params = {**_lm_params(adapter, plan.render, lm, config), "tools": native_tools(plan, inputs)}
    if adapter.parallel_tool_calls is not None:
        params.setdefault("parallel_tool_calls", adapter.parallel_tool_calls)
    texts, calls, usage = await _native_response(lm, messages, params, emitter, name, _Attempts(lm))
    try:
        values = [native_values(adapter, plan, signature, t, c) for t, c in zip(texts, calls, strict=True)]
    except ParseError as err:
        raise ParseError(
            f"{name or 'Predict'}({signature.signature}): could not parse the LM output (native tool calling, "
            f"{adapter.name}): {err.message}",
            raw=err.raw, adapter=adapter.name, field=err.field, model=getattr(lm, "model", None),
        ) from err
    if emitter is not None:
        await _emit_usage(emitter, lm, usage)
        for field, value in values[0].items():
            await emitter.emit(FieldDone(field=field, value=value), name)
    return CallResult(values, texts, usage, messages)


def _final_parse_error(
    failures: list[tuple[str, ParseError, list[str]]], name: str | None, signature: type[Signature], lm: Any
) -> ParseError:
    """Return the error naming every failed attempt, chained through their errors."""
    for (_, before, _), (_, after, _) in zip(failures, failures[1:], strict=False):
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
