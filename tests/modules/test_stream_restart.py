"""A streamed prediction cut after its first token is restarted (issue 12, item 3).

A reset, truncation, malformed chunk or stall *after* the first token used to
fail the item (the LM retries a stream only before output). Now the predictor
restarts the whole attempt within the LM's retry policy, after a ``Retry``
event (attempt, reason, predictor) telling clients to drop the partial fields.
Real loopback server (FakeLLMServer with ``fault_after_tokens``), both backends.
"""

from __future__ import annotations

from typing import Any

import pytest

import dspex as dx
from dspex.errors import LMTimeoutError, LMTransportError
from dspex.events import FieldDelta, FieldDone, PredictionDone, Retry, TokenDelta, Usage
from dspex.lm import LM, LMCache, RetryPolicy, Timeouts
from dspex.testing import FakeLLMServer

pytestmark = pytest.mark.reliability

ANSWER = "Paris is the capital of France."
COMPLETION = f"[[ ## answer ## ]]\n{ANSWER}\n\n[[ ## completed ## ]]"
FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.005)


def _faulty_once(fault: str, **kw: Any) -> FakeLLMServer:
    """A server whose first chat request fails with ``fault`` inside the answer (after 7 tokens)."""
    server = FakeLLMServer(fault_after_tokens=7, **{fault: 1.0}, **kw)

    def responder(body: dict[str, Any]) -> str:
        setattr(server, fault, 0.0)  # the fault was drawn already for this request
        return COMPLETION

    server.responder = responder
    return server


def _lm(server: FakeLLMServer, **kw: Any) -> LM:
    kw.setdefault("cache", False)
    kw.setdefault("retry", FAST)
    return LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-restart-0000", **kw)


async def _events(lm: LM) -> list[Any]:
    qa = dx.Predict("question -> answer")
    with dx.context(lm=lm):
        return [ev async for ev in qa.stream(question="Capital of France?")]


@pytest.mark.parametrize("fault", ["p_reset", "p_truncate", "p_malformed"])
async def test_stream_yields_retry_then_a_full_correct_prediction(fault: str) -> None:
    async with _faulty_once(fault) as server:
        lm = _lm(server)
        events = await _events(lm)
        await lm.aclose()
    kinds = [type(ev).__name__ for ev in events]
    retry_at = kinds.index("Retry")
    retry = events[retry_at]
    assert kinds.count("Retry") == 1
    assert isinstance(retry, Retry)
    assert retry.attempt == 1
    assert retry.predictor == "self"
    assert "LMTransportError" in retry.reason
    assert "[model='fake-model', provider='openai']" in retry.reason
    before = "".join(ev.text for ev in events[:retry_at] if isinstance(ev, TokenDelta))
    after = "".join(ev.text for ev in events[retry_at:] if isinstance(ev, TokenDelta))
    assert before
    assert COMPLETION.startswith(before)
    assert before != COMPLETION
    assert after == COMPLETION  # the restart streams everything again
    assert not any(isinstance(ev, FieldDone | Usage) for ev in events[:retry_at])
    partial = "".join(ev.text for ev in events[:retry_at] if isinstance(ev, FieldDelta))
    assert partial.strip()
    assert ANSWER.startswith(partial.strip())
    assert partial.strip() != ANSWER
    done = events[-1]
    assert isinstance(done, PredictionDone)
    assert done.outputs == {"answer": ANSWER}
    assert [ev.value for ev in events if isinstance(ev, FieldDone)] == [ANSWER]
    # only the complete attempt's usage is counted, as the server counted it
    usage = [ev for ev in events if isinstance(ev, Usage)]
    assert len(usage) == 1
    assert usage[0].output_tokens == server.stats.completion_tokens > 0
    assert usage[0].input_tokens == server.stats.prompt_tokens
    assert server.stats.requests == 2
    assert lm.endpoint.retries == 1
    assert len(lm.history) == 1  # the interrupted attempt is not an LM call in the history


async def test_a_stall_after_the_first_token_times_out_and_restarts() -> None:
    async with _faulty_once("p_hang") as server:
        lm = _lm(server, timeout=Timeouts(read=1.0))
        events = await _events(lm)
        await lm.aclose()
    retries = [ev for ev in events if isinstance(ev, Retry)]
    # one restart for the stall (a loaded box may cut a slow restart too: still timeouts only)
    assert retries
    assert all("LMTimeoutError: read timeout (1.0s)" in r.reason for r in retries)
    assert retries[0].reason.startswith("stream interrupted after output, restarting: ")
    assert events[-1].outputs == {"answer": ANSWER}


async def test_restart_caches_only_the_complete_answer() -> None:
    cache = LMCache(disk=False)
    async with _faulty_once("p_truncate") as server:
        lm = _lm(server, cache=cache)
        first = await _events(lm)
        again = await _events(lm)  # served from the cache: no request, no retry
        await lm.aclose()
    assert first[-1].outputs == again[-1].outputs == {"answer": ANSWER}
    assert server.stats.requests == 2
    assert not any(isinstance(ev, Retry) for ev in again)
    assert [ev.cache_hit for ev in again if isinstance(ev, Usage)] == [True]


@pytest.mark.parametrize(("fault", "error"), [("p_truncate", LMTransportError), ("p_hang", LMTimeoutError)])
async def test_restarts_stop_at_the_retry_policy(fault: str, error: type[Exception]) -> None:
    async with FakeLLMServer(fault_after_tokens=2, **{fault: 1.0}) as server:
        read = 0.1 if fault == "p_hang" else 10.0  # only the hang should wait out a read timeout
        lm = _lm(server, retry=RetryPolicy(max_retries=2, base_delay=0.001), timeout=Timeouts(read=read))
        qa = dx.Predict("question -> answer")
        seen: list[Any] = []
        with dx.context(lm=lm), pytest.raises(error):
            async for ev in qa.stream(question="Capital of France?"):
                seen.append(ev)  # noqa: PERF401  # keeps the events seen before the error
        await lm.aclose()
    assert [ev.attempt for ev in seen if isinstance(ev, Retry)] == [1, 2]
    assert server.stats.requests == 3  # the first attempt and two restarts


async def test_lm_retries_before_the_first_token_are_announced() -> None:
    # seed 1: the first request draws the 500, the retry does not
    async with FakeLLMServer(seed=1, p_500=0.5, responder=lambda body: COMPLETION) as server:
        lm = _lm(server)
        events = await _events(lm)
        await lm.aclose()
    assert server.stats.faults == {"500": 1}
    kinds = [type(ev).__name__ for ev in events]
    assert kinds.count("Retry") == 1
    assert kinds.index("Retry") < kinds.index("TokenDelta")
    retry = events[kinds.index("Retry")]
    assert retry.attempt == 1
    assert retry.predictor == "self"
    assert retry.reason.startswith("LM call failed before any output, retrying: ServerError: openai server error 500")
    assert "".join(ev.text for ev in events if isinstance(ev, TokenDelta)) == COMPLETION
    assert events[-1].outputs == {"answer": ANSWER}
