"""The engine tests' shared Dask cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from dspex.engines import DaskEngine

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A two-worker LocalCluster on loopback, built as the Dask engine builds its own."""
    pytest.importorskip("distributed")
    with DaskEngine(workers=2)._cluster() as c:
        yield c
