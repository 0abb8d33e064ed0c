"""Native function calling per provider (request shapes, response parsing) and ReAct on provider payloads."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import dspex as dx
from dspex.adapters import ChatAdapter, JSONAdapter
from dspex.errors import ConfigError, SignatureError, ToolError
from dspex.events import FieldDone, ToolCall, ToolResult
from dspex.testing import ScriptedLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lm"))
from _lm_fakes import FakeTransport, Reply, fixture_bytes, fixture_json


def get_current_weather(location: str, unit: str = "celsius") -> str:
    """Get the current weather."""
    return f"20 degrees {unit} in {location}"


def get_weather(location: str, unit: str = "celsius") -> str:
    """Get the weather."""
    return f"sunny in {location} ({unit})"


def schedule_meeting(attendees: list[str], date: str, time: str, topic: str) -> str:
    """Schedule a meeting."""
    return f"{topic} on {date} at {time} with {', '.join(attendees)}"


SIG = dx.Signature(
    {
        "question": (str, dx.InputField()),
        "tools": (list[dx.Tool], dx.InputField()),
        "answer": (str, dx.OutputField()),
        "calls": (dx.ToolCalls, dx.OutputField()),
    },
    "Answer using the tools.",
)

CASES = {
    "openai": ("openai/gpt-4o-mini", "openai_tools.json", get_current_weather),
    "anthropic": ("anthropic/claude-sonnet-4-5", "anthropic_tool_use.json", get_weather),
    "gemini": ("gemini/gemini-2.0-flash", "gemini_function_call.json", schedule_meeting),
}


def _lm(model: str, replies: list[Reply]) -> tuple[dx.LM, FakeTransport]:
    queue = list(replies)
    transport = FakeTransport(lambda sent: queue.pop(0))
    return dx.LM(model, api_key="unit-test-key-000000", transport=transport, cache=False), transport


def _tools_in_request(provider: str, body: dict[str, Any]) -> list[str]:
    if provider == "openai":
        return [t["function"]["name"] for t in body["tools"]]
    if provider == "anthropic":
        return [t["name"] for t in body["tools"]]
    return [d["name"] for d in body["tools"][0]["functionDeclarations"]]


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_native_request_and_response(provider: str) -> None:
    model, fixture, func = CASES[provider]
    lm, transport = _lm(model, [Reply.json(fixture_json(fixture))])
    tool = dx.Tool(func)
    with dx.context(adapter=ChatAdapter(use_native_function_calling=True)):
        pred = await dx.Predict(SIG).acall(question="q?", tools=[tool], lm=lm)
    body = transport.sent[0].json
    assert _tools_in_request(provider, body) == [func.__name__]
    text = json.dumps(body)  # the prompt sits in a provider-specific place; search it all
    # The tools input and the ToolCalls output left the prompt; the answer stays.
    assert "[[ ## tools ## ]]" not in text
    assert "[[ ## calls ## ]]" not in text
    assert "[[ ## answer ## ]]" in text
    call = pred.calls.tool_calls[0]
    assert call.name == func.__name__
    expected_args = {
        "openai": {"location": "Boston, MA"},
        "anthropic": {"location": "San Francisco, CA", "unit": "celsius"},
        "gemini": {"attendees": ["Bob", "Alice"], "date": "2025-03-27", "time": "10:00", "topic": "Q3 planning"},
    }[provider]
    assert call.args == expected_args
    # execute() with no argument runs the bound tool, and only it.
    assert call.execute() == func(**expected_args)
    assert pred.answer in (None, "I'll check the current weather in San Francisco for you.")


async def test_openai_streamed_tool_calls_through_module_stream() -> None:
    lm, transport = _lm("openai/gpt-4o-mini", [Reply.sse(fixture_bytes("openai_stream_tools.sse"))])
    pred_mod = dx.Predict(SIG)
    with dx.context(adapter=JSONAdapter()):  # native by default, as in DSPy
        events = [ev async for ev in pred_mod.stream(question="q", tools=[dx.Tool(get_weather)], lm=lm)]
    assert transport.sent[0].json["stream"] is True
    done = {e.field: e.value for e in events if isinstance(e, FieldDone)}
    assert done["calls"].tool_calls[0].name == "get_weather"
    assert done["calls"].tool_calls[0].args == {
        "location": "Paris"
    }
    assert done["answer"] is None


async def test_text_mode_when_lm_has_no_native_tools() -> None:
    lm = ScriptedLM([{"answer": "a", "calls": {"tool_calls": [{"name": "get_weather", "args": {"location": "X"}}]}}])
    with dx.context(adapter=ChatAdapter(use_native_function_calling=True)):
        pred = await dx.Predict(SIG).acall(question="q", tools=[get_weather], lm=lm)
    assert "[[ ## calls ## ]]" in lm.history[0]["messages"][0]["content"]
    assert "tools" not in lm.history[0]["params"]
    assert pred.calls.tool_calls[0].execute() == "sunny in X (celsius)"


async def test_bound_calls_pickle_without_their_tools() -> None:
    import pickle

    lm = ScriptedLM([{"answer": "a", "calls": {"tool_calls": [{"name": "get_weather", "args": {"location": "X"}}]}}])
    pred = await dx.Predict(SIG).acall(question="q", tools=[lambda location: location], lm=lm)
    call = pred.calls.tool_calls[0]
    copy = pickle.loads(pickle.dumps(call))
    assert copy == call
    assert pred.calls == dx.ToolCalls.from_dict_list([{"name": "get_weather", "args": {"location": "X"}}])
    with pytest.raises(ToolError, match="has no tools to run"):
        copy.execute()


def test_execute_without_tools_is_refused() -> None:
    call = dx.ToolCalls.model_validate({"tool_calls": [{"name": "rm", "args": {}}]}).tool_calls[0]
    with pytest.raises(ToolError, match="has no tools to run"):
        call.execute()
    with pytest.raises(ToolError, match="unknown tool 'rm'"):
        call.execute([dx.Tool(get_weather)])


async def test_native_needs_a_tools_input() -> None:
    sig = dx.Signature({"q": (str, dx.InputField()), "calls": (dx.ToolCalls, dx.OutputField())})
    lm, _ = _lm("openai/gpt-4o-mini", [])
    with dx.context(adapter=ChatAdapter(use_native_function_calling=True)), pytest.raises(SignatureError):
        await dx.Predict(sig).acall(q="x", lm=lm)


def test_adapter_constructor_keywords() -> None:
    assert ChatAdapter().use_native_function_calling is False
    assert JSONAdapter().use_native_function_calling is True
    adapter = ChatAdapter(callbacks=[print], use_native_function_calling=True, use_json_adapter_fallback=False,
                          parallel_tool_calls=False)
    assert adapter.callbacks == (print,)
    assert adapter.fallback is None
    assert adapter.parallel_tool_calls is False
    with pytest.raises(ConfigError, match="native_response_types"):
        ChatAdapter(native_response_types=[dx.Citation])


def test_strict_schema_keeps_tool_call_arguments() -> None:
    from dspex.adapters._structured import response_format

    sig = dx.Signature({"q": (str, dx.InputField()), "calls": (dx.ToolCalls, dx.OutputField())})
    fmt = response_format(sig)
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    call = fmt["json_schema"]["schema"]["$defs"]["ToolCall"]
    assert call["properties"]["args"]["type"] == "string"
    assert call["additionalProperties"] is False
    # An answer in that schema carries its arguments through.
    parsed = JSONAdapter().parse(sig, json.dumps({"calls": {"tool_calls": [{"name": "s", "args": '{"k": 2}'}]}}))
    assert parsed["calls"].tool_calls[0].args == {"k": 2}


def _openai_sse(content: str | None, calls: list[tuple[str, dict[str, Any]]]) -> Reply:
    head = {"id": "x", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": content}]
    deltas += [
        {"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                         "function": {"name": n, "arguments": json.dumps(a)}}]}
        for i, (n, a) in enumerate(calls)
    ]
    events = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}]})
    events.append({**head, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
    raw = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return Reply.sse(raw.encode())


def _openai_reply(content: str | None, calls: list[tuple[str, dict[str, Any]]]) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, (n, a) in enumerate(calls)
        ]
    return Reply.json({
        "id": "x", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    })


@pytest.mark.parametrize("streamed", [False, True])
async def test_react_native_mode_openai(streamed: bool) -> None:
    reply = _openai_sse if streamed else _openai_reply
    replies = [
        reply("I need the weather.", [("get_weather", {"location": "Paris"})]),
        reply(None, [("finish", {})]),
        reply("[[ ## reasoning ## ]]\nIt is sunny.\n\n[[ ## answer ## ]]\nSunny\n\n[[ ## completed ## ]]", []),
    ]
    lm, transport = _lm("openai/gpt-4o-mini", replies)
    agent = dx.ReAct("question -> answer", tools=[get_weather])
    with dx.context(adapter=ChatAdapter(use_native_function_calling=True)):
        if streamed:
            events = [ev async for ev in agent.stream(question="Weather in Paris?", lm=lm)]
            pred = events[-1].prediction
        else:
            events, pred = [], await agent.acall(question="Weather in Paris?", lm=lm)
    first = transport.sent[0].json
    assert first.get("stream", False) is streamed
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather", "finish"]
    assert "next_tool_name" not in first["messages"][-1]["content"]
    assert pred.trajectory["thought_0"] == "I need the weather."
    assert pred.trajectory["tool_name_0"] == "get_weather"
    assert pred.trajectory["tool_args_0"] == {"location": "Paris"}
    assert pred.trajectory["observation_0"] == "sunny in Paris (celsius)"
    assert pred.trajectory["tool_name_1"] == "finish"
    assert pred.answer == "Sunny"
    if streamed:
        assert [(e.name, e.call_id) for e in events if isinstance(e, ToolCall)] == [
            ("get_weather", "call_0"), ("finish", "call_0")
        ]
        assert [e.result for e in events if isinstance(e, ToolResult)] == ["sunny in Paris (celsius)", "Completed."]
    # The extract step is an ordinary call: no tools sent.
    assert "tools" not in transport.sent[2].json


async def test_react_keeps_text_mode_with_jsonadapter_default() -> None:
    """JSONAdapter is native by default (DSPy), but ReAct keeps DSPy's text prompts unless asked explicitly."""
    step = {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}}
    replies = [_openai_reply(json.dumps(step), []), _openai_reply(json.dumps({"reasoning": "r", "answer": "a"}), [])]
    lm, transport = _lm("openai/gpt-4o-mini", replies)
    with dx.context(adapter=JSONAdapter()):
        pred = await dx.ReAct("question -> answer", tools=[get_weather]).acall(question="q", lm=lm)
    assert pred.answer == "a"
    assert pred.trajectory["tool_name_0"] == "finish"
    assert "tools" not in transport.sent[0].json
    assert "next_tool_name" in transport.sent[0].json["messages"][0]["content"]


