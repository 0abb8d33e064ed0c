"""Coerce LM output text (or already-decoded JSON values) to a field's type.

:func:`parse_value` follows DSPy 3.4.1's ``parse_value`` rules exactly: ``str``
is kept as is; an ``Enum`` matches by value, then by name; a ``Literal``
matches exactly, then after stripping a ``Literal[...]`` wrapper and quotes;
``Optional[str]`` validates directly; anything else goes through
``json_repair.loads``, then ``ast.literal_eval``, then the raw text, and is
validated by a cached ``pydantic.TypeAdapter``. :func:`parse_field` adds the
field's pydantic constraints (``ge``, ``max_length`` …) and turns every failure
into a :class:`~dspex.errors.ParseError` whose message names the field, the
expected type and what was received, short enough to be fed back to the LM.
"""

from __future__ import annotations

import ast
import enum
import threading
import types
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import json_repair
import pydantic
from pydantic import TypeAdapter

from ..errors import ParseError
from ._model import _Model
from ._types import Reasoning

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

__all__ = [
    "annotation_allows_none",
    "annotation_name",
    "coerce_value",
    "describe_failure",
    "parse_field",
    "parse_value",
    "type_adapter",
]

_NONE = type(None)
_MAX_SHOWN = 300
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}
_ADAPTERS_LOCK = threading.Lock()
_ADAPTERS_MAX = 2048


def type_adapter(annotation: Any, metadata: tuple[Any, ...] = ()) -> TypeAdapter[Any]:
    """Return a cached ``TypeAdapter`` for ``annotation`` plus constraint ``metadata``."""
    key = (annotation, metadata)
    try:
        hit = _ADAPTERS.get(key)
    except TypeError:  # an unhashable annotation: build it every time
        return _build_adapter(annotation, metadata)
    if hit is not None:
        return hit
    built = _build_adapter(annotation, metadata)
    with _ADAPTERS_LOCK:
        if len(_ADAPTERS) >= _ADAPTERS_MAX:
            _ADAPTERS.clear()
        return _ADAPTERS.setdefault(key, built)


def _build_adapter(annotation: Any, metadata: tuple[Any, ...]) -> TypeAdapter[Any]:
    target: Any = Annotated[annotation, *metadata] if metadata else annotation
    try:
        return TypeAdapter(target)
    except pydantic.PydanticSchemaGenerationError:
        return TypeAdapter(target, config=pydantic.ConfigDict(arbitrary_types_allowed=True))


def annotation_name(annotation: Any) -> str:
    """Return DSPy's display name of a type: ``list[str]``, ``Literal['a', 'b']`` …"""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is types.UnionType:
        origin = Union
    if origin is None:
        if annotation is Reasoning:
            return "str"
        name = getattr(annotation, "__name__", None)
        return name if isinstance(name, str) else str(annotation)
    if origin is Literal:
        shown = ", ".join(_quote_literal(a) if isinstance(a, str) else annotation_name(a) for a in args)
        return f"{annotation_name(origin)}[{shown}]"
    return f"{annotation_name(origin)}[{', '.join(annotation_name(a) for a in args)}]"


def _quote_literal(text: str) -> str:
    single, double = "'" in text, '"' in text
    if single and not double:
        return f'"{text}"'
    if single and double:
        return "'" + text.replace("'", "\\'") + "'"
    return f"'{text}'"


def annotation_allows_none(annotation: Any) -> bool:
    """Return True if ``annotation`` admits None (``X | None``, ``Optional[X]``)."""
    if annotation is None or annotation is _NONE:
        return True
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return bool(args) and annotation_allows_none(args[0])
    if origin is Union or origin is types.UnionType:
        return any(annotation_allows_none(a) for a in args)
    return False


def _enum_member(enum_cls: type[enum.Enum], identifier: Any) -> enum.Enum:
    for member in enum_cls:
        if member.value == identifier:
            return member
    if isinstance(identifier, str) and identifier in enum_cls.__members__:
        return enum_cls[identifier]
    allowed = "; ".join(str(m.value) for m in enum_cls)
    raise ValueError(f"{identifier!r} is not a valid name or value for the enum {enum_cls.__name__} (one of: {allowed})")


