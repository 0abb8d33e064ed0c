"""Saved state: DSPy-format JSON, dx.load, load_dspy_state, secrets never written."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Literal

import pydantic
import pytest

import dspex as dx
from dspex.errors import ConfigError
from dspex.testing import ScriptedLM

FIXTURES = Path(__file__).with_name("fixtures")


class Source(pydantic.BaseModel):
    title: str
    published: datetime.date


class Pipeline(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dx.Predict("question -> answer")
        self.refine = dx.ChainOfThought("question, context -> answer")

    async def aforward(self, question: str) -> dx.Prediction:
        draft = await self.draft.acall(question=question)
        return await self.refine.acall(question=question, context=draft.answer)


def test_state_round_trip_keeps_demos_instructions_and_descriptions(tmp_path: Path) -> None:
    prog = Pipeline()
    prog.draft.signature = prog.draft.signature.with_instructions("Answer in one word.")
    prog.refine.predict.signature = prog.refine.predict.signature.with_updated_fields("answer", desc="checked")
    when = datetime.datetime(2024, 5, 17, 12, 30)
    prog.draft.demos = [dx.Example(question="When?", answer=when, source=Source(title="T", published=when.date()))]
    path = tmp_path / "prog.json"
    prog.save(path)
    saved = json.loads(path.read_text())
    assert set(saved) == {"draft", "refine.predict", "metadata"}
    assert saved["draft"]["demos"] == [
        {"question": "When?", "answer": "2024-05-17T12:30:00", "source": {"title": "T", "published": "2024-05-17"}}
    ]
    assert saved["draft"]["signature"]["instructions"] == "Answer in one word."
    assert saved["refine.predict"]["signature"]["fields"][-1] == {"prefix": "Answer:", "description": "checked"}
    assert saved["metadata"]["dependency_versions"] == {"python": saved["metadata"]["dependency_versions"]["python"]}

    fresh = Pipeline().load(path)
    assert fresh.draft.signature.instructions == "Answer in one word."
    assert fresh.refine.predict.signature.output_fields["answer"].json_schema_extra["desc"] == "checked"
    assert fresh.draft.demos[0].toDict() == saved["draft"]["demos"][0]
    assert fresh.dump_state() == {k: v for k, v in saved.items() if k != "metadata"}


def test_load_is_all_or_nothing_and_names_missing_predictors(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    single = dx.Predict("question -> answer")
    single.demos = [dx.Example(question="a", answer="b")]
    single.save(path)
    prog = Pipeline()
    with pytest.raises(ConfigError, match="draft"):
        prog.load(path)
    assert prog.draft.demos == []
    with pytest.raises(ConfigError, match="field"):
        dx.Predict("question, context -> answer").load(path)
    with pytest.raises(ConfigError, match=r"\.json"):
        single.save(tmp_path / "x.txt")
    with pytest.raises(ConfigError, match="no saved program"):
        single.load(tmp_path / "missing.json")


def test_dx_load_rebuilds_predict_and_chain_of_thought(tmp_path: Path) -> None:
    class QA(dx.Signature):
        """Answer with a short fact."""

        question: str = dx.InputField()
        options: list[str] = dx.InputField(desc="choices")
        answer: Literal["a", "b"] = dx.OutputField(desc="one option")
        confidence: float | None = dx.OutputField()

    for module in (dx.Predict(QA, temperature=0.2), dx.ChainOfThought(QA, max_tokens=100)):
        predict = module.predictors()[0]
        predict.demos = [dx.Example(question="q", options=["a", "b"], answer="a", confidence=0.5)]
        path = tmp_path / f"{type(module).__name__}.json"
        module.save(path)
        loaded = dx.load(path)
        assert type(loaded) is type(module)
        got = loaded.predictors()[0]
        assert got.signature.equals(predict.signature)
        assert got.config == predict.config
        assert got.demos == predict.demos
        lm = ScriptedLM([{"reasoning": "r", "answer": "b", "confidence": 0.9}])
        assert loaded(question="q", options=["a", "b"], lm=lm).answer == "b"


def test_dx_load_refuses_custom_modules_clearly(tmp_path: Path) -> None:
    path = tmp_path / "custom.json"
    Pipeline().save(path)
    assert json.loads(path.read_text())["metadata"]["program"]["class"].endswith("Pipeline")
    with pytest.raises(ConfigError, match=r"module\.load"):
        dx.load(path)


def test_dx_load_custom_types_need_types_argument(tmp_path: Path) -> None:
    sig = dx.Signature("question -> source: Source", types={"Source": Source})
    path = tmp_path / "typed.json"
    dx.Predict(sig).save(path)
    with pytest.raises(ConfigError, match="types="):
        dx.load(path)
    loaded = dx.load(path, types={"Source": Source})
    assert loaded.signature.output_fields["source"].annotation is Source


def test_secrets_are_never_written(tmp_path: Path) -> None:
    lm = dx.lm.LM("openai/gpt-4o-mini", api_key="sk-very-secret", temperature=0.3)
    predict = dx.Predict("question -> answer", api_key="sk-config-secret")
    predict.lm = lm
    path = tmp_path / "p.json"
    predict.save(path)
    text = path.read_text()
    assert "sk-very-secret" not in text
    assert "sk-config-secret" not in text
    state = json.loads(text)
    assert state["lm"]["model"] == "openai/gpt-4o-mini"
    assert state["lm"]["temperature"] == 0.3
    loaded = dx.load(path)
    assert loaded.lm.model == "openai/gpt-4o-mini"
    assert loaded.lm.kwargs["temperature"] == 0.3
    assert dx.load(path, load_lm=False).lm is None


def test_scripted_lm_is_saved_as_null(tmp_path: Path) -> None:
    predict = dx.Predict("question -> answer")
    predict.lm = ScriptedLM([])
    path = tmp_path / "s.json"
    predict.save(path)
    assert json.loads(path.read_text())["lm"] is None


def test_load_dspy_state_imports_demos_and_instructions() -> None:
    prog = Pipeline()
    dx.load_dspy_state(prog, FIXTURES / "dspy_program.json")
    assert prog.draft.signature.instructions == "Answer in one word."
    assert [d.toDict() for d in prog.draft.demos] == [
        {"question": "Capital of France?", "answer": "Paris"},
        {"question": "Capital of Spain?", "answer": "Madrid", "augmented": True},
    ]
    refine = prog.refine.predict
    assert refine.signature.output_fields["answer"].json_schema_extra["desc"] == "a short, checked answer"
    assert refine.demos[0].context == {"title": "Dune", "published": "1965-08-01"}
    assert prog.draft.lm is None
    lm = ScriptedLM([{"answer": "Berlin"}, {"reasoning": "ok", "answer": "Berlin"}])
    assert prog(question="Capital of Germany?", lm=lm).answer == "Berlin"
    assert "Answer in one word." in lm.history[0]["messages"][0]["content"]
    assert "Capital of France?" in lm.history[0]["messages"][1]["content"]


def test_load_dspy_state_accepts_a_dict_and_checks_structure() -> None:
    state = json.loads((FIXTURES / "dspy_program.json").read_text())
    only = dx.Predict("question -> answer")
    with pytest.raises(ConfigError, match="self"):
        dx.load_dspy_state(only, state)
    dx.load_dspy_state(only, state["draft"])  # a DSPy Predict saves its state flat
    assert only.signature.instructions == "Answer in one word."

    class Partial(dx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.draft = dx.Predict("question -> answer")
            self.extra = dx.Predict("question -> answer")

    partial = dx.load_dspy_state(Partial(), state, strict=False)
    assert len(partial.draft.demos) == 2
    assert partial.extra.demos == []
