"""Stable hashes of JSON-like values: cache keys and content fingerprints.

``canonical_json`` serialises a value deterministically (sorted keys, compact
separators, UTF-8), turning pydantic models and classes, tuples, sets and
bytes into JSON first, so the same request always hashes to the same key in
every process and on every platform. ``stable_hash`` is its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "stable_hash"]


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a pydantic model instance
        return dump(mode="json")
    schema = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(schema):  # a pydantic model class
        return {"__model__": value.__qualname__, "schema": schema()}
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": bytes(value).hex()}
    if isinstance(value, type):
        return {"__type__": f"{value.__module__}.{value.__qualname__}"}
    raise TypeError(
        f"cannot hash a value of type {type(value).__name__!r}; expected JSON-like data "
        "(dict, list, str, int, float, bool, None) or a pydantic model"
    )


def canonical_json(value: Any) -> bytes:
    """Return the canonical JSON encoding of ``value`` as UTF-8 bytes.

    Raises:
        TypeError: ``value`` holds something that has no JSON form.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    ).encode("utf-8")


def stable_hash(value: Any) -> str:
    """Return the hex SHA-256 of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
