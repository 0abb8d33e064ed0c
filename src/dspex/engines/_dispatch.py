"""``Flow.run(engine=...)`` for every engine but the local one.

:func:`run_on_engine` resolves an engine name through the registry (or
takes an :class:`~dspex.engines.Engine`) and hands the flow to the
partitioned driver. Importing this module installs it as the flows
package's driver (:func:`dspex.flows._engines.install`), so the flows
package never imports the engines: the dependency runs one way, engines
-> flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..flows._engines import install
from ._base import Engine, get_engine
from ._driver import run_partitioned

if TYPE_CHECKING:
    from ..flows import Flow
    from ..flows._report import RunReport

__all__ = ["run_on_engine"]


async def run_on_engine(
    flow: Flow, engine: str | Engine, *, workers: int | None, address: str | None,
    partitions: int | None, backend: str | None, run_id: str | None, store: Any,
    progress: bool | None, options: dict[str, Any],
) -> RunReport:
    """Run ``flow`` on ``engine`` (a registered name or an ``Engine``); return the merged report.

    Raises:
        ConfigError: An unknown engine name, an object that is not an
            ``Engine``, or a backend other than ``"asyncio"``/``"trio"``.
        FlowFailed: A partition failed (see :func:`run_partitioned`).
    """
    if backend not in (None, "asyncio", "trio"):
        raise ConfigError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
    if isinstance(engine, str):
        engine = get_engine(engine, workers=workers, address=address)
    elif not isinstance(engine, Engine):
        raise ConfigError(f"engine must be a name or an Engine, got {engine!r}")
    return await run_partitioned(
        flow, engine, run_id=run_id, store=store, partitions=partitions,
        backend=backend or "asyncio", options=options, progress=progress)


install(run_on_engine)
