"""Deterministic embeddings for the fake server's ``/v1/embeddings`` route.

A text's vector is a hashed bag of its lowercase words (weight 1) and
character trigrams (weight 1/4), L2-normalised: texts sharing words are
near, so nearest-neighbour retrieval over them is meaningful and exactly
reproducible (``fake_embedding`` is a pure function of text and size).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from ._fake_answers import count_tokens_cached

__all__ = ["embeddings_response", "fake_embedding"]

_WORD = re.compile(r"\w+")


def _bucket(feature: str, dimensions: int) -> int:
    digest = hashlib.sha256(feature.encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "big") % dimensions


def fake_embedding(text: str, dimensions: int = 256) -> list[float]:
    """Return the unit vector of ``text`` (all zeros for a text without words).

    Args:
        text: Any string.
        dimensions: Vector length (>= 1).
    """
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        vector[_bucket("w:" + word, dimensions)] += 1.0
        padded = f" {word} "
        for i in range(len(padded) - 2):
            vector[_bucket("t:" + padded[i : i + 3], dimensions)] += 0.25
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def embeddings_response(body: bytes, model: str) -> dict[str, Any]:
    """Return the OpenAI ``/v1/embeddings`` response to a request body.

    Raises:
        ValueError: The body is not ``{"input": str | [str, ...], "dimensions"?: int >= 1}``.
    """
    try:
        request = json.loads(body)
        texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
        size = int(request.get("dimensions") or 256)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"expected a JSON object with 'input': {exc}") from None
    if not all(isinstance(t, str) for t in texts) or size < 1:
        raise ValueError("input must be a string or a list of strings, dimensions >= 1")
    data = [{"object": "embedding", "index": i, "embedding": fake_embedding(t, size)} for i, t in enumerate(texts)]
    tokens = sum(count_tokens_cached(t) for t in texts)
    return {"object": "list", "data": data, "model": request.get("model") or model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
