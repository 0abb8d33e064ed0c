"""Run one batch of calls (program runs, metric calls, teacher traces) as a flow.

Evaluate and every optimizer hand their batches of LM work to
:func:`run_batch`: a small ``dx.Flow`` whose source yields item indices, whose
``map`` node calls the work function with ``concurrency`` workers, and whose
sinks collect the results (plus any user sinks, e.g. a WebSocket broadcast).
The work function catches its own errors, so a failing item never stops the
others. With ``run_id`` the source is keyed by index and the run can resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError
from ..flows import Flow
from ..sinks import collect
from ..sources import iterable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ..sinks import Sink

__all__ = ["check_concurrency", "run_batch"]

T = TypeVar("T")


def check_concurrency(value: Any, what: str) -> int:
    """Return ``value`` as a concurrency limit, or raise ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be an int >= 1, got {value!r}")
    return value


async def run_batch(
    fn: Callable[[int, T], Awaitable[dict[str, Any]]], items: Sequence[T], *, concurrency: int,
    name: str, progress: bool | None = False, sinks: Sequence[Sink] = (),
    run_id: str | None = None, store: Any = None, checkpoint_every: int = 1000,
) -> list[dict[str, Any]]:
    """Call ``fn(index, item)`` for every item through a flow; return the records.

    At most ``concurrency`` calls are in flight; results are collected in
    completion order, each record tagged with its ``"index"``. ``fn`` must
    not raise for a single bad item (it returns a record describing the
    failure); an exception it does raise fails the batch with ``FlowFailed``.

    Args:
        fn: The async work function; its dict return value is the record.
        items: The batch.
        concurrency: Most calls in flight.
        name: The flow's name (reports, progress lines).
        progress: Passed to ``Flow.run``.
        sinks: Extra sinks that also get every record (live results).
        run_id: Makes the run resumable: items done under this id are skipped.
        store: The run store for ``run_id``.
        checkpoint_every: With ``run_id``, commit progress after this many items.
    """
    out = collect(name="results")

    async def one(record: dict[str, Any]) -> dict[str, Any]:
        index = record["index"]
        return {"index": index, **(await fn(index, items[index]))}

    flow = Flow(name)
    source = iterable(({"index": i} for i in range(len(items))), id_field="index" if run_id else None)
    flow.source(source).map(one, concurrency=concurrency, ordered=False).sink(out, *sinks)
    await flow.run(run_id=run_id, store=store, progress=progress, checkpoint_every=checkpoint_every)
    return list(out.items)
