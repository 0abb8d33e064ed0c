"""Parallel: DSPy's call shape on one event loop; order, error budget, finished work kept."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import dspex as dx
from dspex.errors import ConfigError, InputError, ParallelFailed
from dspex.testing import ScriptedLM


class _Gauge(dx.Module):
    """Counts how many calls are in flight at once; fails on request."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.peak = 0

    async def aforward(self, x: int, fail: bool = False, delay: float = 0.01) -> dx.Prediction:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await anyio.sleep(delay)
            if fail:
                raise RuntimeError(f"pair {x} failed")
            return dx.Prediction(y=x * 2)
        finally:
            self.now -= 1


async def test_results_in_input_order_with_bounded_concurrency() -> None:
    gauge = _Gauge()
    pairs = [(gauge, {"x": i, "delay": 0.001 * (7 - i % 7)}) for i in range(40)]
    results = await dx.Parallel(num_threads=5).acall(pairs)
    assert [r.y for r in results] == [i * 2 for i in range(40)]
    assert gauge.peak == 5


def test_sync_call_runs_predictors_with_dspy_example_shapes() -> None:
    lm = ScriptedLM({"Paris?": {"answer": "France"}, "Rome?": {"answer": "Italy"}})
    qa = dx.Predict("question -> answer")
    ex = dx.Example(question="Rome?", answer="Italy").with_inputs("question")
    with dx.context(lm=lm):
        results = dx.Parallel(num_threads=2)([(qa, {"question": "Paris?"}), (qa, ex)])
    assert [r.answer for r in results] == ["France", "Italy"]


async def test_plain_callables_sync_async_and_positional_tuples() -> None:
    async def add(a: int, b: int) -> int:
        await anyio.lowlevel.checkpoint()
        return a + b

    def mul(a: int, b: int) -> int:
        return a * b

    inner = dx.Parallel(num_threads=2)
    results = await dx.Parallel(num_threads=3).acall(
        [(add, (1, 2)), (mul, {"a": 3, "b": 4}), (inner, [(add, (5, 5))])]
    )
    assert results == [3, 12, [10]]


async def test_failures_are_none_and_returned_when_asked() -> None:
    gauge = _Gauge()
    pairs = [(gauge, {"x": i, "fail": i in (1, 3)}) for i in range(5)]
    results, failed, errors = await dx.Parallel(num_threads=2, return_failed_examples=True).acall(pairs)
    assert [None if r is None else r.y for r in results] == [0, None, 4, None, 8]
    assert failed == [pairs[1][1], pairs[3][1]]
    assert [str(e) for e in errors] == ["pair 1 failed", "pair 3 failed"]


async def test_max_errors_cancels_the_rest_but_keeps_finished_results() -> None:
    gauge = _Gauge()
    # pairs 0-3 finish fast; 4 and 5 fail; 6.. would run long and are cancelled
    pairs: list[tuple[Any, dict[str, Any]]] = [(gauge, {"x": i, "delay": 0}) for i in range(4)]
    pairs += [(gauge, {"x": 4, "fail": True, "delay": 0.02}), (gauge, {"x": 5, "fail": True, "delay": 0.02})]
    pairs += [(gauge, {"x": i, "delay": 30}) for i in range(6, 10)]
    with anyio.fail_after(10):
        with pytest.raises(ParallelFailed, match=r"stopped after 2 failed pair\(s\) \(max_errors=2\)") as info:
            await dx.Parallel(num_threads=4, max_errors=2).acall(pairs)
    err = info.value
    assert [None if r is None else r.y for r in err.results] == [0, 2, 4, 6] + [None] * 6
    assert err.failed_examples == [pairs[4][1], pairs[5][1]]
    assert gauge.now == 0  # nothing left running


async def test_invalid_example_type_counts_as_a_failure() -> None:
    results, _, errors = await dx.Parallel(return_failed_examples=True).acall([(_Gauge(), 42)])
    assert results == [None]
    assert isinstance(errors[0], InputError)
    assert "invalid example type int" in str(errors[0])


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="num_threads must be an int >= 1"):
        dx.Parallel(num_threads=-1)
    with pytest.raises(ConfigError, match="max_errors must be an int >= 0"):
        dx.Parallel(max_errors=-2)
    with pytest.raises(ConfigError, match="timeout must be > 0 seconds"):
        dx.Parallel(timeout=0)


async def test_module_abatch_and_batch_follow_dspy() -> None:
    lm = ScriptedLM({"one": {"answer": "1"}, "two": {"answer": "2"}})
    qa = dx.Predict("question -> answer")
    examples = [dx.Example(question=q, gold="x").with_inputs("question") for q in ("one", "two")]
    with dx.context(lm=lm):
        assert [p.answer for p in await qa.abatch(examples, num_threads=2)] == ["1", "2"]
        results, failed, errors = await qa.abatch([*examples, {"nope": 1}], return_failed_examples=True)
    assert [r and r.answer for r in results] == ["1", "2", None]
    assert failed == [{"nope": 1}]
    assert "missing required input(s) 'question'" in str(errors[0])


def test_module_batch_sync() -> None:
    lm = ScriptedLM({"one": {"answer": "1"}})
    with dx.context(lm=lm):
        preds = dx.Predict("question -> answer").batch([{"question": "one"}] * 3, num_threads=3)
    assert [p.answer for p in preds] == ["1", "1", "1"]


class _HangsOnce(dx.Module):
    """The first call for ``x == 0`` never returns; every other call answers at once."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.cancelled = 0

    async def aforward(self, x: int) -> dx.Prediction:
        self.calls.append(x)
        if x == 0 and self.calls.count(0) == 1:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.cancelled += 1
                raise
        return dx.Prediction(y=x)


async def test_a_straggler_is_started_again_and_the_first_result_wins() -> None:
    module = _HangsOnce()
    pairs = [(module, {"x": i}) for i in range(3)]
    with anyio.fail_after(10):
        results = await dx.Parallel(num_threads=3, timeout=0.05, straggler_limit=3).acall(pairs)
    assert [r.y for r in results] == [0, 1, 2]
    assert sorted(module.calls) == [0, 0, 1, 2]
    assert module.cancelled == 1


async def test_stragglers_wait_when_resubmission_is_off() -> None:
    module = _HangsOnce()
    with anyio.move_on_after(0.3) as scope:
        await dx.Parallel(num_threads=2, timeout=0.05, straggler_limit=0).acall([(module, {"x": 0})])
    assert scope.cancelled_caught
    assert module.calls == [0]
