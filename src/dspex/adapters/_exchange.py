"""One exchange with the LM: prepared messages in, parsed completions out, streamed or not.

:func:`complete` makes one LM call for a prepared signature and parses every
completion with the adapter (``Adapter.acomplete`` is its public face). Not
listened to, it is one ``lm.acall``; with a :class:`Live` target and ``n == 1``
it streams the completion through the adapter's incremental parser, sending
``TokenDelta``/``FieldDelta``/``FieldDone``/``Usage`` events as they come.
A parse failure is returned, not raised (the caller decides on a feedback
retry or the fallback); an LM failure is raised.

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
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._util._clock import Clock, default_clock
from ..errors import LMError, ParseError, TruncatedOutputError, is_retryable
from ..events import Event, FieldDone, Retry, TokenDelta, Usage
from ..lm._engine import RETRY_LISTENER, Endpoint
from ..lm._retry import RetryPolicy, retry_delay
from ..lm._types import LMUsage
from ._callbacks import adapter_callbacks, notify_end, notify_start, parse_notified
from ._native import native_values

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence

    from ..lm._types import Message, NativeToolCall
    from ._native import NativePlan
    from ._prepared import Prepared

__all__ = ["EventSink", "Exchange", "Live", "complete", "complete_native"]


class EventSink(Protocol):
    """Where a streamed exchange sends its events (``modules``' emitter is one)."""

    async def emit(self, event: Event, predictor: str | None = None) -> None:
        """Send ``event``, stamped with ``predictor`` when given; may block (backpressure)."""


class Exchange:
    """What one LM call gave: parsed outputs per completion, raw texts, usage, parse error."""

    __slots__ = ("error", "raws", "usage", "values")

    def __init__(self, values: list[dict[str, Any]], raws: list[str], usage: LMUsage,
                 error: ParseError | None = None) -> None:
        self.values = values
        self.raws = raws
        self.usage = usage
        self.error = error


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


class _Feedable(Protocol):
    @property
    def text(self) -> str: ...

    def feed(self, text: str) -> Sequence[Event]: ...


T_Parser = TypeVar("T_Parser", bound=_Feedable)


class Live:
    """A listened-to predictor call: its event sink and name, retry numbering, restart budget.

    ``number`` numbers the ``Retry`` events of the call (parse retries and
    stream restarts alike); ``restarts`` is bounded by the LM's retry policy
    (``max_retries``), waited out with its backoff on its clock.
    """

    __slots__ = ("clock", "endpoint", "name", "number", "policy", "restarts", "rng", "sink")

    def __init__(self, sink: EventSink, name: str | None, lm: Any) -> None:
        self.sink = sink
        self.name = name
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

    async def emit(self, event: Event) -> None:
        """Send ``event`` stamped with this predictor's name (blocks on backpressure)."""
        await self.sink.emit(event, self.name)

    async def retry(self, reason: str) -> None:
        """Announce a retry of the whole call (a parse retry or a fallback)."""
        await self.emit(Retry(attempt=self.next(), reason=reason))

    def listener(self, pending: list[Retry]) -> Callable[[int, BaseException, float], None]:
        """Return a ``RETRY_LISTENER`` queueing a ``Retry`` per LM retry (and calling any outer one)."""
        outer = RETRY_LISTENER.get()

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            if outer is not None:
                outer(attempt, exc, delay)
            reason = f"LM call failed before any output, retrying: {type(exc).__name__}: {exc}"
            pending.append(Retry(attempt=self.next(), reason=reason, delay_s=delay))

        return on_retry

    async def restart(self, exc: LMError) -> bool:
        """Announce and wait out a restart after ``exc``; False when it is not allowed."""
        if not is_retryable(exc) or self.restarts >= self.policy.max_retries:
            return False
        self.restarts += 1
        if self.endpoint is not None:
            self.endpoint.retries += 1
        delay = retry_delay(self.policy, self.restarts, getattr(exc, "retry_after", None), self.rng)
        reason = f"stream interrupted after output, restarting: {type(exc).__name__}: {exc}"
        await self.emit(Retry(attempt=self.next(), reason=reason, delay_s=delay))
        await self.clock.sleep(delay)
        return True

    async def usage(self, lm: Any, usage: LMUsage) -> None:
        """Send the ``Usage`` event of one LM call (not stamped with the predictor)."""
        await self.sink.emit(Usage(
            model=getattr(lm, "model", None),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost=usage.cost,
            cache_hit=usage.cache_hit,
        ))


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
    out.feedback = getattr(err, "feedback", err.message)  # type: ignore[attr-defined]  # ParseError declares no feedback
    return out


async def _once(lm: Any, prepared: Prepared, messages: list[Message], params: dict[str, Any]) -> Exchange:
    adapter = prepared.adapter
    response = await lm.acall(messages, **params)
    outputs = response.outputs
    if not outputs:
        return Exchange([], [""], response.usage,
                        ParseError("the LM returned no completion", raw="", adapter=adapter.name))
    values = []
    reasons = response.finish_reasons
    for i, text in enumerate(outputs):
        try:
            values.append(parse_notified(adapter, prepared.signature, text))
        except ParseError as err:
            finish = reasons[i] if i < len(reasons) else None
            return Exchange([], [text], response.usage, _truncated(err, finish, params, lm))
    return Exchange(values, list(outputs), response.usage)


async def _streamed(lm: Any, prepared: Prepared, messages: list[Message], params: dict[str, Any],
                    live: Live) -> Exchange:
    adapter, signature = prepared.adapter, prepared.signature
    parser, usage = await _restarting(lm, lambda: adapter.parse_stream(signature), messages, params, live)
    call_id = notify_start(adapter, "parse", {"signature": signature, "completion": parser.text}) \
        if adapter_callbacks(adapter) else None
    try:
        tail = parser.finish()
    except ParseError as err:
        if call_id is not None:
            notify_end(adapter, "parse", call_id, None, err)
        await live.usage(lm, usage)
        return Exchange([], [parser.text], usage, err)
    if call_id is not None:
        notify_end(adapter, "parse", call_id, dict(parser.values), None)
    for event in tail:
        await live.emit(event)
    await live.usage(lm, usage)
    return Exchange([dict(parser.values)], [parser.text], usage)


async def _restarting(
    lm: Any, new_parser: Callable[[], T_Parser], messages: list[Message], params: dict[str, Any], live: Live,
    calls: list[NativeToolCall] | None = None,
) -> tuple[T_Parser, LMUsage]:
    """Stream into a fresh parser, restarting a stream cut after its first output; return it and the usage.

    ``calls``, when given, collects the native tool calls of the attempt that
    completed. Raises the LM's error when restarting is not allowed.
    """
    while True:
        parser = new_parser()
        if calls is not None:
            calls.clear()
        try:
            return parser, await _stream_into(lm, parser, messages, params, live, calls)
        except LMError as exc:
            # before the first output the LM retried by itself; after it, restart here
            if not (parser.text or calls) or not await live.restart(exc):
                raise


async def _stream_into(lm: Any, parser: _Feedable, messages: list[Message], params: dict[str, Any], live: Live,
                       calls: list[NativeToolCall] | None = None) -> LMUsage:
    """Stream one attempt through ``parser``, emitting its events; return its usage.

    Native tool calls go to ``calls`` when given. The LM's own retries before
    the first chunk (429, 5xx, resets) are sent as ``Retry`` events just
    before that chunk: the LM reports them through a synchronous listener,
    where nothing can be awaited.
    """
    usage: LMUsage | None = None
    pending: list[Retry] = []
    token = RETRY_LISTENER.set(live.listener(pending))
    try:
        chunks = lm.stream(messages, **params)
        if not hasattr(chunks, "aclose"):
            chunks = _closable(chunks)
        async with aclosing(chunks) as stream:
            async for chunk in stream:
                while pending:
                    await live.emit(pending.pop(0))
                if chunk.text:
                    await live.emit(TokenDelta(text=chunk.text))
                    for event in parser.feed(chunk.text):
                        await live.emit(event)
                if calls is not None:
                    calls.extend(chunk.tool_calls)
                if chunk.usage is not None:
                    usage = chunk.usage
    finally:
        RETRY_LISTENER.reset(token)
    return usage or LMUsage()


async def _closable(iterable: AsyncIterable[Any]) -> AsyncIterator[Any]:
    async for item in iterable:
        yield item


def complete(lm: Any, prepared: Prepared, messages: list[Message], params: dict[str, Any],
             live: Live | None = None) -> Awaitable[Exchange]:
    """Make one LM call with ``messages`` and parse every completion with the prepared adapter.

    Streams through the adapter's incremental parser when ``live`` is given
    and one completion is asked for; with ``n > 1`` the response comes whole
    and its first completion's fields are sent as ``FieldDone`` events.

    Returns:
        An awaitable of the exchange (await it once); ``error`` is the ``ParseError`` of the first completion
        that did not parse (a ``TruncatedOutputError`` when the LM stopped at
        ``max_tokens``), with ``values`` empty.

    Raises:
        LMError: The LM call failed (after the LM's retries and, for a stream
            cut after its first token, the restarts ``live`` allows).
    """
    # The awaitable of the call itself, not a pass-through coroutine around it
    # (one GC-tracked object less per call in flight).
    if live is None:
        return _once(lm, prepared, messages, params)
    if (params.get("n") or 1) == 1:
        return _streamed(lm, prepared, messages, params, live)
    return _whole(lm, prepared, messages, params, live)


async def _whole(lm: Any, prepared: Prepared, messages: list[Message], params: dict[str, Any],
                 live: Live) -> Exchange:
    """``n > 1`` under a live stream: one whole response; the first completion's fields as ``FieldDone``."""
    done = await _once(lm, prepared, messages, params)
    await live.usage(lm, done.usage)
    if done.error is None:
        for field, value in done.values[0].items():
            await live.emit(FieldDone(field=field, value=value))
    return done


async def complete_native(lm: Any, prepared: Prepared, plan: NativePlan, messages: list[Message],
                          params: dict[str, Any], live: Live | None = None) -> Exchange:
    """Make one native tool-calling LM call; fill ``ToolCalls`` from the provider's calls.

    ``prepared`` is the adapter's entry for the full signature (whose outputs
    are returned, in order); ``messages`` were formatted for ``plan.render``.
    Streamed (with restarts) when ``live`` is given and ``n == 1``.

    Raises:
        ParseError: A completion's text does not parse against the reduced
            signature (no feedback retry: the tool calls already arrived).
        LMError: The LM call failed.
    """
    if live is None or (params.get("n") or 1) != 1:
        response = await lm.acall(messages, **params)
        texts = list(response.outputs)
        calls = list(response.tool_calls) + [[]] * (len(texts) - len(response.tool_calls))
        usage: LMUsage = response.usage
    else:
        found: list[NativeToolCall] = []
        parser, usage = await _restarting(lm, _TextOnly, messages, params, live, found)
        texts, calls = [parser.text], [found]
    values = [native_values(prepared.adapter, plan, prepared.signature, t, c)
              for t, c in zip(texts, calls, strict=True)]
    if live is not None:
        await live.usage(lm, usage)
        for field, value in values[0].items():
            await live.emit(FieldDone(field=field, value=value))
    return Exchange(values, texts, usage)
