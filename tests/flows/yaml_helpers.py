"""Functions the YAML flow tests name by import path."""

from __future__ import annotations

from typing import Any

NOT_CALLABLE = 42


def shout(record: dict[str, Any]) -> dict[str, Any]:
    """Upper-case the answer."""
    return {**record, "answer": record["answer"].upper()}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def lookup(city: str) -> str:
    """Return the weather in a city."""
    return f"sunny in {city}"


def reward(inputs: dict[str, Any], prediction: Any) -> float:
    """Reward every prediction fully."""
    return 1.0
