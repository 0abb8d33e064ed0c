"""Parse ``"context: list[str], question -> answer: float"`` into fields.

Types are read from the string's AST by a small evaluator (never ``eval``):
builtins, ``typing`` names, a few stdlib value types (``datetime``,
``Decimal``, ``UUID`` …), the dspex ML types, and whatever the caller passes
explicitly as ``types={"Name": obj}``. There is no frame inspection: an unknown
name is a :class:`~dspex.errors.SignatureError` telling the caller to pass it
in ``types=``. Only names, ``[...]`` subscripts of classes and ``typing``
forms, and ``|`` unions are evaluated; an attribute (``a.b``) is read only as
a dotted ``types=`` key, a public class of a module passed in ``types=``, or
an enum member inside ``Literal[...]`` — never by walking ``getattr`` (so
``str.mro`` is an error, not a "type"). Any text gives a signature or a
``SignatureError``; every error names the signature string, the field and
what was expected.
"""

from __future__ import annotations

import ast
import datetime
import decimal
import enum
import keyword
import re
import types
import typing
import uuid
import warnings
from typing import Any

from ..errors import SignatureError
from ._code import Code
from ._documents import Citations, Document
from ._media import Audio, File, Image
from ._types import ML_TYPES

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ParsedField", "base_type_names", "parse_fields"]

ParsedField = tuple[str, Any, bool]
"""``(name, type, untyped)``: ``untyped`` is True when no annotation was given."""

_BUILTINS: dict[str, Any] = {
    t.__name__: t
    for t in (str, int, float, bool, list, dict, tuple, set, frozenset, bytes, complex)
}
_TYPING = ("Any", "Optional", "Union", "Literal", "List", "Dict", "Tuple", "Set", "FrozenSet")
_STDLIB: dict[str, Any] = {
    "datetime": datetime.datetime,
    "date": datetime.date,
    "time": datetime.time,
    "timedelta": datetime.timedelta,
    "Decimal": decimal.Decimal,
    "UUID": uuid.UUID,
}
_BASE_NAMES: dict[str, Any] | None = None
_NOT_SIMPLE = re.compile(r"[^\w\s,:]")
_MISSING = object()


def base_type_names() -> dict[str, Any]:
    """Return the names every signature string may use (a fresh dict)."""
    global _BASE_NAMES
    if _BASE_NAMES is None:
        names: dict[str, Any] = dict(_BUILTINS)
        names.update({n: getattr(typing, n) for n in _TYPING})
        names.update(_STDLIB)
        names["NoneType"] = type(None)
        names["None"] = type(None)
        names.update(ML_TYPES)
        names.update({"Image": Image, "Audio": Audio, "File": File, "Code": Code, "Document": Document,
                      "Citations": Citations})
        _BASE_NAMES = names
    return dict(_BASE_NAMES)


def parse_fields(spec: str, names: Mapping[str, Any]) -> tuple[list[ParsedField], list[ParsedField]]:
    """Split ``spec`` into (inputs, outputs), each a list of ``(name, type, untyped)``.

    Args:
        spec: The signature string, ``"inputs -> outputs"``.
        names: The type names the string may use (see :func:`base_type_names`).

    Raises:
        SignatureError: The string has no single ``->``, a side does not parse,
            there is no output, a name repeats, or a type is unknown.
    """
    if not isinstance(spec, str):
        raise SignatureError(
            f"signature must be a string like 'question -> answer', got {type(spec).__name__} {spec!r}"
        )
    if spec.count("->") != 1:
        raise SignatureError(
            f"invalid signature {spec!r}: expected exactly one '->' between inputs and outputs, "
            "like 'question -> answer'"
        )
    left, right = spec.split("->")
    inputs = _parse_side(left, spec, names, "inputs")
    outputs = _parse_side(right, spec, names, "outputs")
    if not outputs:
        raise SignatureError(
            f"invalid signature {spec!r}: expected at least one output field after '->', "
            "like 'question -> answer'"
        )
    _check_distinct(spec, inputs, outputs)
    return inputs, outputs


