"""A native tool-calling stream cut after its first output is restarted too (issue 12 item 3's class).

The native path (tools in the request, ``ToolCalls`` from the response) used to
call ``lm.stream`` directly, so a stream cut mid-answer failed the item with no
``Retry`` event. It now shares the text path's restart logic. Real loopback
server (FakeLLMServer answering native tool calls), both backends.
"""

from __future__ import annotations

from typing import Any

import pytest

import dspex as dx
from dspex.adapters import ChatAdapter
from dspex.errors import LMTransportError
from dspex.events import FieldDone, PredictionDone, Retry, TokenDelta
from dspex.lm import LM, RetryPolicy
from dspex.testing import FakeLLMServer

pytestmark = pytest.mark.reliability

FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.005)
SIG = dx.Signature(
    {
        "question": (str, dx.InputField()),
        "tools": (list[dx.Tool], dx.InputField()),
        "answer": (str, dx.OutputField()),
        "calls": (dx.ToolCalls, dx.OutputField()),
    },
    "Answer using the tools.",
)


def get_weather(location: str) -> str:
    """Get the weather in a city."""
    return f"sunny in {location}"


def _lm(server: FakeLLMServer, retry: RetryPolicy = FAST) -> LM:
    return LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-restart-0000", cache=False, retry=retry)


async def _stream(lm: LM, seen: list[Any]) -> None:
    pred = dx.Predict(SIG)
    with dx.context(lm=lm, adapter=ChatAdapter(use_native_function_calling=True)):
        async for ev in pred.stream(question="What is the weather in Paris?", tools=[dx.Tool(get_weather)]):
            seen.append(ev)  # noqa: PERF401  # keeps the events seen before the error


async def test_native_stream_cut_after_output_restarts_with_a_retry_event() -> None:
    # seed 1 with p_truncate=0.5: the first request is cut after 3 tokens, the restart is not
    async with FakeLLMServer(seed=1, p_truncate=0.5, fault_after_tokens=3) as server:
        lm = _lm(server)
        events: list[Any] = []
        await _stream(lm, events)
        await lm.aclose()
    assert server.stats.faults == {"truncate": 1}
    assert server.stats.requests == 2
    kinds = [type(ev).__name__ for ev in events]
    assert kinds.count("Retry") == 1
    retry_at = kinds.index("Retry")
    retry = events[retry_at]
    assert retry.attempt == 1
    assert retry.reason.startswith("stream interrupted after output, restarting: ")
    assert "LMTransportError" in retry.reason
    assert any(isinstance(ev, TokenDelta) for ev in events[:retry_at])  # output was seen before the cut
    assert not any(isinstance(ev, FieldDone) for ev in events[:retry_at])
    done = events[-1]
    assert isinstance(done, PredictionDone)
    calls = done.outputs["calls"]["tool_calls"]  # the event carries the ToolCalls as JSON
    assert [c["name"] for c in calls] == ["get_weather"]
    assert set(calls[0]["args"]) == {"location"}
    assert isinstance(done.outputs["answer"], str)
    assert done.outputs["answer"]
    assert lm.endpoint.retries == 1


async def test_native_stream_restarts_stop_at_the_retry_policy() -> None:
    async with FakeLLMServer(p_truncate=1.0, fault_after_tokens=2) as server:
        lm = _lm(server, RetryPolicy(max_retries=2, base_delay=0.001))
        seen: list[Any] = []
        with pytest.raises(LMTransportError):
            await _stream(lm, seen)
        await lm.aclose()
    assert [ev.attempt for ev in seen if isinstance(ev, Retry)] == [1, 2]
    assert server.stats.requests == 3  # the first attempt and two restarts
