"""Callbacks for users without OpenTelemetry, in DSPy's ``callbacks=`` shape.

A callback is any object with some of DSPy's hook methods:
``on_module_start(call_id, instance, inputs)`` / ``on_module_end(call_id,
outputs, exception)``, the same pairs for ``lm``, ``tool`` and the adapter's
``format`` and ``parse`` steps (``on_adapter_format_start`` ...).
:class:`Callback` is a base class with every hook as a no-op. Callbacks come
from the ``callbacks`` setting (``dx.configure(callbacks=[...])`` or
``dx.context(callbacks=[...])``) followed by the instance's own
``callbacks=`` list. A callback that raises is logged and skipped: it never
breaks the call it watches.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

__all__ = ["Callback", "new_call_id", "notify"]

logger = logging.getLogger("dspex.telemetry")


class Callback:
    """Base class for callbacks: override the hooks you need (DSPy's ``BaseCallback``).

    Every hook is called synchronously on the event loop, so it must be
    quick; ``call_id`` pairs a ``*_start`` with its ``*_end``. ``exception``
    is None on success.
    """

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A module call starts (``inputs``: its keyword arguments)."""

    def on_module_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        """A module call ended (``outputs``: the prediction, or None)."""

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An LM call starts (``inputs``: ``messages`` and the request params)."""

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        """An LM call ended (``outputs``: the completion texts, or None)."""

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A tool call starts (``instance``: the tool, ``inputs``: its arguments)."""

    def on_tool_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        """A tool call ended (``outputs``: the observation)."""

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter starts formatting messages."""

    def on_adapter_format_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        """An adapter formatted messages (``outputs``: the messages)."""

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter starts parsing a completion."""

    def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        """An adapter parsed a completion (``outputs``: the field values)."""


def new_call_id() -> str:
    """Return a fresh call id pairing a ``*_start`` hook with its ``*_end``."""
    return uuid.uuid4().hex


def notify(callbacks: tuple[Any, ...], hook: str, *args: Any) -> None:
    """Call ``hook`` on each callback that has it; log (never raise) failures."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception as exc:  # a broken callback must not break the call it watches
            logger.warning("callback %r.%s raised %r; ignored", callback, hook, exc)
