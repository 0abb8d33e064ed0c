"""``Example``: one record of named fields, split into inputs and labels.

An ``Example`` behaves like DSPy's: a dict-like record with attribute and item
access, ``with_inputs(*names)`` marking which fields a module takes, and
``inputs()``/``labels()`` splitting it. Lists of examples are trainsets and
devsets; demos on a predictor are examples too. Keys starting with ``dspy_``
are internal and hidden from ``keys()``/``len()`` unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from ..errors import InputError

__all__ = ["Example"]


def _freeze(value: Any) -> Any:
    """Return a hashable stand-in for ``value`` (lists, dicts and sets recursively)."""
    if isinstance(value, dict):
        return ("__dict__", tuple(sorted(((repr(k), _freeze(v)) for k, v in value.items()))))
    if isinstance(value, list | tuple):
        return ("__seq__", tuple(_freeze(v) for v in value))
    if isinstance(value, set | frozenset):
        return ("__set__", frozenset(_freeze(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("__repr__", repr(value))
    return value


def _to_plain(value: Any) -> Any:
    if isinstance(value, Example):
        return value.toDict()
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


class Example:
    """A record of named fields, with an input/label split.

    Args:
        base: A dict or ``Example`` whose fields are copied first (an
            ``Example`` also passes on its input keys).
        **fields: Fields to set, overriding ``base``.

    Example:
        >>> import dspex as dx
        >>> ex = dx.Example(question="2+2?", answer="4").with_inputs("question")
        >>> ex.question, ex["answer"]
        ('2+2?', '4')
        >>> ex.inputs().toDict(), ex.labels().toDict()
        ({'question': '2+2?'}, {'answer': '4'})
    """

    # Instance state, set through __dict__ (declared for type checkers; fields live in _store).
    _store: dict[str, Any]
    _input_keys: frozenset[str] | None

    def __init__(self, base: Mapping[str, Any] | Example | None = None, **fields: Any) -> None:
        attrs = self.__dict__  # set directly: __setattr__ routes fields into the store
        attrs["_input_keys"] = None
        if isinstance(base, Example):
            store = dict(base._store)
            attrs["_input_keys"] = getattr(base, "_input_keys", None)
        elif base is not None:
            if not isinstance(base, Mapping):
                raise InputError(f"Example(base=...) expects a dict or an Example, got {type(base).__name__}")
            store = dict(base)
        else:
            store = {}
        if fields:
            store.update(fields)
        attrs["_store"] = store

    # -- access ---------------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._store[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no field {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_") or isinstance(getattr(type(self), key, None), property):
            object.__setattr__(self, key, value)
        else:
            self._store[key] = value

    def __delattr__(self, key: str) -> None:
        if key in self._store:
            del self._store[key]
        else:
            object.__delattr__(self, key)

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._store))

    def __len__(self) -> int:
        return sum(1 for k in self._store if not k.startswith("dspy_"))

    def __eq__(self, other: object) -> bool:
        # A plain dict with the same fields is equal too: DSPy keeps loaded
        # demos as the saved dicts, and programs compare them that way.
        if isinstance(other, dict):
            return self._store == other
        return isinstance(other, Example) and self._store == other._store

    def __hash__(self) -> int:
        return hash(_freeze(self._store))

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._store.items() if not k.startswith("dspy_")}
        keys = None if self._input_keys is None else set(self._input_keys)
        return f"{type(self).__name__}({shown}) (input_keys={keys})"

    __str__ = __repr__

    # -- dict protocol ----------------------------------------------------------
    def keys(self, include_dspy: bool = False) -> list[str]:
        """Return the field names (``dspy_*`` ones only if ``include_dspy``)."""
        return [k for k in self._store if include_dspy or not k.startswith("dspy_")]

    def values(self, include_dspy: bool = False) -> list[Any]:
        """Return the field values, in field order."""
        return [v for k, v in self._store.items() if include_dspy or not k.startswith("dspy_")]

    def items(self, include_dspy: bool = False) -> list[tuple[str, Any]]:
        """Return ``(name, value)`` pairs, in field order."""
        return [(k, v) for k, v in self._store.items() if include_dspy or not k.startswith("dspy_")]

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` when it is absent."""
        return self._store.get(key, default)

    # -- input / label split --------------------------------------------------
    @property
    def input_keys(self) -> frozenset[str] | None:
        """The names marked as inputs by ``with_inputs``, or None."""
        return self._input_keys

    def with_inputs(self, *keys: str) -> Example:
        """Return a copy whose input fields are ``keys``; the rest are labels."""
        copied = self.copy()
        copied._input_keys = frozenset(keys)
        return copied

    def inputs(self) -> Example:
        """Return a new example holding only the input fields.

        Raises:
            InputError: ``with_inputs`` was never called on this example.
        """
        if self._input_keys is None:
            raise InputError(
                f"inputs of {self!r} are not set; call example.with_inputs('field', ...) naming the "
                "fields the module takes"
            )
        new = type(self)({k: v for k, v in self._store.items() if k in self._input_keys})
        new._input_keys = self._input_keys
        return new

    def labels(self) -> Example:
        """Return a new example holding every field that is not an input.

        Raises:
            InputError: ``with_inputs`` was never called on this example.
        """
        keys = self.inputs()._store
        return type(self)({k: v for k, v in self._store.items() if k not in keys})

    # -- copies -----------------------------------------------------------------
    def copy(self, **fields: Any) -> Example:
        """Return a shallow copy (keeping input keys), with ``fields`` overriding."""
        return type(self)(self, **fields)

    def without(self, *keys: str) -> Example:
        """Return a copy without the fields ``keys`` (absent ones are ignored)."""
        copied = self.copy()
        for key in keys:
            copied._store.pop(key, None)
        return copied

    def toDict(self) -> dict[str, Any]:
        """Return the fields as a plain dict; nested examples and models become dicts."""
        return {k: v if type(v) is str else _to_plain(v) for k, v in self._store.items()}

    to_dict = toDict