def _loads(text: str) -> Any:
    try:
        return json_repair.loads(text)
    except Exception:  # json_repair is best effort; treat a crash as "no JSON"
        return ""


def _parse(value: Any, annotation: Any) -> Any:
    """DSPy's ``parse_value``; raises ``ValueError`` (incl. ValidationError)."""
    if annotation is str:
        return str(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_member(annotation, value)
    origin = get_origin(annotation)
    if origin is Literal:
        allowed = get_args(annotation)
        if value in allowed:
            return value
        if isinstance(value, str):
            v = value.strip()
            if v.startswith(("Literal[", "str[")) and v.endswith("]"):
                v = v[v.find("[") + 1 : -1]
            if len(v) > 1 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            if v in allowed:
                return v
            value = v
    if not isinstance(value, str):
        return type_adapter(annotation).validate_python(value)
    if origin in (Union, types.UnionType) and _NONE in get_args(annotation) and str in get_args(annotation):
        return type_adapter(annotation).validate_python(value)
    candidate = _loads(value)
    if candidate == "" and value != "":
        try:
            candidate = ast.literal_eval(value)
        except Exception:  # SyntaxError, ValueError, TypeError, RecursionError …
            candidate = value
    try:
        return type_adapter(annotation).validate_python(candidate)
    except pydantic.ValidationError:
        # An ML type (Code …) gets a second chance on the raw text, as DSPy gives its custom types.
        if isinstance(annotation, type) and issubclass(annotation, _Model):
            try:
                return type_adapter(annotation).validate_python(value)
            except pydantic.ValidationError:
                pass
        raise


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def describe_failure(field: str | None, annotation: Any, received: Any, exc: BaseException) -> str:
    """Return a one-line message naming the field, expected type and received value."""
    if isinstance(exc, pydantic.ValidationError):
        reasons = "; ".join(
            (f"at {'.'.join(map(str, e['loc']))}: " if e.get("loc") else "") + e["msg"] for e in exc.errors()
        )
    else:
        reasons = str(exc)
    where = f"field `{field}`" if field else "value"
    return f"{where}: expected {annotation_name(annotation)}, got {_shown(received)} ({reasons})"


def _constrained(value: Any, annotation: Any, field_info: FieldInfo | None) -> Any:
    metadata = tuple(field_info.metadata) if field_info is not None else ()
    if not metadata:
        return value
    return type_adapter(annotation, metadata).validate_python(value)


def parse_value(text: Any, annotation: Any, *, field: str | None = None) -> Any:
    """Parse LM output ``text`` into a value of type ``annotation`` (DSPy rules).

    Args:
        text: The field's text (or, as in DSPy, an already-decoded value).
        annotation: The field's type.
        field: The field name, used in the error message.

    Raises:
        ParseError: The text does not coerce; the message names the field,
            the expected type and what was received.
    """
    try:
        return _parse(text, annotation)
    except ValueError as exc:
        raise ParseError(describe_failure(field, annotation, text, exc), field=field) from None


def coerce_value(
    value: Any, annotation: Any, field_info: FieldInfo | None = None, *, field: str | None = None
) -> Any:
    """Coerce an already-structured (JSON-decoded) ``value`` to ``annotation``.

    Strings still go through the text rules of :func:`parse_value`; the
    field's pydantic constraints (``field_info.metadata``) are enforced.

    Raises:
        ParseError: The value does not coerce or violates a constraint.
    """
    try:
        return _constrained(_parse(value, annotation), annotation, field_info)
    except ValueError as exc:
        raise ParseError(describe_failure(field, annotation, value, exc), field=field) from None


def parse_field(name: str, value: Any, field_info: FieldInfo) -> Any:
    """Coerce the raw ``value`` of output field ``name`` and check its constraints.

    Raises:
        ParseError: As :func:`coerce_value`, with ``field=name``.
    """
    return coerce_value(value, field_info.annotation, field_info, field=name)
