"""Build signature classes from field dicts or strings, with a bounded string cache.

Every function takes the class to derive from (``Signature``) as its first
argument, so this module sits below ``_signature``: ``Signature("a -> b")``
(the metaclass) and pickling call :func:`make_class` with ``Signature``, and
``_make`` wraps these functions into the public ``make_signature``.

String signatures are cached: the same base, string, instructions, name and
``types`` return the *same* class object, so building one in a hot loop costs
a dictionary lookup. The cache is an LRU of :data:`CACHE_SIZE` entries;
lookups are lock-free, inserts and evictions take a lock (safe from any thread).
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, create_model
from pydantic.fields import FieldInfo

from ..errors import SignatureError
from ._fields import TYPE_UNDEFINED_KEY, InputField, OutputField, field_kind
from ._parse import base_type_names, parse_fields

__all__ = [
    "CACHE_SIZE",
    "build_class",
    "caller_names",
    "clear_signature_cache",
    "default_instructions",
    "make_class",
    "signature_from_string",
]

T_Model = TypeVar("T_Model", bound=BaseModel)

CACHE_SIZE = 4096
"""How many distinct string signatures the cache keeps (least recently used go first)."""

_cache: OrderedDict[Any, type[Any]] = OrderedDict()
_lock = threading.Lock()


def default_instructions(inputs: Mapping[str, Any] | list[str], outputs: Mapping[str, Any] | list[str]) -> str:
    """Return DSPy's default instructions for these field names."""
    ins = ", ".join(f"`{n}`" for n in inputs)
    outs = ", ".join(f"`{n}`" for n in outputs)
    return f"Given the fields {ins}, produce the fields {outs}."


def clear_signature_cache() -> None:
    """Forget every cached string signature."""
    with _lock:
        _cache.clear()


def build_class(
    base: type[T_Model], name: str, items: Mapping[str, tuple[Any, FieldInfo]], instructions: str | None
) -> type[T_Model]:
    """Create a subclass of ``base`` from ``{field: (type, FieldInfo)}`` (no checks beyond pydantic's).

    The class's ``__module__`` is ``base``'s, so built classes look alike
    wherever they were built.

    Raises:
        SignatureError: A field name is not an identifier or pydantic rejects a field.
    """
    for fname in items:
        if not isinstance(fname, str) or not fname.isidentifier():
            raise SignatureError(f"field name {fname!r} is not a valid Python identifier", field=str(fname))
    if not isinstance(instructions, str | None):
        raise SignatureError(f"instructions must be a string or None, got {type(instructions).__name__}")
    inputs = [n for n, v in items.items() if field_kind(v[1]) == "input"]
    outputs = [n for n, v in items.items() if field_kind(v[1]) == "output"]
    doc = instructions if instructions else default_instructions(inputs, outputs)
    try:
        return create_model(name, __base__=base, __doc__=doc, __module__=base.__module__, **items)  # type: ignore[call-overload, no-any-return]  # pydantic's overloads cannot type **items
    except SignatureError:
        raise
    except Exception as exc:  # pydantic rejects odd types or names; say which
        raise SignatureError(f"cannot build signature {name!r} from fields {list(items)}: {exc}") from None


