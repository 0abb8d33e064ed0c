"""Prompt-building pieces shared by the chat and JSON adapters (DSPy 3.4.1 format).

Field descriptions (``1. `name` (type): desc``), the type notes of the field
structure block (``# note: the value you produce ...``), JSON schemas with the
``type`` key first, value rendering (``«»`` numbered lists for str-annotated
lists, compact JSON for containers, ``str()`` otherwise), demo normalisation,
and the defaults DSPy applies to missing outputs. Byte-for-byte compatibility
with DSPy is the point of every function here.
"""

from __future__ import annotations

import enum
import inspect
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from pydantic import TypeAdapter

from ..errors import InputError
from ..signatures._code import Code
from ..signatures._coerce import annotation_allows_none, annotation_name, type_adapter
from ..signatures._fields import field_kind
from ..signatures._model import _Model
from ..signatures._types import History, Reasoning

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

__all__ = [
    "apply_output_defaults",
    "custom_types",
    "field_descriptions",
    "format_field_value",
    "history_field",
    "json_schema",
    "serialize_for_json",
    "split_demos",
    "to_mapping",
    "type_note",
]

_TYPE_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def serialize_for_json(value: Any) -> Any:
    """Return ``value`` as JSON-ready data (pydantic ``mode="json"``, str fallback)."""
    tp = type(value)
    try:
        adapter = _TYPE_ADAPTERS.get(tp)
        if adapter is None:
            adapter = _TYPE_ADAPTERS.setdefault(tp, TypeAdapter(tp))
        return adapter.dump_python(value, mode="json", fallback=str)
    except Exception:  # pydantic cannot handle the type at all: DSPy uses str()
        return str(value)


def _format_blob(blob: Any) -> str:
    text: str = blob if isinstance(blob, str) else str(blob)  # DSPy raises TypeError here
    if "\n" not in text and "«" not in text and "»" not in text:
        return f"«{text}»"
    return "«««\n    " + text.replace("\n", "\n    ") + "\n»»»"


def format_field_value(field: FieldInfo, value: Any) -> str:
    """Render one field value: numbered ``«»`` list, compact JSON, or ``str()``."""
    if type(value) is str:  # the common case; what serialize_for_json + str() would give
        return value
    if isinstance(value, list) and field.annotation is str:
        if not value:
            return "N/A"
        if len(value) == 1:
            return _format_blob(value[0])
        return "\n".join(f"[{i + 1}] {_format_blob(item)}" for i, item in enumerate(value))
    data = serialize_for_json(value)
    if isinstance(data, dict | list):
        return json.dumps(data, ensure_ascii=False)
    return str(data)


def _type_first(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _type_first(v) for k, v in sorted(node.items(), key=lambda kv: (kv[0] != "type", kv[0]))}
    if isinstance(node, list):
        return [_type_first(v) for v in node]
    return node


def json_schema(annotation: Any) -> dict[str, Any]:
    """Return the pydantic JSON schema of ``annotation``, ``type`` keys first."""
    schema: dict[str, Any] = _type_first(type_adapter(annotation).json_schema())
    return schema


def _is_subclass(tp: Any, base: type) -> bool:
    return inspect.isclass(tp) and issubclass(tp, base)


def type_note(name: str, field: FieldInfo) -> str:
    """Return ``{name}`` plus the 8-space ``# note:`` line DSPy adds for non-str outputs."""
    tp = field.annotation
    if field_kind(field) == "input" or tp is str or tp is Reasoning:
        desc = ""
    elif tp is bool:
        desc = "must be True or False"
    elif tp in (int, float):
        desc = f"must be a single {tp.__name__} value"
    elif _is_subclass(tp, enum.Enum):
        desc = "must be one of: " + "; ".join(str(m.value) for m in tp)  # type: ignore[union-attr]
    elif get_origin(tp) is Literal:
        desc = "must exactly match (no extra characters) one of: " + "; ".join(str(a) for a in tp.__args__)  # type: ignore[union-attr]
    elif _is_subclass(tp, Code) and tp.description():  # type: ignore[union-attr]
        desc = ""  # its type description already says how to write it (DSPy skips the schema too)
    else:
        desc = "must adhere to the JSON schema: " + json.dumps(json_schema(tp), ensure_ascii=False)
    note = " " * 8 + f"# note: the value you produce {desc}" if desc else ""
    return f"{{{name}}}{note}"


