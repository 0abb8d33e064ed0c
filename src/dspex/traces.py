"""``dx.traces``: turn traces recorded in the run store into a trainset.

Flows record traces with ``dx.sinks.trace_store`` (inputs, outputs, score
per record); :func:`to_trainset` reads those of a run (or a program) with
a score of at least ``min_score`` and returns ``Example``s whose inputs are
the recorded inputs, ready for any optimizer.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ._util._sync import run_sync
from .errors import ConfigError
from .modules import Example
from .store._sqlite import DEFAULT_STORE_PATH, RunStore

if TYPE_CHECKING:
    import os

__all__ = ["ato_trainset", "to_trainset"]


async def ato_trainset(*, run_id: str | None = None, program: str | None = None, min_score: float | None = None,
                       store: RunStore | str | os.PathLike[str] = DEFAULT_STORE_PATH) -> list[Example]:
    """Return the selected traces as Examples (inputs marked with ``with_inputs``), oldest first.

    Raises:
        ConfigError: Neither ``run_id`` nor ``program`` was given.
        StoreError: The store cannot be read.
    """
    if run_id is None and program is None:
        raise ConfigError("to_trainset needs run_id= or program= to select traces")
    if isinstance(store, RunStore):
        rows = await store.traces(program, run_id=run_id, min_score=min_score)
    else:
        async with RunStore(store) as opened:
            rows = await opened.traces(program, run_id=run_id, min_score=min_score)
    return [Example({**row["inputs"], **row["outputs"]}).with_inputs(*row["inputs"]) for row in rows]


def to_trainset(**kwargs: Any) -> list[Example]:
    """Blocking form of :func:`ato_trainset` (same keyword arguments)."""
    return run_sync(functools.partial(ato_trainset, **kwargs), reuse_loop=True)
