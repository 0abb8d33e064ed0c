"""Ambient settings: ``dx.configure`` (process default) and ``dx.context``.

One ``ContextVar`` holds an immutable snapshot of overrides. ``configure``
replaces the process-wide default snapshot that every context starts from;
``context`` layers overrides for the current task and whatever it spawns (both
anyio backends copy contextvars at spawn), and restores them on exit.
Resolution order everywhere: argument > module > context > configure defaults.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["KNOWN_SETTINGS", "configure", "context", "get_setting", "settings_snapshot"]

#: Settings dspex understands, with their defaults.
KNOWN_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {
        "lm": None,
        "adapter": None,
        "cache": True,
        # DSPy starts with an empty trace that every Predict call appends to (bounded by
        # max_trace_size; oldest dropped); dx.configure(trace=None) switches tracing off.
        "trace": [],
        "max_trace_size": 10_000,
        "callbacks": (),
        "track_usage": True,
        "max_history_size": 10_000,
        "disable_history": False,
        "parse_retries": 1,
        # DSPy's input checks (modules/_inputs.py): log mistyped inputs; a
        # missing required input raises ("raise") or is logged ("warn", DSPy's way).
        "warn_on_type_mismatch": True,
        "missing_inputs": "raise",
        # Validation feedback (flows' validate retries): lines a Predict appends
        # to its final user message. A tuple of strings.
        "feedback": (),
        # Refine's advice for the next attempt: {id(predictor): hint}; while it
        # is set, every Predict gets a ``hint_`` input (``"N/A"`` if unnamed).
        "hints": None,
        # dx.Assert / dx.Suggest: how many times a module call is re-run with
        # the failed condition's message as feedback.
        "max_backtracks": 2,
        # OpenTelemetry: explicit providers (None: OpenTelemetry's global
        # ones), and whether prompts/completions/tool arguments go on spans.
        "tracer_provider": None,
        "meter_provider": None,
        "capture_content": False,
    }
)

_defaults: Mapping[str, Any] = KNOWN_SETTINGS
_defaults_lock = threading.Lock()
_overrides: ContextVar[Mapping[str, Any]] = ContextVar("dspex_settings", default=MappingProxyType({}))


def _check(settings: Mapping[str, Any]) -> None:
    unknown = sorted(set(settings) - set(KNOWN_SETTINGS))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"expected some of: {', '.join(sorted(KNOWN_SETTINGS))}"
        )


def configure(**settings: Any) -> None:
    """Set process-wide defaults that every context starts from.

    Safe to call from any thread or task (unlike DSPy, there is no "owner").
    Values already overridden by an enclosing ``dx.context`` keep precedence.

    Raises:
        ConfigError: A setting name is unknown.
    """
    global _defaults
    _check(settings)
    with _defaults_lock:
        merged = dict(_defaults)
        merged.update(settings)
        _defaults = MappingProxyType(merged)


@contextmanager
def context(**settings: Any) -> Iterator[None]:
    """Override settings for the current task and the tasks it spawns.

    The overrides are visible only inside the ``with`` block and only to the
    current task (and to tasks started inside it); concurrent tasks each see
    their own. Restored on exit, even on error or cancellation.

    Example:
        >>> import dspex as dx
        >>> from dspex.testing import ScriptedLM
        >>> with dx.context(lm=ScriptedLM([{"answer": "4"}])):
        ...     dx.Predict("question -> answer")(question="2+2?").answer
        '4'

    Raises:
        ConfigError: A setting name is unknown.
    """
    _check(settings)
    merged = dict(_overrides.get())
    merged.update(settings)
    token = _overrides.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _overrides.reset(token)


def get_setting(name: str, default: Any = None) -> Any:
    """Return the effective value of one setting (context, then defaults)."""
    over = _overrides.get()
    if name in over:
        return over[name]
    return _defaults.get(name, default)


def settings_snapshot() -> dict[str, Any]:
    """Return every effective setting as a plain dict."""
    merged = dict(_defaults)
    merged.update(_overrides.get())
    return merged
