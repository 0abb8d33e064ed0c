"""Where a flow runs when not here: the driver the engines package installs.

``Flow.run`` runs a flow on the local engine itself. Every other engine
(``"processes"``, ``"dask"``, an ``Engine`` object) belongs to
:mod:`dspex.engines`, which depends on this package (it splits, ships and
runs flows) and must not be depended on by it: importing ``dspex.engines``
calls :func:`install` with its driver, and ``Flow.run`` asks
:func:`driver` for it. Holding an ``Engine`` object means its package was
imported, so only an engine *name* can find no driver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ._report import RunReport

__all__ = ["Driver", "driver", "install"]

Driver = Callable[..., Awaitable["RunReport"]]
"""``driver(flow, engine, *, workers, address, partitions, backend, run_id, store, progress,
options)`` runs ``flow`` on ``engine`` (a name or an ``Engine``) and returns the merged report."""

_INSTALLED: list[Driver] = []


def install(run: Driver) -> None:
    """Make ``run`` the driver of every engine but the local one (the last call wins)."""
    _INSTALLED[:] = [run]


def driver(engine: Any) -> Driver:
    """Return the installed driver for running on ``engine``.

    Raises:
        ConfigError: No engines package was imported (``import dspex.engines``).
    """
    if not _INSTALLED:
        raise ConfigError(
            f"engine={engine!r} needs the engines package: import dspex.engines first "
            "(it provides 'processes' and 'dask'); the default engine is 'local'"
        )
    return _INSTALLED[0]
