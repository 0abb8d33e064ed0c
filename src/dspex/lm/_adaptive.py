"""Adaptive concurrency: AIMD on 429s.

:class:`AdaptiveConcurrency` keeps a concurrency *limit* that grows by one
after each window of ``limit`` successful calls (additive increase) and halves
on a rate-limit error (multiplicative decrease), within ``[min_limit,
max_limit]``. A 429 from a call that started before the last decrease is
ignored, so a burst of concurrent 429s halves the limit once, not once per
call. The limit is plain data shared by every event loop; each loop gets its
own ``anyio.CapacityLimiter`` whose ``total_tokens`` follows the limit.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.lowlevel import RunVar

from ..errors import ConfigError, RateLimitError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["AdaptiveConcurrency"]


class AdaptiveConcurrency:
    """An AIMD concurrency limit for one LM endpoint.

    Args:
        initial: Starting limit.
        min_limit: The limit never drops below this.
        max_limit: The limit never grows above this.
    """

    def __init__(self, initial: int = 64, *, min_limit: int = 1, max_limit: int = 1024) -> None:
        if not 1 <= min_limit <= initial <= max_limit:
            raise ConfigError(
                "AdaptiveConcurrency needs 1 <= min_limit <= initial <= max_limit, got "
                f"min_limit={min_limit!r}, initial={initial!r}, max_limit={max_limit!r}"
            )
        self.min_limit = min_limit
        self.max_limit = max_limit
        self._limit = initial
        self._successes = 0
        self._generation = 0
        self._lock = threading.Lock()
        self._per_loop: RunVar[anyio.CapacityLimiter] = RunVar(f"dspex_aimd_{id(self)}")
        self.decreases = 0
        self.increases = 0

    @property
    def limit(self) -> int:
        """The current concurrency limit."""
        return self._limit

    def _limiter(self) -> anyio.CapacityLimiter:
        try:
            limiter = self._per_loop.get()
        except LookupError:
            limiter = anyio.CapacityLimiter(self._limit)
            self._per_loop.set(limiter)
        if limiter.total_tokens != self._limit:
            limiter.total_tokens = self._limit
        return limiter

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one unit of concurrency; yields the generation it started in."""
        limiter = self._limiter()
        borrower = object()
        await limiter.acquire_on_behalf_of(borrower)
        try:
            yield self._generation
        finally:
            limiter.release_on_behalf_of(borrower)

    def on_success(self) -> None:
        """Count a success; grow the limit by one per full window."""
        with self._lock:
            self._successes += 1
            if self._successes >= self._limit and self._limit < self.max_limit:
                self._limit += 1
                self._successes = 0
                self.increases += 1

    def on_error(self, exc: BaseException, generation: int) -> None:
        """Halve the limit on a 429 from the current generation."""
        if not isinstance(exc, RateLimitError):
            return
        with self._lock:
            if generation != self._generation:
                return
            self._generation += 1
            self._successes = 0
            new = max(self.min_limit, self._limit // 2)
            if new != self._limit:
                self._limit = new
                self.decreases += 1
