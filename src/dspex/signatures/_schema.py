"""JSON Schema for a signature's outputs (and for tools), per provider subset.

pydantic gives the full JSON Schema of the output fields; each provider accepts
a different subset, so one rewriting pass per provider makes it conform:

- ``openai`` — Structured Outputs with ``strict: true``: the root is an object;
  every object has ``additionalProperties: false`` and lists *all* its
  properties in ``required`` (``Optional[X]`` is ``anyOf`` with ``null``, so
  the LM may answer null; a field that merely has a default must be produced); ``$defs``/``$ref`` stay (a ``$ref`` with siblings is inlined);
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

from ..errors import SignatureError, ToolError
from ._fields import FIELD_TYPE_KEY

if TYPE_CHECKING:
    from ._signature import Signature
    from ._tool import Tool

__all__ = ["PROVIDERS", "output_json_schema", "tool_json_schema"]

PROVIDERS = ("openai", "anthropic", "gemini")

_OPENAI_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
_OPENAI_DROP = frozenset({
    "default", "examples", "minLength", "maxLength", "patternProperties", "unevaluatedProperties",
    "propertyNames", "minProperties", "maxProperties", "unevaluatedItems", "contains", "minContains",
    "maxContains", "uniqueItems", "discriminator", "readOnly", "writeOnly", "deprecated",
})
_GEMINI_KEEP = frozenset({
    "type", "format", "description", "nullable", "enum", "items", "minItems", "maxItems",
    "properties", "required", "propertyOrdering", "anyOf", "minimum", "maximum",
})
_GEMINI_FORMATS = {"NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}, "STRING": {"date-time"}}
_TOOL_NAME = {
    "openai": re.compile(r"^[a-zA-Z0-9_-]{1,64}$"),
    "anthropic": re.compile(r"^[a-zA-Z0-9_-]{1,64}$"),
    "gemini": re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]{0,63}$"),
}
_MAX_DEPTH = 64


class _Unsupported(Exception):
    """A schema part the provider cannot express; ``path`` says where."""

    def __init__(self, why: str, path: tuple[str, ...]) -> None:
        super().__init__(why)
        self.why = why
        self.path = path


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
            return {"name": tool.name, **desc, "parameters": _gemini(params, {}, ())}
        except _Unsupported as exc:
            arg = exc.path[1] if len(exc.path) > 1 else "?"
            raise ToolError(
                f"tool {tool.name!r}: argument {arg!r} cannot be declared to gemini: {exc.why}", field=arg
            ) from None
    strict = all(k in params["required"] for k in params["properties"])
    parameters = params
    if strict:
        try:
            parameters = _openai(copy.deepcopy(params), params, ())
        except _Unsupported:
            strict = False
    if not strict:
        parameters = {**params, "additionalProperties": False}
    function = {"name": tool.name, **desc, "parameters": parameters, "strict": strict}
    return {"type": "function", "function": function}


def _check_provider(provider: str) -> str:
    name = provider.lower() if isinstance(provider, str) else provider
    if name not in PROVIDERS:
        raise SignatureError(f"unknown schema provider {provider!r}; expected one of {list(PROVIDERS)}")
    return name  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=1024)
def _cached_output_schema(signature: type[Signature], provider: str) -> dict[str, Any]:
    base = _base_schema(signature)
    try:
        if provider == "openai":
            return _openai(copy.deepcopy(base), base, ())
        if provider == "gemini":
            return _gemini(base, base.get("$defs", {}), ())
        return _anthropic(base)
    except _Unsupported as exc:
        field = exc.path[1] if len(exc.path) > 1 and exc.path[0] == "properties" else "?"
        raise SignatureError(
            f"output {field!r} of signature {signature.signature!r} cannot be expressed in the {provider} "
            f"schema subset: {exc.why}",
            field=field,
        ) from None


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
        model = pydantic.create_model(signature.__name__, __config__=config, **fields)  # type: ignore[call-overload]
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


def _anthropic(base: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.pop("title", None)
    out.setdefault("required", [])
    return out


def _resolve(root: dict[str, Any], ref: str, path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise _Unsupported(f"unresolvable reference {ref!r}", path)
    return node


def _openai(node: dict[str, Any], root: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """Rewrite ``node`` in place into OpenAI's strict subset and return it."""
    if len(path) > _MAX_DEPTH:
        raise _Unsupported("nested too deeply", path)
    for key in _OPENAI_DROP:
        node.pop(key, None)
    if "format" in node and node["format"] not in _OPENAI_FORMATS:
        node.pop("format")
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf") + node.get("anyOf", [])
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        node.update({k: v for k, v in node.pop("allOf")[0].items() if k not in node})
    if "allOf" in node or "not" in node or "if" in node or "prefixItems" in node:
        raise _Unsupported("allOf/not/if/tuple schemas are not supported in strict mode", path)
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        node.pop("$ref")
        node.update({k: v for k, v in copy.deepcopy(_resolve(root, ref, path)).items() if k not in node})
    for name, sub in list(node.get("$defs", {}).items()):
        node["$defs"][name] = _openai(sub, root, (*path, "$defs", name))
    if "$ref" in node:
        return node
    if not node.get("type") and not node.get("anyOf") and "enum" not in node:
        raise _Unsupported("an untyped value (Any) has no strict schema; use a concrete type", path)
    _openai_object(node, root, path)
    if isinstance(node.get("items"), dict):
        node["items"] = _openai(node["items"], root, (*path, "items"))
    if isinstance(node.get("anyOf"), list):
        node["anyOf"] = [_openai(s, root, (*path, "anyOf", str(i))) for i, s in enumerate(node["anyOf"])]
    return node


