"""LM usage totals: tokens, cost, calls and cache hits summed over a run.

The runner keeps one :class:`UsageTotals` per run (``RunServices.usage``);
a node adds each prediction's usage through ``NodeContext.add_usage``, and
``ab_split`` keeps one more per variant. The run report shows ``to_dict()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["UsageTotals"]


_LM_USAGE: list[type] = []  # dspex.lm._types.LMUsage once seen (not imported here)


def _is_lm_usage(tp: type) -> bool:
    if _LM_USAGE:
        return tp is _LM_USAGE[0]
    if tp.__name__ == "LMUsage" and tp.__module__ == "dspex.lm._types":
        _LM_USAGE.append(tp)
        return True
    return False


class UsageTotals:
    """Sums LM usage from predictions, usage objects or dicts."""

    __slots__ = ("cache_hits", "cached_tokens", "calls", "cost", "input_tokens", "output_tokens")

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_tokens = 0
        self.cost = 0.0
        self.calls = 0
        self.cache_hits = 0

    def add(self, usage: Any) -> None:
        """Add one usage record (``LMUsage``, ``Usage`` event, dict, or dict of them)."""
        if usage is None:
            return
        if _is_lm_usage(type(usage)):  # the common case, attribute by attribute
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.cached_tokens += usage.cached_tokens
            self.cost += usage.cost
            self.calls += 1
            self.cache_hits += 1 if usage.cache_hit else 0
            return
        if isinstance(usage, Mapping):
            if any(isinstance(v, Mapping) or hasattr(v, "input_tokens") for v in usage.values()):
                for value in usage.values():
                    self.add(value)
                return
            get = usage.get
        else:
            def get(name: str, default: Any = None) -> Any:
                return getattr(usage, name, default)

        self.input_tokens += int(get("input_tokens", 0) or get("prompt_tokens", 0) or 0)
        self.output_tokens += int(get("output_tokens", 0) or get("completion_tokens", 0) or 0)
        self.cached_tokens += int(get("cached_tokens", 0) or 0)
        self.cost += float(get("cost", 0.0) or 0.0)
        self.calls += int(get("calls", 1) or 1)
        self.cache_hits += 1 if get("cache_hit", False) else 0

    def merge(self, other: UsageTotals) -> None:
        """Add every counter of ``other``."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def tokens(self) -> int:
        """Return input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        """Return the totals as a dict."""
        return {name: getattr(self, name) for name in sorted(self.__slots__)}
