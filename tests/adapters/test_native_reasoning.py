"""Native reasoning: a dx.Reasoning output sent as reasoning_effort to reasoning models (DSPy 3.4.1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dspex as dx
from dspex.adapters import ChatAdapter
from dspex.lm import LMResponse, Message
from dspex.lm.providers import OpenAIProvider


class Think(dx.Signature):
    question: str = dx.InputField()
    thoughts: dx.Reasoning = dx.OutputField()
    answer: str = dx.OutputField()


class ReasoningLM:
    """Answers ``answer`` only and returns reasoning content, recording requests."""

    provider = "openai"

    def __init__(self, model: str = "openai/o3-mini", supports: bool = True, reasoning: str | None = "I thought.",
                 text_field: str = "thoughts", **kwargs: Any) -> None:
        self.model, self.supports_reasoning, self.kwargs = model, supports, kwargs
        self.reasoning, self.text_field = reasoning, text_field
        self.requests: list[tuple[list[Message], dict[str, Any]]] = []

    async def acall(self, messages: list[Message], **params: Any) -> LMResponse:
        self.requests.append((messages, params))
        native = "reasoning_effort" in params
        text = "[[ ## answer ## ]]\n42" if native else f"[[ ## {self.text_field} ## ]]\nin text\n\n[[ ## answer ## ]]\n42"
        return LMResponse(outputs=[text], reasoning=[self.reasoning] if native else [])


async def test_predict_sends_reasoning_effort_and_fills_the_field() -> None:
    lm = ReasoningLM()
    pred = await dx.Predict(Think).acall(question="q", lm=lm)
    assert isinstance(pred.thoughts, dx.Reasoning)
    assert pred.thoughts == "I thought."
    assert pred.answer == "42"
    messages, params = lm.requests[0]
    assert params["reasoning_effort"] == "low"
    assert "[[ ## thoughts ## ]]" not in messages[0]["content"]  # the field left the prompt (not the instructions)
    assert "`thoughts`" in messages[0]["content"].splitlines()[-1]  # DSPy keeps the instructions as they were


async def test_effort_comes_from_the_call_then_the_lm_and_none_switches_it_off() -> None:
    lm = ReasoningLM(reasoning_effort="high")
    await dx.Predict(Think).acall(question="q", lm=lm)
    assert lm.requests[-1][1]["reasoning_effort"] == "high"
    await dx.Predict(Think, reasoning_effort="medium").acall(question="q", lm=lm)
    assert lm.requests[-1][1]["reasoning_effort"] == "medium"
    off = ReasoningLM(reasoning_effort=None)
    pred = await dx.Predict(Think).acall(question="q", lm=off)
    assert pred.thoughts == "in text"
    assert "reasoning_effort" not in off.requests[-1][1]


@pytest.mark.parametrize(("model", "supports"), [("openai/gpt-4o", False), ("openai/gpt-5-mini", True)])
async def test_text_mode_without_support_and_for_gpt5_chat(model: str, supports: bool) -> None:
    lm = ReasoningLM(model=model, supports=supports)
    pred = await dx.Predict(Think).acall(question="q", lm=lm)
    assert pred.thoughts == "in text"
    assert "reasoning_effort" not in lm.requests[-1][1]


async def test_missing_reasoning_content_leaves_the_field_none_and_str_fields_stay_text() -> None:
    pred = await dx.Predict(Think).acall(question="q", lm=ReasoningLM(reasoning=None))
    assert pred.thoughts is None
    assert pred.answer == "42"
    lm = ReasoningLM(text_field="reasoning")
    cot = await dx.ChainOfThought("question -> answer").acall(question="q", lm=lm)  # reasoning: str stays text
    assert "reasoning_effort" not in lm.requests[-1][1]
    assert cot.reasoning == "in text"


async def test_adapter_acall_goes_native_too() -> None:
    lm = ReasoningLM()
    [out] = await ChatAdapter().acall(lm, {"reasoning_effort": "medium"}, Think, [], {"question": "q"})
    assert out == {"thoughts": "I thought.", "answer": "42"}
    assert list(out) == ["thoughts", "answer"]
    assert lm.requests[0][1]["reasoning_effort"] == "medium"


def test_lm_guesses_support_and_can_be_told() -> None:
    assert dx.LM("openai/o3-mini", api_key="sk-test-000000").supports_reasoning
    assert not dx.LM("openai/gpt-4o-mini", api_key="sk-test-000000").supports_reasoning
    told = dx.LM("vllm/deepseek-r1", api_base="http://127.0.0.1:9/v1", supports_reasoning=True)
    assert told.supports_reasoning
    assert "supports_reasoning" not in told.kwargs


def test_openai_provider_reads_reasoning_content() -> None:
    provider = OpenAIProvider("o3-mini", "https://api.openai.com/v1", "sk-test")
    data = {"choices": [{"index": 0, "message": {"content": "x", "reasoning_content": "because"},
                         "finish_reason": "stop"}]}
    assert provider.parse_response(json.loads(json.dumps(data))).reasoning == ["because"]
    plain = {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}]}
    assert provider.parse_response(plain).reasoning == []
