"""The dspex error hierarchy: one root, typed branches, context as keywords.

Every error a user can meet derives from :class:`DspexError`. Context (``node``,
``item_id``, ``field``, ``model``, ``provider``, ``status``, ``retry_after``,
``line``) is keyword-only, kept as attributes, and appended to the message, so
that a message names both the bad input and what was expected. Errors pickle
(they travel between processes), and :func:`is_retryable` decides by type.

The tree::

    DspexError
    ├── ConfigError
    │   ├── SignatureError
    │   ├── GraphError
    │   ├── FlowSpecError
    │   ├── LMNotConfiguredError
    │   └── StateMismatchError (also a KeyError)
    ├── InputError
    ├── LMError
    │   ├── LMTransportError
    │   ├── LMTimeoutError
    │   ├── CircuitOpenError
    │   └── LMProviderError
    │       ├── RateLimitError
    │       ├── AuthError
    │       ├── ContextWindowExceededError
    │       ├── UnsupportedParameterError (the server refused an optional parameter)
    │       └── ServerError
    ├── ParseError            (keeps the raw completion)
    │   └── TruncatedOutputError (the completion hit max_tokens)
    ├── AssertionFailed
    ├── ToolError
    ├── SourceError           (with line numbers)
    │   └── DuplicateKeyError (a keyed source repeats an id)
    ├── SinkError
    ├── ItemFailed            (the dead-letter payload)
    ├── StoreError
    │   └── RunLeaseError     (another live runner holds the run)
    ├── FlowFailed
    └── ParallelFailed        (keeps the finished results)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AssertionFailed",
    "AuthError",
    "CircuitOpenError",
    "ConfigError",
    "ContextWindowExceededError",
    "DspexError",
    "DuplicateKeyError",
    "FlowFailed",
    "FlowSpecError",
    "GraphError",
    "InputError",
    "ItemFailed",
    "LMError",
    "LMNotConfiguredError",
    "LMProviderError",
    "LMTimeoutError",
    "LMTransportError",
    "ParallelFailed",
    "ParseError",
    "RateLimitError",
    "RunLeaseError",
    "ServerError",
    "SignatureError",
    "SinkError",
    "SourceError",
    "StateMismatchError",
    "StoreError",
    "ToolError",
    "TruncatedOutputError",
    "UnsupportedParameterError",
    "is_retryable",
]


class DspexError(Exception):
    """Root of every dspex error.

    Args:
        message: What went wrong, naming the bad input and what was expected.
        **context: Keyword-only context such as ``node``, ``item_id``,
            ``field``, ``model``, ``provider``, ``status``, ``retry_after``,
            ``line`` or ``path``. Each becomes an attribute (``None`` when not
            given) and is listed after the message.
    """

    # The context attributes (and their order in messages), set by __init__: whatever the
    # raiser passed, None when not given. _CONTEXT_KEYS below is read from these annotations.
    node: Any
    item_id: Any
    field: Any
    model: Any
    provider: Any
    status: Any
    retry_after: Any
    line: Any
    path: Any

    def __init__(self, message: str = "", **context: Any) -> None:
        super().__init__(message)
        self.message = message
        for key in _CONTEXT_KEYS:
            setattr(self, key, context.pop(key, None))
        self.extra: dict[str, Any] = context

    def context(self) -> dict[str, Any]:
        """Return the context keys that were given, in a stable order."""
        found = {k: getattr(self, k) for k in _CONTEXT_KEYS if getattr(self, k) is not None}
        found.update(self.extra)
        return found

    def __str__(self) -> str:
        ctx = self.context()
        if not ctx:
            return self.message
        shown = ", ".join(f"{k}={v!r}" for k, v in ctx.items())
        return f"{self.message} [{shown}]"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context(), self.__dict__))


def _rebuild(
    cls: type[DspexError], message: str, context: dict[str, Any], state: dict[str, Any]
) -> DspexError:
    err = cls.__new__(cls)
    DspexError.__init__(err, message, **context)
    err.__dict__.update(state)
    return err



_CONTEXT_KEYS = tuple(DspexError.__annotations__)
"""The keyword-only context every error takes, in the order messages list it."""

class ConfigError(DspexError, ValueError):
    """A configuration, signature, graph or flow spec is invalid.

    Also a ``ValueError``, which is what DSPy raises in these places.
    """


class SignatureError(ConfigError, TypeError):
    """A signature string, field declaration or type is malformed.

    Also a ``TypeError``: DSPy raises that for undeclared fields.
    """


class GraphError(ConfigError):
    """A flow graph is invalid: a cycle, a dangling node, mismatched fields."""


class FlowSpecError(ConfigError):
    """A declarative (YAML) flow spec is invalid.

    The message already starts with ``file:line:column``, so ``str()`` is the
    message alone; ``path``, ``line`` and ``extra["column"]`` carry the same.
    """

    def __str__(self) -> str:
        return self.message


class LMNotConfiguredError(ConfigError):
    """No LM was given as an argument, on the module, or in the settings."""


class StateMismatchError(ConfigError, KeyError):
    """A saved program state has no entry for one of the module's predictors.

    Also a ``KeyError``, which is what DSPy's ``load_state`` raises here.
    """

    __str__ = DspexError.__str__  # not KeyError's repr-quoting


class InputError(DspexError, ValueError):
    """A module was called with bad inputs (positional, missing, wrong type).

    Also a ``ValueError``, as in DSPy.
    """


class LMError(DspexError):
    """An LM call failed."""


class LMTransportError(LMError):
    """The connection to the LM failed (refused, reset, truncated)."""


class LMTimeoutError(LMError):
    """The LM did not answer in time."""


class CircuitOpenError(LMError):
    """The circuit breaker is open: calls are refused until a probe succeeds."""


class LMProviderError(LMError):
    """The provider answered with an error status."""


class RateLimitError(LMProviderError):
    """The provider refused the call for rate limiting (HTTP 429)."""


class AuthError(LMProviderError):
    """The provider refused the credentials (HTTP 401/403)."""


class ContextWindowExceededError(LMProviderError):
    """The prompt does not fit the model's context window."""


