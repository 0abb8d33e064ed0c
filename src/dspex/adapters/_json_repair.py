"""Find and repair the JSON object in an LM completion.

A thin, tested wrapper over the ``json-repair`` package. :func:`extract_object`
tries, in order: a strict decode of the first ``{`` onwards (a well-formed
object followed by prose or fences; json-repair sometimes misreads those), the
whole completion through json-repair (which unwraps fenced code
blocks and copes with single quotes, Python literals, trailing commas and
truncation), the first balanced ``{...}`` (brace counting as DSPy's recursive
regex does, strings not considered), and finally everything from the first ``{`` to
the end (a truncated object). The first candidate that decodes to a dict wins.
"""

from __future__ import annotations

import json
import re
from typing import Any

import json_repair

__all__ = ["extract_object", "first_balanced_object", "loads"]

_DECODER = json.JSONDecoder()


def loads(text: str) -> Any:
    """Return json-repair's reading of ``text`` (``""`` when it finds nothing)."""
    try:
        return json_repair.loads(text)
    except Exception:  # json-repair is best effort; a crash means "nothing found"
        return ""


def first_balanced_object(text: str) -> str | None:
    """Return the leftmost ``{...}`` whose braces balance, or None.

    Braces are counted everywhere (inside strings too), matching DSPy's
    ``\\{(?:[^{}]|(?R))*\\}`` fallback: an opening brace that never closes is
    skipped in favour of the next one that does.
    """
    stack: list[int] = []
    best: tuple[int, int] | None = None
    for m in re.finditer(r"[{}]", text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            start = stack.pop()
            if best is None or start < best[0]:
                best = (start, m.end())
    return text[best[0] : best[1]] if best else None


def extract_object(text: str) -> dict[str, Any] | None:
    """Return the JSON object in ``text`` as a dict, repaired, or None if there is none."""
    start = text.find("{")
    if start >= 0:
        try:
            found, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            pass
        else:
            if isinstance(found, dict):
                return found
    found = loads(text)
    if isinstance(found, dict):
        return found
    candidates = []
    balanced = first_balanced_object(text)
    if balanced is not None:
        candidates.append(balanced)
    if start >= 0:
        candidates.append(text[start:])
    for candidate in candidates:
        found = loads(candidate)
        if isinstance(found, dict):
            return found
    return None
