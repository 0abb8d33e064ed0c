"""``InputField`` / ``OutputField``: pydantic fields tagged as signature inputs or outputs.

The dspex-specific arguments (``desc``, ``prefix``) travel in the field's
``json_schema_extra`` under the same keys DSPy uses (``__dspy_field_type``,
``desc``, ``prefix``), so DSPy-style code that inspects fields keeps working.
Any pydantic constraint (``gt``, ``le``, ``min_length`` …) is accepted, enforced
on outputs, and rendered into the prompt as DSPy renders it.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
from pydantic.fields import FieldInfo

__all__ = ["FIELD_TYPE_KEY", "InputField", "OutputField", "field_kind", "infer_prefix"]

FIELD_TYPE_KEY = "__dspy_field_type"
TYPE_UNDEFINED_KEY = "__dspy_is_type_undefined"
_EXTRA_ARGS = ("desc", "prefix", "format", "parser", FIELD_TYPE_KEY, TYPE_UNDEFINED_KEY)

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
    for key, value in kwargs.items():
        if key in _EXTRA_ARGS:
            if value is not None:
                extra[key] = value
        else:
            pyd[key] = value
    if "description" in kwargs and "desc" not in extra:
        extra["desc"] = kwargs["description"]
    constraints = ", ".join(f"{_CONSTRAINT_TEXT[k]}{v}" for k, v in kwargs.items() if k in _CONSTRAINT_TEXT)
    if constraints:
        extra["constraints"] = constraints
    pyd["json_schema_extra"] = extra
    try:
        return pydantic.Field(**pyd)
    except TypeError as exc:
        from ..errors import SignatureError

        raise SignatureError(
            f"invalid {kind} field argument(s) {sorted(pyd)}: {exc}; expected desc=, prefix= "
            "or pydantic.Field arguments (default, gt, le, min_length, ...)"
        ) from None


def InputField(*, desc: str | None = None, prefix: str | None = None, **kwargs: Any) -> Any:  # noqa: N802
    """Declare a signature input.

    Args:
        desc: What the field holds, shown to the LM.
        prefix: A display prefix (kept for DSPy compatibility).
        **kwargs: Any ``pydantic.Field`` argument: ``default``, constraints.
    """
    return _make("input", {"desc": desc, "prefix": prefix, **kwargs})


def OutputField(*, desc: str | None = None, prefix: str | None = None, **kwargs: Any) -> Any:  # noqa: N802
    """Declare a signature output.

    Args:
        desc: What the LM should produce, shown in the prompt.
        prefix: A display prefix (kept for DSPy compatibility).
        **kwargs: Any ``pydantic.Field`` argument: ``default``,
            ``default_factory``, constraints (``ge=0, le=1``) enforced on parse.
    """
    return _make("output", {"desc": desc, "prefix": prefix, **kwargs})


def field_kind(field: FieldInfo) -> str | None:
    """Return ``"input"``, ``"output"`` or None for an undeclared field."""
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        kind = extra.get(FIELD_TYPE_KEY)
        return kind if isinstance(kind, str) else None
    return None


def infer_prefix(attribute_name: str) -> str:
    """Turn a field name into a title: ``camelCaseText`` → ``Camel Case Text``."""
    s1 = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", attribute_name)
    s2 = re.sub("([a-z0-9])([A-Z])", r"\1_\2", s1)
    s3 = re.sub(r"([a-zA-Z])(\d)", r"\1_\2", s2)
    s4 = re.sub(r"(\d)([a-zA-Z])", r"\1_\2", s3)
    words = [w if w.isupper() else w.capitalize() for w in s4.split("_")]
    return " ".join(words)
