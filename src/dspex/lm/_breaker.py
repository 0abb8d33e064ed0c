"""Circuit breaker: stop calling an endpoint that keeps failing.

States: *closed* (calls flow; consecutive failures are counted), *open* (calls
fail fast with :class:`~dspex.errors.CircuitOpenError` until
``recovery_time`` has passed), *half-open* (up to ``half_open_max_calls``
probes go through; a success closes the circuit, a failure re-opens it).
Only failures that say the endpoint is unhealthy count: transport errors,
timeouts and 5xx; 429s and client errors (4xx) do not. State is plain data
behind a ``threading.Lock`` and time comes from an injectable clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import CircuitOpenError, ConfigError, LMTimeoutError, LMTransportError, ServerError

if TYPE_CHECKING:
    from .._util._clock import Clock

__all__ = ["CircuitBreaker", "CircuitBreakerPolicy", "counts_as_failure"]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class CircuitBreakerPolicy:
    """When a breaker opens and how it recovers.

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        recovery_time: Seconds the circuit stays open before a probe.
        half_open_max_calls: Probes allowed at once while half-open.
    """

    failure_threshold: int = 5
    recovery_time: float = 30.0
    half_open_max_calls: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ConfigError(
                f"CircuitBreakerPolicy.failure_threshold must be >= 1, got {self.failure_threshold!r}"
            )
        if self.recovery_time < 0:
            raise ConfigError(
                f"CircuitBreakerPolicy.recovery_time must be >= 0, got {self.recovery_time!r}"
            )
        if self.half_open_max_calls < 1:
            raise ConfigError(
                "CircuitBreakerPolicy.half_open_max_calls must be >= 1, "
                f"got {self.half_open_max_calls!r}"
            )


def counts_as_failure(exc: BaseException) -> bool:
    """Return True if ``exc`` says the endpoint is unhealthy."""
    return isinstance(exc, LMTransportError | LMTimeoutError | ServerError)


class CircuitBreaker:
    """The closed / open / half-open state machine for one endpoint."""

    def __init__(self, policy: CircuitBreakerPolicy, clock: Clock, *, name: str = "") -> None:
        self.policy = policy
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0

    @property
    def state(self) -> State:
        """The current state (``open`` turns ``half_open`` once recovered)."""
        with self._lock:
            self._maybe_half_open()
            return self._state

    def _maybe_half_open(self) -> None:
        if (
            self._state == "open"
            and self._clock.now() - self._opened_at >= self.policy.recovery_time
        ):
            self._state = "half_open"
            self._probes = 0

    def before_call(self) -> None:
        """Admit a call or raise :class:`CircuitOpenError`."""
        with self._lock:
            self._maybe_half_open()
            if self._state == "closed":
                return
            if self._state == "half_open" and self._probes < self.policy.half_open_max_calls:
                self._probes += 1
                return
            wait = max(0.0, self.policy.recovery_time - (self._clock.now() - self._opened_at))
        raise CircuitOpenError(
            f"circuit breaker for {self.name or 'this LM'} is open after "
            f"{self.policy.failure_threshold} consecutive failures; next probe in {wait:.2f}s",
            model=self.name or None,
            retry_after=wait,
        )

    def record_success(self) -> None:
        """Close the circuit and reset the failure count."""
        with self._lock:
            self._state = "closed"
            self._failures = 0
            self._probes = 0

    def record_failure(self, exc: BaseException) -> None:
        """Count ``exc`` if it is an endpoint failure; open when due."""
        if not counts_as_failure(exc):
            with self._lock:  # the endpoint answered: a half-open probe is done
                if self._state == "half_open":
                    self._probes = max(0, self._probes - 1)
            return
        with self._lock:
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.policy.failure_threshold:
                self._state = "open"
                self._opened_at = self._clock.now()
                self._probes = 0
