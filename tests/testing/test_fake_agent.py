"""FakeLLMServer plays an agent: DSPy ReAct text steps, native tool calls, extraction; streamed or not."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import dspex as dx
from dspex._http._pool import ConnectionPool
from dspex.events import PredictionDone, ToolCall, ToolResult
from dspex.testing import FakeLLMServer
from dspex.testing._fake_agent import choose_step, extract_answer, tools_from_prompt

MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.0-flash"]


async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers (slowly, as a blocking call would)."""
    time.sleep(0.005)
    return a * b


def _lm(model: str, srv: FakeLLMServer) -> dx.LM:
    return dx.LM(model, api_base=srv.url, api_key="test-key", cache=False)


@pytest.mark.parametrize("native", [False, True], ids=["text", "native"])
@pytest.mark.parametrize("model", MODELS)
async def test_react_solves_arithmetic_with_the_named_tool(model: str, native: bool) -> None:
    agent = dx.ReAct("question -> answer: int", tools=[add, multiply])
    async with FakeLLMServer() as srv:
        with dx.context(lm=_lm(model, srv), adapter=dx.ChatAdapter(use_native_function_calling=native)):
            summed = await agent.acall(question="What is 12 + 30?")
            product = await agent.acall(question="What is 6 * 7?")
    assert summed.answer == 42
    assert product.answer == 42
    assert summed.trajectory["tool_name_0"] == "add"
    assert summed.trajectory["tool_args_0"] == {"a": 12, "b": 30}
    assert product.trajectory["tool_name_0"] == "multiply"
    assert product.trajectory["observation_0"] == 42
    assert summed.trajectory["tool_name_1"] == "finish"
    assert "tool_name_2" not in summed.trajectory


@pytest.mark.parametrize("native", [False, True], ids=["text", "native"])
@pytest.mark.parametrize("model", MODELS)
async def test_streamed_react_reports_tool_steps_and_the_answer(model: str, native: bool) -> None:
    agent = dx.ReAct("question -> answer", tools=[add, multiply])
    async with FakeLLMServer(tokens_per_chunk=2) as srv:
        with dx.context(lm=_lm(model, srv), adapter=dx.ChatAdapter(use_native_function_calling=native)):
            events = [ev async for ev in agent.stream(question="What is 3 * 5?")]
    calls = [(ev.name, ev.args) for ev in events if isinstance(ev, ToolCall)]
    results = [(ev.name, ev.result) for ev in events if isinstance(ev, ToolResult)]
    assert calls == [("multiply", {"a": 3, "b": 5}), ("finish", {})]
    assert results[0] == ("multiply", 15)
    assert isinstance(events[-1], PredictionDone)
    assert events[-1].outputs["answer"] == "15"


def test_sync_react_call_against_the_server() -> None:
    agent = dx.ReAct("question -> answer: int", tools=[add, multiply])
    with FakeLLMServer() as srv:
        assert agent(question="What is 2 + 2?", lm=_lm(MODELS[0], srv)).answer == 4


async def test_plain_native_tool_request_then_tool_result() -> None:
    tools = [{"type": "function", "function": {
        "name": n, "description": d, "parameters": {"type": "object", "properties": {
            "a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
        for n, d in (("multiply", "Multiply."), ("add", "Add two numbers."))]  # fmt: skip
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is 4 + 9?"}]
    pool = ConnectionPool()
    try:
        async with FakeLLMServer() as srv:
            url = srv.url + "/v1/chat/completions"
            first = await _post(pool, url, {"model": "m", "messages": messages, "tools": tools})
            again = await _post(pool, url, {"model": "m", "messages": messages, "tools": tools})
            call = first["choices"][0]["message"]["tool_calls"][0]
            assert first == again  # deterministic
            assert call["function"]["name"] == "add"
            assert json.loads(call["function"]["arguments"]) == {"a": 4, "b": 9}
            messages += [first["choices"][0]["message"], {"role": "tool", "tool_call_id": call["id"], "content": "13"}]
            final = await _post(pool, url, {"model": "m", "messages": messages, "tools": tools})
    finally:
        await pool.aclose()
    assert final["choices"][0]["message"]["content"] == "The answer is 13."
    assert final["choices"][0]["finish_reason"] == "stop"


async def _post(pool: ConnectionPool, url: str, body: dict[str, Any]) -> Any:
    resp = await pool.request("POST", url, headers={}, body=json.dumps(body).encode())
    return json.loads(await resp.aread())


def test_agent_rules_read_dspy_prompts() -> None:
    system = (
        "        (1) lookup, whose description is <desc>Find a city's weather.</desc>. It takes arguments "
        "{'city': {'type': 'string'}}.\n"
        "        (2) add, whose description is <desc>Add numbers.</desc>. It takes arguments "
        "{'a': {'type': 'number'}, 'b': {'type': 'number'}}.\n"
        "        (3) finish, whose description is <desc>Marks the task as complete.</desc>. It takes arguments {}."
    )
    tools = tools_from_prompt(system)
    assert [t.name for t in tools] == ["lookup", "add", "finish"]
    user = "[[ ## question ## ]]\nWhat is 1.5 plus 2?\n\n[[ ## trajectory ## ]]\n\n\nRespond with ..."
    assert choose_step(tools, user)[1:] == ("add", {"a": 1.5, "b": 2})
    weather = "[[ ## question ## ]]\nWeather in the city of Paris?\n\n[[ ## trajectory ## ]]\n"
    assert choose_step(tools, weather)[1:] == ("lookup", {"city": "Weather in the city of Paris?"})
    done = (user.split("[[ ## trajectory ## ]]")[0] + "[[ ## trajectory ## ]]\n[[ ## thought_0 ## ]]\nx\n\n"
            "[[ ## tool_name_0 ## ]]\nadd\n\n[[ ## tool_args_0 ## ]]\n{}\n\n[[ ## observation_0 ## ]]\n3.5\n\n"
            "[[ ## thought_1 ## ]]\ny\n\n[[ ## tool_name_1 ## ]]\nfinish\n\n[[ ## tool_args_1 ## ]]\n{}\n\n"
            "[[ ## observation_1 ## ]]\nCompleted.\n\nRespond with the fields.")  # fmt: skip
    assert choose_step(tools, done)[1] == "finish"
    assert extract_answer(done) == ("The tool's observation was 3.5, which answers the question.", "3.5")
    assert extract_answer(user) is None
