"""Providers against recorded example payloads (OpenAI, Anthropic, Gemini)."""

from __future__ import annotations

import json

import pytest
from _lm_fakes import fixture_bytes, fixture_json
from pydantic import BaseModel

from dspex._http._sse import SSEDecoder
from dspex.errors import (
    AuthError,
    ContextWindowExceededError,
    InputError,
    LMProviderError,
    RateLimitError,
    ServerError,
)
from dspex.lm.providers import AnthropicProvider, GeminiProvider, OpenAIProvider, StreamState
from dspex.lm.providers._gemini import gemini_schema

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}
TOOL_TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"},
]


class Answer(BaseModel):
    answer: str
    confidence: float | None = None


def stream_through(provider, name: str) -> tuple[list[str], StreamState]:
    state, texts, decoder = StreamState(), [], SSEDecoder()
    raw = fixture_bytes(name)
    for i in range(0, len(raw), 5):
        for event in decoder.feed(raw[i : i + 5]):
            if event.data.strip() and not state.done:
                text = provider.parse_stream_event(state, event.event, event.data)
                if text:
                    texts.append(text)
    return texts, state


# -- OpenAI ---------------------------------------------------------------


def test_openai_request_shape() -> None:
    p = OpenAIProvider("gpt-4o-mini", None, "sk-testkey123456")
    req = p.build_request([{"role": "user", "content": "hi"}], {"temperature": 0.2, "max_tokens": 50, "cache": True, "rollout_id": 3}, stream=False)
    assert req.url == "https://api.openai.com/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-testkey123456"
    assert req.body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2, "max_tokens": 50}


def test_openai_stream_request_and_reasoning_models() -> None:
    p = OpenAIProvider("o3-mini", None, "k" * 10)
    req = p.build_request([{"role": "user", "content": "hi"}], {"max_tokens": 20}, stream=True)
    assert req.body["stream"] is True
    assert req.body["stream_options"] == {"include_usage": True}
    assert req.body["max_completion_tokens"] == 20
    assert "max_tokens" not in req.body
    local = OpenAIProvider("o3-mini", "http://127.0.0.1:8000/v1/", None)
    req = local.build_request([{"role": "user", "content": "hi"}], {"max_tokens": 20}, stream=False)
    assert req.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert req.body["max_tokens"] == 20
    assert "authorization" not in req.headers
    assert not local.key_required


def test_openai_tools_and_structured_output() -> None:
    p = OpenAIProvider("gpt-4o-mini", None, None)
    flat = TOOL["function"]
    req = p.build_request(TOOL_TURNS, {"tools": [flat], "tool_choice": "auto", "response_format": Answer}, stream=False)
    assert req.body["tools"] == [TOOL]
    rf = req.body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == "Answer"
    assert rf["json_schema"]["schema"]["properties"]["answer"] == {"title": "Answer", "type": "string"}
    assert req.body["messages"] == TOOL_TURNS


def test_openai_parse_response_and_tools() -> None:
    p = OpenAIProvider("gpt-4o-mini", None, None)
    r = p.parse_response(fixture_json("openai_chat.json"))
    assert r.outputs == ["Hello! How can I assist you today?"]
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_tokens) == (19, 10, 0)
    assert r.finish_reasons == ["stop"]
    assert r.model == "gpt-4o-mini-2024-07-18"
    t = p.parse_response(fixture_json("openai_tools.json"))
    assert t.outputs == [""]
    assert t.finish_reasons == ["tool_calls"]
    assert t.tool_calls[0][0].name == "get_current_weather"
    assert t.tool_calls[0][0].args == {"location": "Boston, MA"}
    assert t.tool_calls[0][0].id == "call_abc123"
    assert t.usage.cached_tokens == 64
    n2 = p.parse_response(fixture_json("openai_n2.json"))
    assert n2.outputs == ["First.", "Second."]
    assert n2.finish_reasons == ["stop", "length"]


def test_openai_stream_text_and_usage() -> None:
    texts, state = stream_through(OpenAIProvider("gpt-4o-mini", None, None), "openai_stream.sse")
    assert texts == ["Hello", " there"]
    assert state.done
    r = state.to_response("x")
    assert r.outputs == ["Hello there"]
    assert r.usage.input_tokens == 9
    assert r.usage.output_tokens == 2
    assert r.finish_reasons == ["stop"]