def _check_distinct(spec: str, inputs: list[ParsedField], outputs: list[ParsedField]) -> None:
    for side, label in ((inputs, "inputs"), (outputs, "outputs")):
        seen: set[str] = set()
        for name, _, _ in side:
            if name in seen:
                raise SignatureError(
                    f"invalid signature {spec!r}: field {name!r} appears twice among the {label}; "
                    "expected distinct names",
                    field=name,
                )
            seen.add(name)
    both = sorted({n for n, _, _ in inputs} & {n for n, _, _ in outputs})
    if both:
        raise SignatureError(
            f"invalid signature {spec!r}: {', '.join(map(repr, both))} is both an input and an output; "
            "input and output fields must have distinct names",
            field=both[0],
        )


def _parse_side(text: str, spec: str, names: Mapping[str, Any], side: str) -> list[ParsedField]:
    if not text.strip():
        return []
    fast = _parse_simple(text, names)
    if fast is not None:
        return fast
    bad = SignatureError(
        f"invalid signature {spec!r}: cannot read the {side} {text.strip()!r}; expected "
        "comma-separated 'name' or 'name: type' entries, like 'context: list[str], question'"
    )
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal": the error says it all
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(f"def f({text}): pass")
    except (SyntaxError, ValueError):  # ValueError: a NUL character
        raise bad from None
    fn = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(fn, ast.FunctionDef) or fn.decorator_list or fn.returns or len(fn.body) != 1:
        raise bad
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        raise bad
    out: list[ParsedField] = []
    for arg in a.args:
        if arg.annotation is None:
            out.append((arg.arg, str, True))
        else:
            out.append((arg.arg, _eval_type(arg.annotation, names, spec, arg.arg), False))
    return out


def _parse_simple(text: str, names: Mapping[str, Any]) -> list[ParsedField] | None:
    """Parse ``a, b: int, c: Name`` without ``ast``; None if anything is unusual."""
    if _NOT_SIMPLE.search(text):
        return None
    out: list[ParsedField] = []
    for part in text.split(","):
        name, colon, tp = part.partition(":")
        name = name.strip()
        if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
            return None
        if not colon:
            out.append((name, str, True))
            continue
        found = names.get(tp.strip(), _MISSING)
        if found is _MISSING:
            return None  # the ast path resolves dotted names and reports errors
        out.append((name, found, False))
    return out


def _unknown(name: str, spec: str, field: str) -> SignatureError:
    return SignatureError(
        f"unknown type {name!r} for field {field!r} in signature {spec!r}; expected a builtin or "
        "typing type (str, int, list[...], Literal[...], Optional[...]), a dspex type (Reasoning, "
        f"Confidence, ...), or pass it explicitly: types={{{name!r}: {name}}} "
        "(DSPy's custom_types= works too; resolve_caller_types=True looks it up in the caller)",
        field=field,
    )


def _eval_type(node: ast.expr, names: Mapping[str, Any], spec: str, field: str) -> Any:
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise _unknown(node.id, spec, field)
    if isinstance(node, ast.Attribute):
        return _eval_attribute(node, names, spec, field)
    if isinstance(node, ast.Subscript):
        return _eval_subscript(node, names, spec, field)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        # One Union over the whole flattened chain, in source order: typing caches
        # Union[...] by its arguments, and a nested Union compares equal whatever its
        # order, so building `a | b | c` pairwise could hand back an earlier `b | a | c`.
        members: list[Any] = []
        for part in _union_operands(node):
            member = _eval_type(part, names, spec, field)
            members.extend(typing.get_args(member) if typing.get_origin(member) is typing.Union else (member,))
        try:
            return typing.Union[tuple(members)]  # noqa: UP007
        except Exception as exc:
            raise _invalid(node, spec, field, str(exc) or type(exc).__name__) from None
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    raise _invalid(node, spec, field, "use a class signature for anything beyond names, "
                   "[...] generics and '|' unions")


