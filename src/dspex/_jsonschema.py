"""One JSON Schema rewriter, driven by a per-provider :class:`SchemaProfile`.

pydantic produces full JSON Schema (draft 2020-12); every LM provider accepts a
different subset of it. :func:`rewrite_schema` walks a schema once and applies
what the profile says about the provider: which keywords and formats it
accepts, whether ``$ref``/``$defs`` stay or are inlined, whether every object
must be closed with all properties required (OpenAI strict mode), and how
null, unions, enums, ``const`` and types are spelled (Gemini's OpenAPI 3.0
subset). The profiles of the providers dspex talks to are module constants:

- :data:`OPENAI_STRICT` — ``output_json_schema(..., "openai")`` and strict tool
  parameters: Structured Outputs' subset, unsupported parts raise.
- :data:`OPENAI_SDK_STRICT` — what the OpenAI SDK's ``to_strict_json_schema``
  does (DSPy's path through LiteLLM): objects closed, ``None`` defaults
  dropped, every other keyword kept.
- :data:`ANTHROPIC` — a tool ``input_schema``: plain JSON Schema.
- :data:`GEMINI` — ``responseSchema`` / ``functionDeclarations`` built by
  dspex: the documented OpenAPI subset, unsupported parts raise.
- :data:`GEMINI_WIRE` — the best-effort conversion the Gemini provider applies
  to whatever JSON Schema a caller passes in ``response_format`` or ``tools``.

Within a node, keys keep their source order; a ``$ref`` with siblings keeps
the siblings first and appends the target's other keys (as the OpenAI SDK
does), and keywords a rewrite adds go last. The input is never mutated.
What a strict profile cannot express raises :class:`UnsupportedSchema`, whose
``path`` says where; callers turn it into the typed error their API promises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ANTHROPIC",
    "GEMINI",
    "GEMINI_WIRE",
    "OPENAI_SDK_STRICT",
    "OPENAI_STRICT",
    "SchemaProfile",
    "UnsupportedSchema",
    "rewrite_schema",
]

_MAX_DEPTH = 64


class UnsupportedSchema(ValueError):
    """A part of a schema the profile's provider cannot express.

    Internal: every caller turns it into the typed error its API promises
    (``SignatureError``, ``ToolError``, ``InputError``), naming the field.

    Attributes:
        why: What cannot be expressed and what to use instead.
        path: Keys from the root to the offending node, e.g.
            ``("properties", "answer", "items")``.
    """

    def __init__(self, why: str, path: tuple[str, ...]) -> None:
        super().__init__(why)
        self.why = why
        self.path = path


@dataclass(frozen=True, slots=True)
class SchemaProfile:
    """What one provider accepts of JSON Schema, as data for :func:`rewrite_schema`.

    Attributes:
        name: The provider's name, used in error messages.
        refs: ``"keep"`` leaves ``$ref``/``$defs`` as they are;
            ``"siblings"`` inlines a ``$ref`` that has sibling keywords
            (OpenAI cannot read those); ``"inline"`` inlines every ``$ref``
            and drops ``$defs`` (recursive models then cannot be expressed).
        keywords: The keywords kept (an allow-list), or None for all.
        drop: Keywords removed everywhere.
        drop_at_root: Keywords removed from the root node only.
        formats: JSON type (lower case, ``"*"`` for any) → the ``format``
            values kept; None keeps every format.
        close_objects: Every object gets ``additionalProperties: false`` and
            lists all its properties in ``required`` (``Optional[X]`` still
            admits null through its ``anyOf``).
        empty_objects: An object may declare no properties (when it is
            closed); otherwise that is an open mapping.
        nullable_keyword: Express null as ``nullable: true`` (OpenAPI),
            removing ``null`` from unions and type lists.
        upper_types: Spell types in upper case (``"STRING"``).
        const_as_enum: Turn ``const: x`` into ``enum: [x]``.
        one_of_as_any_of: Turn ``oneOf`` into ``anyOf``.
        enums_as_strings: Enum values become strings with ``format: "enum"``
            and the type they share (a boolean enum becomes ``BOOLEAN``).
        property_ordering: Add ``propertyOrdering`` (declaration order).
        drop_null_default: Remove ``default: null``.
        open_mappings: ``"raise"`` for an object without declared properties
            (``dict[str, X]``), which closed-object providers cannot express,
            or ``"keep"`` it.
        required_lists: Where an object without ``required`` gets an empty
            one: ``"root"`` (Anthropic), ``"every"`` object, or ``"as_is"``.
        strict: Raise :class:`UnsupportedSchema` for what cannot be
            expressed (untyped values, multi-type values and the
            ``unsupported`` keywords); otherwise keep a best effort.
        unsupported: Keywords that cannot be expressed (strict profiles).
    """

    name: str
    refs: Literal["keep", "siblings", "inline"] = "keep"
    keywords: frozenset[str] | None = None
    drop: frozenset[str] = frozenset()
    drop_at_root: frozenset[str] = frozenset()
    formats: Mapping[str, frozenset[str]] | None = None
    close_objects: bool = False
    empty_objects: bool = True
    nullable_keyword: bool = False
    upper_types: bool = False
    const_as_enum: bool = False
    one_of_as_any_of: bool = False
    enums_as_strings: bool = False
    property_ordering: bool = False
    drop_null_default: bool = False
    open_mappings: Literal["raise", "keep"] = "keep"
    required_lists: Literal["as_is", "root", "every"] = "as_is"
    strict: bool = False
    unsupported: frozenset[str] = frozenset()


_OPENAI_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})

OPENAI_STRICT = SchemaProfile(
    name="openai",
    refs="siblings",
    drop=frozenset({
        "default", "examples", "minLength", "maxLength", "patternProperties", "unevaluatedProperties",
        "propertyNames", "minProperties", "maxProperties", "unevaluatedItems", "contains", "minContains",
        "maxContains", "uniqueItems", "discriminator", "readOnly", "writeOnly", "deprecated",
    }),
    formats={"*": _OPENAI_FORMATS},
    close_objects=True,
    const_as_enum=True,
    one_of_as_any_of=True,
    open_mappings="raise",
    strict=True,
    unsupported=frozenset({"allOf", "not", "if", "prefixItems"}),
)
"""OpenAI Structured Outputs with ``strict: true`` (dspex's own output schemas)."""

OPENAI_SDK_STRICT = SchemaProfile(
    name="openai", refs="siblings", close_objects=True, drop_null_default=True, open_mappings="raise"
)
"""The OpenAI SDK's ``to_strict_json_schema``: closed objects, other keywords as they are."""

ANTHROPIC = SchemaProfile(name="anthropic", drop_at_root=frozenset({"title"}), required_lists="root")
"""A tool ``input_schema`` (Anthropic): plain JSON Schema with an object root."""

_GEMINI_KEYWORDS = frozenset({
    "type", "format", "description", "nullable", "enum", "items", "minItems", "maxItems",
    "properties", "required", "propertyOrdering", "anyOf", "minimum", "maximum",
})

GEMINI = SchemaProfile(
    name="gemini",
    refs="inline",
    keywords=_GEMINI_KEYWORDS,
    formats={"number": frozenset({"float", "double"}), "integer": frozenset({"int32", "int64"}),
             "string": frozenset({"date-time"})},
    empty_objects=False,
    nullable_keyword=True,
    upper_types=True,
    const_as_enum=True,
    one_of_as_any_of=True,
    enums_as_strings=True,
    property_ordering=True,
    open_mappings="raise",
    required_lists="every",
    strict=True,
    unsupported=frozenset({"prefixItems"}),
)
"""Gemini ``responseSchema`` and function parameters built by dspex (the documented subset)."""

GEMINI_WIRE = SchemaProfile(
    name="gemini",
    refs="inline",
    keywords=_GEMINI_KEYWORDS | {"minLength", "maxLength", "pattern", "minProperties", "maxProperties"},
    nullable_keyword=True,
)
"""Gemini, best effort, for schemas callers pass to the provider as they are."""


def rewrite_schema(schema: Mapping[str, Any], profile: SchemaProfile) -> dict[str, Any]:
    """Return ``schema`` rewritten into ``profile``'s subset of JSON Schema.

    Args:
        schema: A JSON Schema object (pydantic's ``model_json_schema()`` or
            any caller's); its ``$defs``/``definitions`` resolve ``$ref``.
        profile: What the target provider accepts.

    Returns:
        A new dict; ``schema`` is not mutated and shares nothing with it.

    Raises:
        UnsupportedSchema: A part cannot be expressed: for every profile a
            recursive model when references are inlined, a ``$ref`` that
            does not resolve, or nesting deeper than 32 levels; open
            mappings where ``open_mappings="raise"``; and for strict
            profiles untyped values, multi-type values and the profile's
            ``unsupported`` keywords.
    """
    walk = _Walk(profile, schema)
    out: dict[str, Any] = walk.node(dict(schema), (), ())
    for key in profile.drop_at_root:
        out.pop(key, None)
    if profile.required_lists == "root":
        out.setdefault("required", [])
    return out


class _Walk:
    """One rewrite: the profile and the root whose definitions resolve references."""

    def __init__(self, profile: SchemaProfile, root: Mapping[str, Any]) -> None:
        self.p = profile
        self.defs: dict[str, Any] = {**root.get("definitions", {}), **root.get("$defs", {})}
        # Whether _filter has anything to do (the wire profile has not: a hot path per request).
        self.filters = bool(
            profile.drop or profile.drop_null_default or profile.formats is not None or profile.const_as_enum
            or profile.one_of_as_any_of or (profile.strict and profile.unsupported)
        )

    def node(self, schema: Any, path: tuple[str, ...], seen: tuple[str, ...]) -> Any:
        """Return the rewritten copy of one schema node (non-dicts are copied as they are)."""
        if not isinstance(schema, dict):
            return _copy(schema)
        if len(path) > _MAX_DEPTH:
            raise UnsupportedSchema("nested too deeply", path)
        node = dict(schema)
        if "$ref" in node or "allOf" in node:
            node, seen = self._merge_refs(node, path, seen)
            if "$ref" in node:
                return _copy(node)  # a reference into the kept $defs
        if self.filters:
            self._filter(node, path)
        # Drop what the profile does not accept before walking it, and copy what will not be
        # rewritten (the output shares nothing with the input).
        keep = self.p.keywords
        node = {
            k: v if k in _CHILDREN or not isinstance(v, dict | list) else _copy(v)
            for k, v in node.items()
            if keep is None or k in keep
        }
        nullable = self.p.nullable_keyword and self._drop_null(node, path)
        if not _CHILDREN.isdisjoint(node):
            self._children(node, path, seen)
        variants = node.get("anyOf")
        if self.p.nullable_keyword and isinstance(variants, list) and len(variants) == 1:
            # Optional[X]: X (rewritten already) merges into the node, whose own keys win.
            node = _merged({k: v for k, v in node.items() if k != "anyOf"}, variants[0])
        else:
            self._typed(node, path)
        if nullable:
            node["nullable"] = True
        return node

    def _typed(self, node: dict[str, Any], path: tuple[str, ...]) -> None:
        """Apply the object, enum and type rules to a node whose children are rewritten."""
        p = self.p
        if node.get("type") == "object" or isinstance(node.get("properties"), dict):
            self._object(node, path)
        if p.enums_as_strings and "enum" in node:
            _enum_strings(node)
        untyped = not node.get("type") or (p.nullable_keyword and node.get("type") == "null")
        if p.strict and untyped and "anyOf" not in node and "enum" not in node:
            null = " or bare null" if p.nullable_keyword else ""
            raise UnsupportedSchema(
                f"an untyped value (Any){null} has no {p.name} schema; use a concrete type", path
            )
        if p.upper_types and isinstance(node.get("type"), str):
            node["type"] = node["type"].upper()

    def _merge_refs(
        self, node: dict[str, Any], path: tuple[str, ...], seen: tuple[str, ...]
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Inline ``$ref`` (all of them, or those with siblings) and a lone ``allOf``."""
        while True:
            ref = node.get("$ref")
            inline = self.p.refs == "inline" or (self.p.refs == "siblings" and len(node) > 1)
            if isinstance(ref, str) and inline:
                name = ref.rsplit("/", 1)[-1]
                if self.p.refs == "inline" and name in seen:
                    raise UnsupportedSchema(
                        f"recursive model {name!r} cannot be inlined ({self.p.name} has no $ref)", path
                    )
                target = self._resolve(ref, path)
                node = _merged({k: v for k, v in node.items() if k != "$ref"}, target)
                seen = (*seen, name) if self.p.refs == "inline" else seen
                continue
            all_of = node.get("allOf")
            if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
                node = _merged({k: v for k, v in node.items() if k != "allOf"}, all_of[0])
                continue
            return node, seen

    def _resolve(self, ref: str, path: tuple[str, ...]) -> dict[str, Any]:
        target = self.defs.get(ref.rsplit("/", 1)[-1]) if ref.startswith("#/") else None
        if not isinstance(target, dict):
            raise UnsupportedSchema(f"unresolvable reference {ref!r}", path)
        return target

    def _filter(self, node: dict[str, Any], path: tuple[str, ...]) -> None:
        """Drop and convert keywords in place (order kept, conversions appended)."""
        p = self.p
        for key in p.drop:
            node.pop(key, None)
        if p.drop_null_default and "default" in node and node["default"] is None:
            del node["default"]
        if p.formats is not None and "format" in node:
            kind = node.get("type")
            if isinstance(kind, list):  # ["string", "null"]: the format belongs to the non-null type
                kind = next((k for k in kind if k != "null"), None)
            allowed = p.formats.get(kind, p.formats.get("*")) if isinstance(kind, str) else p.formats.get("*")
            if node["format"] not in (allowed or ()):
                del node["format"]
        if p.const_as_enum and "const" in node:
            node["enum"] = [node.pop("const")]
        if p.one_of_as_any_of and "oneOf" in node:
            node["anyOf"] = node.pop("oneOf") + node.get("anyOf", [])
        if p.strict:
            bad = sorted(k for k in p.unsupported if k in node)
            if bad:
                raise UnsupportedSchema(_UNSUPPORTED.get(bad[0], f"{bad[0]} cannot be expressed"), path)

    def _children(self, node: dict[str, Any], path: tuple[str, ...], seen: tuple[str, ...]) -> None:
        """Rewrite the sub-schemas in place: definitions, properties, items, unions."""
        for key in ("$defs", "definitions"):
            if isinstance(node.get(key), dict):
                if self.p.refs == "inline":
                    del node[key]
                else:
                    node[key] = {n: self.node(s, (*path, key, n), seen) for n, s in node[key].items()}
        if isinstance(node.get("properties"), dict):
            node["properties"] = {
                n: self.node(s, (*path, "properties", n), seen) for n, s in node["properties"].items()
            }
        if "items" in node:  # a schema, or (before draft 2020-12) a list of them
            node["items"] = self.node(node["items"], (*path, "items"), seen)
        for key in ("anyOf", "oneOf", "allOf"):
            if isinstance(node.get(key), list):
                node[key] = [self.node(s, (*path, key, str(i)), seen) for i, s in enumerate(node[key])]

    def _drop_null(self, node: dict[str, Any], path: tuple[str, ...]) -> bool:
        """Remove ``null`` from a type list or union (before rewriting it); return whether it was there."""
        tp = node.get("type")
        if isinstance(tp, list):
            kinds = [t for t in tp if t != "null"]
            if len(kinds) != 1 and self.p.strict:
                raise UnsupportedSchema(f"a multi-type {tp} cannot be expressed", path)
            node["type"] = kinds[0] if kinds else "string"
            return len(kinds) < len(tp)
        variants = node.get("anyOf")
        if not isinstance(variants, list):
            return False
        node["anyOf"] = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
        return len(node["anyOf"]) < len(variants)

    def _object(self, node: dict[str, Any], path: tuple[str, ...]) -> None:
        """Check that an object declares its properties; close it and order it as the profile says."""
        p = self.p
        props = node.get("properties")
        declared = isinstance(props, dict) and (props or (p.empty_objects and node.get("additionalProperties") in (None, False)))
        if not declared:
            if p.open_mappings == "raise":
                raise UnsupportedSchema(
                    "an open mapping (dict[...]) has no declared properties; use a pydantic model", path
                )
            return
        assert isinstance(props, dict)
        if p.close_objects:
            node["required"] = list(props)  # Optional[X] already allows null; a default alone does not
            node["additionalProperties"] = False
        elif isinstance(node.get("required"), list):
            node["required"] = [n for n in node["required"] if n in props]
        elif p.required_lists == "every":
            node["required"] = []
        if p.property_ordering:
            node["propertyOrdering"] = list(props)


_UNSUPPORTED = {
    "prefixItems": "tuples cannot be expressed (use a list or a pydantic model)",
    "allOf": "allOf schemas cannot be expressed",
    "not": "'not' schemas cannot be expressed",
    "if": "conditional (if/then) schemas cannot be expressed",
}


_CHILDREN = frozenset({"properties", "items", "anyOf", "oneOf", "allOf", "$defs", "definitions"})


def _merged(node: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Return ``node`` with ``target``'s keys it lacks appended (``node``'s keys win; values shared)."""
    return {**node, **{k: v for k, v in target.items() if k not in node}}


def _enum_strings(node: dict[str, Any]) -> None:
    values = node["enum"]
    kinds = {type(v) for v in values}
    if kinds <= {bool}:
        del node["enum"]
        node["type"] = "boolean"
        node.pop("format", None)
        return
    node["type"] = "integer" if kinds <= {int} else "number" if kinds <= {int, float} else "string"
    node["format"] = "enum"
    node["enum"] = [str(v) for v in values]


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