def test_openai_stream_tool_calls() -> None:
    texts, state = stream_through(OpenAIProvider("gpt-4o-mini", None, None), "openai_stream_tools.sse")
    r = state.to_response("x")
    assert texts == []
    assert r.finish_reasons == ["tool_calls"]
    assert r.tool_calls[0][0].model_dump() == {"name": "get_weather", "args": {"location": "Paris"}, "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA"}
    assert r.usage.output_tokens == 15


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": {"message": "Incorrect API key provided: sk-abcdef123456.", "type": "invalid_request_error", "code": "invalid_api_key"}}, AuthError),
        (429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}, RateLimitError),
        (429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}, LMProviderError),
        (400, None, ContextWindowExceededError),
        (500, {"error": {"message": "The server had an error"}}, ServerError),
        (404, {"error": {"message": "The model `gpt-9` does not exist"}}, LMProviderError),
    ],
)
def test_openai_error_mapping(status, body, expected) -> None:
    p = OpenAIProvider("gpt-4o-mini", None, "sk-abcdef123456")
    raw = fixture_bytes("openai_error_context.json") if body is None else json.dumps(body).encode()
    err = p.map_error(status, {}, raw, 1.5)
    assert type(err) is expected
    assert err.status == status
    assert err.provider == "openai"
    assert "sk-abcdef123456" not in str(err)
    if expected is RateLimitError:
        assert err.retry_after == 1.5


# -- Anthropic ------------------------------------------------------------


def test_anthropic_request_converts_system_and_tools() -> None:
    p = AnthropicProvider("claude-sonnet-4-5", None, "sk-ant-api03-secret")
    req = p.build_request(TOOL_TURNS, {"tools": [TOOL], "tool_choice": "required", "stop": "END", "temperature": 0.5, "n": 1, "seed": 3}, stream=False)
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == "sk-ant-api03-secret"
    assert req.headers["anthropic-version"] == "2023-06-01"
    body = req.body
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 4096
    assert body["stop_sequences"] == ["END"]
    assert "n" not in body
    assert "seed" not in body
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city", "input_schema": TOOL["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "{\"temp_c\": 21}"}]},
    ]


def test_anthropic_structured_output_forces_tool() -> None:
    p = AnthropicProvider("claude-sonnet-4-5", "http://127.0.0.1:9/v1", None)
    rf = {"type": "json_schema", "json_schema": {"name": "Answer", "schema": Answer.model_json_schema()}}
    req = p.build_request([{"role": "user", "content": "Capital?"}], {"response_format": rf, "max_tokens": 100}, stream=True)
    assert req.url == "http://127.0.0.1:9/v1/messages"
    assert req.body["stream"] is True
    assert req.body["tool_choice"] == {"type": "tool", "name": "structured_output"}
    assert req.body["tools"][0]["input_schema"] == Answer.model_json_schema()
    assert req.body["max_tokens"] == 100
    r = p.parse_response(fixture_json("anthropic_structured.json"))
    assert json.loads(r.outputs[0]) == {"answer": "Paris", "confidence": 0.9}
    assert r.tool_calls == [[]]
    assert r.finish_reasons == ["stop"]


def test_anthropic_parse_message_and_tool_use() -> None:
    p = AnthropicProvider("claude-sonnet-4-5", None, None)
    r = p.parse_response(fixture_json("anthropic_message.json"))
    assert r.outputs == ["Hello! How can I help you today?"]
    assert r.finish_reasons == ["stop"]
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_tokens) == (20, 10, 8)
    t = p.parse_response(fixture_json("anthropic_tool_use.json"))
    assert t.outputs == ["I'll check the current weather in San Francisco for you."]
    assert t.tool_calls[0][0].args == {"location": "San Francisco, CA", "unit": "celsius"}
    assert t.finish_reasons == ["tool_calls"]


def test_anthropic_stream_text_tools_and_errors() -> None:
    p = AnthropicProvider("claude-sonnet-4-5", None, None)
    texts, state = stream_through(p, "anthropic_stream.sse")
    r = state.to_response("x")
    assert texts == ["Hello", "!"]
    assert state.done
    assert r.finish_reasons == ["stop"]
    assert (r.usage.input_tokens, r.usage.output_tokens) == (25, 15)
    texts, state = stream_through(p, "anthropic_stream_tools.sse")
    r = state.to_response("x")
    assert texts == ["Okay, let's check the weather."]
    assert r.tool_calls[0][0].args == {"location": "San Francisco, CA"}
    assert r.finish_reasons == ["tool_calls"]
    assert r.usage.output_tokens == 89
    with pytest.raises(ServerError, match="Overloaded"):
        stream_through(p, "anthropic_error_overloaded.sse")


