"""Call history: the last N LM calls, per LM and process-wide.

Every ``dx.LM`` call appends an entry — messages, parameters (never
credentials), outputs, usage, cost, timing — to ``lm.history`` and to the
global history read by :func:`inspect_history`. Both are deques bounded by the
``max_history_size`` setting; ``disable_history`` turns recording off.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any, TextIO

from .._context import get_setting
from ._types import LMResponse

__all__ = ["GLOBAL_HISTORY", "History", "format_history", "inspect_history", "make_entry"]


class History:
    """A thread-safe deque of history entries bounded by ``max_history_size``."""

    def __init__(self, maxlen: int | None = None) -> None:
        self._maxlen = maxlen
        self._items: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        """Add ``entry``, dropping the oldest beyond the size limit."""
        if get_setting("disable_history", False):
            return
        limit = self._maxlen if self._maxlen is not None else int(get_setting("max_history_size", 10_000))
        with self._lock:
            self._items.append(entry)
            while len(self._items) > max(0, limit):
                self._items.popleft()

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._items))

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self._lock:
            return list(self._items)[index]

    def __repr__(self) -> str:
        return f"History({len(self)} entries)"


GLOBAL_HISTORY = History()


def make_entry(
    *,
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    response: LMResponse,
    started: float,
    retries: int = 0,
) -> dict[str, Any]:
    """Return one history entry (``params`` must already be credential-free)."""
    return {
        "uuid": str(uuid.uuid4()),
        "timestamp": time.time(),
        "model": model,
        "response_model": response.model,
        "messages": messages,
        "kwargs": params,
        "outputs": list(response.outputs),
        "tool_calls": [[c.model_dump() for c in calls] for calls in response.tool_calls],
        "usage": response.usage.model_dump(),
        "cost": response.usage.cost,
        "cache_hit": response.usage.cache_hit,
        "retries": retries,
        "duration_s": time.monotonic() - started,
    }


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", f"<{p.get('type', 'part')}>") if isinstance(p, dict) else str(p) for p in content
        )
    return "" if content is None else str(content)


def format_history(entries: Iterable[dict[str, Any]]) -> str:
    """Return ``entries`` as readable text (messages, then the response)."""
    blocks = []
    for entry in entries:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry["timestamp"]))
        usage = entry["usage"]
        lines = [f"[{stamp}] {entry['model']}" + ("  (cache hit)" if entry["cache_hit"] else "")]
        for msg in entry["messages"]:
            lines += ["", f"{str(msg.get('role', '?')).capitalize()} message:", "", _content(msg.get("content"))]
        for i, out in enumerate(entry["outputs"]):
            label = "Response:" if len(entry["outputs"]) == 1 else f"Response {i + 1}:"
            lines += ["", label, "", out]
            for call in entry["tool_calls"][i] if i < len(entry["tool_calls"]) else []:
                lines.append(f"<tool call {call['name']}({call['args']})>")
        lines += [
            "",
            f"usage: {usage['input_tokens']} in, {usage['output_tokens']} out, "
            f"{usage['cached_tokens']} cached, ${entry['cost']:.6f}",
        ]
        blocks.append("\n".join(lines))
    return "\n\n\n".join(blocks) + ("\n" if blocks else "")


def inspect_history(n: int = 1, *, file: TextIO | None = None) -> str:
    """Print the last ``n`` LM calls (all LMs, oldest first) and return the text."""
    entries = list(GLOBAL_HISTORY)[-n:] if n > 0 else []
    text = format_history(entries)
    print(text, file=file or sys.stdout, end="")
    return text
