"""Error policies: what a node does with an item that fails.

``"raise"`` fails the run (``Flow.run`` raises ``FlowFailed``); ``"skip"``
drops the item and counts it as failed; ``"dead_letter"`` sends it, with its
error, to the flow's dead-letter sink (or ``RunReport.dead_letters``).
``retry(n)`` calls the node again up to ``n`` more times before falling back
to its ``then`` action (``"raise"`` unless told otherwise). A policy is given
per node as ``on_error=``: a string, ``("retry", n)``, or an
:class:`ErrorPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["ErrorPolicy", "as_policy", "retry"]

Action = Literal["raise", "skip", "dead_letter"]
_ACTIONS = ("raise", "skip", "dead_letter")


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """What a node does when an item fails.

    Args:
        action: ``"raise"``, ``"skip"`` or ``"dead_letter"`` once retries
            are used up.
        retries: How many times to call again before ``action``.
        backoff_s: Delay before the first retry, doubled on each further one
            (on the run's clock).
    """

    action: Action = "raise"
    retries: int = 0
    backoff_s: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS:
            raise ConfigError(
                f"unknown error action {self.action!r}; expected one of {', '.join(_ACTIONS)}"
            )
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be an int >= 0, got {self.retries!r}")
        if self.backoff_s < 0:
            raise ConfigError(f"backoff_s must be >= 0, got {self.backoff_s!r}")

    def __str__(self) -> str:
        if self.retries:
            return f"retry({self.retries}, then={self.action!r})"
        return self.action


def retry(n: int, *, then: Action = "raise", backoff_s: float = 0.0) -> ErrorPolicy:
    """Return a policy that retries a failing item ``n`` times, then ``then``.

    Example:
        >>> retry(3, then="dead_letter").retries
        3
    """
    return ErrorPolicy(action=then, retries=n, backoff_s=backoff_s)


def as_policy(value: Any) -> ErrorPolicy:
    """Return ``value`` (a string, ``("retry", n[, then])`` or a policy) as a policy.

    Raises:
        ConfigError: ``value`` is none of those.
    """
    if isinstance(value, ErrorPolicy):
        return value
    if isinstance(value, str):
        if value == "retry":
            return retry(1)
        return ErrorPolicy(action=value)  # type: ignore[arg-type]
    if isinstance(value, tuple) and value and value[0] == "retry":
        if len(value) == 2:
            return retry(value[1])
        if len(value) == 3:
            return retry(value[1], then=value[2])
    raise ConfigError(
        f"on_error must be 'raise', 'skip', 'dead_letter', ('retry', n) or retry(n), got {value!r}"
    )
