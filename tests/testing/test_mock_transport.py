"""dspex.testing.MockTransport: an LM and a Predict driven offline by a handler, streamed or not."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dspex as dx
from dspex._util._clock import SteppingClock
from dspex.errors import ConfigError, LMError, LMTimeoutError, LMTransportError
from dspex.events import FieldDelta, PredictionDone
from dspex.lm import HTTPResponse, Transport
from dspex.testing import MockRequest, MockResponse, MockTransport

KEY = "sk-unit-test-key-000000"


def _lm(transport: Any, **kw: Any) -> dx.LM:
    return dx.LM(
        "openai/gpt-4o-mini",
        api_key=KEY,
        transport=transport,
        clock=SteppingClock(),
        cache=False,
        **kw,
    )


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }  # fmt: skip


def _sse(pieces: list[str]) -> list[dict[str, Any] | str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip

    events: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in pieces]
    events.append(chunk({}, "stop"))
    events.append(
        {
            "id": "c",
            "choices": [],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )
    return [*events, "[DONE]"]


async def test_an_lm_call_goes_to_the_handler_and_back() -> None:
    def handler(request: MockRequest) -> MockResponse:
        assert request.json()["messages"][-1]["content"] == "Say hi"
        return MockResponse(json=_completion("hi there"))

    transport = MockTransport(handler)
    response = await _lm(transport).acall("Say hi")
    assert response.outputs == ["hi there"]
    assert response.usage.output_tokens == 7
    [sent] = transport.requests
    assert (sent.method, sent.url, sent.stream) == (
        "POST",
        "https://api.openai.com/v1/chat/completions",
        False,
    )
    assert (
        sent.headers["authorization"] == f"Bearer {KEY}"
    )
    assert (
        sent.headers["content-type"] == "application/json"
    )


async def test_an_async_handler_streams_sse_chunk_by_chunk() -> None:
    async def handler(request: MockRequest) -> MockResponse:
        assert request.stream
        assert request.json()["stream"] is True
        return MockResponse(sse=_sse(["Hel", "lo", " world"]))

    chunks = [c async for c in _lm(MockTransport(handler)).stream("greet")]
    assert [c.text for c in chunks if not c.done] == ["Hel", "lo", " world"]
    assert chunks[-1].done
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens == 7


async def test_a_predict_runs_offline_plain_and_streamed() -> None:
    answer = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"

    def handler(request: MockRequest) -> MockResponse:
        if request.stream:
            return MockResponse(sse=_sse([answer[:9], answer[9:25], answer[25:]]))
        return MockResponse(json=_completion(answer))

    transport = MockTransport(handler)
    with dx.context(lm=_lm(transport)):
        prediction = await dx.Predict("question -> answer").acall(question="Capital of France?")
        events = [
            ev
            async for ev in dx.Predict("question -> answer").stream(question="Capital of France?")
        ]
    assert prediction.answer == "Paris"
    assert "".join(ev.text for ev in events if isinstance(ev, FieldDelta)) == "Paris"
    assert isinstance(events[-1], PredictionDone)
    assert events[-1].prediction.answer == "Paris"
    assert [r.stream for r in transport.requests] == [False, True]
    assert "Capital of France?" in transport.requests[0].json()["messages"][-1]["content"]


async def test_transport_failures_and_5xx_are_retried_then_answered() -> None:
    script: list[Any] = [LMTransportError("connection reset by peer"), MockResponse(status=503, json={"error": {"message": "busy"}}),
                         LMTimeoutError("read timeout"), MockResponse(json=_completion("late but fine"))]  # fmt: skip

    def handler(request: MockRequest) -> MockResponse:
        step: Exception | MockResponse = script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    transport = MockTransport(handler)
    response = await _lm(transport, num_retries=3).acall("hi")
    assert response.outputs == ["late but fine"]
    assert len(transport.requests) == 4
    assert not script


async def test_a_client_error_is_not_retried_and_names_the_status() -> None:
    transport = MockTransport(
        lambda r: MockResponse(status=400, json={"error": {"message": "bad field 'x'"}})
    )
    with pytest.raises(LMError, match="bad field") as info:
        await _lm(transport, num_retries=3).acall("hi")
    assert info.value.status == 400
    assert len(transport.requests) == 1


async def test_a_streamed_error_status_is_raised_before_any_chunk() -> None:
    transport = MockTransport(
        lambda r: MockResponse(status=401, json={"error": {"message": "bad key"}})
    )
    with pytest.raises(LMError, match="bad key"):
        async for _ in _lm(transport, num_retries=0).stream("hi"):
            raise AssertionError("no chunk expected")


async def test_a_handler_returning_the_wrong_type_is_a_config_error() -> None:
    transport = MockTransport(lambda r: {"choices": []})  # type: ignore[arg-type, return-value]
    with pytest.raises(ConfigError, match="must return a MockResponse"):
        await transport.request("POST", "http://x/v1", headers={})


async def test_raw_content_and_headers_reach_the_response() -> None:
    transport = MockTransport(lambda r: MockResponse(content="plain", headers={"X-Trace": "7"}))
    response = await transport.request("GET", "http://x/", headers={"Accept": "*/*"})
    assert (response.status, await response.aread()) == (200, b"plain")
    assert (
        response.header("x-trace") == "7"
    )
    assert (
        response.header("content-type") == "text/plain; charset=utf-8"
    )
    async with transport.stream("GET", "http://x/", headers={}) as streamed:
        assert b"".join([c async for c in streamed.aiter_bytes()]) == b"plain"
    assert transport.requests[0].headers == {"accept": "*/*"}
    assert transport.requests[0].body == b""


def test_mock_response_and_transport_reject_bad_input() -> None:
    with pytest.raises(ConfigError, match="one body, got json and content"):
        MockResponse(json={}, content=b"x")
    with pytest.raises(ConfigError, match="HTTP status"):
        MockResponse(status=42)
    with pytest.raises(ConfigError, match="callable handler"):
        MockTransport("not a function")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"dx\.lm\.Transport"):
        dx.LM("openai/gpt-4o-mini", api_key=KEY, transport=object())  # type: ignore[arg-type]


def test_sse_events_are_framed_one_per_chunk() -> None:
    headers, parts = MockResponse(sse=[{"a": 1}, "line1\nline2", "[DONE]"]).chunks()
    assert headers == [("content-type", "text/event-stream")]
    assert parts == [b'data: {"a": 1}\n\n', b"data: line1\ndata: line2\n\n", b"data: [DONE]\n\n"]
    assert json.loads(parts[0][6:]) == {"a": 1}


def test_the_public_names() -> None:
    assert dx.lm.Transport is Transport
    assert issubclass(MockTransport, dx.lm.Transport)
    assert dx.lm.HTTPResponse is HTTPResponse
    assert "Transport" in dx.lm.__all__
