"""Input checks a ``Predict`` call makes, with DSPy 3.4.1's warnings.

* Inputs the signature does not have are ignored with DSPy's "Input contains
  fields not in signature" warning.
* With the ``warn_on_type_mismatch`` setting (on by default, as in DSPy), a
  value whose type does not match its field's annotation is logged with
  DSPy's "Type mismatch for field" warning; the call goes on.
* A missing required input raises :class:`~dspex.errors.InputError` (dspex's
  stricter default); ``dx.configure(missing_inputs="warn")`` instead logs
  DSPy's "Not all input fields were provided" warning and calls the LM anyway.

Warnings go to the ``dspex.modules`` logger, as DSPy's go to its logger.
"""

from __future__ import annotations

import logging
import types
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from ..errors import ConfigError, InputError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["check_inputs", "value_matches"]

logger = logging.getLogger("dspex.modules")


def _check_items(raw: Any, kind: type, args: tuple[Any, ...]) -> bool:
    if not isinstance(raw, kind):
        return False
    value: Any = raw
    if kind is dict:
        return not args or all(value_matches(k, args[0]) and value_matches(v, args[1]) for k, v in value.items())
    if kind is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        return len(value) == len(args) and all(value_matches(v, a) for v, a in zip(value, args, strict=True))
    return not args or all(value_matches(item, args[0]) for item in value)


def value_matches(value: Any, expected: Any) -> bool:
    """Return True if ``value`` fits the annotation ``expected`` (DSPy's check, stdlib only).

    Unions match any member, ``Literal`` its values, containers check their
    items; anything unrecognised (a TypeVar, a special form) is accepted.
    """
    if expected is Any:
        return True
    origin, args = get_origin(expected), get_args(expected)
    if origin is Union or origin is types.UnionType:
        return any(value_matches(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin in (list, dict, tuple, set, frozenset):
        return _check_items(value, origin, args)
    if origin is Annotated:
        return value_matches(value, args[0])
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True  # TypeVars, NewTypes …: nothing sure to warn about


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None:
        return getattr(annotation, "__name__", str(annotation))
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    name = getattr(origin, "__name__", str(origin))
    return f"{name}[{', '.join('...' if a is ... else _type_name(a) for a in args)}]" if args else name


def check_inputs(signature: Any, inputs: Mapping[str, Any], required: Sequence[str],
                 get: Callable[[str], Any],
                 missing_error: Callable[[Mapping[str, Any]], Exception] | None = None) -> None:
    """Warn about extra and mistyped inputs; raise (or warn) on missing ones.

    Args:
        signature: The call's signature.
        inputs: The call's inputs, defaults already filled in.
        required: Input names that have no default and do not allow None.
        get: Reads a setting (``warn_on_type_mismatch``, ``missing_inputs``).
        missing_error: Builds the error raised for missing inputs from
            ``inputs`` (the caller's message, with its spelling hints); a
            plain one if None.

    Raises:
        InputError: A required input is missing and ``missing_inputs`` is "raise".
        ConfigError: ``missing_inputs`` is neither "raise" nor "warn".
    """
    fields = signature.input_fields
    extra = [k for k in inputs if k not in fields]
    if extra:
        logger.warning("Input contains fields not in signature. These fields will be ignored: %s. "
                       "Expected fields: %s.", extra, list(fields))
    if get("warn_on_type_mismatch"):
        for name, field in fields.items():
            value = inputs.get(name)
            if value is not None and not value_matches(value, field.annotation) and not (
                    field.annotation is str and isinstance(value, list) and all(isinstance(v, str) for v in value)):
                logger.warning("Type mismatch for field '%s': expected %s based on given Signature, but the "
                               "provided value is incompatible: %s.", name, _type_name(field.annotation), value)
    missing = [n for n in required if n not in inputs]
    if not missing:
        return
    mode = get("missing_inputs")
    if mode == "warn":
        logger.warning("Not all input fields were provided to module. Present: %s. Missing: %s.",
                       [k for k in fields if k in inputs], missing)
        return
    if mode != "raise":
        raise ConfigError(f"setting missing_inputs={mode!r} is not valid; expected 'raise' or 'warn'")
    if missing_error is not None:
        raise missing_error(inputs)
    raise InputError(f"missing required input(s) {', '.join(map(repr, missing))} for Predict"
                     f"({signature.signature}); expected inputs: {', '.join(fields)}", field=missing[0])
