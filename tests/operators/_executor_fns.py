"""Record functions for the executor tests, importable by module name in worker processes.

Kept apart from the test module, and importing only the standard library, so
that a spawned worker process starts without importing pytest or dspex's flows.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def double(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "y": r["x"] * 2, "pid": os.getpid()}


def twice(r: dict[str, Any]) -> Any:
    return ({**r, "copy": i} for i in range(2))  # a generator: drained in the worker


def keep_even(r: dict[str, Any]) -> bool:
    return bool(r["x"] % 2 == 0)


def fragile(r: dict[str, Any]) -> dict[str, Any]:
    if r["x"] % 7 == 3:
        raise ValueError(f"bad record {r['x']}")
    return {**r, "ok": True}


def flaky(r: dict[str, Any]) -> dict[str, Any]:
    """Fail the first call for each record (a marker file remembers it, across processes)."""
    marker = Path(r["dir"]) / f"{r['x']}.tried"
    if r["x"] % 5 == 0 and not marker.exists():
        marker.touch()
        raise ConnectionError(f"transient failure on {r['x']}")
    return {**r, "ok": True}


def sleepy(r: dict[str, Any]) -> dict[str, Any]:
    (Path(r["dir"]) / f"{os.getpid()}.pid").touch()
    time.sleep(60)
    return r
