"""Client-side rate limits: token buckets for requests/min and tokens/min.

:class:`RateLimit` is the frozen configuration. :class:`TokenBucket` refills
continuously at ``capacity / period`` per second and runs on an injectable
:class:`~dspex._util._clock.Clock`; its state is plain numbers behind a
``threading.Lock``, so one bucket is shared safely by every task and event loop
(no anyio primitive is bound to a loop). :class:`RateLimiter` combines the two
buckets: a call takes one request and an estimate of its tokens up front, then
``settle`` corrects the token bucket with the real usage.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .._util._clock import Clock

__all__ = ["RateLimit", "RateLimiter", "TokenBucket"]

_EPSILON = 1e-9
_MIN_WAIT = 1e-4


@dataclass(frozen=True)
class RateLimit:
    """A client-side budget, per LM endpoint.

    Args:
        requests_per_minute: Requests allowed per minute (``None``: no limit).
        tokens_per_minute: Input + output tokens per minute (``None``: no limit).
        burst_seconds: Bucket size in seconds of budget (60 lets a full
            minute's allowance go at once, as providers do).
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"RateLimit.{name} must be > 0 or None, got {value!r}")
        if not self.burst_seconds > 0:
            raise ConfigError(f"RateLimit.burst_seconds must be > 0, got {self.burst_seconds!r}")


class TokenBucket:
    """A token bucket on an injectable clock.

    Args:
        rate: Tokens added per second.
        capacity: Largest number of tokens held (the burst).
        clock: Time source; its ``sleep`` is used to wait.
    """

    def __init__(self, rate: float, capacity: float, clock: Clock) -> None:
        if not rate > 0 or not capacity > 0:
            raise ConfigError(f"TokenBucket needs rate > 0 and capacity > 0, got {rate!r}, {capacity!r}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock.now()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock.now()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def tokens(self) -> float:
        """Tokens available now (negative after an overdraft)."""
        with self._lock:
            self._refill()
            return self._tokens

    def try_take(self, amount: float) -> float:
        """Take ``amount`` if available and return 0, else the seconds to wait."""
        amount = min(amount, self.capacity)  # a huge request must not wait forever
        with self._lock:
            self._refill()
            if self._tokens >= amount - _EPSILON:  # float refill must not strand a waiter
                self._tokens -= amount
                return 0.0
            return max((amount - self._tokens) / self.rate, _MIN_WAIT)

    async def take(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` tokens are available, then take them."""
        while True:
            wait = self.try_take(amount)
            if wait <= 0:
                return
            await self._clock.sleep(wait)

    def adjust(self, delta: float) -> None:
        """Add (refund) or remove (overdraft) tokens without waiting."""
        with self._lock:
            self._refill()
            self._tokens = min(self.capacity, self._tokens + delta)


class RateLimiter:
    """Requests/min and tokens/min buckets for one LM endpoint."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self.limit = limit
        self.requests: TokenBucket | None = None
        self.tokens: TokenBucket | None = None
        if limit.requests_per_minute:
            rate = limit.requests_per_minute / 60.0
            self.requests = TokenBucket(rate, max(1.0, rate * limit.burst_seconds), clock)
        if limit.tokens_per_minute:
            rate = limit.tokens_per_minute / 60.0
            self.tokens = TokenBucket(rate, max(1.0, rate * limit.burst_seconds), clock)

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait for one request slot and ``estimated_tokens`` tokens."""
        if self.requests is not None:
            await self.requests.take(1.0)
        if self.tokens is not None:
            await self.tokens.take(float(max(0, estimated_tokens)))

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self.tokens is not None and not math.isclose(estimated_tokens, actual_tokens):
            self.tokens.adjust(float(min(estimated_tokens, self.tokens.capacity) - actual_tokens))
