"""Split user messages into content parts around ``Image``/``Audio``/``File`` markers.

Adapters render every field value as text; a content-part value becomes its
parts' JSON between DSPy's reserved markers. After formatting, each user
message holding a marker is replaced by a list of OpenAI content parts: the
text around the markers as ``{"type": "text", ...}`` parts (kept verbatim,
whitespace included) and the decoded parts in place of each marker, exactly
as DSPy 3.4.1 does. Messages without markers are returned unchanged (the
same dict objects), so the common case costs one substring test.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import json_repair

from ..signatures._media import CUSTOM_TYPE_END, CUSTOM_TYPE_START

if TYPE_CHECKING:
    from ..lm._types import Message

__all__ = ["split_content_parts", "split_message"]

_MARKED = re.compile(rf"{re.escape(CUSTOM_TYPE_START)}(.*?){re.escape(CUSTOM_TYPE_END)}", re.DOTALL)


def _decode(payload: str) -> Any:
    # A marker nested in a list or dict value was JSON-encoded twice (its
    # quotes escaped), so try plain JSON, then one unquoting, then repair.
    for decode in (json.loads, lambda s: json.loads(json.loads(f'"{s}"')), json_repair.loads):
        try:
            return decode(payload)
        except Exception:
            continue
    return None


def _parts(payload: str) -> list[dict[str, Any]]:
    parsed = _decode(payload)
    if isinstance(parsed, list):
        return [p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in parsed]
    return [{"type": "text", "text": payload}]


def split_message(message: Message) -> Message:
    """Return ``message`` with its content split into parts (or ``message`` itself)."""
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, str) or CUSTOM_TYPE_START not in content:
        return message
    parts: list[dict[str, Any]] = []
    last = 0
    for match in _MARKED.finditer(content):
        start, end = match.span()
        if start > last:
            parts.append({"type": "text", "text": content[last:start]})
        parts.extend(_parts(match.group(1).strip()))
        last = end
    if last < len(content):
        parts.append({"type": "text", "text": content[last:]})
    return {**message, "content": parts}


def split_content_parts(messages: list[Message]) -> list[Message]:
    """Return ``messages`` with every marked user message split into parts."""
    return [split_message(m) for m in messages]