def make_class(
    base: type[T_Model],
    signature: str | Mapping[str, Any],
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    *,
    types: Mapping[str, Any] | None = None,
    custom_types: Mapping[str, Any] | None = None,
    resolve_caller_types: bool = False,
) -> type[T_Model]:
    """Build a subclass of ``base`` from a string or a ``{name: (type, field)}`` dict.

    The arguments after ``base`` are :func:`dspex.make_signature`'s, which
    documents them. For strings the result is cached.

    Raises:
        SignatureError: The string is malformed, a type is unknown, a name
            repeats, or a dict value is not ``(type, InputField/OutputField)``.
    """
    if custom_types:
        types = {**custom_types, **(types or {})}
    if resolve_caller_types and isinstance(signature, str):
        used, known = set(re.findall(r"[A-Za-z_]\w*", signature)), base_type_names()
        found = {k: v for k, v in caller_names().items() if k in used and k not in known}
        types = {**found, **(types or {})}
    if isinstance(signature, str):
        key = _cache_key(base, signature, instructions, signature_name, types)
        if key is not None:
            hit = _cache.get(key)  # single C-level dict operations: atomic under the GIL
            if hit is not None:
                with contextlib.suppress(KeyError):  # evicted by another thread meanwhile
                    _cache.move_to_end(key)
                return hit
        sig = signature_from_string(base, signature, instructions, signature_name, types)
        if key is None:
            return sig
        with _lock:
            sig = _cache.setdefault(key, sig)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return sig
    if isinstance(signature, Mapping):
        return build_class(base, signature_name, _items_from_mapping(signature), instructions)
    raise SignatureError(
        "expected a signature string like 'question -> answer' or a dict of "
        f"{{name: (type, dx.InputField())}}, got {type(signature).__name__} {signature!r}"
    )


def caller_names() -> dict[str, Any]:
    """Return the globals and locals of the first frame outside dspex (locals win).

    Only used when ``resolve_caller_types=True``; the frame reference is
    dropped before returning so no reference cycle keeps it alive.
    """
    frame = sys._getframe(1)
    try:
        while frame is not None and frame.f_globals.get("__name__", "").startswith("dspex"):
            frame = frame.f_back  # type: ignore[assignment]  # typeshed: f_back is FrameType | None
        if frame is None:
            return {}
        names = {k: v for k, v in frame.f_globals.items() if isinstance(v, type)}
        names.update({k: v for k, v in frame.f_locals.items() if isinstance(v, type)})
        return names
    finally:
        del frame


def _cache_key(base: type, text: str, instructions: Any, name: Any, types: Mapping[str, Any] | None) -> Any:
    key = (base, text, instructions, name, tuple(sorted(types.items())) if types else ())
    try:
        hash(key)
    except TypeError:
        return None
    return key


def signature_from_string(
    base: type[T_Model],
    text: str,
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    types: Mapping[str, Any] | None = None,
) -> type[T_Model]:
    """Parse ``text`` and build a new subclass of ``base``, bypassing the cache.

    Raises:
        SignatureError: As for :func:`make_class`.
    """
    names = base_type_names()
    if types:
        if not isinstance(types, Mapping) or not all(isinstance(k, str) for k in types):
            raise SignatureError(f"types= must be a dict of name → type, got {types!r}")
        names.update(types)
    ins, outs = parse_fields(text, names)
    items: dict[str, tuple[Any, FieldInfo]] = {}
    for fname, tp, untyped in ins:
        marker: dict[str, Any] = {TYPE_UNDEFINED_KEY: untyped}
        items[fname] = (tp, InputField(**marker))
    for fname, tp, _ in outs:
        items[fname] = (tp, OutputField())
    sig = build_class(base, signature_name, items, instructions)
    spec = (text, instructions, signature_name, tuple(types.items()) if types else ())
    type.__setattr__(sig, "__dspex_spec__", spec)  # lets pickle rebuild it by value
    return sig


def _items_from_mapping(fields: Mapping[str, Any]) -> dict[str, tuple[Any, FieldInfo]]:
    items: dict[str, tuple[Any, FieldInfo]] = {}
    for fname, value in fields.items():
        if isinstance(value, FieldInfo):
            value = (value.annotation, value)
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], FieldInfo)):
            raise SignatureError(
                f"field {fname!r}: expected (type, dx.InputField()) or (type, dx.OutputField()), "
                f"got {value!r}",
                field=str(fname),
            )
        if field_kind(value[1]) not in ("input", "output"):
            raise SignatureError(
                f"field {fname!r} must be declared with dx.InputField() or dx.OutputField(), "
                f"got {value[1]!r}",
                field=str(fname),
            )
        items[fname] = (value[0] if value[0] is not None else str, value[1])
    return items
