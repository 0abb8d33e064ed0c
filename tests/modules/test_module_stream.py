"""Module.stream: token/field/usage/retry events from every nested predictor, clean early close."""

from __future__ import annotations

import anyio
import pytest

import dspex as dx
from dspex.errors import InputError
from dspex.events import Event, FieldDelta, FieldDone, PredictionDone, Retry, TokenDelta, Usage
from dspex.testing import ScriptedLM


async def _collect(stream: dx.modules.ModuleStream) -> list[Event]:
    return [ev async for ev in stream]


async def test_predict_stream_yields_deltas_then_prediction() -> None:
    lm = ScriptedLM([{"answer": "Paris is the capital of France"}], stream_chunk_size=3)
    with dx.context(lm=lm):
        events = await _collect(dx.Predict("question -> answer").stream(question="Capital?"))
    kinds = [type(ev) for ev in events]
    assert kinds[-1] is PredictionDone
    assert kinds.index(FieldDelta) < kinds.index(PredictionDone)
    deltas = [ev for ev in events if isinstance(ev, FieldDelta)]
    assert len(deltas) > 1
    assert {d.field for d in deltas} == {"answer"}
    assert "".join(d.text for d in deltas) == "Paris is the capital of France"
    tokens = "".join(ev.text for ev in events if isinstance(ev, TokenDelta))
    assert tokens == "[[ ## answer ## ]]\nParis is the capital of France"
    done = [ev for ev in events if isinstance(ev, FieldDone)]
    assert [(d.field, d.value) for d in done] == [("answer", "Paris is the capital of France")]
    usage = [ev for ev in events if isinstance(ev, Usage)]
    assert len(usage) == 1
    assert usage[0].model == "scripted"
    assert usage[0].output_tokens > 0
    assert kinds.index(Usage) < kinds.index(PredictionDone)
    final = events[-1]
    assert final.outputs == {"answer": "Paris is the capital of France"}
    assert final.prediction.answer == "Paris is the capital of France"
    assert {ev.predictor for ev in events if isinstance(ev, FieldDelta | TokenDelta)} == {"self"}
    assert [ev.seq for ev in events] == list(range(1, len(events) + 1))


