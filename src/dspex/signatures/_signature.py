"""``Signature``: the typed input → output contract of an LM call.

A signature is a pydantic model class whose fields are declared with
``InputField``/``OutputField`` and whose docstring is the instructions. It is
immutable: ``with_instructions``, ``append_instructions``, ``prepend``,
``append``, ``insert``, ``delete``, ``with_updated_fields`` and ``load_state``
return new classes. ``Signature("a, b: int -> c: list[str]", instructions=None)``
builds one from a string (see :func:`~dspex.signatures.make_signature`).

Why a metaclass despite the house style: the public contract (DSPy's) is that
``Signature("...")`` returns a *class* and that ``S.input_fields`` is a class
attribute, and pydantic, which backs signatures, already owns the metaclass
slot; this one only extends pydantic's with those behaviours plus DSPy's
"missing annotation means ``str``". Signature classes are values: ``copy`` and
``deepcopy`` return the class itself, and pickling works by reference for
importable classes and by value (fields + instructions) for built ones.
"""

from __future__ import annotations

import copy
import copyreg
import importlib
import inspect
import warnings
from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, PydanticUserError
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.fields import FieldInfo

from ..errors import SignatureError
from ._build import build_class, default_instructions, make_class
from ._fields import TYPE_UNDEFINED_KEY, field_kind, infer_prefix

__all__ = ["Signature", "build_signature"]

_SHADOW_WARNING = r'Field name ".*" in ".*" shadows an attribute in parent'
_IGNORED_IN_EQUALS = frozenset({TYPE_UNDEFINED_KEY})


def _normalise_namespace(namespace: dict[str, Any]) -> None:
    """Give unannotated fields the type ``str`` and keep declaration order."""
    annotations = dict(namespace.get("__annotations__", {}))
    order = [k for k, v in namespace.items() if isinstance(v, FieldInfo)]
    for key in order:
        if key not in annotations and not key.startswith("__"):
            annotations[key] = str
            extra = namespace[key].json_schema_extra
            if isinstance(extra, dict):
                extra[TYPE_UNDEFINED_KEY] = True
    ordered = {k: annotations[k] for k in order if k in annotations}
    ordered.update({k: v for k, v in annotations.items() if k not in ordered})
    namespace["__annotations__"] = ordered


class _SignatureMeta(ModelMetaclass):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Signature:
            return make_class(Signature, *args, **kwargs)
        return super().__call__(*args, **kwargs)

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
        _normalise_namespace(namespace)
        try:
            with warnings.catch_warnings():
                # Field names such as "schema" or "json" shadow BaseModel methods; signature
                # fields are read through S.fields, never as attributes, so that is harmless.
                warnings.filterwarnings("ignore", message=_SHADOW_WARNING, category=UserWarning)
                # The metaclass only ever builds Signature subclasses.
                cls = cast("type[Signature]", super().__new__(mcs, name, bases, namespace, **kwargs))
        except SignatureError:
            raise
        except (PydanticUserError, TypeError, NameError, ValueError) as exc:
            raise SignatureError(f"cannot build signature {name!r}: {exc}") from None
        if cls.__doc__ is None:
            for base in bases:
                if isinstance(base, _SignatureMeta) and base is not Signature and base.__doc__:
                    cls.__doc__ = base.__doc__
                    break
        for fname, field in cls.model_fields.items():
            if field_kind(field) not in ("input", "output"):
                raise SignatureError(
                    f"field {fname!r} of signature {name!r} must be declared with dx.InputField() "
                    f"or dx.OutputField(), got json_schema_extra={field.json_schema_extra!r}",
                    field=fname,
                )
            extra = field.json_schema_extra
            assert isinstance(extra, dict)
            extra.setdefault("prefix", infer_prefix(fname) + ":")
            extra.setdefault("desc", f"${{{fname}}}")
        if cls.__doc__ is None and cls.model_fields:
            cls.__doc__ = default_instructions(cls.input_fields, cls.output_fields)
        return cls

    @property
    def instructions(cls) -> str:
        """The instructions: the class docstring, dedented."""
        return inspect.cleandoc(cls.__doc__ or "")

    @instructions.setter
    def instructions(cls, value: str) -> None:
        raise SignatureError(
            f"signature {cls.__name__!r} is immutable: cannot set instructions to {value!r}; "
            "expected S.with_instructions(...), which returns a new signature"
        )

    @property
    def input_fields(cls) -> dict[str, FieldInfo]:
        """Input fields in declaration order, name → ``FieldInfo`` (a fresh dict)."""
        return dict(cls._split()[0])

    @property
    def output_fields(cls) -> dict[str, FieldInfo]:
        """Output fields in declaration order, name → ``FieldInfo`` (a fresh dict)."""
        return dict(cls._split()[1])

    @property
    def fields(cls) -> dict[str, FieldInfo]:
        """Inputs then outputs, name → ``FieldInfo``."""
        ins, outs = cls._split()
        return {**ins, **outs}

    def _split(cls) -> tuple[dict[str, FieldInfo], dict[str, FieldInfo]]:
        # Signatures are immutable, so the split is computed once per class; it
        # sits on the hot path of every call (format, parse, stream).
        cached = cls.__dict__.get("__dspex_split__")
        if cached is None:
            items = cast("type[Signature]", cls).model_fields.items()  # cls is a Signature class
            cached = (
                {k: v for k, v in items if field_kind(v) == "input"},
                {k: v for k, v in items if field_kind(v) == "output"},
            )
            type.__setattr__(cls, "__dspex_split__", cached)
        return cached

    @property
    def signature(cls) -> str:
        """The field names as a string: ``"a, b -> c"``."""
        return f"{', '.join(cls.input_fields)} -> {', '.join(cls.output_fields)}"

    def __repr__(cls) -> str:
        lines = [
            f"{n}: {_type_repr(f.annotation)} = {str(field_kind(f)).capitalize()}Field("
            f"desc={_extra(f).get('desc')!r})"
            for n, f in cls.fields.items()
        ]
        body = "\n    ".join([f"instructions={cls.instructions!r}", *lines])
        return f"{cls.__name__}({cls.signature}\n    {body}\n)"