def _anthropic_reply(text: str | None, calls: list[tuple[str, dict[str, Any]]]) -> Reply:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a} for i, (n, a) in enumerate(calls)]
    return Reply.json({"id": "msg", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                       "content": content, "stop_reason": "tool_use" if calls else "end_turn",
                       "usage": {"input_tokens": 10, "output_tokens": 5}})


def _gemini_reply(text: str | None, calls: list[tuple[str, dict[str, Any]]]) -> Reply:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    parts += [{"functionCall": {"name": n, "args": a}} for n, a in calls]
    return Reply.json({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                                       "index": 0}],
                       "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}})


PROVIDER_REPLIES = {
    "anthropic": ("anthropic/claude-sonnet-4-5", _anthropic_reply),
    "gemini": ("gemini/gemini-2.0-flash", _gemini_reply),
}


@pytest.mark.parametrize("provider", sorted(PROVIDER_REPLIES))
async def test_react_native_mode_other_providers(provider: str) -> None:
    model, reply = PROVIDER_REPLIES[provider]
    extract = "[[ ## reasoning ## ]]\nSunny.\n\n[[ ## answer ## ]]\nSunny\n\n[[ ## completed ## ]]"
    replies = [reply("Checking.", [("get_weather", {"location": "Oslo"})]), reply(None, [("finish", {})]),
               reply(extract, [])]
    lm, transport = _lm(model, replies)
    with dx.context(adapter=ChatAdapter(use_native_function_calling=True)):
        pred = await dx.ReAct("question -> answer", tools=[get_weather]).acall(question="Oslo?", lm=lm)
    body = transport.sent[0].json
    assert _tools_in_request(provider, body) == ["get_weather", "finish"]
    assert pred.trajectory["thought_0"] == "Checking."
    assert pred.trajectory["observation_0"] == "sunny in Oslo (celsius)"
    assert pred.answer == "Sunny"
    assert "tools" not in transport.sent[2].json


