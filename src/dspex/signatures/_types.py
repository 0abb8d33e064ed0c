"""ML types usable in signatures: Reasoning, Confidence, Embedding, Citation, History, ToolCalls.

Each is an ordinary pydantic-validatable type, so it can annotate a field in a
class signature or be named in a string signature (``"q -> c: Confidence"``).
Each validates and coerces the text-ish values an LM produces ("80%" → 0.8, a
JSON list → an Embedding, a bare quote → a Citation), raising ``ValueError``
with a message that names the bad value and what was expected (pydantic turns
it into a field-level validation error). ``description()`` gives the text an
adapter may show next to the type name. ``ToolCalls`` lives in ``_tool_calls``
(re-exported here) and ``Tool`` in ``_tool``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ConfigDict, Field, GetCoreSchemaHandler, model_validator
from pydantic_core import core_schema

from ._model import _Model, _shown
from ._tool import Tool
from ._tool_calls import ToolCall, ToolCalls

__all__ = ["ML_TYPES", "Citation", "Confidence", "Embedding", "History", "Reasoning", "ToolCall", "ToolCalls"]

_STEP = re.compile(r"(?m)^[ \t]*(?:\d+[.)]|[-*•]|step[ \t]*\d+[:.)]?)[ \t]+", re.IGNORECASE)
_INLINE_STEP = re.compile(r"(?:^|(?<=\s))step[ \t]*\d+[:.)][ \t]*", re.IGNORECASE)


class Reasoning(str):
    """Stepwise reasoning text; a ``str`` whose ``.steps`` splits it into steps.

    Example:
        >>> Reasoning("1. Paris is in France.\\n2. So the answer is Paris.").steps
        ['Paris is in France.', 'So the answer is Paris.']
    """

    __slots__ = ()

    @property
    def content(self) -> str:
        """The text as a plain ``str`` (DSPy's ``Reasoning.content``)."""
        return str(self)

    @property
    def steps(self) -> list[str]:
        """Return the steps: numbered or bulleted items, else lines, else sentences."""
        text = str(self).strip()
        if not text:
            return []
        for marker in (_STEP, _INLINE_STEP):
            if len(marker.findall(text)) > 1:
                return [" ".join(p.split()) for p in marker.split(text) if p.strip()]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if len(lines) > 1:
            return lines
        return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]

    @classmethod
    def description(cls) -> str:
        """Return the prompt description: none, Reasoning is plain text."""
        return ""

    @classmethod
    def _validate(cls, value: Any) -> Reasoning:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping) and isinstance(value.get("content"), str):
            return cls(value["content"])
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return cls("\n".join(f"{i}. {v.strip()}" for i, v in enumerate(value, 1)))
        raise ValueError(f"Reasoning expects text (or a list of step strings), got {_shown(value)}")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


class Confidence(float):
    """A probability-like score in [0, 1]; ``"0.8"`` and ``"80%"`` both coerce to 0.8."""

    __slots__ = ()

    @classmethod
    def description(cls) -> str:
        """Return the prompt description of the type."""
        return "A number between 0 and 1."

    @classmethod
    def _validate(cls, value: Any) -> Confidence:
        expected = "a number between 0 and 1 (or a percentage like '80%')"
        raw = value
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"Confidence expects {expected}, got {_shown(raw)}")
        if isinstance(value, str):
            text = value.strip().rstrip(".")
            percent = text.endswith("%")
            try:
                value = float(text.rstrip("%").strip()) / (100.0 if percent else 1.0)
            except ValueError:
                raise ValueError(f"Confidence expects {expected}, got {_shown(raw)}") from None
        number = float(value)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise ValueError(f"Confidence expects {expected}, got {_shown(raw)}")
        return cls(number)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.float_schema(ge=0.0, le=1.0),
            serialization=core_schema.plain_serializer_function_ser_schema(float),
        )


