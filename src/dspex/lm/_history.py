"""Call history: the last N LM calls, per LM and process-wide.

Every ``dx.LM`` call appends an entry — messages, parameters (never
credentials), outputs, usage, cost, timing — to ``lm.history`` and to the
global history read by :func:`inspect_history`. Both are deques bounded by the
``max_history_size`` setting; ``disable_history`` turns recording off.

Recording is on every call's hot path, so an LM records a :class:`LazyEntry`
(references plus a timestamp) and the entry dict — with the credential
scrubbed, a uuid, usage dumped — is built the first time anyone reads it.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from .. import _context
from .._context import get_setting
from .._util._redact import strip_secret

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._types import LMResponse

__all__ = ["GLOBAL_HISTORY", "History", "LazyEntry", "format_history", "inspect_history", "make_entry", "record"]


class LazyEntry:
    """A history entry recorded cheaply and built into a dict when first read.

    Holds the call's messages, parameters and response by reference, so the
    caller must not mutate them afterwards (``dx.LM`` copies the messages it
    was given). ``secret`` is scrubbed from messages and parameters when the
    entry is built.
    """

    __slots__ = ("_built", "duration", "messages", "model", "params", "response", "secret", "timestamp")

    def __init__(
        self, model: str, messages: list[dict[str, Any]], params: dict[str, Any],
        response: LMResponse, duration: float, secret: str | None,
    ) -> None:
        self.model = model
        self.messages = messages
        self.params = params
        self.response = response
        self.duration = duration
        self.secret = secret
        self.timestamp = time.time()
        self._built: dict[str, Any] | None = None

    def build(self) -> dict[str, Any]:
        """Return the entry dict (built once, then shared by every reader)."""
        if self._built is None:
            self._built = make_entry(
                model=self.model, messages=strip_secret(self.messages, self.secret),
                params=strip_secret(self.params, self.secret), response=self.response,
                started=0.0, timestamp=self.timestamp, duration=self.duration,
            )
            self.messages = self.params = None  # type: ignore[assignment]
        return self._built


class History:
    """A thread-safe deque of history entries bounded by ``max_history_size``.

    Entries are dicts; :class:`LazyEntry` records are built into dicts when
    read (iteration, indexing).
    """

    def __init__(self, maxlen: int | None = None) -> None:
        self._maxlen = maxlen
        self._items: deque[dict[str, Any] | LazyEntry] = deque()
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any] | LazyEntry) -> None:
        """Add ``entry``, dropping the oldest beyond the size limit."""
        if get_setting("disable_history", False):
            return
        self.add(entry, int(get_setting("max_history_size", 10_000)))

    def add(self, entry: dict[str, Any] | LazyEntry, limit: int) -> None:
        """Add ``entry`` with ``limit`` as the size bound (the setting, already read)."""
        if self._maxlen is not None:
            limit = self._maxlen
        items = self._items
        with self._lock:
            items.append(entry)
            if len(items) > limit:
                while len(items) > max(0, limit):
                    items.popleft()

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._items.clear()

    def _entries(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)
        return [e.build() if isinstance(e, LazyEntry) else e for e in items]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Any:
        return iter(self._entries())

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self._lock:
            entry = self._items[index] if isinstance(index, int) else None
        if entry is None:
            return self._entries()[index]
        return entry.build() if isinstance(entry, LazyEntry) else entry

    def __repr__(self) -> str:
        return f"History({len(self)} entries)"


def record(lm_history: History, entry: LazyEntry) -> None:
    """Append ``entry`` to ``lm_history`` and the global history (settings read once)."""
    over, base = _context._overrides.get(), _context._defaults
    if over["disable_history"] if "disable_history" in over else base.get("disable_history", False):
        return
    limit = over["max_history_size"] if "max_history_size" in over else base.get("max_history_size", 10_000)
    limit = int(limit)
    lm_history.add(entry, limit)
    GLOBAL_HISTORY.add(entry, limit)


GLOBAL_HISTORY = History()


def make_entry(
    *,
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    response: LMResponse,
    started: float,
    retries: int = 0,
    timestamp: float | None = None,
    duration: float | None = None,
) -> dict[str, Any]:
    """Return one history entry (``params`` must already be credential-free)."""
    return {
        "uuid": str(uuid.uuid4()),
        "timestamp": time.time() if timestamp is None else timestamp,
        "model": model,
        "response_model": response.model,
        "messages": messages,
        "kwargs": params,
        "outputs": list(response.outputs),
        "tool_calls": [[c.model_dump() for c in calls] for calls in response.tool_calls],
        "usage": response.usage.model_dump(),
        "cost": response.usage.cost,
        "cache_hit": response.usage.cache_hit,
        "structured_output": response.structured_output,
        "dropped_params": list(response.dropped_params),
        "retries": retries,
        "duration_s": time.monotonic() - started if duration is None else duration,
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
