"""OpenAI strict structured-output ``response_format`` for a signature's outputs.

Built as DSPy 3.4.1 builds it: a pydantic model ``DSPyProgramOutputs`` of the
output fields with ``extra="forbid"``, every object closed and every property
required (OpenAI's strict mode), ``None`` defaults dropped, a lone ``allOf``
and a ``$ref`` with siblings inlined. An open-ended mapping (``dict[str,
Any]``), as an output or nested in one, cannot be expressed in strict mode, so
:func:`response_format` answers ``{"type": "json_object"}`` for it (DSPy closes
a nested one, which forces it empty). The exception is ``ToolCalls``: each
call's ``args`` becomes a JSON-encoded string in the strict schema (which
``ToolCalls`` decodes), so tool calls keep their arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_origin

import pydantic

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


def _close(part: dict[str, Any]) -> None:
    if part.get("type") == "object":
        props = part.get("properties")
        if props is None:
            if part.get("additionalProperties") not in (None, False):
                raise ValueError("an output holds an open-ended mapping; strict mode needs declared properties")
            part["properties"] = {}
            part["required"] = []
        else:
            part["required"] = list(props)
            for sub in props.values():
                if isinstance(sub, dict):
                    _close(sub)
        part["additionalProperties"] = False
    if part.get("type") == "array" and isinstance(part.get("items"), dict):
        _close(part["items"])
    for key in ("$defs", "definitions"):
        for sub in part.get(key, {}).values():
            _close(sub)


def _resolve(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _strict(schema: Any, root: dict[str, Any]) -> Any:
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {n: _strict(s, root) for n, s in out[key].items()}
    if out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if isinstance(out.get("properties"), dict):
        out["required"] = list(out["properties"])
        out["properties"] = {n: _strict(s, root) for n, s in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"], root)
    if isinstance(out.get("anyOf"), list):
        out["anyOf"] = [_strict(s, root) for s in out["anyOf"]]
    if isinstance(out.get("allOf"), list):
        if len(out["allOf"]) == 1:
            out.update(_strict(out.pop("allOf")[0], root))
        else:
            out["allOf"] = [_strict(s, root) for s in out["allOf"]]
    if "default" in out and out["default"] is None:
        del out["default"]
    ref = out.get("$ref")
    if isinstance(ref, str) and len(out) > 1:
        resolved = _resolve(root, ref)
        if isinstance(resolved, dict):
            out = {**_strict(resolved, root), **{k: v for k, v in out.items() if k != "$ref"}}
    return out


def strict_schema(signature: type[Signature]) -> dict[str, Any]:
    """Return the strict JSON schema of ``signature``'s outputs.

    Raises:
        ValueError: An output is an open-ended mapping.
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
    _close(schema)
    result: dict[str, Any] = _strict(schema, schema)
    return result


def response_format(signature: type[Signature]) -> dict[str, Any]:
    """Return the OpenAI ``response_format`` for ``signature`` (json_schema or json_object)."""
    try:
        schema = strict_schema(signature)
    except (ValueError, pydantic.PydanticInvalidForJsonSchema, pydantic.PydanticSchemaGenerationError):
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": _NAME, "schema": schema, "strict": True}}
