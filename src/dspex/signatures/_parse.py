"""Parse ``"context: list[str], question -> answer: float"`` into fields.

Types are read from the string's AST by a small evaluator (never ``eval``):
builtins, ``typing`` names, the dspex ML types, and whatever the caller passes
explicitly as ``types={"Name": obj}``. There is no frame inspection: an unknown
name is a :class:`~dspex.errors.SignatureError` telling the caller to pass it
in ``types=``.
"""

from __future__ import annotations

import ast
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import SignatureError

__all__ = ["parse_fields", "resolve_type_names"]

_BUILTINS: dict[str, Any] = {
    t.__name__: t
    for t in (str, int, float, bool, list, dict, tuple, set, frozenset, bytes, complex)
}
_TYPING = ("Any", "Optional", "Union", "Literal", "List", "Dict", "Tuple", "Set", "FrozenSet")


def resolve_type_names(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the names a signature string may use, plus ``extra``."""
    from ._types import ML_TYPES

    names: dict[str, Any] = dict(_BUILTINS)
    names.update({n: getattr(typing, n) for n in _TYPING})
    names["NoneType"] = type(None)
    names["None"] = type(None)
    names.update(ML_TYPES)
    if extra:
        names.update(extra)
    return names


def parse_fields(spec: str, names: Mapping[str, Any]) -> tuple[list[tuple[str, Any, bool]], list[tuple[str, Any, bool]]]:
    """Split ``spec`` into (inputs, outputs), each ``[(name, type, untyped)]``.

    Raises:
        SignatureError: The string has no single ``->``, a side does not parse,
            a name repeats, or a type is unknown.
    """
    if not isinstance(spec, str):
        raise SignatureError(f"signature must be a string like 'question -> answer', got {type(spec).__name__}")
    if spec.count("->") != 1:
        raise SignatureError(
            f"invalid signature {spec!r}: expected exactly one '->' between inputs and outputs, "
            "like 'question -> answer'"
        )
    left, right = spec.split("->")
    inputs = _parse_side(left, spec, names, "inputs")
    outputs = _parse_side(right, spec, names, "outputs")
    if not outputs:
        raise SignatureError(f"invalid signature {spec!r}: expected at least one output field after '->'")
    seen: set[str] = set()
    for side in (inputs, outputs):
        for name, _, _ in side:
            if name in seen:
                raise SignatureError(
                    f"invalid signature {spec!r}: field {name!r} appears twice; "
                    "input and output fields must have distinct names"
                )
            seen.add(name)
    return inputs, outputs


def _parse_side(text: str, spec: str, names: Mapping[str, Any], side: str) -> list[tuple[str, Any, bool]]:
    if not text.strip():
        return []
    try:
        tree = ast.parse(f"def f({text}): pass")
    except SyntaxError:
        raise SignatureError(
            f"invalid signature {spec!r}: cannot read the {side} {text.strip()!r}; expected "
            "comma-separated 'name' or 'name: type' entries"
        ) from None
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        raise SignatureError(
            f"invalid signature {spec!r}: the {side} may hold only 'name' or 'name: type' entries"
        )
    out: list[tuple[str, Any, bool]] = []
    for arg in a.args:
        if arg.annotation is None:
            out.append((arg.arg, str, True))
        else:
            out.append((arg.arg, _eval_type(arg.annotation, names, spec), False))
    return out


def _eval_type(node: ast.expr, names: Mapping[str, Any], spec: str) -> Any:
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise SignatureError(
            f"unknown type {node.id!r} in signature {spec!r}; expected a builtin or typing type "
            f"(str, int, list[...], Literal[...], ...), a dspex type (Reasoning, Confidence, ...), "
            f"or pass it explicitly: types={{{node.id!r}: {node.id}}}",
            field=node.id,
        )
    if isinstance(node, ast.Attribute):
        base = _eval_type(node.value, names, spec)
        if hasattr(base, node.attr):
            return getattr(base, node.attr)
        dotted = ast.unparse(node)
        if dotted in names:
            return names[dotted]
        raise SignatureError(f"unknown type {dotted!r} in signature {spec!r}; pass it as types={{{dotted!r}: ...}}")
    if isinstance(node, ast.Subscript):
        base = _eval_type(node.value, names, spec)
        sl = node.slice
        args = tuple(_eval_arg(e, names, spec) for e in sl.elts) if isinstance(sl, ast.Tuple) else (_eval_arg(sl, names, spec),)
        try:
            if base is typing.Optional:
                if len(args) != 1:
                    raise TypeError("Optional takes exactly one type")
                return typing.Optional[args[0]]  # noqa: UP045
            return base[args if len(args) > 1 else args[0]]
        except TypeError as exc:
            raise SignatureError(f"invalid type {ast.unparse(node)!r} in signature {spec!r}: {exc}") from None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left = _eval_type(node.left, names, spec)
        right = _eval_type(node.right, names, spec)
        return typing.Union[left, right]  # noqa: UP007
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    raise SignatureError(
        f"unsupported type expression {ast.unparse(node)!r} in signature {spec!r}; "
        "use a class signature for anything beyond names, [...] generics and '|' unions"
    )


def _eval_arg(node: ast.expr, names: Mapping[str, Any], spec: str) -> Any:
    """Evaluate a generic argument: a type, or a constant inside Literal[...]."""
    if isinstance(node, ast.Constant) and node.value is not None:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value  # type: ignore[operator]
    if isinstance(node, ast.List):  # Callable[[int], str] style argument lists
        return [_eval_arg(e, names, spec) for e in node.elts]
    return _eval_type(node, names, spec)