def _openai_object(node: dict[str, Any], root: dict[str, Any], path: tuple[str, ...]) -> None:
    if node.get("type") != "object":
        return
    props = node.get("properties")
    if not isinstance(props, dict) or (not props and node.get("additionalProperties") not in (None, False)):
        raise _Unsupported("an open mapping (dict[...]) has no declared properties; use a pydantic model", path)
    for name, sub in props.items():
        props[name] = _openai(sub, root, (*path, "properties", name))
    node["required"] = list(props)  # Optional[X] already allows null; a default alone does not
    node["additionalProperties"] = False


def _gemini(node: dict[str, Any], defs: dict[str, Any], path: tuple[str, ...], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return a new schema for ``node`` in Gemini's OpenAPI subset (refs inlined)."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.split("/")[-1]
        if name in seen:
            raise _Unsupported(f"recursive model {name!r} cannot be inlined (gemini has no $ref)", path)
        if name not in defs:
            raise _Unsupported(f"unresolvable reference {ref!r}", path)
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _gemini(merged, defs, path, (*seen, name))
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        return _gemini({**node.pop("allOf")[0], **node}, defs, path, seen)
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        return _gemini_union(node, variants, defs, path, seen)
    tp = node.get("type")
    nullable = False
    if isinstance(tp, list):
        nullable = "null" in tp
        rest = [t for t in tp if t != "null"]
        if len(rest) != 1:
            raise _Unsupported(f"a multi-type {tp} cannot be expressed", path)
        tp = rest[0]
    out = _gemini_typed(node, tp, defs, path, seen)
    if nullable:
        out["nullable"] = True
    return {k: v for k, v in out.items() if k in _GEMINI_KEEP}


def _gemini_union(
    node: dict[str, Any], variants: list[Any], defs: dict[str, Any], path: tuple[str, ...], seen: tuple[str, ...]
) -> dict[str, Any]:
    rest = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
    extra = {k: v for k, v in node.items() if k in ("description",)}
    if len(rest) == 1:
        out = {**_gemini(rest[0], defs, path, seen), **extra}
    else:
        out = {**extra, "anyOf": [_gemini(v, defs, (*path, "anyOf", str(i)), seen) for i, v in enumerate(rest)]}
    if len(rest) != len(variants):
        out["nullable"] = True
    return out


def _gemini_typed(
    node: dict[str, Any], tp: Any, defs: dict[str, Any], path: tuple[str, ...], seen: tuple[str, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in node.items() if k in ("description", "minItems", "maxItems",
                                                                   "minimum", "maximum")}
    values = node.get("enum", [node["const"]] if "const" in node else None)
    if values is not None:
        kinds = {type(v) for v in values}
        if kinds <= {bool}:
            return {**out, "type": "BOOLEAN"}
        gtype = "INTEGER" if kinds <= {int} else "NUMBER" if kinds <= {int, float} else "STRING"
        return {**out, "type": gtype, "format": "enum", "enum": [str(v) for v in values]}
    if not isinstance(tp, str) or tp == "null":
        raise _Unsupported("an untyped value (Any) or bare null has no gemini schema; use a concrete type", path)
    gtype = tp.upper()
    out["type"] = gtype
    fmt = node.get("format")
    if fmt in _GEMINI_FORMATS.get(gtype, ()):
        out["format"] = fmt
    if gtype == "ARRAY":
        if isinstance(node.get("items"), dict):
            out["items"] = _gemini(node["items"], defs, (*path, "items"), seen)
        elif "prefixItems" in node:
            raise _Unsupported("tuples cannot be expressed (OpenAPI 3.0 has no prefixItems)", path)
    if gtype == "OBJECT":
        props = node.get("properties")
        if not isinstance(props, dict) or not props:
            raise _Unsupported("an open mapping (dict[...]) has no declared properties; use a pydantic model",
                               path)
        out["properties"] = {n: _gemini(s, defs, (*path, "properties", n), seen) for n, s in props.items()}
        out["required"] = [n for n in node.get("required", []) if n in props]
        out["propertyOrdering"] = list(props)
    return out
