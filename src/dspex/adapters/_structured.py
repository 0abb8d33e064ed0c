"""OpenAI strict structured-output ``response_format`` for a signature's outputs.

Built as DSPy 3.4.1 builds it: a pydantic model ``DSPyProgramOutputs`` of the
output fields with ``extra="forbid"``, rewritten by the OpenAI SDK's strict
rules (the :data:`~dspex._jsonschema.OPENAI_SDK_STRICT` profile): every
object closed and every property required, ``None`` defaults dropped, a lone
``allOf`` and a ``$ref`` with siblings inlined. An open-ended mapping (``dict[str,
Any]``), as an output or nested in one, cannot be expressed in strict mode, so
:func:`response_format` answers ``{"type": "json_object"}`` for it (DSPy closes
a nested one, which forces it empty). The exception is ``ToolCalls``: each
call's ``args`` becomes a JSON-encoded string in the strict schema (which
``ToolCalls`` decodes), so tool calls keep their arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_origin

import pydantic

from .._jsonschema import OPENAI_SDK_STRICT, rewrite_schema

if TYPE_CHECKING:
    from ..signatures import Signature

__all__ = ["has_open_mapping", "response_format", "strict_schema"]

_NAME = "DSPyProgramOutputs"


def has_open_mapping(signature: type[Signature]) -> bool:
    """Return True if an output is a ``dict[...]`` (no declared properties)."""
    return any(get_origin(f.annotation) is dict or f.annotation is dict for f in signature.output_fields.values())


_ARGS_AS_STRING = {
    "type": "string",
    "description": 'The arguments as a JSON object encoded in a string, e.g. "{\\"query\\": \\"cats\\"}".',
}


def strict_schema(signature: type[Signature]) -> dict[str, Any]:
    """Return the strict JSON schema of ``signature``'s outputs.

    Raises:
        ValueError: An output is an open-ended mapping (``UnsupportedSchema``
            when it is nested in a model).
    """
    if has_open_mapping(signature):
        raise ValueError(f"signature {signature.signature!r} has an open-ended dict output; strict mode needs properties")
    fields = {n: (f.annotation, f.default) for n, f in signature.output_fields.items()}
    model = pydantic.create_model(_NAME, __config__=pydantic.ConfigDict(extra="forbid"), **fields)  # type: ignore[call-overload]
    schema: dict[str, Any] = model.model_json_schema()
    for prop in schema.get("properties", {}).values():
        prop.pop("json_schema_extra", None)
    call = schema.get("$defs", {}).get("ToolCall")
    if isinstance(call, dict) and isinstance(call.get("properties", {}).get("args"), dict):
        call["properties"]["args"] = dict(_ARGS_AS_STRING)  # strict mode cannot express an open object
    return rewrite_schema(schema, OPENAI_SDK_STRICT)


def response_format(signature: type[Signature]) -> dict[str, Any]:
    """Return the OpenAI ``response_format`` for ``signature`` (json_schema or json_object)."""
    try:
        schema = strict_schema(signature)
    except (ValueError, pydantic.PydanticInvalidForJsonSchema, pydantic.PydanticSchemaGenerationError):
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": _NAME, "schema": schema, "strict": True}}
