"""dx.LM under injected faults on a real loopback server (FakeLLMServer).

5 % 429 (small Retry-After), 5 % 500, 1 % connection resets and 1 % truncated
responses: N Predict calls at concurrency 64 all succeed through retries, each
item gets exactly one prediction, and the tokens the predictions report add
up to exactly what the server says it served. The streaming variant checks
that a stream is retried only before its first delta, so a truncated stream
either fails the item (never duplicated) or is transparently retried.
The full 10,000-item run lives in ``benchmarks/bench_lm_faults.py``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import dspex as dx
from dspex.errors import LMError
from dspex.lm import LM, RetryPolicy
from dspex.testing import FakeLLMServer

N = 10_000  # ~12 s per backend on 2 cores; benchmarks/bench_lm_faults.py reports timings
CONCURRENCY = 64
FAULTS: dict[str, Any] = {"p_429": 0.05, "p_500": 0.05, "p_reset": 0.01, "p_truncate": 0.01, "retry_after": 0.01}
FAST_RETRY = RetryPolicy(max_retries=10, base_delay=0.005, max_delay=0.05)


def make_lm(server: FakeLLMServer, **kw: Any) -> LM:
    return LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-fault-test-0000",
              cache=False, retry=FAST_RETRY, **kw)


async def run_predict_items(lm: LM, n: int) -> dict[int, dx.Prediction]:
    predict = dx.Predict("question -> answer")
    results: dict[int, dx.Prediction] = {}
    duplicates: list[int] = []
    limiter = anyio.CapacityLimiter(CONCURRENCY)

    async def one(i: int) -> None:
        async with limiter:
            pred = await predict.acall(question=f"What is item number {i}?", lm=lm)
        if i in results:
            duplicates.append(i)
        results[i] = pred

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    assert duplicates == []
    return results


@pytest.mark.slow
async def test_predict_calls_survive_faults_and_usage_adds_up() -> None:
    async with FakeLLMServer(seed=7, **FAULTS) as server:
        lm = make_lm(server)
        results = await run_predict_items(lm, N)
        await lm.aclose()
    assert sorted(results) == list(range(N))
    assert all(isinstance(p.answer, str) and p.answer for p in results.values())
    faults = server.stats.faults
    assert faults.get("429", 0) > 0
    assert faults.get("500", 0) > 0
    assert faults.get("reset", 0) > 0
    # each fault costs one retry, except resets the pool may replay itself on a fresh connection
    assert sum(faults.values()) - faults["reset"] <= lm.endpoint.retries <= sum(faults.values())
    assert sum(p.usage.input_tokens for p in results.values()) == server.stats.prompt_tokens
    assert sum(p.usage.output_tokens for p in results.values()) == server.stats.completion_tokens


async def test_streams_never_retry_after_output() -> None:
    n = 300
    async with FakeLLMServer(seed=3, token_delay_ms=0.01, **FAULTS) as server:
        lm = make_lm(server)
        outcomes: dict[int, Any] = {}  # an LMError, or (text, usage)
        limiter = anyio.CapacityLimiter(CONCURRENCY)

        async def one(i: int) -> None:
            text, usage = [], None
            async with limiter:
                try:
                    async for chunk in lm.stream(f"Tell me about item {i}."):
                        text.append(chunk.text)
                        usage = chunk.usage if chunk.done else usage
                except LMError as exc:
                    assert i not in outcomes
                    outcomes[i] = exc
                    return
            assert i not in outcomes
            outcomes[i] = ("".join(text), usage)

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        await lm.aclose()
    assert sorted(outcomes) == list(range(n))
    failed = [o for o in outcomes.values() if isinstance(o, LMError)]
    done = [o for o in outcomes.values() if not isinstance(o, LMError)]
    assert all("truncated" in str(e) for e in failed)
    assert len(failed) <= server.stats.faults.get("truncate", 0)
    assert sum(u.input_tokens for _, u in done) == server.stats.prompt_tokens
    assert sum(u.output_tokens for _, u in done) == server.stats.completion_tokens


@pytest.mark.parametrize("model", ["anthropic/claude-fake", "gemini/gemini-fake"])
async def test_other_providers_retry_faults(model: str) -> None:
    async with FakeLLMServer(seed=11, **FAULTS) as server:
        lm = LM(model, api_base=server.url, api_key="sk-fault-test-0000", cache=False, retry=FAST_RETRY)
        results = await run_predict_items(lm, 200)
        await lm.aclose()
    assert len(results) == 200
    assert sum(p.usage.input_tokens + p.usage.output_tokens for p in results.values()) == (
        server.stats.prompt_tokens + server.stats.completion_tokens
    )
