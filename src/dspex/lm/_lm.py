"""``dx.LM``: the one LM front over every provider.

``LM("provider/name", ...)`` resolves the provider, reads its API key from
the conventional environment variable (only here), and answers ``acall``
(all completions at once), ``stream`` (text deltas of one completion) and the
DSPy-style sync ``__call__``. Around the provider's request it adds the
cache (with single-flight), usage and cost, history, and — through its
:class:`~dspex.lm._engine.Endpoint` — retries, rate limits, a circuit breaker
and concurrency limits. The key never appears in reprs, history, cache keys,
``dump_state`` or error messages.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, Self

import anyio

from .._context import get_setting
from .._http._transport import Timeouts, Transport
from .._util._clock import Clock, default_clock
from .._util._hashing import stable_hash
from .._util._redact import redact_obj
from .._util._sync import run_sync
from ..errors import AuthError, ConfigError, InputError, LMError
from ._adaptive import AdaptiveConcurrency
from ._breaker import CircuitBreaker, CircuitBreakerPolicy
from ._cache import LMCache, SingleFlight, default_cache
from ._engine import Endpoint, EndpointConfig, timeouts_from
from ._fallback import FallbackLM
from ._history import History, LazyEntry, record
from ._pricing import cost_of, normalize_prices
from ._ratelimit import RateLimit, RateLimiter
from ._retry import RetryPolicy
from ._types import LMChunk, LMResponse, LMUsage, Message
from .providers._registry import COMPATIBLE_BASES, provider_class, split_model

__all__ = ["LM"]

_NOT_KEYED = frozenset({"cache"})


def _messages(messages: Any) -> list[Message]:
    """Return a copy of ``messages`` (history keeps it) after checking its shape."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if isinstance(messages, list):
        copied = [m.copy() if type(m) is dict else dict(m) if isinstance(m, Mapping) else None for m in messages]
        if all(m is not None and "role" in m for m in copied):
            return copied  # type: ignore[return-value]
    raise InputError(
        f"invalid messages {messages!r:.200}: expected a list of {{'role': ..., 'content': ...}} dicts or a str"
    )


