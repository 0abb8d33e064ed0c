"""DSPy's adapter call surface: adapter(lm, lm_kwargs, signature, demos, inputs) and await adapter.acall(...)."""

from __future__ import annotations

from typing import Any

import pytest

import dspex as dx
from dspex.adapters import ChatAdapter, JSONAdapter
from dspex.errors import ParseError
from dspex.lm import LMResponse, Message, NativeToolCall
from dspex.testing import ScriptedLM

QA = dx.Signature("question -> answer")


def lookup(city: str) -> str:
    """Look a city up."""
    return city


TOOLS_SIG = dx.Signature(
    {"question": (str, dx.InputField()), "tools": (list[dx.Tool], dx.InputField()),
     "answer": (str, dx.OutputField()), "calls": (dx.ToolCalls, dx.OutputField())},
    "Answer using the tools.",
)


class RecordingLM:
    """An LM returning fixed texts (and native tool calls) and recording each request."""

    provider = "openai"
    model = "openai/recorder"
    supports_function_calling = True

    def __init__(self, outputs: list[str], tool_calls: list[list[NativeToolCall]] | None = None) -> None:
        self.outputs, self.tool_calls = outputs, tool_calls or []
        self.requests: list[tuple[list[Message], dict[str, Any]]] = []

    async def acall(self, messages: list[Message], **params: Any) -> LMResponse:
        self.requests.append((messages, params))
        return LMResponse(outputs=self.outputs, tool_calls=self.tool_calls)


def test_sync_call_formats_calls_and_parses() -> None:
    lm = ScriptedLM([{"answer": "4"}])
    assert ChatAdapter()(lm, {"temperature": 0.0}, QA, [], {"question": "2+2?"}) == [{"answer": "4"}]
    sent = lm.history[-1]
    assert sent["params"]["temperature"] == 0.0
    assert sent["messages"] == ChatAdapter().format(QA, [], {"question": "2+2?"})


async def test_acall_returns_one_dict_per_completion() -> None:
    lm = RecordingLM(["[[ ## answer ## ]]\na\n\n[[ ## completed ## ]]", "[[ ## answer ## ]]\nb"])
    assert await ChatAdapter().acall(lm, {"n": 2}, QA, [], {"question": "q"}) == [{"answer": "a"}, {"answer": "b"}]


async def test_text_mode_strips_tool_kwargs_as_dspy_does() -> None:
    lm = RecordingLM(['[[ ## answer ## ]]\nok\n\n[[ ## calls ## ]]\n{"tool_calls": []}'])
    kwargs = {"tools": [{"type": "function"}], "tool_choice": "auto", "parallel_tool_calls": True, "top_p": 0.5}
    await ChatAdapter().acall(lm, kwargs, TOOLS_SIG, [], {"question": "q", "tools": [dx.Tool(lookup)]})
    params = lm.requests[0][1]
    assert "tools" not in params
    assert "tool_choice" not in params
    assert "parallel_tool_calls" not in params
    assert params["top_p"] == 0.5
    assert kwargs["tools"] == [{"type": "function"}]  # the caller's dict is left alone


async def test_native_mode_sends_tools_and_fills_tool_calls() -> None:
    lm = RecordingLM(["[[ ## answer ## ]]\nchecking"], [[NativeToolCall(name="lookup", args={"city": "Oslo"}, id="c1")]])
    adapter = ChatAdapter(use_native_function_calling=True, parallel_tool_calls=False)
    [out] = await adapter.acall(lm, {}, TOOLS_SIG, [], {"question": "q", "tools": [dx.Tool(lookup)]})
    assert out["answer"] == "checking"
    assert [(c.name, c.args) for c in out["calls"].tool_calls] == [("lookup", {"city": "Oslo"})]
    params = lm.requests[0][1]
    assert params["tools"][0]["function"]["name"] == "lookup"
    assert params["parallel_tool_calls"] is False
    assert params["tool_choice"] == "auto"


async def test_unparseable_chat_output_falls_back_to_json_adapter() -> None:
    lm = RecordingLM(['{"answer": "json"}'])
    assert await ChatAdapter().acall(lm, {}, QA, [], {"question": "q"}) == [{"answer": "json"}]
    assert len(lm.requests) == 2
    assert "response_format" in lm.requests[1][1]


async def test_json_adapter_raises_when_nothing_parses() -> None:
    lm = RecordingLM(["no json here"])
    with pytest.raises(ParseError, match="JSONAdapter"):
        await JSONAdapter().acall(lm, {}, QA, [], {"question": "q"})
    with pytest.raises(ParseError, match="empty"):
        await JSONAdapter().acall(RecordingLM([""]), {}, QA, [], {"question": "q"})


def test_format_conversation_history_is_an_override_point() -> None:
    class Terse(ChatAdapter):
        def format_conversation_history(self, signature: Any, history_field_name: str,
                                        inputs: dict[str, Any]) -> list[Message]:
            turns = inputs.pop(history_field_name).messages
            return [{"role": "user", "content": f"({len(turns)} earlier turns)"}]

    sig = dx.Signature("question, history: History -> answer")
    history = dx.History(messages=[{"question": "a", "answer": "b"}])
    messages = Terse().format(sig, [], {"question": "now", "history": history})
    assert messages[1] == {"role": "user", "content": "(1 earlier turns)"}
    assert "history" not in messages[2]["content"]
    default = ChatAdapter().format(sig, [], {"question": "now", "history": history})
    assert [m["role"] for m in default] == ["system", "user", "assistant", "user"]