async def test_react_truncates_on_a_real_provider_context_error() -> None:
    """OpenAI's context_length_exceeded (400) reaches ReAct as ContextWindowExceededError; the oldest step goes."""
    from _lm_fakes import fixture_bytes as raw_fixture

    def step(name: str, args: dict[str, Any]) -> Reply:
        text = (f"[[ ## next_thought ## ]]\nt\n\n[[ ## next_tool_name ## ]]\n{name}\n\n"
                f"[[ ## next_tool_args ## ]]\n{json.dumps(args)}\n\n[[ ## completed ## ]]")
        return _openai_reply(text, [])

    overflow = Reply(400, raw_fixture("openai_error_context.json"), [("content-type", "application/json")])
    extract = _openai_reply("[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\n6\n\n[[ ## completed ## ]]", [])
    replies = [step("get_weather", {"location": "A"}), step("get_weather", {"location": "B"}), overflow,
               step("finish", {}), extract]
    lm, transport = _lm("openai/gpt-4o-mini", replies)
    pred = await dx.ReAct("question -> answer", tools=[get_weather]).acall(question="q", lm=lm)
    assert pred.answer == "6"
    assert len(transport.sent) == 5
    retried = transport.sent[3].json["messages"][-1]["content"]
    assert "[[ ## thought_0 ## ]]" not in retried
    assert "[[ ## thought_1 ## ]]" in retried
    assert "thought_0" not in pred.trajectory
    assert pred.trajectory["tool_name_2"] == "finish"


