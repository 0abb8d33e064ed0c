"""Build signature classes from strings or field dicts, with a bounded cache.

``make_signature("a, b: int -> c: list[str]")`` parses the string (see
``_parse``) and creates the class. String signatures are cached: the same
string, instructions, name and ``types`` return the *same* class object, so
building one in a hot loop costs a dictionary lookup. The cache is an LRU of
:data:`CACHE_SIZE` entries; lookups are lock-free, inserts and evictions take
a lock (safe from any thread).
"""

from __future__ import annotations

import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, overload

from pydantic.fields import FieldInfo

from ..errors import SignatureError
from ._fields import TYPE_UNDEFINED_KEY, InputField, OutputField, field_kind
from ._parse import base_type_names, parse_fields
from ._signature import Signature, _SignatureMeta, build_signature

__all__ = ["CACHE_SIZE", "clear_signature_cache", "ensure_signature", "make_signature"]

CACHE_SIZE = 4096
"""How many distinct string signatures the cache keeps (least recently used go first)."""

_cache: OrderedDict[Any, type[Signature]] = OrderedDict()
_lock = threading.Lock()


def clear_signature_cache() -> None:
    """Forget every cached string signature."""
    with _lock:
        _cache.clear()


def make_signature(
    signature: str | Mapping[str, Any],
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    *,
    types: Mapping[str, Any] | None = None,
    custom_types: Mapping[str, Any] | None = None,
    resolve_caller_types: bool = False,
) -> type[Signature]:
    """Build a signature class from a string or a ``{name: (type, field)}`` dict.

    Args:
        signature: ``"context: list[str], question -> answer: float"`` or a
            dict mapping names to ``(type, dx.InputField()/dx.OutputField())``
            (or to a bare field, typed by its ``annotation`` or ``str``).
        instructions: The task description; DSPy's default sentence if None.
        signature_name: The class name.
        types: Extra names the string may use, ``{"Answer": Answer}``. By
            default there is no frame inspection: custom types are passed here.
        custom_types: DSPy's name for ``types`` (both may be given; merged).
        resolve_caller_types: Opt in to DSPy's lookup of names the string
            uses but nothing else defines in the calling module's globals
            and the calling function's locals (frame inspection, as DSPy;
            off by default because it makes the result depend on who calls).

    Returns:
        A ``Signature`` subclass. For strings the result is cached: the same
        arguments return the same class.

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
        key = _cache_key(signature, instructions, signature_name, types)
        if key is not None:
            hit = _cache.get(key)  # single C-level dict operations: atomic under the GIL
            if hit is not None:
                try:
                    _cache.move_to_end(key)
                except KeyError:  # evicted by another thread meanwhile
                    pass
                return hit
        sig = signature_from_string(signature, instructions, signature_name, types)
        if key is None:
            return sig
        with _lock:
            sig = _cache.setdefault(key, sig)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return sig
    if isinstance(signature, Mapping):
        return build_signature(signature_name, _items_from_mapping(signature), instructions)
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
            frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return {}
        names = {k: v for k, v in frame.f_globals.items() if isinstance(v, type)}
        names.update({k: v for k, v in frame.f_locals.items() if isinstance(v, type)})
        return names
    finally:
        del frame


def _cache_key(text: str, instructions: Any, name: Any, types: Mapping[str, Any] | None) -> Any:
    key = (text, instructions, name, tuple(sorted(types.items())) if types else ())
    try:
        hash(key)
    except TypeError:
        return None
    return key


def signature_from_string(
    text: str,
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """Parse ``text`` and build a new class, bypassing the cache.

    Raises:
        SignatureError: As for :func:`make_signature`.
    """
    names = base_type_names()
    if types:
        if not isinstance(types, Mapping) or not all(isinstance(k, str) for k in types):
            raise SignatureError(f"types= must be a dict of name → type, got {types!r}")
        names.update(types)
    ins, outs = parse_fields(text, names)
    items: dict[str, tuple[Any, FieldInfo]] = {}
    for fname, tp, untyped in ins:
        items[fname] = (tp, InputField(**{TYPE_UNDEFINED_KEY: untyped}))
    for fname, tp, _ in outs:
        items[fname] = (tp, OutputField())
    sig = build_signature(signature_name, items, instructions)
    spec = (text, instructions, signature_name, tuple(types.items()) if types else ())
    sig.__dspex_spec__ = spec  # type: ignore[attr-defined]  # lets pickle rebuild it by value
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


@overload
def ensure_signature(signature: str | type[Signature], instructions: str | None = None) -> type[Signature]: ...
@overload
def ensure_signature(signature: None, instructions: str | None = None) -> None: ...
def ensure_signature(
    signature: str | type[Signature] | None, instructions: str | None = None
) -> type[Signature] | None:
    """Return ``signature`` as a class, parsing it if it is a string.

    ``None`` passes through (as in DSPy). With a class and ``instructions``,
    returns ``signature.with_instructions(instructions)``.

    Raises:
        SignatureError: ``signature`` is neither a string nor a signature class.
    """
    if signature is None:
        return None
    if isinstance(signature, str):
        return make_signature(signature, instructions)
    if isinstance(signature, _SignatureMeta) and signature is not Signature:
        return signature.with_instructions(instructions) if instructions is not None else signature
    raise SignatureError(
        f"expected a signature string like 'question -> answer' or a dx.Signature subclass, got {signature!r}"
    )
