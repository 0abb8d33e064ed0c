"""Fixtures for the HTTP client's tests."""

from __future__ import annotations

import gc

import anyio
import pytest

from dspex._util._sync import run_sync


@pytest.fixture
def quiet_main_loop() -> None:
    """Let the main loop finish what earlier tests left it (a dead pool's socket clean-up
    is a task, and with another task around a sync call rightly stays on the loop), so a
    sync call made next has the loop to itself and takes the blocking path."""
    gc.collect()
    run_sync(anyio.sleep, 0, reuse_loop=True)
