"""Timeout defaults a batch user wants, and hung requests retried (issue 12, item 6).

The old default read timeout was 600 s with no per-attempt deadline, so one
hung request held a flow for 10 minutes. The defaults are now a 120 s read
timeout (per read: the whole wait for a non-streamed answer, the gap between
chunks of a stream) and a 300 s deadline per attempt; a timed-out attempt is
retried like any transport error. Tests shorten them through the documented
knob (``timeout=dx.Timeouts(...)``) and check the defaults themselves.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import dspex as dx
from dspex.errors import ConfigError, LMTimeoutError
from dspex.lm import LM, RetryPolicy, Timeouts
from dspex.lm._engine import RETRY_LISTENER
from dspex.testing import FakeLLMServer

pytestmark = pytest.mark.reliability

FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.005)


def _lm(server: FakeLLMServer, **kw: Any) -> LM:
    kw.setdefault("retry", FAST)
    return LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-timeout-0000", cache=False, **kw)


def test_defaults_are_the_documented_ones() -> None:
    assert Timeouts() == Timeouts(connect=10.0, read=120.0, pool=30.0, write=30.0, attempt=300.0)
    lm = LM("openai/gpt-4o-mini", api_key="sk-x")
    assert lm.endpoint.config.timeouts == Timeouts()
    assert lm.endpoint.config.deadline == 300.0
    for doc in (Timeouts.__doc__ or "", LM.__doc__ or ""):
        assert "120 s" in doc
        assert "300 s" in doc
    assert Timeouts(attempt=None).attempt is None  # the deadline can be switched off
    with pytest.raises(ConfigError, match=r"Timeouts.attempt must be a positive number"):
        Timeouts(attempt=0)


def test_a_number_caps_read_and_attempt() -> None:
    lm = LM("openai/gpt-4o-mini", api_key="sk-x", timeout=5)
    t = lm.endpoint.config.timeouts
    assert (t.connect, t.read, t.pool, t.write, t.attempt) == (5.0, 5.0, 5.0, 5.0, 5.0)
    assert lm.endpoint.config.deadline == 5.0


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_hung_request_times_out_and_is_retried(streamed: bool) -> None:
    seen: list[BaseException] = []
    async with FakeLLMServer(p_hang=1.0) as server:

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            seen.append(exc)
            server.p_hang = 0.0  # the retry gets an answer

        lm = _lm(server, timeout=Timeouts(read=1.0))
        token = RETRY_LISTENER.set(on_retry)
        try:
            with anyio.fail_after(10):
                if streamed:
                    text = "".join([c.text async for c in lm.stream("Say hello")])
                else:
                    text = (await lm.acall("Say hello")).outputs[0]
        finally:
            RETRY_LISTENER.reset(token)
        await lm.aclose()
    assert text
    assert server.stats.faults == {"hang": 1}
    # one retry for the hang (a loaded box may time out a slow retry too: still timeouts only)
    assert lm.endpoint.retries == len(seen) >= 1
    assert all(isinstance(e, LMTimeoutError) for e in seen)
    assert str(seen[0]).startswith("read timeout (1.0s) talking to http://127.0.0.1:")


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_attempt_deadline_bounds_a_slow_answer(streamed: bool) -> None:
    # every read is quick (a token each 40 ms), but the whole answer takes longer than the deadline
    async with FakeLLMServer(latency_ms=0 if streamed else 400, token_delay_ms=40) as server:
        lm = _lm(server, num_retries=1, timeout=Timeouts(read=5, attempt=0.15))
        with anyio.fail_after(10), pytest.raises(LMTimeoutError) as info:
            if streamed:
                async for _ in lm.stream("Tell me a long story about a lighthouse keeper"):
                    pass
            else:
                await lm.acall("Say hello")
        await lm.aclose()
    err = info.value
    assert "0.15s timeout per attempt (Timeouts.attempt)" in err.message
    assert (err.model, err.provider) == ("fake-model", "openai")
    # non-streamed: the attempt and its retry; streamed: cut after output, which lm.stream
    # never retries (a streaming Predict restarts the call instead: tests/modules/test_stream_restart.py)
    assert server.stats.requests == (1 if streamed else 2)


async def test_rare_hangs_at_concurrency_64_do_not_stall_the_run() -> None:
    """0.5 % hung requests at concurrency 64: every item succeeds, each hang costs one retry."""
    n = 600
    results: dict[int, str] = {}
    retried: list[BaseException] = []
    token = RETRY_LISTENER.set(lambda attempt, exc, delay: retried.append(exc))
    async with FakeLLMServer(seed=2, p_hang=0.005) as server:
        lm = _lm(server, timeout=Timeouts(read=1.0, attempt=2.0))
        qa = dx.Predict("question -> answer")
        limiter = anyio.CapacityLimiter(64)

        async def one(i: int) -> None:
            async with limiter:
                pred = await qa.acall(question=f"What is item number {i}?", lm=lm)
            assert i not in results
            results[i] = pred.answer

        with anyio.fail_after(60):  # a guard only: a stall would otherwise hang the suite
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(one, i)
        await lm.aclose()
    RETRY_LISTENER.reset(token)
    hangs = server.stats.faults.get("hang", 0)
    assert hangs >= 2, server.stats.faults
    assert sorted(results) == list(range(n))
    assert all(results.values())
    # each hung attempt timed out and was retried (a loaded box may time out a slow one too)
    assert lm.endpoint.retries == len(retried) >= hangs
    assert all(isinstance(e, LMTimeoutError) for e in retried)
