"""One LM endpoint's request engine: send, parse, retry, limit, break.

:class:`Endpoint` owns everything between a provider's Sans-I/O request and
the wire for one ``dx.LM`` (shared by its copies): the transport, the retry
policy, the rate limiter, the circuit breaker and the concurrency limit
(fixed or AIMD). ``complete`` returns one parsed response; ``stream`` yields
text deltas then the final response, and never retries once text was
yielded. Only :mod:`dspex.errors` exceptions leave it.
"""

from __future__ import annotations

import json
import random
from contextlib import AsyncExitStack, aclosing, asynccontextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.lowlevel import RunVar

from .._http._factory import get_transport  # with the LM, not on its first call: the lean pool
from .._http._sse import SSEDecoder
from .._http._transport import HTTPResponse, Timeouts, Transport
from ..errors import (
    AuthError,
    ConfigError,
    ContextWindowExceededError,
    LMError,
    LMProviderError,
    LMTimeoutError,
    LMTransportError,
    RateLimitError,
    UnsupportedParameterError,
    is_retryable,
)
from ._capabilities import NEGOTIABLE, Capabilities, Trial, refused_parameter
from ._estimate import estimate_usage
from ._retry import RetryPolicy, parse_retry_after, retry_call, retry_delay
from ._types import LMResponse, Message
from .providers._base import Provider, ProviderRequest, StreamState

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable
    from types import TracebackType

    from .._util._clock import Clock
    from ._adaptive import AdaptiveConcurrency
    from ._breaker import CircuitBreaker
    from ._ratelimit import RateLimiter

__all__ = ["RETRY_LISTENER", "Endpoint", "EndpointConfig", "timeouts_from"]

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: Called as ``listener(attempt, error, delay_s)`` before each retry sleep, in
#: the calling task's context. Modules set it to emit ``dx.events.Retry``.
RETRY_LISTENER: ContextVar[Callable[[int, BaseException, float], None] | None] = ContextVar(
    "dspex_lm_retry_listener", default=None
)


def timeouts_from(timeout: float | Timeouts | None) -> tuple[Timeouts, float | None]:
    """Return the timeouts and the per-attempt deadline (``Timeouts.attempt``) for ``timeout=``.

    ``None`` gives the documented defaults; a number of seconds caps both the
    per-read wait and the whole attempt at that many seconds.

    Raises:
        ConfigError: ``timeout`` is neither ``None``, a positive number nor a ``Timeouts``.
    """
    if timeout is None:
        timeouts = Timeouts()
    elif isinstance(timeout, Timeouts):
        timeouts = timeout
    elif isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"invalid timeout {timeout!r}: expected seconds > 0 or a dx.Timeouts")
    else:
        t = float(timeout)
        timeouts = Timeouts(connect=min(t, 10.0), read=t, pool=min(t, 30.0), write=min(t, 30.0), attempt=t)
    return timeouts, timeouts.attempt


@dataclass
class EndpointConfig:
    """The resilience settings of one endpoint (all optional but ``retry``)."""

    retry: RetryPolicy
    timeouts: Timeouts
    deadline: float | None = None
    rate_limiter: RateLimiter | None = None
    breaker: CircuitBreaker | None = None
    adaptive: AdaptiveConcurrency | None = None
    max_concurrency: int | None = None


