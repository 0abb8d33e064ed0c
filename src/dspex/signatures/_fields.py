"""``InputField`` / ``OutputField``: pydantic fields tagged as signature inputs or outputs.

The dspex-specific arguments (``desc``, ``prefix``) travel in the field's
``json_schema_extra`` under the same keys DSPy uses (``__dspy_field_type``,
``desc``, ``prefix``, ``IS_TYPE_UNDEFINED``), so DSPy-style code that inspects
fields keeps working. Any ``pydantic.Field`` argument is accepted: defaults and
constraints (``gt``, ``le``, ``min_length`` …), which are enforced on outputs
and rendered into the prompt as DSPy renders them (``extra["constraints"]``).
Unknown arguments are a :class:`~dspex.errors.SignatureError`, not a warning.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import TYPE_CHECKING, Any

import pydantic

from ..errors import SignatureError

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

__all__ = [
    "FIELD_TYPE_KEY",
    "TYPE_UNDEFINED_KEY",
    "InputField",
    "OutputField",
    "field_kind",
    "infer_prefix",
]

FIELD_TYPE_KEY = "__dspy_field_type"
TYPE_UNDEFINED_KEY = "IS_TYPE_UNDEFINED"
_EXTRA_ARGS = frozenset({"desc", "prefix", "format", "parser", FIELD_TYPE_KEY, TYPE_UNDEFINED_KEY})
_PYDANTIC_ARGS = frozenset(inspect.signature(pydantic.Field).parameters) - {"extra", "json_schema_extra"}

_CONSTRAINT_TEXT = {
    "gt": "greater than: ",
    "ge": "greater than or equal to: ",
    "lt": "less than: ",
    "le": "less than or equal to: ",
    "min_length": "minimum length: ",
    "max_length": "maximum length: ",
    "multiple_of": "a multiple of the given number: ",
    "allow_inf_nan": "allow 'inf', '-inf', 'nan' values: ",
}


def _make(kind: str, kwargs: dict[str, Any]) -> Any:
    pyd: dict[str, Any] = {}
    extra: dict[str, Any] = {FIELD_TYPE_KEY: kind}
    user_extra = kwargs.pop("json_schema_extra", None)
    if user_extra is not None:
        if not isinstance(user_extra, dict):
            raise SignatureError(
                f"{kind} field json_schema_extra must be a dict, got {type(user_extra).__name__}"
            )
        extra.update(user_extra)
    unknown = sorted(k for k in kwargs if k not in _EXTRA_ARGS and k not in _PYDANTIC_ARGS)
    if unknown:
        raise SignatureError(
            f"unknown {kind} field argument(s) {unknown}; expected desc=, prefix= or "
            "pydantic.Field arguments (default, default_factory, gt, le, min_length, ...)"
        )
    for key, value in kwargs.items():
        if key in _EXTRA_ARGS:
            if value is not None:
                extra[key] = value
        else:
            pyd[key] = value
    for key in ("desc", "prefix"):
        if key in extra and not isinstance(extra[key], str):
            raise SignatureError(
                f"{kind} field {key}= must be a string, got {type(extra[key]).__name__} {extra[key]!r}"
            )
    if "description" in kwargs and "desc" not in extra and kwargs["description"] is not None:
        extra["desc"] = kwargs["description"]
    constraints = ", ".join(
        f"{_CONSTRAINT_TEXT[k]}{v}" for k, v in kwargs.items() if k in _CONSTRAINT_TEXT and v is not None
    )
    if constraints:
        extra["constraints"] = constraints
    pyd["json_schema_extra"] = extra
    try:
        return pydantic.Field(**pyd)
    except (TypeError, ValueError) as exc:
        raise SignatureError(f"invalid {kind} field arguments {sorted(pyd)}: {exc}") from None


def InputField(*, desc: str | None = None, prefix: str | None = None, **kwargs: Any) -> Any:
    """Declare a signature input.

    Args:
        desc: What the field holds, shown to the LM.
        prefix: A display prefix (kept for DSPy compatibility; inferred from
            the name when omitted).
        **kwargs: Any ``pydantic.Field`` argument: ``default``, constraints.

    Raises:
        SignatureError: An argument is unknown or has the wrong type.
    """
    return _make("input", {"desc": desc, "prefix": prefix, **kwargs})


def OutputField(*, desc: str | None = None, prefix: str | None = None, **kwargs: Any) -> Any:
    """Declare a signature output.

    Args:
        desc: What the LM should produce, shown in the prompt.
        prefix: A display prefix (kept for DSPy compatibility; inferred from
            the name when omitted).
        **kwargs: Any ``pydantic.Field`` argument: ``default``,
            ``default_factory``, constraints (``ge=0, le=1``) enforced on parse.

    Raises:
        SignatureError: An argument is unknown or has the wrong type.
    """
    return _make("output", {"desc": desc, "prefix": prefix, **kwargs})


def field_kind(field: FieldInfo) -> str | None:
    """Return ``"input"``, ``"output"`` or None for an undeclared field."""
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        kind = extra.get(FIELD_TYPE_KEY)
        return kind if isinstance(kind, str) else None
    return None


@functools.lru_cache(maxsize=4096)
def infer_prefix(attribute_name: str) -> str:
    """Turn a field name into a title: ``camelCaseText`` → ``Camel Case Text``.

    Example:
        >>> infer_prefix("snake_case_text"), infer_prefix("HTMLParser")
        ('Snake Case Text', 'HTML Parser')
    """
    s1 = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", attribute_name)
    s2 = re.sub("([a-z0-9])([A-Z])", r"\1_\2", s1)
    s3 = re.sub(r"([a-zA-Z])(\d)", r"\1_\2", s2)
    s4 = re.sub(r"(\d)([a-zA-Z])", r"\1_\2", s3)
    words = [w if w.isupper() else w.capitalize() for w in s4.split("_")]
    return " ".join(words)
