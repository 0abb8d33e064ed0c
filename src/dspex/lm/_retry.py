"""Retries: exponential backoff with full jitter that honours ``Retry-After``.

:class:`RetryPolicy` is the frozen configuration; :func:`retry_delay` picks the
wait before attempt ``k+1`` (the server's ``Retry-After`` when it sent one,
otherwise a uniform draw in ``[0, min(max_delay, base * multiplier**(k-1))]``,
the "full jitter" of the AWS backoff study); :func:`parse_retry_after` reads
the header in either of its forms (delta-seconds or an HTTP-date), plus
OpenAI's ``retry-after-ms``. Only errors that :func:`dspex.errors.is_retryable`
accepts are retried, and ``LM.stream`` never retries after it yielded text; a
streaming ``Predict`` then restarts the whole call under the same policy
(``modules/_call.py``).

Why not ``stamina``: it sleeps through a hard-wired ``asyncio``/``trio`` switch
(via sniffio) with no injectable clock, so backoff could not run in virtual
time under a virtual clock, and it would pull
``tenacity`` into the hot path. The loop here is a dozen lines.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..errors import ConfigError, is_retryable

if TYPE_CHECKING:
    import random
    from collections.abc import Awaitable, Callable

    from .._util._clock import Clock

__all__ = ["RetryPolicy", "parse_retry_after", "retry_call", "retry_delay"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How an LM call is retried.

    Args:
        max_retries: Extra attempts after the first (0 disables retries).
        base_delay: Backoff cap for the first retry, in seconds.
        multiplier: Growth of the cap per retry.
        max_delay: Upper bound of the backoff cap.
        jitter: Full jitter (uniform in ``[0, cap]``); ``False`` waits the cap.
        respect_retry_after: Wait what the server's ``Retry-After`` says.
        max_retry_after: Longest ``Retry-After`` honoured (longer is clamped).
    """

    max_retries: int = 3
    base_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: bool = True
    respect_retry_after: bool = True
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError(f"RetryPolicy.max_retries must be >= 0, got {self.max_retries!r}")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"RetryPolicy.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.multiplier < 1:
            raise ConfigError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier!r}")


def parse_retry_after(
    value: str | None, *, ms_value: str | None = None, now: Callable[[], float] = time.time
) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds.

    Args:
        value: The ``Retry-After`` header: delta-seconds (``"2"``, ``"0.5"``)
            or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        ms_value: OpenAI's ``retry-after-ms`` header, preferred when valid.
        now: Wall clock used to turn an HTTP-date into a delay.

    Returns:
        A non-negative delay, or ``None`` when no header parses.
    """
    if ms_value:
        try:
            return max(0.0, float(ms_value) / 1000.0)
        except ValueError:
            pass
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now())


def retry_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: random.Random
) -> float:
    """Return the wait before retry number ``attempt`` (1 for the first retry)."""
    if retry_after is not None and policy.respect_retry_after:
        return min(retry_after, policy.max_retry_after)
    cap = min(policy.max_delay, policy.base_delay * policy.multiplier ** (attempt - 1))
    return rng.uniform(0.0, cap) if policy.jitter else cap


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    failed: Exception | None = None,
) -> T:
    """Await ``fn()`` until it succeeds, retrying retryable errors per ``policy``.

    Each retryable failure (transport, timeout, 429, 5xx) is followed by a
    sleep on ``clock`` and a fresh ``fn()``; ``on_retry(attempt, error,
    delay)`` is called before the sleep. Non-retryable errors, and the last
    error once ``max_retries`` is spent, propagate unchanged. Cancellation is
    never caught. ``failed`` is the retryable error of a first attempt the
    caller already made itself (the loop then starts with its retry).
    """
    attempt = 0
    pending = failed
    while True:
        if pending is None:
            try:
                return await fn()
            except Exception as exc:
                pending = exc
        error, pending = pending, None
        if not is_retryable(error) or attempt >= policy.max_retries:
            raise error
        attempt += 1
        delay = retry_delay(policy, attempt, getattr(error, "retry_after", None), rng)
        if on_retry is not None:
            on_retry(attempt, error, delay)
        await clock.sleep(delay)
