"""Where a flow runs when not here: the driver the engines package installs.

``Flow.run`` runs a flow on the local engine itself. Every other engine
(``"processes"``, ``"dask"``, an ``Engine`` object) belongs to
:mod:`dspex.engines`, which depends on this package (it splits, ships and
runs flows) and must not be depended on by it: importing ``dspex.engines``
calls :func:`install` with its driver, and ``Flow.run`` asks
:func:`driver` for it. When nothing was installed yet (``engine="processes"``
named before anything imported the engines), the driver's module is loaded
by name on first use, the way the CLI's lazy commands and ``dspex``'s lazy
public names are: the import graph keeps no edge flows -> engines, and a
flow that runs locally never loads them.
"""

from __future__ import annotations

import importlib
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
_DEFAULT_DRIVER = "dspex.engines._dispatch"  # installs itself when imported


def install(run: Driver) -> None:
    """Make ``run`` the driver of every engine but the local one (the last call wins)."""
    _INSTALLED[:] = [run]


def driver(engine: Any) -> Driver:
    """Return the installed driver for running on ``engine``.

    The first call with nothing installed imports ``dspex.engines`` (by
    name; see the module docstring), which installs its driver.

    Raises:
        ConfigError: The engines package installed no driver.
    """
    if not _INSTALLED:
        importlib.import_module(_DEFAULT_DRIVER)
    if not _INSTALLED:
        raise ConfigError(f"engine={engine!r}: {_DEFAULT_DRIVER} installed no driver")
    return _INSTALLED[0]
