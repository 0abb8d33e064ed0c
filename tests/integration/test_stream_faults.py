"""Streamed Predict calls under the SPEC §4 faults plus faults after the first token.

With an event consumer attached, every Predict call streams. The SPEC's fault
mix (5 % 429, 5 % 500, 1 % resets, 1 % truncations) plus 1 % malformed chunks,
with stream faults striking after the second token, used to fail ~3 % of the
items (a stream is never retried by the LM once it yielded text). Now each
such call restarts within the retry policy: every item succeeds exactly once,
the consumer sees one ``Retry`` per restart and per LM retry, and usage equals
what the server served (interrupted attempts are counted by neither side).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import dspex as dx
from dspex.events import Event, PredictionDone, Retry
from dspex.lm import LM, RetryPolicy
from dspex.modules._stream import call_emitting
from dspex.testing import FakeLLMServer

pytestmark = pytest.mark.reliability

N = 1_000
FAULTS: dict[str, Any] = {"p_429": 0.05, "p_500": 0.05, "p_reset": 0.01, "p_truncate": 0.01, "p_malformed": 0.01,
          "retry_after": 0.01}


@pytest.mark.slow
async def test_streamed_items_survive_faults_after_the_first_token() -> None:
    qa = dx.Predict("question -> answer")
    results: dict[int, Any] = {}
    duplicates: list[int] = []
    restarts: list[Retry] = []
    finals: list[PredictionDone] = []
    async with FakeLLMServer(seed=1, fault_after_tokens=2, **FAULTS) as server:
        lm = LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-stream-fault-0000", cache=False,
                retry=RetryPolicy(max_retries=10, base_delay=0.005, max_delay=0.05))
        limiter = anyio.CapacityLimiter(64)

        async def emit(event: Event) -> None:
            if isinstance(event, Retry):
                restarts.append(event)
            elif isinstance(event, PredictionDone):
                finals.append(event)

        async def one(i: int) -> None:
            async with limiter:
                pred = await call_emitting(qa, {"question": f"What is item number {i}?", "lm": lm}, emit)
            if i in results:
                duplicates.append(i)
            results[i] = pred

        with anyio.fail_after(120):  # a guard against a stall, not a speed check
            async with anyio.create_task_group() as tg:
                for i in range(N):
                    tg.start_soon(one, i)
        await lm.aclose()
    faults = server.stats.faults
    mid_stream = faults.get("reset", 0) + faults.get("truncate", 0) + faults.get("malformed", 0)
    assert mid_stream >= 15, faults
    assert duplicates == []
    assert sorted(results) == list(range(N))
    assert len(finals) == N
    assert all(p.answer for p in results.values())
    # every mid-stream fault cost exactly one restart; 429s and 500s one LM retry before any text
    cut = [r for r in restarts if r.reason.startswith("stream interrupted after output, restarting: LMTransportError")]
    early = [r for r in restarts if r.reason.startswith("LM call failed before any output, retrying: ")]
    assert len(cut) == mid_stream
    assert len(early) == faults["429"] + faults["500"]
    assert len(cut) + len(early) == len(restarts) == lm.endpoint.retries
    assert sum(p.usage.input_tokens for p in results.values()) == server.stats.prompt_tokens
    assert sum(p.usage.output_tokens for p in results.values()) == server.stats.completion_tokens
