"""``make_signature`` and ``ensure_signature``: signature classes from strings or field dicts.

``make_signature("a, b: int -> c: list[str]")`` parses the string (see
``_parse``) and creates a ``Signature`` subclass (see ``_build``, which also
keeps the string cache: the same string, instructions, name and ``types``
return the *same* class object).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from ..errors import SignatureError
from ._build import CACHE_SIZE, clear_signature_cache, make_class
from ._build import signature_from_string as _from_string
from ._signature import Signature, _SignatureMeta

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CACHE_SIZE", "clear_signature_cache", "ensure_signature", "make_signature", "signature_from_string"]


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
    return make_class(
        Signature, signature, instructions, signature_name,
        types=types, custom_types=custom_types, resolve_caller_types=resolve_caller_types,
    )


def signature_from_string(
    text: str,
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """Parse ``text`` and build a new signature class, bypassing the cache.

    Raises:
        SignatureError: As for :func:`make_signature`.
    """
    return _from_string(Signature, text, instructions, signature_name, types)


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
