"""``Signature``: the typed input → output contract of an LM call.

A signature is a pydantic model class whose fields are declared with
``InputField``/``OutputField`` and whose docstring is the instructions. It is
immutable: ``with_instructions``, ``prepend``, ``append``, ``insert``,
``delete`` and ``with_updated_fields`` return new classes. Calling
``Signature("a, b: int -> c: list[str]", "instructions")`` builds one from a
string; the same string (and instructions and ``types``) returns the same
class object from a cache.

Why a metaclass despite the house style: the public contract (DSPy's) is that
``Signature("...")`` returns a *class* and that ``S.input_fields`` is a class
attribute, and pydantic, which backs signatures, already owns the metaclass
slot; this one only extends pydantic's with those two behaviours plus DSPy's
"missing annotation means ``str``".
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.fields import FieldInfo

from ..errors import SignatureError
from ._fields import TYPE_UNDEFINED_KEY, InputField, OutputField, field_kind, infer_prefix
from ._parse import parse_fields, resolve_type_names

__all__ = ["Signature", "ensure_signature", "make_signature"]


def _default_instructions(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> str:
    ins = ", ".join(f"`{n}`" for n in inputs)
    outs = ", ".join(f"`{n}`" for n in outputs)
    return f"Given the fields {ins}, produce the fields {outs}."


class _SignatureMeta(ModelMetaclass):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Signature:
            return make_signature(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
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
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        if cls.__doc__ is None:
            for base in bases:
                if isinstance(base, _SignatureMeta) and base is not Signature and base.__doc__:
                    cls.__doc__ = base.__doc__
                    break
        for fname, field in cls.model_fields.items():
            kind = field_kind(field)
            if kind not in ("input", "output"):
                raise SignatureError(
                    f"field {fname!r} of signature {name!r} must be declared with dx.InputField() "
                    f"or dx.OutputField(), got {type(field).__name__} with extra {field.json_schema_extra!r}",
                    field=fname,
                )
            extra = field.json_schema_extra
            assert isinstance(extra, dict)
            extra.setdefault("prefix", infer_prefix(fname) + ":")
            extra.setdefault("desc", f"${{{fname}}}")
        if cls.__doc__ is None and cls.model_fields:
            cls.__doc__ = _default_instructions(cls.input_fields, cls.output_fields)
        return cls

    @property
    def instructions(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @property
    def input_fields(cls) -> dict[str, FieldInfo]:
        return {k: v for k, v in cls.model_fields.items() if field_kind(v) == "input"}

    @property
    def output_fields(cls) -> dict[str, FieldInfo]:
        return {k: v for k, v in cls.model_fields.items() if field_kind(v) == "output"}

    @property
    def fields(cls) -> dict[str, FieldInfo]:
        return {**cls.input_fields, **cls.output_fields}

    @property
    def signature(cls) -> str:
        return f"{', '.join(cls.input_fields)} -> {', '.join(cls.output_fields)}"

    def __repr__(cls) -> str:
        lines = [f"{n}: {_type_repr(f.annotation)} = {field_kind(f).capitalize()}Field(desc={f.json_schema_extra['desc']!r})"  # type: ignore[index,union-attr]
                 for n, f in cls.fields.items()]
        body = "\n    ".join([f"instructions={cls.instructions!r}", *lines])
        return f"{cls.__name__}({cls.signature}\n    {body}\n)"


def _type_repr(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp).replace("typing.", "")


class Signature(BaseModel, metaclass=_SignatureMeta):
    """Base class for class signatures; call it with a string to build one.

    Example:
        >>> import dspex as dx
        >>> class QA(dx.Signature):
        ...     '''Answer with a short fact.'''
        ...     question: str = dx.InputField()
        ...     answer: str = dx.OutputField(desc="1 to 5 words")
        >>> list(QA.output_fields)
        ['answer']
        >>> dx.Signature("a, b: int -> c: list[str]").signature
        'a, b -> c'
    """

    model_config = ConfigDict(protected_namespaces=(), arbitrary_types_allowed=True)

    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        """Return a new signature with the same fields and new instructions."""
        return _build(cls.__name__, _field_items(cls), instructions)

    @classmethod
    def append_instructions(cls, instructions: str) -> type[Signature]:
        """Return a new signature whose instructions end with ``instructions``."""
        return cls.with_instructions(f"{cls.instructions}\n\n{instructions}" if cls.instructions else instructions)

    @classmethod
    def with_updated_fields(cls, name: str, type_: Any = None, **kwargs: Any) -> type[Signature]:
        """Return a new signature where field ``name`` has new ``desc``/``prefix``/type.

        Raises:
            SignatureError: No field is called ``name``.
        """
        if name not in cls.model_fields:
            raise SignatureError(
                f"signature {cls.signature!r} has no field {name!r}; expected one of {list(cls.fields)}",
                field=name,
            )
        items = _field_items(cls)
        tp, field = items[name]
        field = copy.deepcopy(field)
        extra = field.json_schema_extra
        assert isinstance(extra, dict)
        extra.update(kwargs)
        items[name] = (type_ if type_ is not None else tp, field)
        return _build(cls.__name__, items, cls.instructions)

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

        Negative indices count from the end (``-1`` appends).

        Raises:
            SignatureError: ``field`` is not an Input/OutputField, ``name``
                exists already, or ``index`` is out of range.
        """
        kind = field_kind(field) if isinstance(field, FieldInfo) else None
        if kind is None:
            raise SignatureError(f"cannot insert {name!r}: expected dx.InputField() or dx.OutputField(), got {field!r}")
        if name in cls.model_fields:
            raise SignatureError(f"cannot insert {name!r}: signature {cls.signature!r} already has it", field=name)
        tp = type_ if type_ is not None else (field.annotation if field.annotation is not None else str)
        ins = list(_field_items(cls, "input").items())
        outs = list(_field_items(cls, "output").items())
        lst = ins if kind == "input" else outs
        pos = index + len(lst) + 1 if index < 0 else index
        if not 0 <= pos <= len(lst):
            raise SignatureError(
                f"cannot insert {name!r} at index {index}: expected an index in [{-len(lst) - 1}, {len(lst)}] "
                f"for {kind} fields"
            )
        lst.insert(pos, (name, (tp, copy.deepcopy(field))))
        return _build(cls.__name__, dict(ins + outs), cls.instructions)

    @classmethod
    def delete(cls, name: str) -> type[Signature]:
        """Return a new signature without field ``name`` (unchanged if absent)."""
        items = _field_items(cls)
        items.pop(name, None)
        return _build(cls.__name__, items, cls.instructions)

    @classmethod
    def equals(cls, other: Any) -> bool:
        """Return True if ``other`` has the same instructions and field metadata."""
        if not isinstance(other, _SignatureMeta):
            return False
        if cls.instructions != other.instructions or list(cls.fields) != list(other.fields):
            return False
        return all(
            cls.fields[n].json_schema_extra == other.fields[n].json_schema_extra
            and cls.fields[n].annotation == other.fields[n].annotation
            for n in cls.fields
        )

    @classmethod
    def dump_state(cls) -> dict[str, Any]:
        """Return the DSPy-format state: instructions and each field's prefix/description."""
        return {
            "instructions": cls.instructions,
            "fields": [
                {"prefix": f.json_schema_extra["prefix"], "description": f.json_schema_extra["desc"]}  # type: ignore[index]
                for f in cls.fields.values()
            ],
        }

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> type[Signature]:
        """Return a new signature with the instructions and field texts of ``state``."""
        items = _field_items(cls)
        ordered = list(cls.fields)
        for fname, saved in zip(ordered, state.get("fields", []), strict=False):
            tp, field = items[fname]
            field = copy.deepcopy(field)
            extra = field.json_schema_extra
            assert isinstance(extra, dict)
            if "prefix" in saved:
                extra["prefix"] = saved["prefix"]
            if "description" in saved:
                extra["desc"] = saved["description"]
            items[fname] = (tp, field)
        return _build(cls.__name__, items, state.get("instructions", cls.instructions))


