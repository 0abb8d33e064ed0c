"""Module composition: aforward/forward, usage, introspection, copies; ChainOfThought."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import dspex as dx
from dspex.errors import ConfigError, InputError
from dspex.testing import ScriptedLM


class Pipeline(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dx.Predict("question -> answer")
        self.check = dx.ChainOfThought("question, answer -> verdict: bool")

    async def aforward(self, question: str) -> dx.Prediction:
        draft = await self.draft.acall(question=question)
        return await self.check.acall(question=question, answer=draft.answer)


class SyncPipeline(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dx.Predict("question -> answer")
        self.check = dx.ChainOfThought("question, answer -> verdict: bool")

    def forward(self, question: str) -> dx.Prediction:
        draft = self.draft(question=question)
        return self.check(question=question, answer=draft.answer)


def _script() -> ScriptedLM:
    return ScriptedLM([{"answer": "4"}, {"reasoning": "2+2=4", "verdict": True}])


async def test_async_composition_sums_usage() -> None:
    lm = _script()
    pred = await Pipeline().acall(question="2+2?", lm=lm)
    assert pred.verdict is True
    assert pred.usage.input_tokens == sum(h["usage"].input_tokens for h in lm.history)
    assert pred.usage.output_tokens == sum(h["usage"].output_tokens for h in lm.history)


def test_sync_composition_from_sync_code() -> None:
    lm = _script()
    pred = SyncPipeline()(question="2+2?", lm=lm)
    assert pred.verdict is True
    assert lm.calls == 2
    assert pred.usage.output_tokens == sum(h["usage"].output_tokens for h in lm.history)


async def test_sync_forward_runs_off_loop_under_acall() -> None:
    lm = _script()
    with dx.context(lm=lm):
        pred = await SyncPipeline().acall(question="2+2?")
    assert pred.verdict is True
    assert pred.usage.output_tokens == sum(h["usage"].output_tokens for h in lm.history)


async def test_async_module_called_synchronously_inside_a_loop() -> None:
    pred = Pipeline()(question="2+2?", lm=_script())
    assert pred.verdict is True


async def test_concurrent_modules_keep_their_own_context() -> None:
    results: dict[str, bool] = {}

    async def run(name: str, verdict: bool) -> None:
        lm = ScriptedLM([{"answer": name}, {"reasoning": "r", "verdict": verdict}])
        with dx.context(lm=lm):
            await anyio.lowlevel.checkpoint()
            results[name] = (await SyncPipeline().acall(question=name)).verdict

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "a", True)
        tg.start_soon(run, "b", False)
    assert results == {"a": True, "b": False}


async def test_module_without_forward_and_positional_args() -> None:
    class Empty(dx.Module):
        pass

    with pytest.raises(NotImplementedError, match="forward"):
        await Empty().acall(x=1)
    with pytest.raises(InputError, match="keyword"):
        Pipeline()("2+2?")


def test_named_predictors_walks_attributes_lists_and_dicts() -> None:
    class Tree(dx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = dx.Predict("a -> b")
            self.steps = [dx.Predict("a -> b"), dx.ChainOfThought("a -> b")]
            self.by_name = {"x": dx.Predict("a -> b")}
            self.inner = Pipeline()
            self.alias = self.first
            frozen = Pipeline()
            frozen._compiled = True
            self.frozen = frozen

        async def aforward(self, a: str) -> dx.Prediction:
            return await self.first.acall(a=a)

    tree = Tree()
    names = [n for n, _ in tree.named_predictors()]
    assert names == ["first", "steps[0]", "steps[1].predict", "by_name['x']", "inner.draft", "inner.check.predict"]
    assert len(tree.predictors()) == 6
    assert tree.named_parameters() == tree.named_predictors()
    subs = [n for n, _ in tree.named_sub_modules()]
    assert subs[0] == "self"
    assert "self.inner.check" in subs
    assert "self.steps[1]" in subs
    assert "self.frozen.draft" not in [n for n, _ in tree.named_sub_modules(skip_compiled=True)]


def test_set_get_lm_and_map_named_predictors() -> None:
    prog = Pipeline()
    lm = ScriptedLM([])
    prog.set_lm(lm)
    assert prog.get_lm() is lm
    prog.draft.lm = ScriptedLM([])
    with pytest.raises(ConfigError, match="different LMs"):
        prog.get_lm()
    prog.map_named_predictors(lambda p: dx.Predict(p.signature, temperature=0.5))
    assert prog.draft.config == {"temperature": 0.5}
    assert prog.check.predict.lm is None


def test_deepcopy_shares_lms_and_reset_copy_clears() -> None:
    prog = Pipeline()
    lm = ScriptedLM([])
    prog.set_lm(lm)
    prog.draft.demos = [dx.Example(question="q", answer="a")]
    clone = prog.deepcopy()
    assert clone.draft is not prog.draft
    assert clone.draft.lm is lm
    assert clone.draft.demos == prog.draft.demos
    clone.draft.demos.append(dx.Example(question="x", answer="y"))
    assert len(prog.draft.demos) == 1
    fresh = prog.reset_copy()
    assert all(p.lm is None and p.demos == [] for p in fresh.predictors())
    assert prog.draft.demos
    assert prog.draft.lm is lm
    prog.reset()
    assert all(p.lm is None and p.demos == [] for p in prog.predictors())


def test_chain_of_thought_fields_and_answer() -> None:
    cot = dx.ChainOfThought("question -> answer")
    assert list(cot.predict.signature.output_fields) == ["reasoning", "answer"]
    assert cot.predict.signature.output_fields["reasoning"].json_schema_extra["desc"] == "${reasoning}"
    lm = ScriptedLM([{"reasoning": "Step 1. 1+1 is 2.\nStep 2. Done.", "answer": "2"}])
    pred = cot(question="What is 1+1?", lm=lm)
    assert pred.answer == "2"
    assert isinstance(pred.reasoning, dx.Reasoning)
    assert pred.reasoning.steps == ["1+1 is 2.", "Done."]
    assert [n for n, _ in cot.named_predictors()] == ["predict"]


async def test_chain_of_thought_async_and_reasoning_type() -> None:
    cot = dx.ChainOfThought("question -> answer", rationale_field_type=dx.Reasoning, temperature=0.3)
    assert cot.predict.signature.output_fields["reasoning"].annotation is dx.Reasoning
    assert cot.predict.config == {"temperature": 0.3}
    pred = await cot.acall(question="1+1?", lm=ScriptedLM([{"reasoning": "It is 2.", "answer": "2"}]))
    assert pred.answer == "2"
    assert pred.reasoning.steps == ["It is 2."]


def test_chain_of_thought_custom_rationale_field() -> None:
    cot = dx.ChainOfThought("question -> answer", rationale_field=dx.OutputField(desc="think first"))
    field = cot.predict.signature.output_fields["reasoning"]
    assert field.json_schema_extra["desc"] == "think first"
