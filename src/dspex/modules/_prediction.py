"""``Prediction`` and ``Completions``: what a module returns.

A ``Prediction`` is an :class:`~dspex.modules.Example` holding the output
fields of the first completion, with every candidate in ``.completions`` when
the LM returned several (``n>1``) and the tokens spent in ``.usage``. Like
DSPy's, a prediction with a ``score`` field acts as a number (``float``,
``+``, ``/``, ``<`` …) so a module can serve as a metric.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import InputError
from ..lm._types import LMUsage
from ._example import Example

__all__ = ["Completions", "Prediction"]

_ZERO_USAGE = LMUsage()


def _number(value: Any) -> float:
    if isinstance(value, Prediction):
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number or a Prediction with a 'score', got {type(value).__name__}")


class Prediction(Example):
    """The outputs of one module call.

    Attribute and item access read the first completion's fields; other
    candidates are in :attr:`completions`. :attr:`usage` sums the tokens of
    every LM call the module made (nested ones included).

    Example:
        >>> import dspex as dx
        >>> pred = dx.Prediction.from_completions([{"answer": "4"}, {"answer": "four"}])
        >>> pred.answer, pred.completions.answer, pred.completions[1].answer
        ('4', ['4', 'four'], 'four')
        >>> float(dx.Prediction(score=0.5)) + 1
        1.5
    """

    _completions: Completions | None
    _usage: LMUsage | None

    def __init__(self, base: Mapping[str, Any] | Example | None = None, **fields: Any) -> None:
        super().__init__(base, **fields)
        attrs = self.__dict__
        attrs["_input_keys"] = None
        attrs["_completions"] = None
        attrs["_usage"] = None

    @classmethod
    def from_completions(
        cls, completions: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], signature: Any = None
    ) -> Prediction:
        """Build a prediction from a list of output dicts (or a dict of lists)."""
        pred = cls.__new__(cls)
        comps = Completions(completions, signature=signature)
        attrs = pred.__dict__
        attrs["_input_keys"] = None
        one = comps._one
        attrs["_store"] = dict(one) if one is not None else {k: v[0] for k, v in comps._fields.items() if v}
        attrs["_completions"] = comps
        attrs["_usage"] = None
        return pred

    @property
    def completions(self) -> Completions:
        """Every candidate completion (just this one when ``n`` was 1)."""
        if self._completions is None:
            self._completions = Completions([dict(self._store)])
        return self._completions

    @property
    def usage(self) -> LMUsage:
        """Tokens spent producing this prediction (zeros if unknown)."""
        return self._usage if self._usage is not None else _ZERO_USAGE

    @usage.setter
    def usage(self, value: LMUsage | None) -> None:
        self._usage = value

    def get_lm_usage(self) -> LMUsage:
        """Return :attr:`usage` (DSPy's name)."""
        return self.usage

    def set_lm_usage(self, value: LMUsage | None) -> None:
        """Set :attr:`usage` (DSPy's name)."""
        self._usage = value

    def with_inputs(self, *keys: str) -> Example:
        """Return an :class:`Example` copy of these outputs with ``keys`` as inputs."""
        return Example(self._store).with_inputs(*keys)

    def __repr__(self) -> str:
        body = ",\n    ".join(f"{k}={v!r}" for k, v in self._store.items())
        if self._completions is not None and len(self._completions) > 1:
            omitted = len(self._completions) - 1
            return f"Prediction(\n    {body},\n    completions=Completions(...)\n) ({omitted} completions omitted)"
        return f"Prediction(\n    {body}\n)"

    __str__ = __repr__

    # -- numeric behaviour (metric results) --------------------------------------
    def __float__(self) -> float:
        if "score" not in self._store:
            raise InputError("this Prediction has no 'score' field, so it cannot be used as a number")
        return float(self._store["score"])

    def __add__(self, other: Any) -> float:
        return float(self) + _number(other)

    def __radd__(self, other: Any) -> float:
        return _number(other) + float(self)

    def __sub__(self, other: Any) -> float:
        return float(self) - _number(other)

    def __rsub__(self, other: Any) -> float:
        return _number(other) - float(self)

    def __mul__(self, other: Any) -> float:
        return float(self) * _number(other)

    def __rmul__(self, other: Any) -> float:
        return _number(other) * float(self)

    def __truediv__(self, other: Any) -> float:
        return float(self) / _number(other)

    def __rtruediv__(self, other: Any) -> float:
        return _number(other) / float(self)

    def __lt__(self, other: Any) -> bool:
        return float(self) < _number(other)

    def __le__(self, other: Any) -> bool:
        return float(self) <= _number(other)

    def __gt__(self, other: Any) -> bool:
        return float(self) > _number(other)

    def __ge__(self, other: Any) -> bool:
        return float(self) >= _number(other)

    __hash__ = Example.__hash__


class Completions:
    """All candidate completions of one call, field by field.

    ``completions.answer`` is the list of every candidate's ``answer``;
    ``completions[i]`` is candidate ``i`` as a :class:`Prediction`.

    Args:
        completions: A list of output dicts, or a dict of equal-length lists.
        signature: The signature they answer (kept for reference).

    Raises:
        InputError: The lists have different lengths.
    """

    def __init__(
        self, completions: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], signature: Any = None
    ) -> None:
        self.signature = signature
        # The one completion of the common case, as a flat copy; its per-field
        # lists are built on first read. Predictions stay in the trace and the
        # histories, and every container kept per call is more work for the
        # cyclic GC (a dict of plain strings is not even tracked).
        self._one: dict[str, Any] | None = None
        self._cols: dict[str, list[Any]] | None = None
        fields: dict[str, list[Any]] = {}
        if type(completions) is list and len(completions) == 1:  # the common case: one completion
            self._one = dict(completions[0])
            self._len = 1 if self._one else 0
            return
        if isinstance(completions, Mapping):
            fields = {k: list(v) for k, v in completions.items()}
        elif len(completions) == 1:  # the common case: one completion
            fields = {k: [v] for k, v in completions[0].items()}
        else:
            for i, completion in enumerate(completions):
                for key, value in completion.items():
                    fields.setdefault(key, [None] * i).append(value)
                for values in fields.values():
                    if len(values) < i + 1:
                        values.append(None)
        lengths = {len(v) for v in fields.values()}
        if len(lengths) > 1:
            raise InputError(f"completions must all have the same fields; got lists of lengths {sorted(lengths)}")
        self._cols = fields
        self._len = lengths.pop() if lengths else 0

    @property
    def _fields(self) -> dict[str, list[Any]]:
        """Field name -> every candidate's value (built from ``_one`` on first read)."""
        cols = self._cols
        if cols is None:
            one = self._one or {}
            cols = self._cols = {k: [v] for k, v in one.items()}
            self._one = None
        return cols

    def items(self) -> Iterator[tuple[str, list[Any]]]:
        """Return ``(field, values)`` pairs."""
        return iter(self._fields.items())

    def keys(self) -> list[str]:
        """Return the field names."""
        return list(self._fields)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            if not -self._len <= key < self._len:
                raise IndexError(f"completion index {key} out of range for {self._len} completion(s)")
            return Prediction(**{k: v[key] for k, v in self._fields.items()})
        return self._fields[key]

    def __getattr__(self, name: str) -> list[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"completions have no field {name!r}; fields are {list(self._fields)}") from None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Prediction]:
        return (self[i] for i in range(self._len))

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def __repr__(self) -> str:
        body = ",\n    ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"Completions(\n    {body}\n)"
