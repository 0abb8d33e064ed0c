"""Deterministic embeddings for the fake server's ``/v1/embeddings`` route.

A text's vector is a hashed bag of its lowercase words (weight 1) and
character trigrams (weight 1/4), L2-normalised: texts sharing words are
near, so nearest-neighbour retrieval over them is meaningful and exactly
reproducible (``fake_embedding`` is a pure function of text and size).
"""

from __future__ import annotations

import hashlib
import math
import re

__all__ = ["fake_embedding"]

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
