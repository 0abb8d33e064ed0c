"""Real servers' quirks, each reproduced by a FakeLLMServer quirk on loopback.

Structured-output negotiation (json_schema -> json_object -> prompt only),
refused tools/tool_choice/stream_options, streams without usage, empty-choices
chunks, keep-alive comments, missing ids, odd model ids, non-JSON error bodies
and ``finish_reason: length`` (a typed truncation error).
"""

from __future__ import annotations

from typing import Any

import pytest

import dspex as dx
from dspex.errors import (
    ConfigError,
    ServerError,
    TruncatedOutputError,
    UnsupportedParameterError,
)
from dspex.lm import LM, RetryPolicy
from dspex.lm._capabilities import refused_parameter
from dspex.testing import FakeLLMServer
from dspex.testing._fake_quirks import ODD_MODEL_ID

SCHEMA_RF = {"type": "json_schema", "json_schema": {"name": "Out", "strict": True, "schema": {
    "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
    "additionalProperties": False}}}
MSGS = [{"role": "user", "content": "What is 2 + 2?"}]
FAST = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.002)


def make_lm(server: FakeLLMServer, **kw: Any) -> LM:
    kw.setdefault("retry", FAST)
    return LM("openai/fake-model", api_base=f"{server.url}/v1", cache=False, **kw)


def tool(name: str = "lookup") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}


@pytest.mark.parametrize(
    ("status", "message", "sent", "expected"),
    [
        (500, "response_format type json_schema is not supported", {"response_format": {}}, "response_format"),
        (500, "internal error", {"response_format": {}}, None),  # a plain 5xx stays a retryable ServerError
        (400, "Bad Request", {"response_format": {}}, "response_format"),
        (400, "Bad Request", {}, None),
        (422, "unknown field tool_choice", {"tool_choice": "auto", "tools": [1]}, "tool_choice"),
        (400, "stream_options not allowed", {"stream_options": {}, "response_format": {}}, "stream_options"),
        (429, "response_format", {"response_format": {}}, None),
        (404, "response_format", {"response_format": {}}, None),
    ],
)
def test_refused_parameter_rules(status: int, message: str, sent: dict[str, Any], expected: str | None) -> None:
    assert refused_parameter(status, message, sent) == expected


async def test_json_schema_refused_with_500_falls_back_to_json_object_without_retries() -> None:
    async with FakeLLMServer(quirks={"refuse_json_schema_500"}) as server:
        async with make_lm(server) as lm:
            first = await lm.acall(MSGS, response_format=SCHEMA_RF)
            assert first.structured_output == "json_object"
            assert server.stats.statuses == {500: 1, 200: 1}
            assert lm.endpoint.retries == 0  # the refusal did not use the retry budget
            assert lm.capabilities["refused_response_formats"] == ["json_schema"]
            assert lm.history[-1]["structured_output"] == "json_object"
            # remembered: the next call goes straight to json_object
            second = await lm.acall([{"role": "user", "content": "And 3 + 3?"}], response_format=SCHEMA_RF)
            assert second.structured_output == "json_object"
            assert server.stats.statuses == {500: 1, 200: 2}


async def test_ladder_ends_with_prompt_only_json() -> None:
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(body)
        return '{"answer": "4"}'

    async with FakeLLMServer(quirks={"refuse_json_schema_400", "refuse_json_object"}, responder=responder) as server:
        async with make_lm(server) as lm:
            response = await lm.acall(MSGS, response_format=SCHEMA_RF)
    assert response.structured_output == "prompt"
    assert server.stats.statuses == {400: 2, 200: 1}
    assert "response_format" not in seen[0]
    assert lm.capabilities["refused_response_formats"] == ["json_object", "json_schema"]


async def test_json_adapter_predict_parses_after_negotiation() -> None:
    async with FakeLLMServer(quirks={"refuse_json_schema_500"}) as server:
        async with make_lm(server) as lm:
            with dx.context(adapter=dx.JSONAdapter()):
                pred = await dx.Predict("question -> answer").acall(question="What is 2 + 2?", lm=lm)
    assert isinstance(pred.answer, str)
    assert pred.answer
    assert server.stats.statuses == {500: 1, 200: 1}


async def test_plain_5xx_is_still_retried_and_teaches_nothing() -> None:
    async with FakeLLMServer(p_500=1.0) as server:
        async with make_lm(server) as lm:
            with pytest.raises(ServerError):
                await lm.acall(MSGS, response_format=SCHEMA_RF)
    assert server.stats.statuses == {500: 3}  # first attempt + 2 retries
    assert lm.capabilities["refused_response_formats"] == []


async def test_refused_tools_raise_typed_error_after_one_request() -> None:
    async with FakeLLMServer(quirks={"refuse_tools"}) as server:
        async with make_lm(server) as lm:
            with pytest.raises(UnsupportedParameterError) as info:
                await lm.acall(MSGS, tools=[tool()])
    assert info.value.parameter == "tools"
    assert info.value.status == 400
    assert server.stats.requests == 1
    assert lm.capabilities["refused_parameters"] == ["tools"]


