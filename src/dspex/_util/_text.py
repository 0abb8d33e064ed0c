"""DSPy's answer normalisation, shared by metrics and answer voting.

:func:`normalize_text` is DSPy's ``normalize_text``: Unicode NFD, lowercase,
punctuation and the articles *a*, *an*, *the* removed, whitespace collapsed.
``dx.metrics`` (exact match, F1) and ``dx.majority`` both compare answers
through it, so a vote and a score agree on what "the same answer" means.
"""

from __future__ import annotations

import re
import string
import unicodedata

__all__ = ["normalize_text"]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_text(s: str) -> str:
    """Return ``s`` normalised as DSPy does (NFD, lowercase, no punctuation or articles).

    Example:
        >>> normalize_text("The,  Eiffel  Tower!")
        'eiffel tower'
    """
    s = unicodedata.normalize("NFD", s).lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())
