"""``Prepared``: what one adapter knows about one signature, computed once.

Formatting and parsing a call repeat work that depends only on the (adapter,
signature) pair: the system message and demo turns, the output reminder, the
history field, the request parameters per provider, the native tool-calling
plan. ``Adapter.prepare(signature)`` returns one :class:`Prepared` holding
them, built on first use and kept in a bounded per-adapter table
(:class:`PreparedTable`), so a call only builds its request turn and parses.
The per-call parts (inputs, demos, the LM) are never stored here, except the
demo turns, which are keyed by the identity of the demo objects and keep
those objects alive so that identity stays unique.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..signatures._types import Reasoning
from ._fmt import history_field

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from pydantic.fields import FieldInfo

    from ..lm._types import Message
    from ..signatures import Signature
    from ._base import Adapter
    from ._native import NativePlan

__all__ = ["Prepared", "PreparedTable"]

#: Distinct demo lists remembered per signature (a program has one per predictor;
#: an optimizer trying candidates cycles through more, and old ones are dropped).
MAX_DEMO_SETS = 64
_UNSET: Any = object()
#: Taken to insert into a table (never while computing an entry, which may prepare
#: another signature): hits stay lock-free, and eviction never races another insert.
_INSERT = threading.Lock()


class Prepared:
    """The per-signature facts of one adapter (see the module docstring).

    Attributes:
        adapter: The adapter that prepared it.
        signature: The signature it describes.
        outputs: ``signature.output_fields``.
        history_field: The first ``History``-typed input, if any.
        reasoning_field: The first ``Reasoning``-typed output, if any.
        requirements: The output reminder of the request turn, filled by the
            adapter on first use (None until then).
    """

    __slots__ = ("_native", "_params", "_prefixes", "_without_reasoning", "adapter", "history_field", "outputs",
                 "reasoning_field", "requirements", "signature")

    def __init__(self, adapter: Adapter, signature: type[Signature]) -> None:
        self.adapter = adapter
        self.signature = signature
        self.outputs: Mapping[str, FieldInfo] = signature.output_fields
        self.history_field = history_field(signature.input_fields)
        self.reasoning_field = next((n for n, f in self.outputs.items() if f.annotation is Reasoning), None)
        self._without_reasoning: type[Signature] | None = None
        self.requirements: str | None = None
        self._params: dict[Any, dict[str, Any]] = {}
        self._prefixes: dict[tuple[int, ...], tuple[list[Message], tuple[Any, ...]]] = {}
        self._native: NativePlan | None = _UNSET

    def lm_params(self, provider: Any) -> dict[str, Any]:
        """Return ``adapter.lm_params(signature, provider)``, computed once per provider.

        The returned dict is shared: copy it before changing it.
        """
        key = provider if isinstance(provider, str | None) else id(provider)
        params = self._params.get(key)
        if params is None:
            built = dict(self.adapter.lm_params(self.signature, provider))
            with _INSERT:
                params = self._params.setdefault(key, built)
        return params

    def prefix(self, demos: Sequence[Any], build: Callable[[Sequence[Any]], list[Message]]) -> list[Message]:
        """Return ``build(demos)`` (the turns before the request), once per demo list.

        Keyed by the identity of the demo objects: demos mutated in place
        after a call are not noticed (assign a new list instead). The result
        is shared: copy it before changing it.
        """
        key = tuple(map(id, demos))
        hit = self._prefixes.get(key)
        if hit is None:
            built = (build(demos), tuple(demos))  # the demos are kept so their ids stay unique
            with _INSERT:
                hit = self._prefixes.get(key)
                if hit is None:
                    if len(self._prefixes) >= MAX_DEMO_SETS:
                        del self._prefixes[next(iter(self._prefixes))]
                    hit = self._prefixes[key] = built
        return hit[0]

    def without_reasoning(self) -> type[Signature]:
        """Return the signature without its ``Reasoning`` output (made once; itself if none)."""
        reduced = self._without_reasoning
        if reduced is None:
            field = self.reasoning_field
            reduced = self._without_reasoning = self.signature.delete(field) if field else self.signature
        return reduced

    def native_plan(self, compute: Callable[[type[Signature]], NativePlan | None]) -> NativePlan | None:
        """Return ``compute(signature)`` (the native tool-calling plan), computed once.

        An exception from ``compute`` (a ``ToolCalls`` output with no tools
        input) is not remembered: it is raised again on the next call.
        """
        plan = self._native
        if plan is _UNSET:
            plan = self._native = compute(self.signature)
        return plan


class PreparedTable:
    """A bounded signature → :class:`Prepared` table, one per adapter.

    Bounded rather than weak: a ``Prepared`` refers to its signature, so a
    weak-keyed table would never drop an entry, and programs that build
    signatures per call (``signature=`` overrides, Refine's hint input)
    would grow it without end. Eviction is first-in first-out: a hit costs
    one dict lookup and no lock, and an evicted signature is only prepared
    again. Insertion takes a lock so two threads preparing the same
    signature share one object.
    """

    __slots__ = ("_entries", "maxsize")

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._entries: dict[type[Signature], Prepared] = {}

    def get(self, adapter: Adapter, signature: type[Signature]) -> Prepared:
        """Return the entry for ``signature``, preparing it on first use."""
        hit = self._entries.get(signature)
        if hit is not None:
            return hit
        with _INSERT:  # Prepared() only reads the signature's fields: it never prepares another
            hit = self._entries.get(signature)
            if hit is None:
                if len(self._entries) >= self.maxsize:
                    del self._entries[next(iter(self._entries))]
                hit = self._entries[signature] = Prepared(adapter, signature)
            return hit

    def __len__(self) -> int:
        return len(self._entries)

    def __reduce__(self) -> tuple[type[PreparedTable], tuple[int]]:
        # Copies and pickles of an adapter start empty: the entries are only a
        # cache, and they refer to the adapter and signatures being copied.
        return (PreparedTable, (self.maxsize,))
