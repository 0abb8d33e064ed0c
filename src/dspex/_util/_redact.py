"""Secret redaction for anything that leaves the process or reaches a human.

API keys must never appear in logs, history, cache files, saved programs,
reprs or error messages. :func:`redact` replaces the secrets it is given and
anything shaped like a provider key (``sk-…``, ``sk-ant-…``, Google ``AIza…``,
``Bearer …`` tokens, ``?token=…`` query values) with ``[REDACTED]``;
:func:`redact_obj` does the same through nested dicts and lists, and
:class:`RedactingLogger` applies it to every line a logger emits (the WebSocket
protocols log request lines and headers at DEBUG).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping

__all__ = ["REDACTED", "RedactingLogger", "redact", "redact_obj", "strip_secret"]

REDACTED = "[REDACTED]"

_PATTERNS = re.compile(
    r"sk-[A-Za-z0-9_\-]{6,}"  # OpenAI, Anthropic (sk-ant-...), many compatible servers
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*"  # Authorization headers
)
# Credentials passed in a URL query (``ws://host/?token=…``): keep the name, drop the value.
_QUERY = re.compile(r"(?i)([?&](?:token|access_token|api_key|apikey|key)=)[^&#\s'\"]+")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with ``secrets`` and key-shaped strings replaced.

    Args:
        text: Any message.
        secrets: Exact secrets to remove (``None`` and strings shorter than 4
            characters are ignored, since replacing them would mangle text).
    """
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    return _QUERY.sub(rf"\g<1>{REDACTED}", _PATTERNS.sub(REDACTED, text))


def redact_obj(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """Return a copy of a JSON-like ``value`` with every string redacted."""
    keys = tuple(secrets)
    if isinstance(value, str):
        return redact(value, keys)
    if isinstance(value, dict):
        return {k: redact_obj(v, keys) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_obj(v, keys) for v in value]
    return value


def strip_secret(value: Any, secret: str | None) -> Any:
    """Return ``value`` with exact occurrences of ``secret`` redacted (no regex).

    The cheap form for hot paths (history entries): containers are copied only
    when ``secret`` actually occurs in them.
    """
    if not secret or len(secret) < 4:
        return value
    if isinstance(value, str):
        return value.replace(secret, REDACTED) if secret in value else value
    if isinstance(value, dict):
        items = {k: strip_secret(v, secret) for k, v in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, list | tuple):
        seq = [strip_secret(v, secret) for v in value]
        return seq if any(a is not b for a, b in zip(seq, value, strict=True)) else value
    return value


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter whose every line goes through :func:`redact` first.

    Handed to websockets' Sans-I/O protocols (which log the request line and
    every header at DEBUG) and used for dspex's own WebSocket log lines, so a
    bearer token in an ``Authorization`` header or a ``?token=`` query never
    reaches a handler. The message is formatted here (``msg % args``) and
    redacted; tracebacks (``exc_info``) are passed through unchanged.

    Args:
        logger: The logger that emits the redacted lines.
        secrets: Exact secrets to remove besides the key-shaped patterns.
    """

    def __init__(self, logger: logging.Logger, secrets: Iterable[str | None] = ()) -> None:
        super().__init__(logger, {})
        self.secrets = tuple(s for s in secrets if s)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Return ``msg`` unchanged; redaction happens in :meth:`log`."""
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Format ``msg % args``, redact it, and log it at ``level``."""
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):  # a stray '%': show the parts instead of failing
            text = " ".join(map(str, (msg, *args)))
        kwargs.setdefault("stacklevel", 2)
        self.logger.log(level, "%s", redact(text, self.secrets), **kwargs)