async def test_react_native_turn_without_a_tool_call_is_fed_back() -> None:
    extract = _openai_reply("[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]", [])
    replies = [_openai_reply("Just thinking.", []), _openai_reply(None, [("finish", {})]), extract]
    lm, _ = _lm("openai/gpt-4o-mini", replies)
    with dx.context(adapter=ChatAdapter(use_native_function_calling=True)):
        pred = await dx.ReAct("question -> answer", tools=[get_weather]).acall(question="q", lm=lm)
    assert pred.trajectory["thought_0"] == "Just thinking."
    assert pred.trajectory["tool_name_0"] == ""
    assert "no tool was named; expected one of: get_weather, finish" in pred.trajectory["observation_0"]
    assert pred.answer == "ok"


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.seen.append(("format_start", sorted(inputs)))

    def on_adapter_format_end(self, call_id: str, outputs: Any, exception: Exception | None) -> None:
        self.seen.append(("format_end", outputs[-1]["role"]))

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.seen.append(("parse_start", inputs["completion"].startswith("[[ ## answer ## ]]")))

    def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: Exception | None) -> None:
        self.seen.append(("parse_end", outputs))


class _Broken:
    def on_adapter_format_start(self, *args: Any) -> None:
        raise RuntimeError("callback bug")


@pytest.mark.parametrize("streamed", [False, True])
async def test_adapter_callbacks_see_format_and_parse(streamed: bool) -> None:
    rec = _Recorder()
    lm = ScriptedLM([{"answer": "Paris"}])
    qa = dx.Predict("question -> answer")
    with dx.context(adapter=ChatAdapter(callbacks=[_Broken(), rec])):
        if streamed:
            events = [ev async for ev in qa.stream(question="Capital?", lm=lm)]
            assert events[-1].outputs == {"answer": "Paris"}
        else:
            assert (await qa.acall(question="Capital?", lm=lm)).answer == "Paris"
    assert rec.seen == [
        ("format_start", ["demos", "inputs", "signature"]), ("format_end", "user"),
        ("parse_start", True), ("parse_end", {"answer": "Paris"}),
    ]