class LM:
    """A language model behind an HTTP API, with cache, retries and limits.

    Args:
        model: ``"provider/name"``: ``openai/…`` (also any OpenAI-compatible
            server via ``api_base``; aliases ``ollama``, ``vllm``, ``groq``,
            ``together``, ``lm_studio``, ``llamacpp``), ``anthropic/…``, ``gemini/…``.
        api_base: Base URL (``http://127.0.0.1:8000/v1`` for a local server).
        api_key: The credential; default from ``OPENAI_API_KEY``,
            ``ANTHROPIC_API_KEY`` or ``GEMINI_API_KEY``/``GOOGLE_API_KEY``.
        cache: ``False`` disables caching for this LM; an :class:`LMCache` uses it.
        num_retries: Retries of transport errors, timeouts, 429 and 5xx (default 3).
        timeout: A :class:`Timeouts`, or seconds capping both the per-read
            wait and the whole attempt. Default: 120 s per read (a
            non-streamed answer must arrive within it; a stream must send a
            chunk at least that often) and 300 s per attempt, streamed or not.
            A timed-out attempt is retried like a transport error, so a hung
            request costs a batch run minutes at most, not ten.
        retry: Full :class:`RetryPolicy` (``num_retries`` overrides its count).
        rate_limit: Client-side :class:`RateLimit` (requests and tokens per minute).
        circuit_breaker: A :class:`CircuitBreakerPolicy` (default: none).
        max_concurrency: Calls in flight at once (default: unlimited).
        adaptive_concurrency: AIMD on 429s, starting at ``max_concurrency`` or 64.
        prices: ``{model: {"input", "output", "cached_input"}}`` USD per 1M tokens.
        transport: A :class:`Transport` to send requests through.
        proxy: Proxy URL (uses the httpx transport).
        http_client: A user-owned ``httpx.AsyncClient`` to send requests through.
        clock: Time source for backoff and limits (tests pass a virtual clock).
        supports_reasoning: Whether the model reasons natively (a ``dx.Reasoning``
            output is then requested as ``reasoning_effort``, as DSPy does);
            None guesses from the provider and model name.
        **params: Default request parameters (``temperature``, ``max_tokens``, ...).

    Raises:
        ConfigError: ``model`` is malformed or names an unknown provider, or a
            setting is invalid; the message names it and what was expected.

    The key is redacted from ``repr``, logs, errors, history, cache files and
    saved programs, but a **pickled** ``LM`` carries it (process and Ray
    workers need it to call the API): treat pickles of an ``LM``, or of a
    program or flow holding one, as secrets.
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        cache: bool | LMCache = True,
        num_retries: int | None = None,
        timeout: float | Timeouts | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        circuit_breaker: CircuitBreakerPolicy | None = None,
        max_concurrency: int | None = None,
        adaptive_concurrency: bool = False,
        prices: Mapping[str, Any] | None = None,
        transport: Transport | None = None,
        proxy: str | None = None,
        http_client: Any = None,
        clock: Clock | None = None,
        supports_reasoning: bool | None = None,
        **params: Any,
    ) -> None:
        if transport is not None and not isinstance(transport, Transport):
            raise ConfigError(
                f"transport must be a dx.lm.Transport (request, stream, aclose), got {type(transport).__name__}"
            )
        provider, name = split_model(model)
        cls = provider_class(provider)
        base = api_base or COMPATIBLE_BASES.get(provider)
        if provider in COMPATIBLE_BASES and base is None:
            raise ConfigError(f"model {model!r} needs api_base= (the server's URL, e.g. 'http://127.0.0.1:8000/v1')")
        key = api_key or next((os.environ[k] for k in cls.env_keys if os.environ.get(k)), None)
        self.model = model
        self.provider = cls.name
        self.kwargs: dict[str, Any] = dict(params)
        self.cache = cache
        self._api_key = key
        self._api_base = api_base
        self._prices = normalize_prices(prices)
        self.history = History()
        self._flight = SingleFlight()
        self._init: dict[str, Any] = {
            "api_base": api_base, "cache": cache, "num_retries": num_retries, "timeout": timeout,
            "retry": retry, "rate_limit": rate_limit, "circuit_breaker": circuit_breaker,
            "max_concurrency": max_concurrency, "adaptive_concurrency": adaptive_concurrency,
            "prices": prices, "transport": transport, "proxy": proxy, "http_client": http_client,
            "clock": clock, "supports_reasoning": supports_reasoning,
        }
        self._endpoint = self._make_endpoint(cls(name, base, key), clock or default_clock())

    def _make_endpoint(self, provider: Any, clock: Clock) -> Endpoint:
        init = self._init
        policy = init["retry"] or RetryPolicy()
        if init["num_retries"] is not None:
            policy = RetryPolicy(**{**policy.__dict__, "max_retries": init["num_retries"]})
        timeouts, deadline = timeouts_from(init["timeout"])
        max_conc = init["max_concurrency"]
        if max_conc is not None and (not isinstance(max_conc, int) or max_conc < 1):
            raise ConfigError(f"invalid max_concurrency {max_conc!r}: expected an int >= 1")
        config = EndpointConfig(
            retry=policy,
            timeouts=timeouts,
            deadline=deadline,
            rate_limiter=RateLimiter(init["rate_limit"], clock) if init["rate_limit"] else None,
            breaker=CircuitBreaker(init["circuit_breaker"], clock, name=self.model) if init["circuit_breaker"] else None,
            adaptive=AdaptiveConcurrency(max_conc or 64, max_limit=max(max_conc or 1024, 1))
            if init["adaptive_concurrency"] else None,
            max_concurrency=max_conc,
        )
        return Endpoint(provider, config, clock, transport=init["transport"], proxy=init["proxy"],
                        http_client=init["http_client"])

    # -- public API -------------------------------------------------------

    @property
    def supports_reasoning(self) -> bool:
        """True when the model reasons natively (a ``dx.Reasoning`` output then goes native).

        ``LM(..., supports_reasoning=True/False)`` overrides the provider's
        guess (OpenAI's o-series and gpt-5; False elsewhere).
        """
        flag = self._init.get("supports_reasoning")
        if flag is not None:
            return bool(flag)
        return bool(getattr(self._endpoint.provider, "supports_reasoning", False))

    @property
    def endpoint(self) -> Endpoint:
        """The request engine (retry counters, breaker and limiter state)."""
        return self._endpoint

    @property
    def capabilities(self) -> dict[str, Any]:
        """What the server was found to refuse, and the structured-output rung it takes.

        Learned per endpoint (this LM and its copies) as calls negotiate; see
        :class:`~dspex.errors.UnsupportedParameterError`.
        """
        return self._endpoint.capabilities.snapshot()

    async def acall(self, messages: list[Message] | str, **params: Any) -> LMResponse:
        """Return the completions for ``messages`` (``n`` in params, default 1).

        Served from the cache when allowed (usage zeroed, ``cache_hit=True``);
        concurrent identical calls share one HTTP request. Transport errors,
        timeouts, 429 and 5xx are retried per the policy. Each attempt is
        bounded by the ``timeout`` (120 s per read, 300 s in all by default).

        Raises:
            InputError: ``messages`` is malformed.
            LMError: The call failed (typed: ``RateLimitError``, ``AuthError``, ...).
        """
        msgs = _messages(messages)
        merged = {**self.kwargs, **params}
        use_cache = self._cache_enabled(merged.pop("cache", None))
        started = time.monotonic()
        if not use_cache:
            response = await self._fetch(msgs, merged)
            return self._record(msgs, merged, response, started)
        return await self._acall_cached(msgs, merged, started)

    async def _acall_cached(self, msgs: list[Message], merged: dict[str, Any], started: float) -> LMResponse:
        """The cached path of :meth:`acall` (its closure kept off the uncached path)."""
        key = self.cache_key(msgs, merged)
        cache = self._cache()
        raw = await cache.get(key)
        if raw is not None:
            return self._record(msgs, merged, _as_hit(raw), started)

        async def fetch_and_store() -> tuple[LMResponse, bytes]:
            fresh = await self._fetch(msgs, merged)
            data = fresh.model_dump_json().encode()
            await cache.put(key, data)
            return fresh, data

        (response, data), shared = await self._flight.run(key, fetch_and_store)
        # followers decode their own copy; the leader keeps the original
        return self._record(msgs, merged, _as_hit(data) if shared else response, started)

    def __call__(self, prompt: str | None = None, messages: list[Message] | None = None, **params: Any) -> list[Any]:
        """Call synchronously, DSPy style; return the list of completions.

        Each item is the completion text, or ``{"text", "tool_calls"}`` when
        the model returned native tool calls. Same cache keys as ``acall``.
        """
        if (prompt is None) == (messages is None):
            raise InputError("LM() takes exactly one of prompt= (a str) or messages= (a list of dicts)")
        response = run_sync(self._acall_params, prompt if messages is None else messages, params, reuse_loop=True)
        if any(response.tool_calls):
            return [
                {"text": text, "tool_calls": [c.model_dump() for c in calls]}
                for text, calls in zip(response.outputs, response.tool_calls, strict=False)
            ]
        return list(response.outputs)

    async def _acall_params(self, messages: Any, params: dict[str, Any]) -> LMResponse:
        # Sync calls share one long-lived loop (connections are kept alive
        # between them); a loop started just for a call closes its idle
        # connections when it ends (the pool's loop sentinel).
        return await self.acall(messages, **params)

    async def stream(self, messages: list[Message] | str, **params: Any) -> AsyncIterator[LMChunk]:
        """Yield text deltas of one completion; the last chunk has ``done=True``.

        The final chunk carries ``usage`` (with cost), ``finish_reason`` and
        any native ``tool_calls``. A cache hit yields the whole text at once.
        Errors before the first delta are retried; after it they propagate
        (a ``Predict`` streaming under ``Module.stream`` or an event-aware
        sink then restarts the whole call, see ``dx.events.Retry``). Each
        read waits at most ``Timeouts.read``, the attempt ``Timeouts.attempt``.

        Raises:
            InputError: ``messages`` is malformed or ``n`` > 1.
            LMError: The call failed.
        """
        msgs = _messages(messages)
        merged = {**self.kwargs, **params}
        if int(merged.get("n") or 1) != 1:
            raise InputError(f"stream() produces one completion; got n={merged['n']!r} (use acall for n > 1)")
        use_cache = self._cache_enabled(merged.pop("cache", None))
        started = time.monotonic()
        key = self.cache_key(msgs, merged) if use_cache else ""
        raw = await self._cache().get(key) if use_cache else None
        if raw is not None:
            hit = self._record(msgs, merged, _as_hit(raw), started)
            yield LMChunk(text=hit.outputs[0])
            yield _final_chunk(hit)
            return
        response: LMResponse | None = None
        async with aclosing(self._endpoint.stream(msgs, self._wire_params(merged))) as items:
            async for item in items:  # closed in this task when the caller stops early
                if isinstance(item, str):
                    yield LMChunk(text=item)
                else:
                    response = item
        assert response is not None  # the endpoint always ends with the response
        response = self._priced(response)
        if use_cache:
            await self._cache().put(key, response.model_dump_json().encode())
        yield _final_chunk(self._record(msgs, merged, response, started))

    def cache_key(self, messages: list[Message], params: Mapping[str, Any]) -> str:
        """Return the cache key of a request: no credentials, no ``api_base``."""
        keyed = {k: v for k, v in params.items() if k not in _NOT_KEYED}
        return stable_hash({"model": self.model, "messages": messages, "params": keyed})

    def copy(self, **params: Any) -> LM:
        """Return an LM with updated default ``params`` (e.g. ``rollout_id``).

        The copy shares this LM's endpoint (retry counters, breaker, limits)
        and cache, and starts with an empty history.
        """
        new = object.__new__(LM)
        new.__dict__.update(self.__dict__)
        new.kwargs = {**self.kwargs, **params}
        new.history = History()
        return new

    def dump_state(self, *, include_api_base: bool = False) -> dict[str, Any]:
        """Return the LM's saveable state: model and parameters, never the key.

        ``api_base`` is included only when asked (it may name private hosts).
        """
        state: dict[str, Any] = {"model": self.model, **redact_obj(self.kwargs, (self._api_key,))}
        if self._init["num_retries"] is not None:
            state["num_retries"] = self._init["num_retries"]
        if self.cache is False:
            state["cache"] = False
        if include_api_base and self._api_base:
            state["api_base"] = self._api_base
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **overrides: Any) -> LM:
        """Rebuild an LM from :meth:`dump_state` output (key from the env or ``overrides``)."""
        return cls(**{**state, **overrides})

    @staticmethod
    def fallback(primary: Any, *others: Any) -> Any:
        """Return an LM that tries ``primary``, then each of ``others``, on LM errors."""
        return FallbackLM(primary, *others)

    async def aclose(self) -> None:
        """Close this event loop's idle connections of the LM's transport."""
        await self._endpoint.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        shown = "".join(f", {k}={v!r}" for k, v in redact_obj(self.kwargs, (self._api_key,)).items())
        return f"LM(model={self.model!r}{shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the constructor arguments, API key included (workers need it).

        The transport, HTTP client and clock are not pickled; the copy builds its own.
        """
        init = {k: v for k, v in self._init.items() if k not in ("transport", "http_client", "clock")}
        return (_rebuild, (self.model, self._api_key, init, self.kwargs))

    # -- internals --------------------------------------------------------

    def _cache_enabled(self, per_call: Any) -> bool:
        if per_call is not None:
            return bool(per_call)
        return self.cache is not False and bool(get_setting("cache", True))

    def _cache(self) -> LMCache:
        return self.cache if isinstance(self.cache, LMCache) else default_cache()

    @staticmethod
    def _wire_params(params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k != "rollout_id"}

    async def _fetch(self, messages: list[Message], params: dict[str, Any]) -> LMResponse:
        provider = self._endpoint.provider
        if provider.key_required and not self._api_key:
            raise AuthError(
                f"no API key for {self.model!r}: set {' or '.join(provider.env_keys)} or pass api_key=",
                provider=self.provider, model=self.model,
            )
        wire = self._wire_params(params)
        n = int(wire.get("n") or 1)
        if n <= 1 or provider.native_n:
            return self._priced(await self._endpoint.complete(messages, wire))
        return await self._fetch_each(messages, wire, n)

    async def _fetch_each(self, messages: list[Message], wire: dict[str, Any], n: int) -> LMResponse:
        """Make ``n`` concurrent one-completion calls (a provider without native ``n``); merge them."""
        one = {**wire, "n": None}
        results: list[LMResponse | None] = [None] * n

        async def run(i: int) -> None:
            results[i] = await self._endpoint.complete(messages, one)

        try:
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(run, i)
        except BaseExceptionGroup as group:
            # callers (and is_retryable) expect the LMError itself, not a group of them
            lm_errors, rest = group.split(LMError)
            if rest is not None or lm_errors is None:
                raise
            raise lm_errors.exceptions[0] from None
        return self._priced(_merge([r for r in results if r is not None]))

    def _priced(self, response: LMResponse) -> LMResponse:
        cost = cost_of(self.model, response.usage, self._prices)
        if cost == response.usage.cost:  # unpriced model (0.0): nothing to copy
            return response
        return response.model_copy(update={"usage": response.usage.model_copy(update={"cost": cost})})

    def _record(self, messages: list[Message], params: dict[str, Any], response: LMResponse, started: float) -> LMResponse:
        # the entry dict (key scrubbed) is built only if someone reads the history
        entry = LazyEntry(self.model, messages, params, response, time.monotonic() - started, self._api_key)
        record(self.history, entry)
        return response


def _as_hit(raw: bytes) -> LMResponse:
    """Decode a cached response afresh (never shared) with usage zeroed."""
    return LMResponse.model_validate_json(raw).model_copy(update={"usage": LMUsage(cache_hit=True)})


def _merge(responses: list[LMResponse]) -> LMResponse:
    usage = LMUsage()
    for r in responses:
        usage = usage + r.usage
    return LMResponse(
        outputs=[o for r in responses for o in r.outputs],
        model=responses[0].model if responses else "",
        usage=usage,
        tool_calls=[c for r in responses for c in r.tool_calls],
        finish_reasons=[f for r in responses for f in r.finish_reasons],
    )


def _final_chunk(response: LMResponse) -> LMChunk:
    return LMChunk(
        done=True,
        usage=response.usage,
        finish_reason=response.finish_reasons[0] if response.finish_reasons else None,
        tool_calls=response.tool_calls[0] if response.tool_calls else [],
        model=response.model,
    )


def _rebuild(model: str, api_key: str | None, init: dict[str, Any], kwargs: dict[str, Any]) -> LM:
    return LM(model, api_key=api_key, **{k: v for k, v in init.items() if v is not None}, **kwargs)
