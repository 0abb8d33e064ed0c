"""Secret redaction for anything that leaves the process or reaches a human.

API keys must never appear in logs, history, cache files, saved programs,
reprs or error messages. :func:`redact` replaces the secrets it is given and
anything shaped like a provider key (``sk-…``, ``sk-ant-…``, Google ``AIza…``,
``Bearer …`` tokens) with ``[REDACTED]``; :func:`redact_obj` does the same
through nested dicts and lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "redact", "redact_obj", "strip_secret"]

REDACTED = "[REDACTED]"

_PATTERNS = re.compile(
    r"sk-[A-Za-z0-9_\-]{6,}"  # OpenAI, Anthropic (sk-ant-...), many compatible servers
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*"  # Authorization headers
)


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
    return _PATTERNS.sub(REDACTED, text)


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
