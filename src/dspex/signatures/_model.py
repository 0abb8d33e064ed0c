"""The pydantic base of the model-shaped ML types, and how they show a bad value.

Kept apart from ``_types`` so that ``_tool_calls``, ``_media``, ``_documents``
and ``_coerce`` can build on it while ``_types`` re-exports all of them.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["_Model", "_shown"]


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Model(BaseModel):
    """Base of the model-shaped ML types: docstrings stay out of their JSON schemas."""

    model_config = ConfigDict(defer_build=True)  # built on first use: cheaper imports

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        out = handler.resolve_ref_schema(handler(schema))
        if out.get("description") == inspect.cleandoc(cls.__doc__ or ""):
            out.pop("description")
        return out  # type: ignore[no-any-return]