async def test_refused_tool_choice_and_parallel_tool_calls_are_dropped() -> None:
    async with FakeLLMServer(quirks={"refuse_tool_choice", "refuse_parallel_tool_calls"}) as server:
        async with make_lm(server) as lm:
            response = await lm.acall(MSGS, tools=[tool()], tool_choice="auto", parallel_tool_calls=False)
    assert response.tool_calls[0][0].name == "lookup"
    assert response.dropped_params == ["parallel_tool_calls", "tool_choice"]
    assert server.stats.statuses == {400: 2, 200: 1}


async def test_refused_stream_options_streams_with_estimated_usage() -> None:
    async with FakeLLMServer(quirks={"refuse_stream_options"}) as server:
        async with make_lm(server) as lm:
            chunks = [c async for c in lm.stream(MSGS)]
            again = [c async for c in lm.stream([{"role": "user", "content": "Once more"}])]
    assert "".join(c.text for c in chunks)
    final = chunks[-1]
    assert final.done
    assert final.usage is not None
    assert final.usage.estimated
    assert final.usage.input_tokens > 0
    assert final.usage.output_tokens > 0
    assert lm.history[0]["dropped_params"] == ["stream_options"]
    assert again[-1].usage is not None
    assert again[-1].usage.estimated
    assert server.stats.statuses == {400: 1, 200: 2}  # learned once


async def test_usage_less_streams_and_responses_are_counted_locally() -> None:
    async with FakeLLMServer(quirks={"no_stream_usage"}) as server:
        async with make_lm(server) as lm:
            chunks = [c async for c in lm.stream(MSGS)]
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.estimated
    assert usage.output_tokens > 0
    async with FakeLLMServer(quirks={"no_usage"}) as server:
        async with make_lm(server) as lm:
            response = await lm.acall(MSGS)
    assert response.usage.estimated
    assert response.usage.input_tokens > 0
    assert lm.history[-1]["usage"]["estimated"] is True


async def test_reported_usage_is_not_marked_estimated() -> None:
    async with FakeLLMServer() as server:
        async with make_lm(server) as lm:
            chunks = [c async for c in lm.stream(MSGS)]
            response = await lm.acall(MSGS)
    assert chunks[-1].usage is not None
    assert not chunks[-1].usage.estimated
    assert not response.usage.estimated
    assert response.usage.output_tokens == server.stats.completion_tokens // 2


@pytest.mark.parametrize(
    "quirk", ["empty_choices_chunks", "keepalive_comments", "no_ids", "odd_model_id", "split_head_body"]
)
async def test_stream_quirks_give_the_same_text(quirk: str) -> None:
    async with FakeLLMServer() as plain, FakeLLMServer(quirks={quirk}) as odd:
        async with make_lm(plain) as lm_plain, make_lm(odd) as lm_odd:
            expected = (await lm_plain.acall(MSGS)).outputs[0]
            streamed = [c async for c in lm_odd.stream(MSGS)]
            whole = await lm_odd.acall(MSGS)
    assert "".join(c.text for c in streamed) == expected == whole.outputs[0]
    assert streamed[-1].finish_reason == "stop"
    assert streamed[-1].usage is not None
    if quirk == "odd_model_id":
        assert whole.model == ODD_MODEL_ID
        assert lm_odd.history[-1]["model"] == "openai/fake-model"


async def test_non_json_error_bodies_keep_their_text() -> None:
    async with FakeLLMServer(p_500=1.0, quirks={"text_errors"}) as server:
        async with make_lm(server, num_retries=0) as lm:
            with pytest.raises(ServerError, match="injected 500"):
                await lm.acall(MSGS)
    async with FakeLLMServer(quirks={"text_errors", "refuse_json_schema_500"}) as server:
        async with make_lm(server) as lm:
            response = await lm.acall(MSGS, response_format=SCHEMA_RF)
    assert response.structured_output == "json_object"


async def test_finish_reason_length_is_a_typed_truncation_error() -> None:
    answer = "[[ ## answer ## ]]\nfour, which is two plus two\n\n[[ ## completed ## ]]"
    async with FakeLLMServer(responder=lambda body: answer) as server:
        async with make_lm(server, max_tokens=3) as lm:
            response = await lm.acall(MSGS)
            assert response.finish_reasons == ["length"]
            with pytest.raises(TruncatedOutputError, match="max_tokens=3") as info:
                await dx.Predict("question -> answer").acall(question="What is 2 + 2?", lm=lm)
    assert isinstance(info.value, dx.errors.ParseError)
    assert info.value.raw is not None


def test_unknown_quirk_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown FakeLLMServer quirk"):
        FakeLLMServer(quirks={"no_such_quirk"})



async def test_head_and_body_in_separate_packets_read_once() -> None:
    # regression: the body read after a head-only packet came back doubled (trio path)
    async with FakeLLMServer(quirks={"split_head_body"}) as server:
        async with make_lm(server) as lm:
            for i in range(3):
                response = await lm.acall([{"role": "user", "content": f"Question {i}?"}])
                assert response.outputs[0]
                assert response.usage.output_tokens > 0
    assert server.stats.statuses == {200: 3}
