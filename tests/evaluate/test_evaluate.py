"""dx.Evaluate: a flow over the devset; failures score failure_score; resume; files."""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from _poll import wait_until

import dspex as dx
from dspex.errors import ConfigError, InputError
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from pathlib import Path

DEV = [dx.Example(question=q, answer=a).with_inputs("question")
       for q, a in [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black")]]


def scripted() -> ScriptedLM:
    return ScriptedLM({"sky": {"answer": "Blue"}, "grass": {"answer": "purple"},
                       "snow": {"answer": "white"}, "coal": {"answer": "black"}})


class Flaky(dx.Module):
    """Answers from a table; raises on one question."""

    def __init__(self, bad: str = "snow") -> None:
        super().__init__()
        self.bad = bad
        self.calls = 0

    async def aforward(self, question: str) -> dx.Prediction:
        self.calls += 1
        if question == self.bad:
            raise RuntimeError("model exploded")
        return dx.Prediction(answer={"sky": "blue", "grass": "green", "coal": "grey"}[question])


async def test_score_is_a_percentage_and_results_keep_devset_order() -> None:
    with dx.context(lm=scripted()):
        result = await dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, concurrency=3).acall(
            dx.Predict("question -> answer"))
    assert result.score == 75.0
    assert float(result) == 75.0
    assert [e.question for e, _, _ in result.results] == ["sky", "grass", "snow", "coal"]
    assert [s for _, _, s in result.results] == [True, False, True, True]
    assert result.errors == {}


async def test_a_failing_example_scores_failure_score_and_keeps_the_others() -> None:
    program = Flaky()
    result = await dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, failure_score=0.25).acall(program)
    assert [s for _, _, s in result.results] == [True, True, 0.25, False]
    assert result.score == round(100 * 2.25 / 4, 2)
    assert result.errors == {2: "RuntimeError: model exploded"}
    assert program.calls == 4  # nothing cancelled, nothing thrown away
    assert result.results[2][1] == dx.Prediction()


async def test_metric_may_return_float_or_score_with_feedback_and_be_async() -> None:
    async def graded(example: dx.Example, pred: dx.Prediction) -> dx.Prediction:
        await anyio.lowlevel.checkpoint()
        ok = example.answer == pred.answer
        return dx.Prediction(score=1.0 if ok else 0.5, feedback="right" if ok else f"expected {example.answer}")

    result = await dx.Evaluate(devset=DEV, metric=graded).acall(Flaky(bad="none"))
    assert [s for _, _, s in result.results] == [1.0, 1.0, 0.0, 0.5]  # snow: KeyError -> failure_score
    assert result.feedback == ["right", "right", None, "expected black"]
    assert 2 in result.errors
    assert result.score == 62.5


async def test_a_bad_metric_return_value_is_an_error_per_example() -> None:
    result = await dx.Evaluate(devset=DEV[:1], metric=lambda e, p: "yes").acall(Flaky())
    assert result.score == 0.0
    assert "InputError" in result.errors[0]
    assert "numeric .score" in result.errors[0]


async def test_at_most_concurrency_programs_run_at_once() -> None:
    state = {"now": 0, "peak": 0}
    full = anyio.Event()

    async def program(question: str) -> dx.Prediction:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        if state["now"] == 3:
            full.set()
        with anyio.fail_after(10):
            await full.wait()  # the first three wait for each other: 3 must be in flight together
        state["now"] -= 1
        return dx.Prediction(answer=question)

    devset = [dx.Example(question=str(i), answer=str(i)).with_inputs("question") for i in range(9)]
    result = await dx.Evaluate(devset=devset, metric=dx.metrics.exact_match, concurrency=3).acall(program)
    assert result.score == 100.0
    assert state["peak"] == 3


async def test_live_results_reach_extra_sinks() -> None:
    out = dx.sinks.collect()
    with dx.context(lm=scripted()):
        await dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, sinks=[out]).acall(
            dx.Predict("question -> answer"))
    records = sorted(out.items, key=lambda r: r["index"])
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert records[1]["score"] is False
    assert records[1]["prediction"] == {"answer": "purple"}


async def test_resume_with_run_id_reads_finished_results_back(tmp_path: Path) -> None:
    store, journal = tmp_path / "store.sqlite", tmp_path / "eval.jsonl"
    evaluate = dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match)
    first = await evaluate.acall(Flaky(), run_id="ev-1", store=str(store), journal=journal)
    program = Flaky()
    again = await evaluate.acall(program, run_id="ev-1", store=str(store), journal=journal)
    assert program.calls == 0  # every example was done: nothing runs again
    assert again.score == first.score == 50.0
    assert [(p.toDict(), s) for _, p, s in again.results] == [(p.toDict(), s) for _, p, s in first.results]
    assert again.errors == {2: "RuntimeError: model exploded"}


