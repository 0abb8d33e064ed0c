"""Local token counts for servers that report no usage.

Some OpenAI-compatible servers send no ``usage`` (no ``stream_options``
support, or none at all in streams). dspex then counts tokens itself with the
common four-characters-per-token rule, plus a few tokens of chat framing per
message, and marks the usage ``estimated`` so reports and budgets can tell.
"""

from __future__ import annotations

import math
from typing import Any

from ._types import LMUsage

__all__ = ["estimate_usage"]

_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 4  # role markers and separators of a chat template


def _tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN) if text else 0


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def estimate_usage(body: dict[str, Any], outputs: list[str]) -> LMUsage:
    """Return estimated usage of a chat request ``body`` that produced ``outputs``."""
    messages = body.get("messages") or []
    prompt = sum(_tokens(_content_text(m.get("content"))) + _PER_MESSAGE for m in messages if isinstance(m, dict))
    return LMUsage(
        input_tokens=prompt,
        output_tokens=sum(_tokens(o) for o in outputs),
        estimated=True,
    )