def test_anthropic_error_mapping() -> None:
    p = AnthropicProvider("claude-sonnet-4-5", None, None)
    assert type(p.map_error(400, {}, fixture_bytes("anthropic_error_context.json"), None)) is ContextWindowExceededError
    err = p.map_error(429, {}, fixture_bytes("anthropic_error_ratelimit.json"), 3.0)
    assert type(err) is RateLimitError
    assert err.retry_after == 3.0
    assert type(p.map_error(529, {}, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', None)) is ServerError


# -- Gemini ---------------------------------------------------------------


def test_gemini_request_shape() -> None:
    p = GeminiProvider("gemini-2.5-flash", None, "AIzaSyA-secret-key-0123456789")
    req = p.build_request(TOOL_TURNS, {"temperature": 0.3, "max_tokens": 64, "n": 2, "stop": ["x"], "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, stream=False)
    assert req.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.headers["x-goog-api-key"] == "AIzaSyA-secret-key-0123456789"
    body = req.body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 64, "candidateCount": 2, "stopSequences": ["x"]}
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city", "parameters": TOOL["function"]["parameters"]}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]},
    ]
    streamed = p.build_request([{"role": "user", "content": "hi"}], {}, stream=True)
    assert streamed.url.endswith(":streamGenerateContent?alt=sse")


def test_gemini_structured_output_schema() -> None:
    p = GeminiProvider("gemini-2.5-flash", None, None)
    req = p.build_request([{"role": "user", "content": "hi"}], {"response_format": Answer}, stream=False)
    config = req.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "number", "nullable": True}},
        "required": ["answer"],
    }


def test_gemini_schema_inlines_refs_and_drops_unsupported() -> None:
    class Inner(BaseModel):
        x: int

    class Outer(BaseModel):
        items: list[Inner]
        tag: str | None

    schema = gemini_schema(Outer.model_json_schema())
    assert schema["properties"]["items"] == {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}
    assert schema["properties"]["tag"] == {"type": "string", "nullable": True}
    assert gemini_schema({"type": ["integer", "null"], "additionalProperties": False}) == {"type": "integer", "nullable": True}


def test_gemini_recursive_schema_is_an_input_error_not_a_recursion_error() -> None:
    # Before the one rewriter, gemini_schema recursed until RecursionError on a recursive model.
    class Node(BaseModel):
        value: int
        children: list[Node] = []

    p = GeminiProvider("gemini-2.5-flash", None, None)
    with pytest.raises(InputError, match=r"properties/children/items: recursive model 'Node'"):
        p.build_request([{"role": "user", "content": "hi"}], {"response_format": Node}, stream=False)


def test_gemini_schema_memo_follows_the_content_not_the_object() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    first = gemini_schema(schema)
    assert gemini_schema({"type": "object", "properties": {"a": {"type": "string"}}}) == first
    schema["properties"]["b"] = {"type": ["integer", "null"]}  # the same dict, changed in place
    assert gemini_schema(schema)["properties"] == {"a": {"type": "string"}, "b": {"type": "integer", "nullable": True}}


def test_gemini_parse_and_stream() -> None:
    p = GeminiProvider("gemini-2.5-flash", None, None)
    r = p.parse_response(fixture_json("gemini_generate.json"))
    assert r.outputs == ["AI learns patterns from data to make predictions."]
    assert r.finish_reasons == ["stop"]
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_tokens) == (8, 21, 2)
    f = p.parse_response(fixture_json("gemini_function_call.json"))
    assert f.tool_calls[0][0].name == "schedule_meeting"
    assert f.tool_calls[0][0].args["attendees"] == ["Bob", "Alice"]
    assert f.finish_reasons == ["tool_calls"]
    texts, state = stream_through(p, "gemini_stream.sse")
    s = state.to_response("x")
    assert texts == ["The", " sky is blue", "."]
    assert state.done
    assert s.outputs == ["The sky is blue."]
    assert (s.usage.input_tokens, s.usage.output_tokens) == (6, 4)


def test_gemini_error_mapping() -> None:
    p = GeminiProvider("gemini-2.5-flash", None, None)
    assert type(p.map_error(429, {}, fixture_bytes("gemini_error_quota.json"), None)) is RateLimitError
    assert type(p.map_error(400, {}, fixture_bytes("gemini_error_context.json"), None)) is ContextWindowExceededError
    assert type(p.map_error(403, {}, b'{"error":{"code":403,"message":"API key not valid","status":"PERMISSION_DENIED"}}', None)) is AuthError


def test_bad_tools_and_response_format_are_typed_errors() -> None:
    p = OpenAIProvider("gpt-4o-mini", None, None)
    with pytest.raises(InputError, match="invalid tool"):
        p.build_request([{"role": "user", "content": "x"}], {"tools": [{"description": "no name"}]}, stream=False)
    with pytest.raises(InputError, match="invalid response_format"):
        p.build_request([{"role": "user", "content": "x"}], {"response_format": "json"}, stream=False)