def _type_repr(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp).replace("typing.", "")


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


class Signature(BaseModel, metaclass=_SignatureMeta):
    """Base class for class signatures; call it with a string to build one.

    Example:
        >>> import dspex as dx
        >>> class QA(dx.Signature):
        ...     '''Answer with a short fact.'''
        ...     question: str = dx.InputField()
        ...     answer: str = dx.OutputField(desc="1 to 5 words")
        >>> list(QA.output_fields), QA.instructions
        (['answer'], 'Answer with a short fact.')
        >>> dx.Signature("a, b: int -> c: list[str]").signature
        'a, b -> c'
    """

    model_config = ConfigDict(protected_namespaces=(), arbitrary_types_allowed=True, defer_build=True)

    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        """Return a new signature with the same fields and new instructions."""
        return build_signature(cls.__name__, _field_items(cls), instructions)

    @classmethod
    def append_instructions(cls, instructions: str) -> type[Signature]:
        """Return a new signature whose instructions end with ``instructions``.

        The old and new text are joined by a blank line, as in DSPy.
        """
        old = cls.instructions
        return cls.with_instructions(f"{old}\n\n{instructions}" if old else instructions)

    @classmethod
    def with_updated_fields(cls, name: str, type_: Any = None, **kwargs: Any) -> type[Signature]:
        """Return a new signature where field ``name`` has a new type and/or texts.

        Args:
            name: The field to change.
            type_: Its new annotation (unchanged when None).
            **kwargs: Keys to set in the field's ``json_schema_extra``, such as
                ``desc=`` or ``prefix=``.

        Raises:
            SignatureError: No field is called ``name``.
        """
        items = _field_items(cls)
        if name not in items:
            raise SignatureError(
                f"signature {cls.signature!r} has no field {name!r}; expected one of {list(items)}",
                field=name,
            )
        tp, field = items[name]
        _extra(field).update(kwargs)
        items[name] = (type_ if type_ is not None else tp, field)
        return build_signature(cls.__name__, items, cls.instructions)

    @classmethod
    def prepend(cls, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """Return a new signature with ``field`` first among its kind."""
        return cls.insert(0, name, field, type_)

    @classmethod
    def append(cls, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """Return a new signature with ``field`` last among its kind."""
        return cls.insert(-1, name, field, type_)

    @classmethod
    def insert(cls, index: int, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """Return a new signature with ``field`` at ``index`` among its kind.

        Negative indices count from the end (``-1`` appends). The type is
        ``type_``, else the field's ``annotation``, else ``str``.

        Raises:
            SignatureError: ``field`` is not an Input/OutputField, ``name``
                exists already, or ``index`` is out of range.
        """
        kind = field_kind(field) if isinstance(field, FieldInfo) else None
        if kind is None:
            raise SignatureError(
                f"cannot insert {name!r}: expected dx.InputField() or dx.OutputField(), got {field!r}",
                field=name,
            )
        if name in cls.model_fields:
            raise SignatureError(
                f"cannot insert {name!r}: signature {cls.signature!r} already has a field of that name",
                field=name,
            )
        tp = type_ if type_ is not None else (field.annotation if field.annotation is not None else str)
        ins = list(_field_items(cls, "input").items())
        outs = list(_field_items(cls, "output").items())
        lst = ins if kind == "input" else outs
        pos = index + len(lst) + 1 if index < 0 else index
        if not 0 <= pos <= len(lst):
            raise SignatureError(
                f"cannot insert {name!r} at index {index}: expected an index in "
                f"[{-len(lst) - 1}, {len(lst)}] for {kind} fields of {cls.signature!r}",
                field=name,
            )
        lst.insert(pos, (name, (tp, copy.deepcopy(field))))
        return build_signature(cls.__name__, dict(ins + outs), cls.instructions)

    @classmethod
    def delete(cls, name: str) -> type[Signature]:
        """Return a new signature without field ``name`` (same fields if absent)."""
        items = _field_items(cls)
        items.pop(name, None)
        return build_signature(cls.__name__, items, cls.instructions)

    @classmethod
    def equals(cls, other: Any) -> bool:
        """Return True if ``other`` has the same instructions, fields, types and texts."""
        if not isinstance(other, _SignatureMeta):
            return False
        if cls.instructions != other.instructions or list(cls.fields) != list(other.fields):
            return False
        mine, theirs = cls.fields, other.fields
        return all(
            mine[n].annotation == theirs[n].annotation and _comparable(mine[n]) == _comparable(theirs[n])
            for n in mine
        )

    @classmethod
    def dump_state(cls) -> dict[str, Any]:
        """Return the DSPy-format state: instructions and each field's prefix/description."""
        return {
            "instructions": cls.instructions,
            "fields": [
                {"prefix": _extra(f)["prefix"], "description": _extra(f)["desc"]} for f in cls.fields.values()
            ],
        }

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> type[Signature]:
        """Return a new signature with the instructions and field texts of ``state``.

        Raises:
            SignatureError: ``state`` is not a DSPy-format signature state.
        """
        saved_fields = state.get("fields", []) if isinstance(state, Mapping) else None
        if not isinstance(saved_fields, list) or not all(isinstance(s, Mapping) for s in saved_fields):
            raise SignatureError(
                f"cannot load signature state {state!r}: expected {{'instructions': str, "
                "'fields': [{'prefix': str, 'description': str}, ...]}"
            )
        items = _field_items(cls)
        for fname, saved in zip(list(items), saved_fields, strict=False):
            extra = _extra(items[fname][1])
            if "prefix" in saved:
                extra["prefix"] = saved["prefix"]
            if "description" in saved:
                extra["desc"] = saved["description"]
        return build_signature(cls.__name__, items, state.get("instructions", cls.instructions))


def _comparable(field: FieldInfo) -> dict[str, Any]:
    return {k: v for k, v in _extra(field).items() if k not in _IGNORED_IN_EQUALS}


def _field_items(sig: type[Signature], kind: str | None = None) -> dict[str, tuple[Any, FieldInfo]]:
    fields = sig.fields if kind is None else (sig.input_fields if kind == "input" else sig.output_fields)
    return {n: (f.annotation, copy.deepcopy(f)) for n, f in fields.items()}


def build_signature(
    name: str, items: Mapping[str, tuple[Any, FieldInfo]], instructions: str | None
) -> type[Signature]:
    """Create a signature class from ``{field: (type, FieldInfo)}`` (no checks beyond pydantic's).

    Raises:
        SignatureError: A field name is not an identifier or pydantic rejects a field.
    """
    return build_class(Signature, name, items, instructions)


# Pickling: by reference when the class is importable, else by value.


def _reduce_signature(cls: type[Signature]) -> Any:
    if cls is Signature or _importable(cls):
        return cls.__qualname__
    spec = cls.__dict__.get("__dspex_spec__")
    if spec is not None:
        return (_signature_from_spec, spec)
    fields = tuple((n, f.annotation, f) for n, f in cls.fields.items())
    return (_signature_from_fields, (cls.__name__, fields, cls.instructions))


def _importable(cls: type) -> bool:
    try:
        obj: Any = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return False
    return obj is cls


def _signature_from_spec(*spec: Any) -> type[Signature]:
    text, instructions, name, types = spec
    return make_class(Signature, text, instructions, name, types=dict(types) if types else None)


def _signature_from_fields(
    name: str, fields: tuple[tuple[str, Any, FieldInfo], ...], instructions: str
) -> type[Signature]:
    return build_signature(name, {n: (tp, f) for n, tp, f in fields}, instructions)


copyreg.pickle(_SignatureMeta, _reduce_signature)  # type: ignore[arg-type]