class Endpoint:
    """Send requests for one provider with retries and limits."""

    def __init__(
        self,
        provider: Provider,
        config: EndpointConfig,
        clock: Clock,
        *,
        transport: Transport | None = None,
        proxy: str | None = None,
        http_client: Any = None,
    ) -> None:
        self.provider = provider
        self.config = config
        self.clock = clock
        self.rng = random.Random()
        self._transport = transport
        self._proxy = proxy
        self._http_client = http_client
        self._fixed: RunVar[anyio.CapacityLimiter] = RunVar(f"dspex_endpoint_{id(self)}")
        self.retries = 0
        self.capabilities = Capabilities()

    @property
    def transport(self) -> Transport:
        """The transport (resolved on first use: shared pool or httpx)."""
        if self._transport is None:
            self._transport = get_transport(
                proxy=self._proxy, client=self._http_client, url=self.provider.api_base
            )
        return self._transport

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[int]:
        if self.config.adaptive is not None:
            async with self.config.adaptive.slot() as generation:
                yield generation
            return
        if self.config.max_concurrency is None:
            yield 0
            return
        try:
            limiter = self._fixed.get()
        except LookupError:
            limiter = anyio.CapacityLimiter(self.config.max_concurrency)
            self._fixed.set(limiter)
        borrower = object()
        await limiter.acquire_on_behalf_of(borrower)
        try:
            yield 0
        finally:
            limiter.release_on_behalf_of(borrower)

    def _estimate(self, body: bytes, params: dict[str, Any]) -> int:
        if self.config.rate_limiter is None or self.config.rate_limiter.tokens is None:
            return 0
        return len(body) // 4 + int(params.get("max_tokens") or 0)

    def _failed(self, exc: BaseException, generation: int) -> None:
        if self.config.breaker is not None:
            self.config.breaker.record_failure(exc)
        if self.config.adaptive is not None:
            self.config.adaptive.on_error(exc, generation)

    def _succeeded(self, estimate: int, response: LMResponse) -> None:
        if self.config.breaker is not None:
            self.config.breaker.record_success()
        if self.config.adaptive is not None:
            self.config.adaptive.on_success()
        if self.config.rate_limiter is not None:
            used = response.usage.input_tokens + response.usage.output_tokens
            self.config.rate_limiter.settle(estimate, used)

    async def _admit(self, estimate: int) -> None:
        if self.config.breaker is not None:
            self.config.breaker.before_call()
        if self.config.rate_limiter is not None:
            await self.config.rate_limiter.acquire(estimate)

    async def _error_for(self, resp: HTTPResponse, request: ProviderRequest) -> Exception:
        body = await resp.aread()
        retry_after = parse_retry_after(resp.header("retry-after"), ms_value=resp.header("retry-after-ms"))
        exc = self.provider.map_error(resp.status, dict(resp.headers), body, retry_after)
        if not isinstance(exc, LMProviderError) or isinstance(
            exc, AuthError | RateLimitError | ContextWindowExceededError
        ):
            return exc
        # A refused optional parameter is negotiated away, never retried as a 5xx.
        name = refused_parameter(resp.status, exc.message, request.body)
        if name is None:
            return exc
        return UnsupportedParameterError(
            f"the server at {self.provider.api_base} refused {name}: {exc.message}",
            parameter=name, status=resp.status, provider=self.provider.name, model=self.provider.model_name,
        )

    def _decode(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LMTransportError(
                f"malformed JSON in the {self.provider.name} response ({len(raw)} bytes): {exc}",
                provider=self.provider.name,
                model=self.provider.model_name,
            ) from None

    def _parse(self, data: Any) -> LMResponse:
        try:
            return self.provider.parse_response(data)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise LMTransportError(
                f"unexpected {self.provider.name} response shape: {_shape_reason(exc)}",
                provider=self.provider.name,
                model=self.provider.model_name,
            ) from None

    def _plain(self) -> bool:
        """True when no limiter, breaker or concurrency limit wraps an attempt."""
        c = self.config
        return c.rate_limiter is None and c.breaker is None and c.adaptive is None and c.max_concurrency is None

    def _annotate(self, exc: LMError) -> None:
        """Name this endpoint's model and provider on ``exc`` where it names none."""
        # context keys are plain attributes set by DspexError.__init__; __str__ reads them
        if getattr(exc, "model", None) is None:
            setattr(exc, "model", self.provider.model_name)  # noqa: B010
        if getattr(exc, "provider", None) is None:
            setattr(exc, "provider", self.provider.name)  # noqa: B010

    def _deadline_error(self) -> LMTimeoutError:
        return LMTimeoutError(
            f"the {self.provider.name} call exceeded the {self.config.deadline}s timeout per attempt "
            "(Timeouts.attempt)",
            provider=self.provider.name, model=self.provider.model_name,
        )

    async def _send(self, request: ProviderRequest, body: bytes) -> LMResponse:
        """Send once and parse the answer, within the attempt deadline.

        A transport that ``bounds_attempt`` (the default pool) ends the call by
        ``Timeouts.attempt`` itself; any other gets a cancel scope here.
        """
        transport = self.transport
        limit = self.config.deadline
        if limit and not transport.bounds_attempt:
            with _Within(anyio.current_time() + limit, self._deadline_error):
                return await self._exchange(transport, request, body)
        return await self._exchange(transport, request, body)

    async def _exchange(self, transport: Transport, request: ProviderRequest, body: bytes) -> LMResponse:
        resp = await transport.request(
            request.method, request.url, headers=request.headers, body=body,
            timeouts=self.config.timeouts,
        )
        if resp.status >= 400:
            raise await self._error_for(resp, request)
        return self._parse(self._decode(await resp.aread()))

    async def _attempt(self, request: ProviderRequest, body: bytes, estimate: int) -> LMResponse:
        try:
            if self._plain():
                return await self._send(request, body)
            return await self._attempt_limited(request, body, estimate)
        except LMError as exc:
            self._annotate(exc)
            raise

    async def _attempt_limited(self, request: ProviderRequest, body: bytes, estimate: int) -> LMResponse:
        await self._admit(estimate)
        async with self._slot() as generation:
            try:
                response = await self._send(request, body)
            except LMError as exc:
                self._failed(exc, generation)
                raise
        self._succeeded(estimate, response)
        return response

    async def complete(self, messages: list[Message], params: dict[str, Any]) -> LMResponse:
        """Return the provider's response, retrying per the policy.

        Optional parameters the server refuses (``response_format``,
        ``tool_choice``, ...) are negotiated down (see
        :mod:`dspex.lm._capabilities`) without using the retry budget.

        Raises:
            UnsupportedParameterError: A refused parameter has no fallback.
            LMError: The call failed after its retries.
        """
        caps = self.capabilities
        # No generator expression or closure on this path: each would allocate
        # a cell per call that the cyclic GC then has to track.
        if not (caps.refused or caps.refused_formats) and params.keys().isdisjoint(NEGOTIABLE):
            return _estimated(await self._complete(messages, params), messages)
        return await self._negotiate(messages, params)

    async def _negotiate(self, messages: list[Message], params: dict[str, Any]) -> LMResponse:
        """Complete, stepping refused optional parameters down until the server accepts."""
        trial = self.capabilities.trial(params)
        while True:
            try:
                response = await self._complete(messages, trial.params)
            except UnsupportedParameterError as exc:
                trial.step_down(exc)
                continue
            return _negotiated(_estimated(response, messages), trial)

    async def _complete(self, messages: list[Message], params: dict[str, Any]) -> LMResponse:
        request = self.provider.build_request(messages, params, stream=False)
        body = _encode_json(request.body).encode()
        estimate = self._estimate(body, params)
        try:  # the first attempt runs without the retry machinery
            return await self._attempt(request, body, estimate)
        except Exception as exc:
            if not is_retryable(exc) or self.config.retry.max_retries < 1:
                raise
            first = exc
        return await self._retried(request, body, estimate, first)

    async def _retried(self, request: ProviderRequest, body: bytes, estimate: int, first: Exception) -> LMResponse:
        """Retry a failed first attempt per the policy (its closures live here, off the hot path)."""

        def count(attempt: int, exc: BaseException, delay: float) -> None:
            self.retries += 1
            listener = RETRY_LISTENER.get()
            if listener is not None:
                listener(attempt, exc, delay)

        return await retry_call(
            lambda: self._attempt(request, body, estimate),
            policy=self.config.retry, clock=self.clock, rng=self.rng, on_retry=count, failed=first,
        )

    async def stream(self, messages: list[Message], params: dict[str, Any]) -> AsyncGenerator[str | LMResponse]:
        """Yield text deltas, then the final :class:`LMResponse`.

        Errors before the first delta are retried per the policy; after it,
        they propagate (the caller already saw partial output). A refused
        optional parameter (answered before any delta) is negotiated down as
        in :meth:`complete`; a stream without usage gets estimated usage.
        """
        trial = self.capabilities.trial(params)
        while True:
            try:
                async with aclosing(self._stream(messages, trial)) as items:
                    async for item in items:
                        if isinstance(item, LMResponse):
                            item = _negotiated(_estimated(item, messages), trial)
                        yield item
                return
            except UnsupportedParameterError as exc:
                trial.step_down(exc)

    async def _stream(self, messages: list[Message], trial: Trial) -> AsyncGenerator[str | LMResponse]:
        params = trial.params
        request = self.provider.build_request(messages, params, stream=True)
        if trial.drop_stream_options:
            request.body.pop("stream_options", None)
        body = _encode_json(request.body).encode()
        estimate = self._estimate(body, params)
        attempt = 0
        while True:
            emitted = False
            try:
                async with aclosing(self._stream_once(request, body, estimate)) as items:
                    async for item in items:
                        emitted = emitted or isinstance(item, str)
                        yield item
                return
            except Exception as exc:
                if emitted or not is_retryable(exc) or attempt >= self.config.retry.max_retries:
                    raise
                attempt += 1
                self.retries += 1
                delay = retry_delay(self.config.retry, attempt, getattr(exc, "retry_after", None), self.rng)
                listener = RETRY_LISTENER.get()
                if listener is not None:
                    listener(attempt, exc, delay)
            await self.clock.sleep(delay)

    async def _stream_once(
        self, request: ProviderRequest, body: bytes, estimate: int
    ) -> AsyncGenerator[str | LMResponse]:
        state = StreamState()
        try:
            await self._admit(estimate)
            async with self._slot() as generation:
                try:
                    async with aclosing(self._stream_texts(request, body, state)) as texts:
                        async for text in texts:  # closed here, in this task, even if we stop early
                            yield text
                    if not state.done:
                        raise LMTransportError(
                            f"the {self.provider.name} stream ended before completion (truncated)"
                        )
                except LMError as exc:
                    self._failed(exc, generation)
                    raise
        except LMError as exc:
            self._annotate(exc)
            raise
        response = state.to_response(self.provider.model_name)
        self._succeeded(estimate, response)
        yield response

    async def _stream_texts(self, request: ProviderRequest, body: bytes, state: StreamState) -> AsyncGenerator[str]:
        """Open the stream and yield its text deltas, within the attempt deadline.

        The deadline is applied around each wait rather than by one cancel
        scope around the whole stream: a scope must not stay open across a yield.
        """
        deadline = self._stream_deadline()
        async with AsyncExitStack() as stack:
            with self._within(deadline):
                resp = await stack.enter_async_context(self.transport.stream(
                    request.method, request.url, headers=request.headers, body=body,
                    timeouts=self.config.timeouts,
                ))
                if resp.status >= 400:
                    raise await self._error_for(resp, request)
            decoder = SSEDecoder()
            chunks = resp.aiter_bytes()
            while True:
                with self._within(deadline):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    return
                for event in decoder.feed(chunk):
                    text = self._fold(state, event)
                    if text:
                        yield text

    def _stream_deadline(self) -> float | None:
        limit = self.config.deadline
        return anyio.current_time() + limit if limit else None

    def _within(self, deadline: float | None) -> Any:
        """A scope raising ``LMTimeoutError`` at ``deadline`` (``None``: no limit)."""
        if deadline is None:
            return nullcontext()
        return _Within(deadline, self._deadline_error)

    def _fold(self, state: StreamState, event: Any) -> str:
        if state.done or not (event.data or "").strip():
            return ""
        try:
            return self.provider.parse_stream_event(state, event.event, event.data)
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise LMTransportError(
                f"malformed {self.provider.name} stream event: {_shape_reason(exc)}",
                provider=self.provider.name, model=self.provider.model_name,
            ) from None


def _estimated(response: LMResponse, messages: list[Message]) -> LMResponse:
    """Return ``response`` with locally counted usage when the server sent none."""
    usage = response.usage
    if usage.input_tokens or usage.output_tokens or not any(response.outputs):
        return response
    return response.model_copy(update={"usage": estimate_usage({"messages": messages}, response.outputs)})


def _negotiated(response: LMResponse, trial: Trial) -> LMResponse:
    """Return ``response`` noting the structured-output rung and dropped parameters."""
    info = trial.succeeded()
    if info["structured_output"] is None and not info["dropped_params"]:
        return response
    return response.model_copy(update=info)


def _shape_reason(exc: Exception) -> str:
    """Say in words why a provider payload could not be read (no bare class names)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc})"
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    if isinstance(exc, AttributeError | TypeError):
        return f"a value has the wrong type ({exc})"
    return str(exc) or "invalid value"


class _Within:
    """``with``: cancel the body at an absolute deadline and raise ``error()`` instead."""

    __slots__ = ("_error", "_scope")

    def __init__(self, deadline: float, error: Callable[[], Exception]) -> None:
        self._scope = anyio.CancelScope(deadline=deadline)
        self._error = error

    def __enter__(self) -> None:
        self._scope.__enter__()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        suppressed = self._scope.__exit__(exc_type, exc, tb)
        if self._scope.cancelled_caught:
            raise self._error() from None
        return bool(suppressed)