class TwoStep(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict1 = dx.Predict("question -> answer")
        self.predict2 = dx.ChainOfThought("question, answer -> judgement")

    async def aforward(self, question: str) -> dx.Prediction:
        answer = (await self.predict1.acall(question=question)).answer
        return await self.predict2.acall(question=question, answer=answer)


class SyncTwoStep(TwoStep):
    aforward = dx.Module.aforward  # type: ignore[assignment]

    def forward(self, question: str) -> dx.Prediction:
        answer = self.predict1(question=question).answer
        return self.predict2(question=question, answer=answer)


@pytest.mark.parametrize("program", [TwoStep, SyncTwoStep])
async def test_nested_predictors_stream_with_their_names(program: type[dx.Module]) -> None:
    lm = ScriptedLM([{"answer": "To get to the other side!"}, {"reasoning": "Classic.", "judgement": "correct"}])
    with dx.context(lm=lm):
        events = await _collect(program().stream(question="Why did the chicken cross the road?"))
    by_field: dict[tuple[str | None, str], str] = {}
    for ev in events:
        if isinstance(ev, FieldDelta):
            by_field[(ev.predictor, ev.field)] = by_field.get((ev.predictor, ev.field), "") + ev.text
    assert by_field == {
        ("predict1", "answer"): "To get to the other side!",
        ("predict2.predict", "reasoning"): "Classic.",
        ("predict2.predict", "judgement"): "correct",
    }
    assert sum(isinstance(ev, Usage) for ev in events) == 2
    assert sum(isinstance(ev, PredictionDone) for ev in events) == 1
    assert events[-1].prediction.judgement == "correct"


async def test_retry_events_are_streamed() -> None:
    lm = ScriptedLM(["no markers here", {"answer": "fixed"}])
    with dx.context(lm=lm):
        events = await _collect(dx.Predict("question -> answer").stream(question="q"))
    retries = [ev for ev in events if isinstance(ev, Retry)]
    assert len(retries) == 1
    assert retries[0].attempt == 1
    assert "parse" in retries[0].reason
    assert events[-1].outputs == {"answer": "fixed"}


async def test_n_greater_than_one_streams_field_done_of_first() -> None:
    lm = ScriptedLM([{"answer": "one"}, {"answer": "two"}])
    with dx.context(lm=lm):
        events = await _collect(dx.Predict("question -> answer", n=2).stream(question="q"))
    assert [(ev.field, ev.value) for ev in events if isinstance(ev, FieldDone)] == [("answer", "one")]
    assert events[-1].prediction.completions.answer == ["one", "two"]


async def test_errors_are_raised_after_the_events_before_them() -> None:
    lm = ScriptedLM([{"answer": "first"}])

    class Failing(dx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = dx.Predict("question -> answer")

        async def aforward(self, question: str) -> dx.Prediction:
            await self.step.acall(question=question)
            raise RuntimeError("boom after first step")

    seen: list[Event] = []
    with dx.context(lm=lm), pytest.raises(RuntimeError, match="boom"):
        async for ev in Failing().stream(question="q"):
            seen.append(ev)  # noqa: PERF401  # keeps the events seen before the error
    assert any(isinstance(ev, FieldDone) for ev in seen)
    assert not any(isinstance(ev, PredictionDone) for ev in seen)


async def test_input_errors_surface_from_the_stream() -> None:
    with dx.context(lm=ScriptedLM([])), pytest.raises(InputError, match="question"):
        await _collect(dx.Predict("question -> answer").stream())


class Endless(dx.Module):
    """Streams one predictor, then waits forever; records its own cancellation."""

    def __init__(self) -> None:
        super().__init__()
        self.step = dx.Predict("question -> answer")
        self.cleaned_up = False

    async def aforward(self, question: str) -> dx.Prediction:
        try:
            await self.step.acall(question=question)
            await anyio.sleep_forever()
        finally:
            self.cleaned_up = True
        raise AssertionError("unreachable")


async def test_early_aclose_cancels_the_module() -> None:
    program = Endless()
    lm = ScriptedLM([{"answer": "a long answer with many words in it"}], stream_chunk_size=1)
    with dx.context(lm=lm):
        stream = program.stream(question="q")
        first = await stream.__anext__()
        assert isinstance(first, TokenDelta)
        await stream.aclose()
    assert program.cleaned_up
    assert [ev async for ev in stream] == []
    await stream.aclose()  # idempotent


async def test_async_with_closes_when_leaving_early() -> None:
    program = Endless()
    with dx.context(lm=ScriptedLM([{"answer": "x y z"}])):
        async with program.stream(question="q") as events:
            async for ev in events:
                if isinstance(ev, FieldDone):
                    break
    assert program.cleaned_up


async def test_sync_call_inside_stream_context_does_not_break() -> None:
    class Mixed(dx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = dx.Predict("question -> answer")

        async def aforward(self, question: str) -> dx.Prediction:
            return self.step(question=question)  # sync call on a fresh loop: not streamed

    with dx.context(lm=ScriptedLM([{"answer": "ok"}])):
        events = await _collect(Mixed().stream(question="q"))
    assert [type(ev) for ev in events] == [PredictionDone]
    assert events[0].outputs == {"answer": "ok"}


async def test_early_aclose_of_a_sync_forward_module_returns() -> None:
    lm = ScriptedLM([{"answer": "many words " * 20}, {"reasoning": "r", "judgement": "j"}], stream_chunk_size=1)
    with dx.context(lm=lm):
        stream = SyncTwoStep().stream(question="q")
        assert isinstance(await stream.__anext__(), TokenDelta)
        await stream.aclose()  # must not hang waiting for the worker thread
    assert lm.calls == 1