def _field_items(sig: type[Signature], kind: str | None = None) -> dict[str, tuple[Any, FieldInfo]]:
    fields = sig.fields if kind is None else (sig.input_fields if kind == "input" else sig.output_fields)
    return {n: (f.annotation, copy.deepcopy(f)) for n, f in fields.items()}


def _build(name: str, items: Mapping[str, tuple[Any, FieldInfo]], instructions: str | None) -> type[Signature]:
    for fname in items:
        if not isinstance(fname, str) or not fname.isidentifier():
            raise SignatureError(f"field name {fname!r} is not a valid identifier")
    inputs = {n: v for n, v in items.items() if field_kind(v[1]) == "input"}
    outputs = {n: v for n, v in items.items() if field_kind(v[1]) == "output"}
    doc = instructions if instructions else _default_instructions(inputs, outputs)
    try:
        sig: type[Signature] = create_model(name, __base__=Signature, __doc__=doc, **items)  # type: ignore[call-overload]
    except SignatureError:
        raise
    except Exception as exc:  # pydantic rejects odd types or names; say which
        raise SignatureError(f"cannot build signature {name!r} from fields {list(items)}: {exc}") from None
    return sig


_cache: dict[Any, type[Signature]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 4096


def make_signature(
    signature: str | Mapping[str, Any],
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    *,
    types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """Build a signature class from a string or a ``{name: (type, field)}`` dict.

    Strings are cached: the same string, instructions and ``types`` return the
    same class. Custom types used in a string must be passed in ``types``.

    Raises:
        SignatureError: The string is malformed, a type is unknown, a name
            repeats, or a dict value is not ``(type, InputField/OutputField)``.
    """
    if isinstance(signature, str):
        try:
            key: Any = (signature, instructions, signature_name, tuple(sorted((types or {}).items())))
            hash(key)
        except TypeError:
            key = None
        if key is not None and (hit := _cache.get(key)) is not None:
            return hit
        ins, outs = parse_fields(signature, resolve_type_names(types))
        items: dict[str, tuple[Any, FieldInfo]] = {}
        for fname, tp, untyped in ins:
            items[fname] = (tp, InputField(**({"__dspy_is_type_undefined": True} if untyped else {})))
        for fname, tp, _ in outs:
            items[fname] = (tp, OutputField())
        sig = _build(signature_name, items, instructions)
        if key is not None:
            with _cache_lock:
                if len(_cache) >= _CACHE_MAX:
                    _cache.clear()
                sig = _cache.setdefault(key, sig)
        return sig
    if isinstance(signature, Mapping):
        items = {}
        for fname, value in signature.items():
            if isinstance(value, FieldInfo):
                value = (value.annotation or str, value)
            if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], FieldInfo)):
                raise SignatureError(
                    f"field {fname!r}: expected (type, dx.InputField()/dx.OutputField()), got {value!r}", field=fname
                )
            if field_kind(value[1]) not in ("input", "output"):
                raise SignatureError(f"field {fname!r} must be a dx.InputField() or dx.OutputField()", field=fname)
            items[fname] = (value[0] if value[0] is not None else str, value[1])
        return _build(signature_name, items, instructions)
    raise SignatureError(
        f"expected a signature string like 'question -> answer' or a dict of fields, got {type(signature).__name__}"
    )


def ensure_signature(signature: str | type[Signature], instructions: str | None = None) -> type[Signature]:
    """Return ``signature`` as a class, parsing it if it is a string.

    Raises:
        SignatureError: ``signature`` is neither, or instructions were given
            together with a class.
    """
    if isinstance(signature, str):
        return make_signature(signature, instructions)
    if isinstance(signature, _SignatureMeta) and signature is not Signature:
        if instructions is not None:
            return signature.with_instructions(instructions)
        return signature
    raise SignatureError(
        f"expected a signature string like 'question -> answer' or a dx.Signature subclass, got {signature!r}"
    )