class Embedding(list[float]):
    """A vector of finite floats (from a list, a JSON/CSV string or an array)."""

    @property
    def dim(self) -> int:
        """The number of dimensions."""
        return len(self)

    def dot(self, other: Iterable[float]) -> float:
        """Return the dot product with ``other`` (same dimension).

        Raises:
            ValueError: The dimensions differ.
        """
        vec = list(other)
        if len(vec) != len(self):
            raise ValueError(f"cannot combine embeddings of dimension {len(self)} and {len(vec)}")
        return math.fsum(a * b for a, b in zip(self, vec, strict=True))

    def cosine(self, other: Iterable[float]) -> float:
        """Return the cosine similarity with ``other`` (0.0 if either is all zeros)."""
        vec = list(other)
        dot = self.dot(vec)
        norm = math.sqrt(self.dot(self)) * math.sqrt(math.fsum(x * x for x in vec))
        return dot / norm if norm else 0.0

    @classmethod
    def description(cls) -> str:
        """Return the prompt description of the type."""
        return "A JSON list of numbers."

    @classmethod
    def _validate(cls, value: Any) -> Embedding:
        raw = value
        if isinstance(value, str):
            value = _parse_vector_text(value)
        elif hasattr(value, "tolist") and not isinstance(value, list | tuple):
            value = value.tolist()  # numpy / torch arrays
        if isinstance(value, list | tuple) and value:
            try:
                floats = [_finite(v) for v in value]
            except (TypeError, ValueError):
                pass
            else:
                return cls(floats)
        raise ValueError(f"Embedding expects a non-empty list of finite numbers, got {_shown(raw)}")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.list_schema(core_schema.float_schema()),
            serialization=core_schema.plain_serializer_function_ser_schema(list),
        )


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _parse_vector_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        parts = [p for p in re.split(r"[\s,;]+", text.strip().strip("[]()")) if p]
        return parts or None


class Citation(_Model):
    """A quoted span supporting an answer, and where it came from.

    A bare string is taken as the quote; DSPy/Anthropic-style dicts
    (``cited_text``, ``document_title``/``document_index``) are accepted.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    text: str = Field(description="the exact quoted supporting text")
    source: str | None = Field(default=None, description="document title, id or URL")

    @classmethod
    def description(cls) -> str:
        """Return the prompt description of the type."""
        return "A quote supporting the answer, with its source: {\"text\": ..., \"source\": ...}."

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"text": data}
        if isinstance(data, Mapping) and "text" not in data:
            data = dict(data)
            for key in ("cited_text", "quote", "content"):
                if key in data:
                    data["text"] = data.pop(key)
                    break
            for key in ("document_title", "title", "url", "document_index", "document_id"):
                if data.get(key) is not None and data.get("source") is None:
                    data["source"] = str(data[key])
                    break
        return data

    def format(self) -> dict[str, Any]:
        """Return the citation as a JSON-ready dict."""
        return self.model_dump(exclude_none=True)


class History(_Model):
    """Earlier turns of a conversation: ``History(messages=[{"question": ..., "answer": ...}])``.

    Each turn maps signature field names to values (as in DSPy). History is
    immutable; :meth:`append` returns a new one.
    """

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="forbid")

    messages: list[dict[str, Any]]

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, list | tuple):
            return {"messages": list(data)}
        return data

    def __len__(self) -> int:
        return len(self.messages)

    def append(self, turn: Mapping[str, Any]) -> History:
        """Return a new history with ``turn`` added at the end."""
        return History(messages=[*self.messages, dict(turn)])

    def last(self, n: int) -> History:
        """Return a new history with only the last ``n`` turns."""
        return History(messages=self.messages[-n:] if n > 0 else [])


ML_TYPES: dict[str, Any] = {
    "Reasoning": Reasoning,
    "Confidence": Confidence,
    "Embedding": Embedding,
    "Citation": Citation,
    "History": History,
    "Tool": Tool,
    "ToolCalls": ToolCalls,
}
"""The ML types a string signature may name without ``types=``."""
