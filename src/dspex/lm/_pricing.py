"""Model prices and the cost of a call.

Prices are USD per 1M tokens for input, output and cached input, for common
OpenAI, Anthropic and Gemini models. They are list prices as published by each
vendor when this table was written (standard tier, short-context rates), so
treat costs as estimates and override them with :func:`set_prices` or
``dx.LM(..., prices=...)``. Lookup uses the model name without its provider
prefix and falls back to the longest known prefix, so dated snapshots
(``gpt-4o-mini-2024-07-18``) find their family. Unknown models cost 0.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ._types import LMUsage

__all__ = ["Price", "cost_of", "get_price", "set_prices"]


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens; ``cached_input`` defaults to the input price."""

    input: float
    output: float
    cached_input: float | None = None


def _p(i: float, o: float, c: float | None = None) -> Price:
    return Price(i, o, c)


_BUILTIN: dict[str, Price] = {
    # OpenAI
    "gpt-5": _p(1.25, 10.0, 0.125),
    "gpt-5-mini": _p(0.25, 2.0, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "gpt-4.1": _p(2.0, 8.0, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-4o": _p(2.50, 10.0, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4-turbo": _p(10.0, 30.0),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "o1": _p(15.0, 60.0, 7.50),
    "o1-mini": _p(1.10, 4.40, 0.55),
    "o3": _p(2.0, 8.0, 0.50),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o4-mini": _p(1.10, 4.40, 0.275),
    # Anthropic (cached = cache reads)
    "claude-opus-4-5": _p(5.0, 25.0, 0.50),
    "claude-opus-4-1": _p(15.0, 75.0, 1.50),
    "claude-opus-4": _p(15.0, 75.0, 1.50),
    "claude-sonnet-4-5": _p(3.0, 15.0, 0.30),
    "claude-sonnet-4": _p(3.0, 15.0, 0.30),
    "claude-haiku-4-5": _p(1.0, 5.0, 0.10),
    "claude-3-7-sonnet": _p(3.0, 15.0, 0.30),
    "claude-3-5-sonnet": _p(3.0, 15.0, 0.30),
    "claude-3-5-haiku": _p(0.80, 4.0, 0.08),
    "claude-3-opus": _p(15.0, 75.0, 1.50),
    "claude-3-haiku": _p(0.25, 1.25, 0.03),
    # Gemini (prompts up to 200k tokens where tiers differ)
    "gemini-2.5-pro": _p(1.25, 10.0, 0.31),
    "gemini-2.5-flash": _p(0.30, 2.50, 0.075),
    "gemini-2.5-flash-lite": _p(0.10, 0.40, 0.025),
    "gemini-2.0-flash": _p(0.10, 0.40, 0.025),
    "gemini-2.0-flash-lite": _p(0.075, 0.30),
    "gemini-1.5-pro": _p(1.25, 5.0, 0.3125),
    "gemini-1.5-flash": _p(0.075, 0.30, 0.01875),
}

_overrides: dict[str, Price] = {}
_lock = threading.Lock()
_memo: dict[str, Price | None] = {}  # name -> price from the process-wide tables


def _coerce(model: str, value: Any) -> Price:
    if isinstance(value, Price):
        return value
    if isinstance(value, Mapping) and "input" in value and "output" in value:
        try:
            return Price(float(value["input"]), float(value["output"]),
                         None if value.get("cached_input") is None else float(value["cached_input"]))
        except (TypeError, ValueError):
            pass
    raise ConfigError(
        f"invalid price for model {model!r}: {value!r}; expected a Price or "
        "{'input': USD per 1M, 'output': USD per 1M, 'cached_input': optional}"
    )


def normalize_prices(prices: Mapping[str, Any] | None) -> dict[str, Price]:
    """Validate a ``{model: price}`` mapping into ``{name: Price}``."""
    return {_bare(m): _coerce(m, v) for m, v in (prices or {}).items()}


def set_prices(prices: Mapping[str, Any]) -> None:
    """Override prices process-wide: ``{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}``.

    Raises:
        ConfigError: A price is not a ``Price`` or a dict with input/output.
    """
    checked = normalize_prices(prices)
    with _lock:
        _overrides.update(checked)
        _memo.clear()


def _bare(model: str) -> str:
    return model.split("/", 1)[1] if "/" in model else model


def _lookup(table: Mapping[str, Price], name: str) -> Price | None:
    if name in table:
        return table[name]
    best = max((k for k in table if name.startswith(k)), key=len, default=None)
    return table[best] if best is not None else None


def get_price(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """Return the price for ``model`` ("provider/name" or "name"), or None."""
    name = _bare(model)
    if overrides:
        price = _lookup(overrides, name)
        if price is not None:
            return price
    try:
        return _memo[name]
    except KeyError:
        pass
    with _lock:
        price = _lookup(_overrides, name)
        if price is None:
            price = _lookup(_BUILTIN, name)
        if len(_memo) >= 4096:
            _memo.clear()
        _memo[name] = price
    return price


def cost_of(model: str, usage: LMUsage, overrides: Mapping[str, Price] | None = None) -> float:
    """Return the USD cost of ``usage`` (``input_tokens`` includes cached ones)."""
    price = get_price(model, overrides)
    if price is None or usage.cache_hit:
        return 0.0
    cached = min(usage.cached_tokens, usage.input_tokens)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    total = (usage.input_tokens - cached) * price.input + cached * cached_rate + usage.output_tokens * price.output
    return total / 1_000_000
