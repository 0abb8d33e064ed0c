"""DSPy-shaped callbacks: module, LM, adapter and tool hooks, from settings or per module."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import dspex as dx
from dspex.testing import FakeLLMServer, ScriptedLM


class Recorder(dx.Callback):
    """Keeps (hook, detail) pairs and checks start/end pairing by call id."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.open: dict[str, str] = {}

    def _start(self, kind: str, call_id: str, instance: Any) -> None:
        self.open[call_id] = kind
        self.seen.append((f"{kind}_start", type(instance).__name__))

    def _end(self, kind: str, call_id: str, exception: BaseException | None) -> None:
        assert self.open.pop(call_id) == kind
        self.seen.append((f"{kind}_end", type(exception).__name__ if exception else None))

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("module", call_id, instance)

    def on_module_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        self._end("module", call_id, exception)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        assert isinstance(inputs["messages"], list)
        self._start("lm", call_id, instance)

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        assert exception is not None or isinstance(outputs, list)
        self._end("lm", call_id, exception)

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("format", call_id, instance)

    def on_adapter_format_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        self._end("format", call_id, exception)

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("parse", call_id, instance)

    def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        self._end("parse", call_id, exception)

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("tool", call_id, instance)

    def on_tool_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        self._end("tool", call_id, exception)


async def test_context_callbacks_see_module_adapter_and_lm_in_order() -> None:
    recorder = Recorder()
    cot = dx.ChainOfThought("question -> answer")
    lm = ScriptedLM([{"reasoning": "r", "answer": "4"}])
    with dx.context(callbacks=[recorder]):
        assert (await cot.acall(question="2+2?", lm=lm)).answer == "4"
    assert [hook for hook, _ in recorder.seen] == [
        "module_start", "module_start", "format_start", "format_end", "lm_start", "lm_end",
        "parse_start", "parse_end", "module_end", "module_end",
    ]
    assert recorder.seen[0] == ("module_start", "ChainOfThought")
    assert recorder.seen[1] == ("module_start", "Predict")
    assert recorder.seen[4] == ("lm_start", "ScriptedLM")
    assert recorder.open == {}


async def test_per_module_callbacks_see_only_that_module() -> None:
    recorder = Recorder()
    predict = dx.Predict("question -> answer", callbacks=[recorder])
    other = dx.Predict("question -> answer")
    lm = ScriptedLM([{"answer": "a"}, {"answer": "b"}])
    await predict.acall(question="q", lm=lm)
    await other.acall(question="q", lm=lm)
    assert [hook for hook, _ in recorder.seen if hook.startswith("module")] == ["module_start", "module_end"]


async def test_a_raising_callback_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(dx.Callback):
        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            raise RuntimeError("callback bug")

        def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
            raise ValueError("another callback bug")

    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="dspex.telemetry"), dx.context(callbacks=[Broken(), recorder]):
        pred = await dx.Predict("question -> answer").acall(question="q", lm=ScriptedLM([{"answer": "ok"}]))
    assert pred.answer == "ok"
    assert ("module_end", None) in recorder.seen  # the later callback still ran
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "callback bug" in messages
    assert "another callback bug" in messages


async def test_a_failing_call_reaches_end_hooks_with_the_exception() -> None:
    recorder = Recorder()
    async with FakeLLMServer(require_api_key="sk-the-right-key-000") as server:
        lm = dx.LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-wrong-key-0000000",
                   cache=False, retry=dx.RetryPolicy(max_retries=0))
        with dx.context(callbacks=[recorder]), pytest.raises(dx.errors.AuthError):
            await dx.Predict("question -> answer").acall(question="q", lm=lm)
        await lm.aclose()
    assert ("lm_end", "AuthError") in recorder.seen
    assert ("module_end", "AuthError") in recorder.seen
    assert recorder.open == {}


async def test_callbacks_see_tool_calls() -> None:
    recorder = Recorder()

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    react = dx.ReAct("question -> answer", tools=[add])
    lm = ScriptedLM([
        {"next_thought": "add them", "next_tool_name": "add", "next_tool_args": {"a": 2, "b": 2}},
        {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
        {"reasoning": "2+2=4", "answer": "4"},
    ])
    with dx.context(callbacks=[recorder]):
        pred = await react.acall(question="2+2?", lm=lm)
    assert pred.answer == "4"
    tools = [(hook, name) for hook, name in recorder.seen if hook.startswith("tool")]
    assert tools[0] == ("tool_start", "Tool")
    assert tools[1] == ("tool_end", None)
    assert recorder.open == {}


def test_a_sync_forward_module_called_synchronously_is_seen() -> None:
    class Echo(dx.Module):
        def forward(self, question: str) -> Any:
            return dx.Prediction(answer=question)

    recorder = Recorder()
    with dx.context(callbacks=[recorder]):
        assert Echo()(question="hi").answer == "hi"
    assert recorder.seen == [("module_start", "Echo"), ("module_end", None)]