def custom_types(annotation: Any) -> list[type]:
    """Return the custom (model-based ML) types inside ``annotation``, in order, repeats kept.

    DSPy's ``Type.extract_custom_type_from_annotation``: ``ToolCalls`` is
    found in ``ToolCalls``, ``Optional[ToolCalls]`` and ``dict[str, ToolCalls]``.
    """
    if inspect.isclass(annotation) and get_origin(annotation) is None and issubclass(annotation, _Model):
        return [annotation]
    if get_origin(annotation) is None:
        return []
    return [tp for arg in get_args(annotation) for tp in custom_types(arg)]


def field_descriptions(fields: Mapping[str, FieldInfo]) -> str:
    """Return the numbered ``1. `name` (type): desc`` lines for ``fields``.

    A custom type with a description adds DSPy's
    ``\n    Type description of {Type}: {text}`` line to its field's desc.
    """
    lines = []
    for i, (name, field) in enumerate(fields.items()):
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        desc = extra.get("desc", f"${{{name}}}")
        desc = "" if desc == f"${{{name}}}" else str(desc)
        for tp in custom_types(field.annotation):
            describe = getattr(tp, "description", None)
            text = describe() if callable(describe) else ""
            if text:
                desc += f"\n    Type description of {annotation_name(tp)}: {text}"
        line = f"{i + 1}. `{name}` ({annotation_name(field.annotation)}): {desc}"
        if extra.get("constraints"):
            line += f"\nConstraints: {extra['constraints']}"
        lines.append(line)
    return "\n".join(lines).strip()


def to_mapping(demo: Any) -> dict[str, Any]:
    """Return a demo (dict, mapping-like ``Example``, or ``.toDict()`` object) as a dict.

    Raises:
        InputError: ``demo`` offers neither mapping access nor ``toDict()``.
    """
    if isinstance(demo, Mapping):
        return dict(demo)
    keys = getattr(demo, "keys", None)
    if callable(keys) and hasattr(demo, "__getitem__"):
        return {k: demo[k] for k in keys()}
    to_dict = getattr(demo, "toDict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise InputError(
        f"demo {demo!r} must be a dict, a mapping-like Example or an object with .toDict(), "
        f"got {type(demo).__name__}"
    )


def split_demos(fields: Mapping[str, FieldInfo], inputs: Mapping[str, Any], outputs: Mapping[str, Any],
                demos: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(incomplete, complete)`` demos; demos with no input or no output are dropped."""
    complete, incomplete = [], []
    for raw in demos:
        demo = to_mapping(raw)
        if all(demo.get(k) is not None for k in fields):
            complete.append(demo)
        elif any(k in demo for k in inputs) and any(k in demo for k in outputs):
            incomplete.append(demo)
    return incomplete, complete


def history_field(inputs: Mapping[str, FieldInfo]) -> str | None:
    """Return the name of the first ``History``-typed input field, if any."""
    for name, field in inputs.items():
        if field.annotation is History:
            return name
    return None


def apply_output_defaults(outputs: Mapping[str, FieldInfo], parsed: Mapping[str, Any]) -> dict[str, Any]:
    """Fill missing outputs with their default (or None if Optional), in signature order."""
    done: dict[str, Any] = {}
    for name, field in outputs.items():
        if name in parsed:
            done[name] = parsed[name]
        elif not field.is_required():
            done[name] = field.get_default(call_default_factory=True)
        elif annotation_allows_none(field.annotation):
            done[name] = None
    return done