async def test_a_killed_evaluation_resumes_with_only_the_missing_examples(tmp_path: Path) -> None:
    store, journal = str(tmp_path / "store.sqlite"), tmp_path / "eval.jsonl"
    evaluate = dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, concurrency=4)

    async def stuck(question: str) -> dx.Prediction:
        if question == "coal":
            await anyio.sleep_forever()  # killed before it answers
        return dx.Prediction(answer={"sky": "blue", "grass": "green", "snow": "snow"}[question])

    async def first_run(scope: anyio.CancelScope) -> None:
        with scope:
            await evaluate.acall(stuck, run_id="ev-2", store=store, journal=journal, checkpoint_every=1)

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(first_run, scope)
        # three results committed
        await wait_until(lambda: journal.exists() and len(journal.read_text().splitlines()) >= 3, limit_s=20)
        scope.cancel()
    program = Flaky(bad="none")
    result = await evaluate.acall(program, run_id="ev-2", store=store, journal=journal)
    assert program.calls == 1  # only "coal" runs again
    assert [s for _, _, s in result.results] == [True, True, False, False]
    assert [p.answer for _, p, _ in result.results] == ["blue", "green", "snow", "grey"]


async def test_results_saved_as_json_and_csv_like_dspy(tmp_path: Path) -> None:
    jpath, cpath = tmp_path / "r.json", tmp_path / "r.csv"
    with dx.context(lm=scripted()):
        await dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, save_as_json=jpath,
                          save_as_csv=cpath).acall(dx.Predict("question -> answer"))
    rows = json.loads(jpath.read_text())
    assert rows[0] == {"question": "sky", "example_answer": "blue", "pred_answer": "Blue",
                       "answer_exact_match": True}
    rows = list(csv.DictReader(cpath.read_text().splitlines()))
    assert [r["pred_answer"] for r in rows] == ["Blue", "purple", "white", "black"]


def test_sync_call_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    with dx.context(lm=scripted()):
        result = dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, display_table=2)(
            dx.Predict("question -> answer"))
    assert result.score == 75.0
    shown = capsys.readouterr().out
    assert "answer_exact_match" in shown
    assert "purple" in shown
    assert "2 more rows not shown" in shown


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"devset": DEV, "concurrency": 0}, ConfigError, "concurrency must be an int >= 1"),
    ({"devset": DEV}, ConfigError, "needs a callable metric"),
    ({"devset": [], "metric": dx.metrics.f1}, InputError, "empty devset"),
    ({"devset": [dx.Example(question="sky", answer="blue")], "metric": dx.metrics.f1}, InputError,
     r"devset example 0 has no input fields marked.*with_inputs"),
])
def test_bad_arguments_are_typed_errors(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        dx.Evaluate(**kwargs)(Flaky())


def _ws_connect(backend: str, url: str) -> Any:
    if backend == "asyncio":
        from websockets.asyncio.client import connect as asyncio_connect

        return asyncio_connect(url)
    from websockets.trio.client import connect as trio_connect

    return trio_connect(url)


async def test_a_websocket_client_watches_results_live(anyio_backend: str) -> None:
    sink = dx.sinks.websocket()
    watching = anyio.Event()
    messages: list[dict[str, Any]] = []

    async def program(question: str) -> dx.Prediction:
        await watching.wait()  # start answering once a client is connected
        return dx.Prediction(answer={"sky": "blue", "grass": "green", "snow": "white", "coal": "black"}[question])

    async def watch() -> None:
        await sink.started.wait()
        async with _ws_connect(anyio_backend, sink.url) as conn:
            await wait_until(lambda: sink.server.sessions, step_s=0.005)
            watching.set()
            messages.extend([json.loads(m) async for m in conn])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            result = await dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, sinks=[sink]).acall(program)
    records = [m for m in messages if m.get("type") == "record"]
    assert result.score == 100.0
    assert len(records) == len(DEV)
    assert sorted(m["data"]["index"] for m in records) == [0, 1, 2, 3]
    assert {m["data"]["prediction"]["answer"] for m in records} == {"blue", "green", "white", "black"}
    assert all(m["data"]["score"] is True and m["data"]["error"] is None for m in records)
    assert any(m.get("type") == "run_done" for m in messages)
