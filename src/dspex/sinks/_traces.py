"""``dx.sinks.trace_store``: record a flow's results as traces (inputs, outputs, score) in the run store.

Production traffic becomes training data: each record's input fields, output
fields and a score (a field of the record, or a reference-free metric of
the inputs and outputs) go to the run store's ``traces`` table under a
program name and run id, and ``dx.traces.to_trainset(run_id=..., min_score=...)``
turns them into ``Example``s. Traces are appended when each batch is
written; a resumed run may record an item it had already recorded before a
crash (at-least-once), which a trainset tolerates.

One sink may serve several runs at once (two ``flow.run`` calls of one flow):
each batch goes under the run id of the run writing it
(:func:`~dspex.sinks.current_run_id`), nothing is set on the sink, and a
store the sink opened itself stays open until the last of those runs closes it.
"""

from __future__ import annotations

import inspect
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..store._sqlite import DEFAULT_STORE_PATH, RunStore
from ._base import Sink
from ._run import current_run_id

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["TraceSink", "trace_store"]


def _as_score(value: Any) -> float | None:
    """Return a metric result as a float: bool/number, or an object's ``.score``; None stays None."""
    if value is None:
        return None
    if hasattr(value, "score") and not isinstance(value, int | float):
        value = value.score
    return float(value)


class TraceSink(Sink):
    """Append each record's inputs, outputs and score to the run store's traces.

    Args:
        program: The program name the traces belong to.
        inputs: Record fields that are the program's inputs.
        outputs: Record fields that are its outputs.
        score: The record field holding the score (ignored with ``metric``).
        metric: ``metric(inputs, outputs) -> bool | float | score`` (sync or
            async), for a reference-free score (e.g. an LM judge).
        store: A ``RunStore`` or its path.
        run_id: Groups the traces. Default: the run id of the flow run writing
            a batch (``flow.run(run_id=...)``, or the run's fresh id), or a
            fresh id in ``self.run_id`` when used outside a flow. Given, it
            overrides the flow's.

    Attributes:
        recorded: Traces written so far, over every run of this sink.

    Raises:
        ConfigError: Empty ``program`` or no input/output fields.
    """

    def __init__(self, program: str, *, inputs: Sequence[str], outputs: Sequence[str], score: str | None = "score",
                 metric: Callable[..., Any] | None = None, store: RunStore | str | os.PathLike[str] = DEFAULT_STORE_PATH,
                 run_id: str | None = None) -> None:
        if not isinstance(program, str) or not program:
            raise ConfigError(f"trace_store needs a program name, got {program!r}")
        if not inputs or not outputs:
            raise ConfigError(f"trace_store needs input and output field names, got inputs={inputs!r}, "
                              f"outputs={outputs!r}")
        self.program = program
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.score = score
        self.metric = metric
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._run_id_given = bool(run_id)
        self.name = f"traces:{program}"
        self._given = store if isinstance(store, RunStore) else None
        self._store = store if isinstance(store, RunStore) else RunStore(store)
        self.recorded = 0
        self._opens = 0  # runs that opened the sink and have not closed it yet

    def _run_id(self) -> str:
        """Return the run id for a batch: the sink's own if given, else the calling run's."""
        if self._run_id_given:
            return self.run_id
        return current_run_id() or self.run_id

    async def open(self) -> None:
        """Open the store (once, however many runs share the sink)."""
        self._opens += 1
        try:
            await self._store.open()
        except BaseException:
            self._opens -= 1
            raise

    async def _score(self, record: Mapping[str, Any], inputs: dict[str, Any], outputs: dict[str, Any]) -> Any:
        if self.metric is None:
            return _as_score(record.get(self.score)) if self.score else None
        result = self.metric(inputs, outputs)
        if inspect.isawaitable(result):
            result = await result
        return _as_score(result)

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Record one trace per record (missing fields are left out)."""
        traces = []
        for record in records:
            inputs = {k: record[k] for k in self.inputs if k in record}
            outputs = {k: record[k] for k in self.outputs if k in record}
            traces.append({"inputs": inputs, "outputs": outputs, "score": await self._score(record, inputs, outputs)})
        if traces:
            await self._store.add_traces(self.program, traces, run_id=self._run_id())
            self.recorded += len(traces)

    async def aclose(self) -> None:
        """Close the store the sink opened itself once no run has it open; a given store stays open."""
        self._opens = max(self._opens - 1, 0)
        if self._given is None and not self._opens:
            await self._store.aclose()


def trace_store(program: str, **kwargs: Any) -> TraceSink:
    """Return a sink recording traces in the run store (``dx.sinks.trace_store``); see :class:`TraceSink`."""
    return TraceSink(program, **kwargs)
