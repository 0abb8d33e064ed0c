"""Predict: DSPy black-box cases (tests/predict/test_predict.py) and dspex additions."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import dspex as dx
from dspex.adapters import ChatAdapter, JSONAdapter
from dspex.errors import ConfigError, InputError, LMNotConfiguredError, ParseError
from dspex.modules._call import format_messages
from dspex.testing import ScriptedLM


def test_sync_call_returns_prediction_with_usage() -> None:
    lm = ScriptedLM([{"answer": "Paris"}])
    pred = dx.Predict("question -> answer")(question="Capital of France?", lm=lm)
    assert pred.answer == "Paris"
    assert pred.usage.input_tokens > 0
    assert pred.usage.output_tokens == 6
    assert lm.history[0]["messages"][-1]["content"].startswith("[[ ## question ## ]]\nCapital of France?")


async def test_async_call() -> None:
    pred = await dx.Predict("question -> answer").acall(question="q", lm=ScriptedLM([{"answer": "a"}]))
    assert pred.answer == "a"


async def test_n_completions_and_temperature_bump() -> None:
    lm = ScriptedLM([{"answer": "my first answer"}, {"answer": "my second answer"}])
    pred = await dx.Predict("question -> answer", n=2).acall(question="q", lm=lm)
    assert pred.completions.answer == ["my first answer", "my second answer"]
    assert pred.answer == "my first answer"
    assert lm.history[0]["params"]["temperature"] == 0.7
    lm2 = ScriptedLM([{"answer": "x"}] * 2)
    await dx.Predict("question -> answer", n=2, temperature=1.0).acall(question="q", lm=lm2)
    assert lm2.history[0]["params"]["temperature"] == 1.0


def test_positional_args_are_rejected_with_field_names() -> None:
    predict = dx.Predict("question, context -> answer")
    with pytest.raises(InputError, match="question, context"):
        predict("what?")


async def test_positional_args_are_rejected_async() -> None:
    with pytest.raises(InputError, match="keyword"):
        await dx.Predict("question -> answer").acall("what?")


async def test_no_lm_is_a_clear_error() -> None:
    with dx.context(lm=None), pytest.raises(LMNotConfiguredError, match=r"dx\.configure"):
        await dx.Predict("question -> answer").acall(question="q")


async def test_string_lm_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"dx\.LM"):
        await dx.Predict("question -> answer").acall(question="q", lm="openai/gpt-4o-mini")


async def test_missing_required_input_names_it() -> None:
    with pytest.raises(InputError, match="'context'") as info:
        await dx.Predict("question, context -> answer").acall(question="q", lm=ScriptedLM([]))
    assert info.value.field == "context"


async def test_inputs_with_defaults_or_optional_are_not_required() -> None:
    class S(dx.Signature):
        question: str = dx.InputField()
        style: str = dx.InputField(default="short")
        hint: str | None = dx.InputField()
        answer: str = dx.OutputField()

    lm = ScriptedLM([{"answer": "a"}])
    await dx.Predict(S).acall(question="q", lm=lm)
    assert "[[ ## style ## ]]\nshort" in lm.history[0]["messages"][-1]["content"]


async def test_output_only_signature() -> None:
    pred = await dx.Predict("-> output").acall(lm=ScriptedLM([{"output": "hello"}]))
    assert pred.output == "hello"


async def test_trace_is_bounded_and_none_stays_none() -> None:
    predict = dx.Predict("question -> answer")
    lm = ScriptedLM([{"answer": str(i)} for i in range(10)])
    trace: list = []
    with dx.context(trace=trace, max_trace_size=3):
        for i in range(10):
            await predict.acall(question=f"q{i}", lm=lm)
    assert len(trace) == 3
    assert trace[-1][0] is predict
    assert trace[-1][1] == {"question": "q9"}
    assert trace[-1][2].answer == "9"
    with dx.context(trace=None):
        await predict.acall(question="q", lm=ScriptedLM([{"answer": "x"}]))
        assert dx._context.get_setting("trace") is None


async def test_history_is_bounded_and_can_be_disabled() -> None:
    predict = dx.Predict("question -> answer")
    lm = ScriptedLM([{"answer": "x"}] * 5)
    with dx.context(max_history_size=2):
        for _ in range(3):
            await predict.acall(question="q", lm=lm)
    assert len(predict.history) == 2
    assert predict.inspect_history(1)[0]["outputs"] == ["[[ ## answer ## ]]\nx"]
    with dx.context(disable_history=True):
        await predict.acall(question="q", lm=lm)
    assert len(predict.history) == 2


async def test_lm_resolution_order() -> None:
    ctx_lm, own_lm, arg_lm = (ScriptedLM([{"answer": n}] * 3, model=n) for n in ("ctx", "own", "arg"))
    predict = dx.Predict("question -> answer")
    with dx.context(lm=ctx_lm):
        assert (await predict.acall(question="q")).answer == "ctx"
        predict.lm = own_lm
        assert (await predict.acall(question="q")).answer == "own"
        assert (await predict.acall(question="q", lm=arg_lm)).answer == "arg"


async def test_config_and_per_call_override_reach_the_lm() -> None:
    lm = ScriptedLM([{"answer": "x"}] * 2)
    predict = dx.Predict("question -> answer", temperature=0.2, max_tokens=50)
    await predict.acall(question="q", lm=lm)
    await predict.acall(question="q", lm=lm, config={"temperature": 0.9})
    assert lm.history[0]["params"] == {"temperature": 0.2, "max_tokens": 50}
    assert lm.history[1]["params"] == {"temperature": 0.9, "max_tokens": 50}
    assert predict.config == {"temperature": 0.2, "max_tokens": 50}


async def test_demos_are_formatted_and_overridable_per_call() -> None:
    predict = dx.Predict("question -> answer")
    predict.demos = [dx.Example(question="1+1?", answer="2")]
    lm = ScriptedLM([{"answer": "4"}] * 2)
    await predict.acall(question="2+2?", lm=lm)
    assert [m["role"] for m in lm.history[0]["messages"]] == ["system", "user", "assistant", "user"]
    await predict.acall(question="2+2?", lm=lm, demos=[])
    assert len(lm.history[1]["messages"]) == 2


async def test_follow_examples_uses_demo_answers() -> None:
    predict = dx.Predict("input -> output")
    predict.demos = [{"input": "What color is the sky?", "output": "blue"}]
    lm = ScriptedLM([{"output": "wrong"}], follow_examples=True)
    assert (await predict.acall(input="What color is the sky?", lm=lm)).output == "blue"


@pytest.mark.parametrize("adapter", [ChatAdapter(), JSONAdapter()])
def test_cached_prefix_formatting_matches_adapter_format(adapter: ChatAdapter) -> None:
    sig = dx.Signature("question, context: list[str] -> answer, confidence: float")
    demos = [dx.Example(question="q1", context=["c"], answer="a1", confidence=0.5), {"question": "q2", "answer": "a2"}]
    for ds in ([], demos):
        inputs = {"question": "Why?", "context": ["x", "y"]}
        first = format_messages(adapter, sig, ds, inputs)
        again = format_messages(adapter, sig, ds, {"question": "Other?", "context": []})
        assert first == adapter.format(sig, ds, inputs)
        assert again == adapter.format(sig, ds, {"question": "Other?", "context": []})


async def test_validation_feedback_setting_is_appended() -> None:
    lm = ScriptedLM([{"answer": "x"}])
    with dx.context(feedback=("answer too long",)):
        await dx.Predict("question -> answer").acall(question="q", lm=lm)
    assert lm.history[0]["messages"][-1]["content"].endswith("answer too long")


async def test_parse_failure_retries_with_feedback_then_succeeds() -> None:
    lm = ScriptedLM(["[[ ## answer ## ]]\nnot a number", {"answer": 42}])
    pred = await dx.Predict("question -> answer: int").acall(question="q", lm=lm)
    assert pred.answer == 42
    retry_messages = lm.history[1]["messages"]
    assert retry_messages[-2] == {"role": "assistant", "content": "[[ ## answer ## ]]\nnot a number"}
    assert retry_messages[-1]["role"] == "user"
    assert "answer" in retry_messages[-1]["content"]
    assert pred.usage.output_tokens == 8 + 6


async def test_parse_failure_falls_back_to_json_then_raises_with_raw() -> None:
    lm = ScriptedLM(["garbage one", "garbage two", "still not json"])
    with pytest.raises(ParseError) as info:
        await dx.Predict("question -> answer").acall(question="q", lm=lm)
    err = info.value
    assert err.raw == "still not json"
    assert err.adapter == "JSONAdapter"
    assert "3 attempt" in str(err)
    assert lm.calls == 3
    assert "response_format" in lm.history[2]["params"]


async def test_json_fallback_can_rescue_the_call() -> None:
    lm = ScriptedLM(["garbage", "garbage", '{"answer": "rescued"}'])
    assert (await dx.Predict("question -> answer").acall(question="q", lm=lm)).answer == "rescued"


async def test_parse_retries_setting_zero_goes_straight_to_fallback() -> None:
    lm = ScriptedLM(["garbage", '{"answer": "json"}'])
    with dx.context(parse_retries=0):
        assert (await dx.Predict("question -> answer").acall(question="q", lm=lm)).answer == "json"
    assert lm.calls == 2


async def test_json_adapter_setting_is_used() -> None:
    lm = ScriptedLM([{"answer": "x"}], adapter="json")
    with dx.context(adapter=JSONAdapter()):
        assert (await dx.Predict("question -> answer").acall(question="q", lm=lm)).answer == "x"
    assert "response_format" in lm.history[0]["params"]


async def test_context_isolation_between_concurrent_tasks() -> None:
    predict = dx.Predict("question -> answer")
    seen: dict[str, str] = {}

    async def worker(name: str) -> None:
        with dx.context(lm=ScriptedLM([{"answer": name}] * 5)):
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
                pred = await predict.acall(question=name)
                assert pred.answer == name
            seen[name] = pred.answer

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "left")
        tg.start_soon(worker, "right")
    assert seen == {"left": "left", "right": "right"}


async def test_sync_call_inside_a_running_loop() -> None:
    predict = dx.Predict("question -> answer")
    with dx.context(lm=ScriptedLM([{"answer": "from a thread"}])):
        pred = predict(question="q")
    assert pred.answer == "from a thread"


def test_parameter_versions_are_recorded_and_restorable() -> None:
    predict = dx.Predict("question -> answer")
    first = predict.versions[-1]
    predict.demos = [dx.Example(question="a", answer="b")]
    predict.signature = predict.signature.with_instructions("Be terse.")
    assert [v.instructions for v in predict.versions][-2:] == [first.instructions, "Be terse."]
    assert len(predict.versions[-1].demos) == 1
    predict.restore_version(first)
    assert predict.signature.instructions == first.instructions
    assert predict.demos == []


def test_deepcopy_and_reset_copy() -> None:
    lm = ScriptedLM([])
    predict = dx.Predict("question -> answer", temperature=0.1)
    predict.lm = lm
    predict.demos = [dx.Example(question="a", answer="b")]
    clone = predict.deepcopy()
    assert clone.lm is lm
    assert clone.demos == predict.demos
    assert clone.demos is not predict.demos
    assert clone.config == predict.config
    assert clone.config is not predict.config
    fresh = predict.reset_copy()
    assert fresh.lm is None
    assert fresh.demos == []
    assert predict.demos


def test_named_predictors_of_a_predict_is_self() -> None:
    predict = dx.Predict("a -> b")
    assert predict.named_predictors() == [("self", predict)]
    assert repr(predict) == "Predict(a -> b)"


def test_a_misspelled_input_is_named_with_the_likely_field() -> None:
    predict = dx.Predict("question -> answer")
    with pytest.raises(InputError, match=r"'questoin' is not an input; did you mean 'question'\?"):
        predict(questoin="Capital of France?", lm=ScriptedLM([{"answer": "Paris"}]))
    with pytest.raises(InputError, match=r"got unknown input\(s\) 'zzz'"):
        predict(zzz="?", lm=ScriptedLM([{"answer": "Paris"}]))
