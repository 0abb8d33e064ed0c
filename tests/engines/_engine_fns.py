"""Record functions for the engine tests (pickled by value into worker processes)."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

from dspex._context import get_setting


def square(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "y": r["x"] * r["x"]}


def slow_marking(r: dict[str, Any]) -> dict[str, Any]:
    """Square slowly; the worker on record 40 writes its pid where the test waits for it."""
    marks = Path(r["marks"])
    if r["id"] == 40 and not (marks / "killed").exists():
        (marks / "pid.tmp").write_text(str(os.getpid()))
        (marks / "pid.tmp").rename(marks / "pid")
    time.sleep(0.005)
    return {"id": r["id"], "y": r["x"] * r["x"]}


def fail_every_seventh(r: dict[str, Any]) -> dict[str, Any]:
    """Pass the record on, slowly; every seventh id fails.

    A record with ``hold: true`` waits (at most 60 s) for the file named by
    its ``go`` field: the test creates it once progress arrived.
    """
    time.sleep(0.004)
    if r.get("hold"):
        go = Path(r["go"])
        for _ in range(3000):
            if go.exists():
                break
            time.sleep(0.02)
    if r["id"] % 7 == 0:
        raise ValueError(f"record {r['id']} is a multiple of 7")
    return r


def with_env_mark(r: dict[str, Any]) -> dict[str, Any]:
    """Add the worker's ``DSPEX_TEST_MARK`` environment variable to the record."""
    return {**r, "mark": os.environ.get("DSPEX_TEST_MARK")}


def with_gc_state(r: dict[str, Any]) -> dict[str, Any]:
    """The worker's garbage-collector settings: thresholds and whether anything is frozen."""
    return {"id": r["id"], "threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count() > 0}


def with_retention(r: dict[str, Any]) -> dict[str, Any]:
    """What the worker keeps of its LM calls: history and trace sizes, and the trace so far."""
    trace = get_setting("trace")
    return {"id": r["id"], "history": get_setting("max_history_size"),
            "trace_size": get_setting("max_trace_size"), "trace_len": None if trace is None else len(trace)}


def with_dask_worker_state(r: dict[str, Any]) -> dict[str, Any]:
    """A Dask worker's collector settings and whether Dask's statistical profiler is on."""
    import dask  # only in a Dask worker, where it is installed

    return {**with_gc_state(r), "profile": bool(dask.config.get("distributed.worker.profile.enabled"))}
