"""Shared fixtures: every async test runs on both anyio backends."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)

# Fixture generators run with DSPy's own venv and are never collected (not even as doctests).
collect_ignore_glob = ["*/make_*.py", "*/*/make_*.py"]
