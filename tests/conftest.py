"""Shared fixtures: every async test runs on both anyio backends."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile

import anyio
import pytest

from dspex._util._sync import run_sync

# Tests must not touch the home directory: the LM disk cache (default
# ~/.dspex/cache) goes to a temporary directory for this session, inherited by
# the subprocesses tests start (examples, CLI runs).
_CACHE_DIR = tempfile.mkdtemp(prefix="dspex-test-cache-")
os.environ["DSPEX_CACHE_DIR"] = _CACHE_DIR


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)

# Fixture generators run with DSPy's own venv and are never collected (not even as doctests).
# Nor are the conftest files as doctest modules: several share the basename
# ``conftest`` (tests/, tests/_http/, ...), and ``--doctest-modules`` importing a
# second one under that name fails the whole collection ("import file mismatch").
collect_ignore_glob = ["*/make_*.py", "*/*/make_*.py", "conftest.py", "*/conftest.py"]


@pytest.fixture
def quiet_main_loop() -> None:
    """Let the main loop finish what earlier tests left it (a dead pool's socket clean-up
    is a task, and with another task around a sync call rightly stays on the loop), so a
    sync call made next has the loop to itself and takes the blocking path (tests/_http)."""
    gc.collect()
    run_sync(anyio.sleep, 0, reuse_loop=True)
