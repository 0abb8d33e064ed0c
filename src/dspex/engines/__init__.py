"""Engines: where a flow runs — one process (local), local processes, or Dask."""

from ._base import Engine as Engine
from ._base import engine_names as engine_names
from ._base import get_engine as get_engine
from ._base import register_engine as register_engine
from ._dask import DaskEngine as DaskEngine
from ._dispatch import run_on_engine as run_on_engine  # installs itself as Flow.run's driver
from ._driver import run_partitioned as run_partitioned
from ._partition import split_source as split_source
from ._processes import ProcessesEngine as ProcessesEngine

__all__ = [
    "DaskEngine",
    "Engine",
    "ProcessesEngine",
    "engine_names",
    "get_engine",
    "register_engine",
    "run_on_engine",
    "run_partitioned",
    "split_source",
]