def _union_operands(node: ast.expr) -> list[ast.expr]:
    """The operands of an ``a | b | c`` chain, left to right."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_union_operands(node.left), *_union_operands(node.right)]
    return [node]


def _eval_attribute(node: ast.Attribute, names: Mapping[str, Any], spec: str, field: str) -> Any:
    """Resolve ``a.b`` without walking arbitrary attributes (no ``str.mro``).

    Allowed: a dotted name given as such in ``types=`` (``{"mod.Color": Color}``),
    or a public class of a module passed in ``types=`` (``{"mod": mod}``).
    """
    dotted = ast.unparse(node)
    if dotted in names:
        return names[dotted]
    base = _eval_type(node.value, names, spec, field)
    if isinstance(base, types.ModuleType) and not node.attr.startswith("_"):
        value = getattr(base, node.attr, None)
        if isinstance(value, type):
            return value
        raise _unknown(dotted, spec, field)
    raise _invalid(node, spec, field, "attributes of types are not followed; expected a type "
                   f"name, or pass it explicitly: types={{{dotted!r}: ...}}")


def _invalid(node: ast.expr, spec: str, field: str, why: str) -> SignatureError:
    return SignatureError(
        f"invalid type {ast.unparse(node)!r} for field {field!r} in signature {spec!r}: {why}",
        field=field,
    )


def _eval_subscript(node: ast.Subscript, names: Mapping[str, Any], spec: str, field: str) -> Any:
    base = _eval_type(node.value, names, spec, field)
    elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    if not elts:
        raise _invalid(node, spec, field, "expected at least one argument inside [...]")
    if not _is_generic(base):
        raise _invalid(node, spec, field, f"{ast.unparse(node.value)} is not a generic type")
    if base is typing.Literal:
        args = tuple(_eval_literal(e, names, spec, field) for e in elts)
    else:
        args = tuple(_eval_arg(e, names, spec, field) for e in elts)
    try:
        if base is typing.Optional:
            if len(args) != 1:
                raise TypeError("Optional takes exactly one type")
            return typing.Optional[args[0]]  # noqa: UP045
        return base[args if len(args) > 1 else args[0]]
    except Exception as exc:
        raise _invalid(node, spec, field, str(exc) or type(exc).__name__) from None


def _is_generic(base: Any) -> bool:
    """Return True for a class or a ``typing`` form (``List``, ``Optional``, ``list[int]`` …).

    A plain object with ``__getitem__`` (a dict, a tuple) is not a type: it is
    never indexed.
    """
    if isinstance(base, type):
        return hasattr(base, "__class_getitem__")
    return type(base).__module__ == "typing" or isinstance(base, types.GenericAlias)


def _eval_literal(node: ast.expr, names: Mapping[str, Any], spec: str, field: str) -> Any:
    """Evaluate one ``Literal[...]`` value: a constant or an enum member."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, bool, bytes, type(None))):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    if isinstance(node, ast.Attribute):
        dotted = ast.unparse(node)
        value = names.get(dotted) if dotted in names else _enum_member(node, names, spec, field)
        if isinstance(value, enum.Enum):
            return value
    raise _invalid(node, spec, field, "Literal[...] takes str, int, bool, None or enum member values")


def _enum_member(node: ast.Attribute, names: Mapping[str, Any], spec: str, field: str) -> Any:
    """Return ``Enum.MEMBER`` by looking in ``__members__`` (never ``getattr``)."""
    owner = _eval_type(node.value, names, spec, field)
    if isinstance(owner, enum.EnumMeta):
        return owner.__members__.get(node.attr)
    return None


def _eval_arg(node: ast.expr, names: Mapping[str, Any], spec: str, field: str) -> Any:
    """Evaluate a generic argument: a type, ``...`` or a ``[...]`` argument list."""
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return Ellipsis
    if isinstance(node, ast.List):  # Callable[[int], str] style argument lists
        return [_eval_arg(e, names, spec, field) for e in node.elts]
    return _eval_type(node, names, spec, field)
