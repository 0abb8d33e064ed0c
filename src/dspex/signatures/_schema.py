"""JSON Schema for a signature's outputs (and for tools), per provider subset.

pydantic gives the full JSON Schema of the output fields; each provider accepts
a different subset, so one rewriting pass (:func:`dspex._jsonschema.rewrite_schema`
with the provider's profile: ``OPENAI_STRICT``, ``ANTHROPIC``, ``GEMINI``) makes
it conform. This module builds the signature's schema, picks the profile and
names the field when a part cannot be expressed:

- ``openai`` — Structured Outputs with ``strict: true``: the root is an object;
  every object has ``additionalProperties: false`` and lists *all* its
  properties in ``required`` (``Optional[X]`` is ``anyOf`` with ``null``, so
  the LM may answer null; a field that merely has a default must be produced);
  ``$defs``/``$ref`` stay (a ``$ref`` with siblings is inlined);
  ``oneOf`` becomes ``anyOf``; keywords strict mode rejects are dropped
  (``default``, ``minLength``/``maxLength``, ``uniqueItems``, formats other than
  date-time, time, date, duration, email, hostname, ipv4, ipv6, uuid, …).
  Open mappings (``dict[str, X]``), ``Any`` and tuples cannot be expressed.
- ``anthropic`` — a tool ``input_schema``: plain JSON Schema with an object
  root, optional properties simply not required.
- ``gemini`` — ``responseSchema``, a subset of the OpenAPI 3.0 schema object:
  no ``$ref``/``$defs`` (inlined; recursive models cannot be expressed), upper
  case ``type`` names, ``nullable: true`` instead of ``null`` unions, no
  ``additionalProperties``, enum values as strings (``format: "enum"``),
  ``propertyOrdering`` in declaration order, and only the documented keywords.

What a provider cannot express raises :class:`~dspex.errors.SignatureError`
naming the field, so an adapter can fall back to plain JSON mode. Results are
cached per (signature, provider); each call returns a fresh copy.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import TYPE_CHECKING, Annotated, Any

import pydantic

from .._jsonschema import (
    ANTHROPIC,
    GEMINI,
    OPENAI_STRICT,
    SchemaProfile,
    UnsupportedSchema,
    rewrite_schema,
)
from ..errors import SignatureError, ToolError
from ._fields import FIELD_TYPE_KEY

if TYPE_CHECKING:
    from ._signature import Signature
    from ._tool import Tool

__all__ = ["PROVIDERS", "output_json_schema", "tool_json_schema"]

PROVIDERS = ("openai", "anthropic", "gemini")

_PROFILES: dict[str, SchemaProfile] = {"openai": OPENAI_STRICT, "anthropic": ANTHROPIC, "gemini": GEMINI}
_TOOL_NAME = {
    "openai": re.compile(r"^[a-zA-Z0-9_-]{1,64}$"),
    "anthropic": re.compile(r"^[a-zA-Z0-9_-]{1,64}$"),
    "gemini": re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]{0,63}$"),
}


def output_json_schema(signature: type[Signature], provider: str = "openai") -> dict[str, Any]:
    """Return the JSON schema of ``signature``'s outputs in ``provider``'s subset.

    Args:
        signature: A signature class.
        provider: ``"openai"`` (strict structured outputs), ``"anthropic"``
            (tool ``input_schema``) or ``"gemini"`` (``responseSchema``).

    Returns:
        A fresh dict (safe to mutate); the root is always an object whose
        properties are the output fields in order.

    Raises:
        SignatureError: ``provider`` is unknown, or an output type cannot be
            expressed in its subset (the message names the field).
    """
    return copy.deepcopy(_cached_output_schema(signature, _check_provider(provider)))


def tool_json_schema(tool: Tool, provider: str = "openai") -> dict[str, Any]:
    """Return ``tool`` as a function declaration for ``provider``.

    OpenAI gets ``{"type": "function", "function": {name, description,
    parameters, strict}}`` — strict when every argument is required and
    expressible, else a plain schema with ``strict: false``; Anthropic gets
    ``{name, description, input_schema}``; Gemini a ``functionDeclarations``
    entry ``{name, description, parameters}`` (no ``parameters`` without args).

    Raises:
        ToolError: The tool name is not valid for the provider, or an
            argument type cannot be expressed (Gemini).
        SignatureError: ``provider`` is unknown.
    """
    provider = _check_provider(provider)
    if not _TOOL_NAME[provider].match(tool.name):
        raise ToolError(
            f"tool name {tool.name!r} is not valid for {provider}; expected letters, digits, '_' or '-' "
            "(at most 64 characters); pass Tool(func, name=...)"
        )
    params = tool.parameters_schema()
    desc = {"description": tool.desc.strip()} if tool.desc else {}
    if provider == "anthropic":
        return {"name": tool.name, **desc, "input_schema": params}
    if provider == "gemini":
        if not params["properties"]:
            return {"name": tool.name, **desc}
        try:
            return {"name": tool.name, **desc, "parameters": rewrite_schema(params, GEMINI)}
        except UnsupportedSchema as exc:
            arg = exc.path[1] if len(exc.path) > 1 else "?"
            raise ToolError(
                f"tool {tool.name!r}: argument {arg!r} cannot be declared to gemini: {exc.why}", field=arg
            ) from None
    strict = all(k in params["required"] for k in params["properties"])
    parameters = params
    if strict:
        try:
            parameters = rewrite_schema(params, OPENAI_STRICT)
        except UnsupportedSchema:
            strict = False
    if not strict:
        parameters = {**params, "additionalProperties": False}
    function = {"name": tool.name, **desc, "parameters": parameters, "strict": strict}
    return {"type": "function", "function": function}


def _check_provider(provider: object) -> str:
    name = provider.lower() if isinstance(provider, str) else None
    if name is None or name not in PROVIDERS:
        raise SignatureError(f"unknown schema provider {provider!r}; expected one of {list(PROVIDERS)}")
    return name


@functools.lru_cache(maxsize=1024)
def _cached_output_schema(signature: type[Signature], provider: str) -> dict[str, Any]:
    base = _base_schema(signature)
    try:
        return rewrite_schema(base, _PROFILES[provider])
    except UnsupportedSchema as exc:
        field = _field_at(base, exc.path)
        raise SignatureError(
            f"output {field!r} of signature {signature.signature!r} cannot be expressed in the {provider} "
            f"schema subset: {exc.why}",
            field=field,
        ) from None


def _field_at(base: dict[str, Any], path: tuple[str, ...]) -> str:
    """Return the output field a failing ``path`` belongs to (``"?"`` if none).

    A failure inside ``$defs`` (OpenAI keeps definitions) belongs to the first
    field whose schema reaches that definition, directly or through others.
    """
    if len(path) > 1 and path[0] == "properties":
        return path[1]
    if len(path) < 2 or path[0] != "$defs":
        return "?"
    defs = base.get("$defs", {})
    reaching, grew = {path[1]}, True
    while grew:  # every definition that refers, at any depth, to the failing one
        refs = {n for n, d in defs.items() if any(_refers(d, r) for r in reaching)}
        grew = not refs <= reaching
        reaching |= refs
    props = base.get("properties", {})
    return next((n for n, p in props.items() if any(_refers(p, r) for r in reaching)), "?")


def _refers(schema: Any, name: str) -> bool:
    if isinstance(schema, dict):
        return schema.get("$ref") == f"#/$defs/{name}" or any(_refers(v, name) for v in schema.values())
    if isinstance(schema, list):
        return any(_refers(v, name) for v in schema)
    return False


def _base_schema(signature: type[Signature]) -> dict[str, Any]:
    """Return pydantic's JSON schema of the output fields (desc → description)."""
    fields: dict[str, Any] = {}
    for name, info in signature.output_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        desc = extra.get("desc")
        kwargs: dict[str, Any] = {}
        if isinstance(desc, str) and desc and desc != f"${{{name}}}":
            kwargs["description"] = desc
        if info.default_factory is not None:
            kwargs["default_factory"] = info.default_factory
        elif not info.is_required():
            kwargs["default"] = info.default
        tp = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        fields[name] = (tp, pydantic.Field(**kwargs))
    config = pydantic.ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())
    try:
        model = pydantic.create_model(signature.__name__, __config__=config, **fields)
        schema: dict[str, Any] = model.model_json_schema()
    except Exception as exc:
        bad = next((n for n, (tp, _) in fields.items() if not _has_schema(tp)), "?")
        raise SignatureError(
            f"output {bad!r} of signature {signature.signature!r} has no JSON schema: {exc}", field=bad
        ) from None
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
        prop.pop(FIELD_TYPE_KEY, None)
    schema.pop("description", None)
    return schema


def _has_schema(tp: Any) -> bool:
    try:
        pydantic.TypeAdapter(tp).json_schema()
    except Exception:
        return False
    return True
