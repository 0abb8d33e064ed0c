"""ML types usable in signatures: Reasoning, Confidence, Embedding, Citation, History, ToolCalls.

Each is an ordinary pydantic-validatable type, so it can annotate a field in a
class signature or be named in a string signature (``"q -> c: Confidence"``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["ML_TYPES", "Citation", "Confidence", "Embedding", "History", "Reasoning", "ToolCalls"]

_STEP = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•]|step\s*\d+[:.)]?)\s+", re.IGNORECASE)


class Reasoning(str):
    """Stepwise reasoning text; ``.steps`` splits it into its steps."""

    __slots__ = ()

    @property
    def steps(self) -> list[str]:
        """Return the steps: numbered or bulleted lines, else sentences per line."""
        text = str(self).strip()
        if not text:
            return []
        if _STEP.search(text):
            parts = _STEP.split(text)
            return [p.strip() for p in parts if p.strip()]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if len(lines) > 1:
            return lines
        return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(cls, core_schema.str_schema())


class Confidence(float):
    """A probability-like score in [0, 1]; "0.8" and "80%" both coerce to 0.8."""

    __slots__ = ()

    @classmethod
    def _validate(cls, value: Any) -> Confidence:
        if isinstance(value, str):
            text = value.strip()
            scale = 100.0 if text.endswith("%") else 1.0
            value = float(text.rstrip("%").strip()) / scale
        number = float(value)
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"confidence must be between 0 and 1, got {number}")
        return cls(number)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.float_schema(ge=0.0, le=1.0),
            serialization=core_schema.plain_serializer_function_ser_schema(float),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "number", "minimum": 0.0, "maximum": 1.0}


class Embedding(list[float]):
    """A vector of floats."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.list_schema(core_schema.float_schema()),
            serialization=core_schema.plain_serializer_function_ser_schema(list),
        )


class Citation(BaseModel):
    """A quoted span supporting an answer, and where it came from."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="the quoted supporting text")
    source: str | None = Field(default=None, description="document title, id or URL")


class History(BaseModel):
    """Earlier turns of a conversation; each turn maps field names to values."""

    model_config = ConfigDict(frozen=True)

    messages: list[dict[str, Any]] = Field(default_factory=list)


class ToolCallItem(BaseModel):
    """One requested tool call."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ToolCalls(BaseModel):
    """Tool calls an LM asks for: ``{"tool_calls": [{"name": ..., "args": {...}}]}``."""

    tool_calls: list[ToolCallItem] = Field(default_factory=list)


ML_TYPES: dict[str, Any] = {
    "Reasoning": Reasoning,
    "Confidence": Confidence,
    "Embedding": Embedding,
    "Citation": Citation,
    "History": History,
    "ToolCalls": ToolCalls,
}