class ServerError(LMProviderError):
    """The provider failed on its side (HTTP 5xx)."""


class UnsupportedParameterError(LMProviderError):
    """The server refused an optional request parameter; ``parameter`` names it.

    Raised when a server answers a request that carried ``response_format``,
    ``tools``, ``tool_choice``, ``parallel_tool_calls`` or ``stream_options``
    with a 400/422, or a 5xx whose body names the parameter. Not retryable as
    such: the LM negotiates a request without it instead (see ``dx.LM``), and
    raises this only when no fallback is left (``tools`` has none).
    """

    def __init__(self, message: str = "", *, parameter: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.parameter = parameter


class ParseError(DspexError):
    """An LM completion could not be parsed into the signature's outputs.

    Args:
        message: What was wrong and what was expected.
        raw: The raw completion text, kept whole for dead letters and retries.
        adapter: The name of the adapter that failed.
        attempts: For the final error of a predictor call, one
            ``(adapter, reason, raw)`` per failed attempt, first to last.
        **context: As for :class:`DspexError`.
    """

    def __init__(
        self,
        message: str = "",
        *,
        raw: str | None = None,
        adapter: str | None = None,
        attempts: list[tuple[str, str, str | None]] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.raw = raw
        self.adapter = adapter
        self.attempts = attempts or []


class TruncatedOutputError(ParseError):
    """The completion stopped at ``max_tokens`` (``finish_reason: length``) unparsed.

    A parse failure of a truncated completion: raising ``max_tokens`` (or
    asking for less) is the fix, not another identical attempt.
    """


class AssertionFailed(DspexError):
    """A ``dx.Assert`` (or a validate node) failed after all retries."""


class ToolError(DspexError):
    """A tool is unknown, got invalid arguments, or failed."""


class SourceError(DspexError):
    """A source could not read its input (with ``path`` and ``line``)."""


class DuplicateKeyError(SourceError):
    """A keyed source yielded an id it had already yielded in this run.

    Keys compare as strings (``str(record[id_field])``), so ``7`` and ``"7"``
    are the same id. The repeat is dead-lettered (or, with
    ``on_duplicate="raise"``, fails the run); the first copy is kept.
    """


class SinkError(DspexError):
    """A sink could not write its output."""


class ItemFailed(DspexError):
    """An item failed in a node; the dead-letter payload (``item``, ``error``)."""


class StoreError(DspexError):
    """The run store could not be read or written."""


class RunLeaseError(StoreError):
    """Another live runner holds the lease on this ``run_id`` (names the owner)."""


class FlowFailed(DspexError):
    """A flow run failed; chained from the underlying exception group.

    Attributes:
        report: The run's partial ``RunReport`` when the runner set it, else None.
    """

    report: Any = None


class ParallelFailed(DspexError):
    """``dx.Parallel`` stopped at ``max_errors`` failures.

    Unlike DSPy, the finished work is kept: ``results`` (in input order,
    ``None`` where a pair failed or never ran), ``failed_examples`` and
    ``exceptions`` (aligned with each other).
    """

    def __init__(self, message: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.results: list[Any] = []
        self.failed_examples: list[Any] = []
        self.exceptions: list[BaseException] = []


_RETRYABLE: tuple[type[DspexError], ...] = (
    LMTransportError,
    LMTimeoutError,
    RateLimitError,
    ServerError,
)


def is_retryable(exc: BaseException) -> bool:
    """Return True if ``exc`` is worth retrying: transport, timeout, 429, 5xx."""
    return isinstance(exc, _RETRYABLE)
