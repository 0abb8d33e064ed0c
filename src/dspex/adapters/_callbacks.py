"""Adapter callbacks, DSPy's hooks: ``on_adapter_format_start/end`` and ``on_adapter_parse_start/end``.

An adapter built with ``callbacks=[...]`` calls, on each callback object that
has them, ``on_adapter_format_start(call_id, instance, inputs)`` before
building a request's messages (``inputs`` holds ``signature``, ``demos`` and
``inputs``), ``on_adapter_format_end(call_id, outputs, exception)`` after,
and the same pair named ``parse`` around parsing a completion (``inputs``
holds ``signature`` and ``completion``). The ``callbacks`` setting
(``dx.configure``/``dx.context``) is told too, before the adapter's own. A
callback that raises is logged and skipped, as in DSPy: it never breaks the
call. With no callbacks (the common case) nothing is done.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from .._context import get_setting

if TYPE_CHECKING:
    from ..signatures import Signature
    from ._base import Adapter

__all__ = ["adapter_callbacks", "notify_end", "notify_start", "parse_notified"]

logger = logging.getLogger("dspex.adapters")


def _call(callback: Any, hook: str, *args: Any) -> None:
    method = getattr(callback, hook, None)
    if method is None:
        return
    try:
        method(*args)
    except Exception as exc:  # a broken callback must not break the LM call
        logger.warning("adapter callback %r.%s raised %r; ignored", callback, hook, exc)


def adapter_callbacks(adapter: Adapter) -> tuple[Any, ...]:
    """Return the callbacks watching ``adapter``: the setting's, then its own."""
    ambient = get_setting("callbacks") or ()
    if not ambient:
        return adapter.callbacks
    return (*ambient, *adapter.callbacks)


def notify_start(adapter: Adapter, stage: str, inputs: dict[str, Any]) -> str:
    """Call ``on_adapter_{stage}_start`` on every callback; return the call id."""
    call_id = uuid.uuid4().hex
    for callback in adapter_callbacks(adapter):
        _call(callback, f"on_adapter_{stage}_start", call_id, adapter, inputs)
    return call_id


def notify_end(adapter: Adapter, stage: str, call_id: str, outputs: Any, exception: BaseException | None) -> None:
    """Call ``on_adapter_{stage}_end`` on every callback."""
    for callback in adapter_callbacks(adapter):
        _call(callback, f"on_adapter_{stage}_end", call_id, outputs, exception)


def parse_notified(adapter: Adapter, signature: type[Signature], text: str) -> dict[str, Any]:
    """Return ``adapter.parse(signature, text)``, telling the adapter's callbacks."""
    if not adapter_callbacks(adapter):
        return adapter.parse(signature, text)
    call_id = notify_start(adapter, "parse", {"signature": signature, "completion": text})
    try:
        values = adapter.parse(signature, text)
    except Exception as exc:
        notify_end(adapter, "parse", call_id, None, exc)
        raise
    notify_end(adapter, "parse", call_id, values, None)
    return values
