"""A flow's usage totals count LM cache hits (both backends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dspex as dx
from dspex.lm import LMCache
from dspex.testing import FakeLLMServer

if TYPE_CHECKING:
    from pathlib import Path


async def _run(lm: dx.LM, questions: list[str], module: dx.Module) -> dict[str, float]:
    flow = dx.Flow("cached")
    out = dx.sinks.collect()
    flow.source([{"question": q} for q in questions]).map(module).sink(out)
    report = await flow.run(lm=lm, progress=False)
    assert sorted(r["question"] for r in out.items) == questions
    return report.usage


async def test_a_rerun_answered_from_the_cache_reports_cache_hits(tmp_path: Path) -> None:
    questions = ["What is 1 + 1?", "What is 2 + 2?", "What is 3 + 3?"]
    async with FakeLLMServer() as server:
        lm = dx.LM("openai/fake", api_base=f"{server.url}/v1", api_key="k", cache=LMCache(tmp_path))
        first = await _run(lm, questions, dx.ChainOfThought("question -> answer"))
        again = await _run(lm, questions, dx.ChainOfThought("question -> answer"))
        await lm.aclose()
    assert first["cache_hits"] == 0
    assert first["input_tokens"] > 0
    # served from the cache: no tokens spent, and the report says why
    assert again["cache_hits"] == 3
    assert again["input_tokens"] == 0
    assert again["calls"] == 3
