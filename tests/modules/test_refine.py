"""BestOfN and Refine: DSPy's attempt loop, byte-identical feedback prompts, rollout ids, fail_count."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import dspex as dx
from dspex.errors import ConfigError
from dspex.events import PredictionDone, Retry
from dspex.lm import LMResponse, LMUsage
from dspex.testing import ScriptedLM

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))

import module_cases as cases

GOLD = json.loads((GOLDEN / "modules_golden.json").read_text())


def _messages(lm: ScriptedLM) -> list[Any]:
    return [h["messages"] for h in lm.history]


async def test_refine_prompts_are_byte_identical_to_dspy() -> None:
    program, reward = cases.build_refine(dx)
    lm = ScriptedLM(cases.REFINE_ANSWERS)
    pred = await dx.Refine(program, N=3, reward_fn=reward, threshold=1.0).acall(lm=lm, **cases.QUESTION)
    assert {k: str(v) for k, v in pred.items()} == GOLD["refine"]["outputs"]
    # attempt, OfferFeedback, attempt with hint_, OfferFeedback, attempt with hint_
    assert _messages(lm) == [c["messages"] for c in GOLD["refine"]["calls"]]
    assert "[[ ## hint_ ## ]]\nOnly the city name." in lm.history[4]["messages"][-1]["content"]


def test_refine_sync_call_matches_dspy() -> None:
    program, reward = cases.build_refine(dx)
    lm = ScriptedLM(cases.REFINE_ANSWERS)
    pred = dx.Refine(program, N=3, reward_fn=reward, threshold=1.0)(lm=lm, **cases.QUESTION)
    assert pred.answer == "Brussels"
    assert _messages(lm) == [c["messages"] for c in GOLD["refine"]["calls"]]


async def test_best_of_n_prompts_match_dspy_and_stop_at_threshold() -> None:
    program, reward = cases.build_refine(dx)
    lm = ScriptedLM([*cases.BEST_OF_N_ANSWERS, {"reasoning": "never", "answer": "unused"}])
    pred = await dx.BestOfN(program, N=4, reward_fn=reward, threshold=1.0).acall(lm=lm, **cases.QUESTION)
    assert pred.answer == "Brussels"
    assert lm.calls == 3
    assert _messages(lm) == [c["messages"] for c in GOLD["best_of_n"]["calls"]]


async def test_best_of_n_returns_best_when_threshold_never_met() -> None:
    lm = ScriptedLM([{"answer": "a b c"}, {"answer": "a"}, {"answer": "a b"}])
    fewest = dx.BestOfN(dx.Predict("q -> answer"), N=3, reward_fn=lambda _, p: -len(p.answer.split()), threshold=0)
    pred = await fewest.acall(q="x", lm=lm)
    assert pred.answer == "a"
    assert lm.calls == 3


class _RecordingLM:
    """An LM with DSPy's ``copy``/``kwargs`` that records each call's parameters."""

    def __init__(self, answers: list[str], kwargs: dict[str, Any] | None = None, log: list[Any] | None = None):
        self.model = "recording"
        self.kwargs = kwargs or {}
        self.answers = answers
        self.log = log if log is not None else []

    def copy(self, **params: Any) -> _RecordingLM:
        return _RecordingLM(self.answers, {**self.kwargs, **params}, self.log)

    async def acall(self, messages: list[Any], **params: Any) -> LMResponse:
        self.log.append({**self.kwargs, **params})
        return LMResponse(outputs=[f"[[ ## answer ## ]]\n{self.answers.pop(0)}"], model=self.model, usage=LMUsage())

    def stream(self, messages: list[Any], **params: Any) -> Any:
        raise NotImplementedError


async def test_attempts_use_rollout_ids_from_the_lm_start_at_temperature_one() -> None:
    lm = _RecordingLM(["no", "no", "yes"], kwargs={"rollout_id": 5, "temperature": 0.0})
    module = dx.Predict("q -> answer")
    module.lm = lm
    best = dx.BestOfN(module, N=3, reward_fn=lambda _, p: float(p.answer == "yes"), threshold=1.0)
    assert (await best.acall(q="x")).answer == "yes"
    assert [(c["rollout_id"], c["temperature"]) for c in lm.log] == [(5, 1.0), (6, 1.0), (7, 1.0)]
    assert module.lm is lm
    assert lm.kwargs == {"rollout_id": 5, "temperature": 0.0}


async def test_async_reward_and_trace_of_the_winner_is_appended() -> None:
    async def reward(args: dict[str, Any], pred: Any) -> float:
        return float(pred.answer == "good")

    lm = ScriptedLM([{"answer": "bad"}, {"answer": "good"}])
    trace: list[Any] = []
    with dx.context(trace=trace):
        pred = await dx.BestOfN(dx.Predict("q -> answer"), N=3, reward_fn=reward, threshold=1.0).acall(q="x", lm=lm)
    assert pred.answer == "good"
    assert len(trace) == 1
    assert trace[0][2].answer == "good"


async def test_fail_count_tolerates_failures_then_raises() -> None:
    calls = {"n": 0}

    def flaky(args: dict[str, Any], pred: Any) -> float:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError(f"reward crashed {calls['n']}")
        return 1.0

    lm = ScriptedLM([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    pred = await dx.BestOfN(dx.Predict("q -> answer"), N=3, reward_fn=flaky, threshold=1.0).acall(q="x", lm=lm)
    assert pred.answer == "c"  # two failures tolerated (fail_count defaults to N)

    calls["n"] = 0
    lm = ScriptedLM([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    strict = dx.BestOfN(dx.Predict("q -> answer"), N=3, reward_fn=flaky, threshold=1.0, fail_count=1)
    with pytest.raises(RuntimeError, match="reward crashed 2"):
        await strict.acall(q="x", lm=lm)


async def test_every_attempt_failing_raises_the_last_error() -> None:
    def broken(args: dict[str, Any], pred: Any) -> float:
        raise ValueError("no reward")

    lm = ScriptedLM([{"answer": "a"}] * 3)
    with pytest.raises(ValueError, match="no reward"):
        await dx.Refine(dx.Predict("q -> answer"), N=3, reward_fn=broken, threshold=1.0).acall(q="x", lm=lm)


async def test_stream_reports_each_new_attempt_as_retry() -> None:
    program, reward = cases.build_refine(dx)
    refine = dx.Refine(program, N=3, reward_fn=reward, threshold=1.0)
    with dx.context(lm=ScriptedLM(cases.REFINE_ANSWERS)):
        events = [ev async for ev in refine.stream(**cases.QUESTION)]
    retries = [ev for ev in events if isinstance(ev, Retry)]
    assert [r.attempt for r in retries] == [2, 3]
    assert all(r.reason.startswith("Refine: reward 0.0 < threshold 1.0") for r in retries)
    assert isinstance(events[-1], PredictionDone)
    assert events[-1].outputs["answer"] == "Brussels"


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="N must be an int >= 1"):
        dx.BestOfN(dx.Predict("q -> a"), N=0, reward_fn=lambda a, p: 1.0, threshold=1.0)
    with pytest.raises(ConfigError, match="reward_fn must be callable"):
        dx.Refine(dx.Predict("q -> a"), N=2, reward_fn=None, threshold=1.0)  # type: ignore[arg-type]


def test_best_of_n_sync_call() -> None:
    lm = ScriptedLM([{"answer": "a b"}, {"answer": "ok"}])
    best = dx.BestOfN(dx.Predict("q -> answer"), N=3, reward_fn=lambda _, p: float(p.answer == "ok"), threshold=1.0)
    assert best(q="x", lm=lm).answer == "ok"
    assert lm.calls == 2


async def test_best_of_n_streams_and_runs_as_a_flow_stage() -> None:
    best = dx.BestOfN(dx.Predict("question -> answer"), N=2,
                      reward_fn=lambda _, p: float(len(p.answer.split()) == 1), threshold=1.0)
    with dx.context(lm=ScriptedLM([{"answer": "a b"}, {"answer": "ok"}])):
        events = [ev async for ev in best.stream(question="q")]
    assert [ev.attempt for ev in events if isinstance(ev, Retry)] == [2]
    assert isinstance(events[-1], PredictionDone)
    assert events[-1].outputs == {"answer": "ok"}
    out = dx.sinks.collect()
    flow = dx.Flow("best")
    flow.source([{"id": 1, "question": "q1"}, {"id": 2, "question": "q2"}]).map(best).sink(out)
    lm = ScriptedLM([{"answer": "a b"}, {"answer": "ok"}, {"answer": "fine"}])
    assert (await flow.run(lm=lm, progress=False)).status == "completed"
    assert out.items == [{"id": 1, "question": "q1", "answer": "ok"}, {"id": 2, "question": "q2", "answer": "fine"}]
