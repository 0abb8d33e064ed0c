"""Retry, Retry-After, token buckets, circuit breaker and AIMD, in virtual time."""

from __future__ import annotations

import random

import anyio
import pytest

from dspex._util._clock import SteppingClock
from dspex.errors import (
    AuthError,
    CircuitOpenError,
    ConfigError,
    LMTransportError,
    RateLimitError,
    ServerError,
)
from dspex.lm import CircuitBreakerPolicy, RateLimit, RetryPolicy
from dspex.lm._adaptive import AdaptiveConcurrency
from dspex.lm._breaker import CircuitBreaker
from dspex.lm._ratelimit import RateLimiter, TokenBucket
from dspex.lm._retry import parse_retry_after, retry_call, retry_delay


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("1", ms_value="150") == 0.15
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now=lambda: now) == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now=lambda: now) == 0.0


def test_backoff_full_jitter_bounds_and_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, multiplier=2.0, max_delay=5.0)
    rng = random.Random(7)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        draws = [retry_delay(policy, attempt, None, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in draws)
        assert max(draws) > cap * 0.8
    assert retry_delay(policy, 1, 3.5, rng) == 3.5
    assert retry_delay(RetryPolicy(max_retry_after=2.0), 1, 30.0, rng) == 2.0
    assert retry_delay(RetryPolicy(jitter=False, base_delay=1.0), 3, None, rng) == 4.0
    assert retry_delay(RetryPolicy(respect_retry_after=False, jitter=False, base_delay=1.0), 1, 9.0, rng) == 1.0


def test_retry_policy_validation() -> None:
    with pytest.raises(ConfigError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ConfigError, match="multiplier"):
        RetryPolicy(multiplier=0.5)


async def test_retry_call_retries_retryable_then_succeeds() -> None:
    clock = SteppingClock()
    errors = [ServerError("boom", status=500), RateLimitError("slow down", status=429, retry_after=0.01)]
    seen: list[tuple[int, str, float]] = []

    async def fn() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    result = await retry_call(fn, policy=RetryPolicy(base_delay=1.0), clock=clock, rng=random.Random(1),
                              on_retry=lambda a, e, d: seen.append((a, type(e).__name__, d)))
    assert result == "ok"
    assert [s[:2] for s in seen] == [(1, "ServerError"), (2, "RateLimitError")]
    assert 0 <= seen[0][2] <= 1.0
    assert seen[1][2] == 0.01
    assert clock.sleeps == [seen[0][2], 0.01]


async def test_retry_call_gives_up_and_skips_non_retryable() -> None:
    clock = SteppingClock()
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise LMTransportError("reset")

    with pytest.raises(LMTransportError):
        await retry_call(flaky, policy=RetryPolicy(max_retries=2), clock=clock, rng=random.Random(0))
    assert calls == 3
    assert len(clock.sleeps) == 2

    async def denied() -> None:
        raise AuthError("bad key", status=401)

    with pytest.raises(AuthError):
        await retry_call(denied, policy=RetryPolicy(), clock=clock, rng=random.Random(0))
    assert len(clock.sleeps) == 2


async def test_token_bucket_waits_in_virtual_time() -> None:
    clock = SteppingClock()
    bucket = TokenBucket(rate=2.0, capacity=2.0, clock=clock)
    for _ in range(6):
        await bucket.take()
    # 2 free, then 4 more at 2/s: 2 seconds of virtual waiting
    assert sum(clock.sleeps) == pytest.approx(2.0)
    assert clock.now() == pytest.approx(2.0)
    await bucket.take(100)  # larger than capacity: clamped, never waits forever
    assert bucket.tokens <= 0.0 + 1e-9


async def test_rate_limiter_requests_and_tokens_per_minute() -> None:
    clock = SteppingClock()
    limiter = RateLimiter(RateLimit(requests_per_minute=60, tokens_per_minute=600, burst_seconds=1), clock)
    for _ in range(5):
        await limiter.acquire(10)
    # request bucket: capacity 1, refill 1/s -> 4 s for 5 calls; token bucket: capacity 10, 10/s
    assert clock.now() == pytest.approx(4.0)
    limiter.settle(10, 40)  # the call used more than estimated: overdraft
    assert limiter.tokens is not None
    assert limiter.tokens.tokens < 0
    with pytest.raises(ConfigError, match="requests_per_minute"):
        RateLimit(requests_per_minute=0)


async def test_rate_limiter_is_fair_under_concurrency() -> None:
    clock = SteppingClock()
    limiter = RateLimiter(RateLimit(requests_per_minute=600, burst_seconds=1), clock)  # 10/s, burst 10
    done = 0

    async def one() -> None:
        nonlocal done
        await limiter.acquire(0)
        done += 1

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(one)
    assert done == 30
    assert limiter.requests is not None
    assert limiter.requests.tokens < 1.0


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = SteppingClock()
    breaker = CircuitBreaker(CircuitBreakerPolicy(failure_threshold=3, recovery_time=10.0), clock, name="m")
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure(ServerError("x", status=500))
    breaker.record_failure(RateLimitError("429 does not count"))
    assert breaker.state == "closed"
    breaker.record_failure(LMTransportError("reset"))
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError, match="open after 3 consecutive failures") as info:
        breaker.before_call()
    assert info.value.retry_after == pytest.approx(10.0)
    clock.advance(10.0)
    assert breaker.state == "half_open"
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # only one probe at a time
    breaker.record_failure(ServerError("still down", status=503))
    assert breaker.state == "open"
    clock.advance(10.0)
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_breaker_policy_validation() -> None:
    with pytest.raises(ConfigError, match="failure_threshold"):
        CircuitBreakerPolicy(failure_threshold=0)


async def test_adaptive_concurrency_halves_once_per_generation_and_grows() -> None:
    aimd = AdaptiveConcurrency(8, min_limit=1, max_limit=10)
    async with aimd.slot() as gen_a, aimd.slot() as gen_b:
        aimd.on_error(RateLimitError("429"), gen_a)
        aimd.on_error(RateLimitError("429"), gen_b)  # same burst: ignored
    assert aimd.limit == 4
    assert aimd.decreases == 1
    aimd.on_error(ServerError("500"), 1)  # only 429s shrink the limit
    assert aimd.limit == 4
    for _ in range(4):
        aimd.on_success()
    assert aimd.limit == 5
    for _ in range(100):
        aimd.on_success()
    assert aimd.limit == 10  # capped at max_limit
    async with aimd.slot() as gen:
        for _ in range(10):
            aimd.on_error(RateLimitError("429"), gen)
            gen += 1
    assert aimd.limit == 1  # floored at min_limit


async def test_adaptive_limiter_bounds_in_flight() -> None:
    aimd = AdaptiveConcurrency(4, min_limit=1, max_limit=4)
    async with aimd.slot() as gen:
        aimd.on_error(RateLimitError("429"), gen)
    assert aimd.limit == 2
    in_flight = peak = 0

    async def work() -> None:
        nonlocal in_flight, peak
        async with aimd.slot():
            in_flight += 1
            peak = max(peak, in_flight)
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
            in_flight -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(work)
    assert peak == 2
    with pytest.raises(ConfigError, match="min_limit"):
        AdaptiveConcurrency(0)
