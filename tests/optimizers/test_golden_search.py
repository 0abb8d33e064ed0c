"""COPRO/MIPROv2 prompts and KNN choices equal DSPy 3.4.1's (``golden/dspy_search_golden.json``).

The golden file was written by ``golden/make_golden_search.py`` with DSPy's
own signatures, ChatAdapter, ``strip_prefix`` and ``KNN`` (numpy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dspex as dx
from dspex.optimizers import _copro, _proposer
from dspex.optimizers._gepa_adapter import ProposeInstruction
from dspex.optimizers._knn import KNN
from dspex.testing import FakeLLMServer, StudentTask
from dspex.testing._fake_embeddings import fake_embedding

GOLDEN = json.loads((Path(__file__).parent / "golden" / "dspy_search_golden.json").read_text())
SIGNATURES = {"BasicGenerateInstruction": _copro.BasicGenerateInstruction,
              "GenerateInstructionGivenAttempts": _copro.GenerateInstructionGivenAttempts,
              "DatasetDescriptor": _proposer.DatasetDescriptor,
              "DatasetDescriptorWithPriorObservations": _proposer.DatasetDescriptorWithPriorObservations,
              "ObservationSummarizer": _proposer.ObservationSummarizer,
              "DescribeProgram": _proposer.DescribeProgram, "DescribeModule": _proposer.DescribeModule}


def case_id(case: dict[str, Any]) -> str:
    return str(case["name"]) + "".join(f"-{int(f)}" for f in case.get("flags", []))


@pytest.mark.parametrize("case", GOLDEN["prompts"], ids=case_id)
def test_proposer_prompts_are_dspy_prompts(case: dict[str, Any]) -> None:
    if "flags" in case:
        signature = _proposer.instruction_signature(*case["flags"])
    else:
        signature = SIGNATURES[case["name"]]
    assert dx.ChatAdapter().format(signature, [], case["inputs"]) == case["messages"]


def test_strip_prefix_and_proposer_strings_match_dspy() -> None:
    assert {t: _proposer.strip_prefix(t) for t in GOLDEN["strip_prefix"]} == GOLDEN["strip_prefix"]
    fields = dx.Predict("question -> answer").signature.fields
    example = dx.Example(question="mirror abc", answer="cba", augmented=True)
    assert _proposer.example_string(fields, example) == GOLDEN["example_string"]
    data = [dx.Example(question=q, answer="x", hint="h").with_inputs("question", "hint")
            for q in GOLDEN["questions"][:2]]
    assert _proposer._order_input_keys(repr(data)) == GOLDEN["dataset_repr"]


@pytest.mark.parametrize("case", GOLDEN["knn"], ids=lambda c: f"k{c['k']}")
async def test_knn_picks_dspy_neighbours(case: dict[str, Any]) -> None:
    train = [dx.Example(question=q, answer="x").with_inputs("question") for q in GOLDEN["questions"]]
    knn = KNN(case["k"], train, dx.Embedder(lambda texts: [fake_embedding(t) for t in texts]))
    found = {q: [e.question for e in await knn.aneighbors(question=q)] for q in case["neighbours"]}
    assert found == case["neighbours"]


def test_gepa_proposal_prompt_is_dspy_prompt() -> None:
    case = GOLDEN["gepa_prompt"]
    assert dx.JSONAdapter().format(ProposeInstruction, [], case["inputs"]) == case["messages"]


async def test_mipro_makes_dspy_choices_on_the_student_server() -> None:
    case = GOLDEN["mipro"]
    data = {k: [dx.Example(question=q, answer=a).with_inputs("question") for q, a in v]
            for k, v in case["data"].items()}
    async with FakeLLMServer(student=StudentTask()) as server:
        lm = dx.LM("openai/student", api_base=server.url + "/v1", api_key="sk-golden", cache=False)
        optimizer = dx.MIPROv2(metric=dx.metrics.exact_match, concurrency=8, **case["settings"]["init"])
        with dx.context(lm=lm):
            best = await optimizer.acompile(dx.Predict("question -> answer"), trainset=data["train"],
                                            valset=data["val"], **case["settings"]["compile"])
        await lm.aclose()
    assert optimizer._demos is not None  # a few-shot case: demo sets were searched
    assert [[d.question for d in demos] for demos in optimizer._demos[0]] == case["demo_sets"]
    assert optimizer._instructions[0] == case["instructions"]
    keep = ("0_predictor_instruction", "0_predictor_demos", "mb_score", "full_eval_score", "total_eval_calls_so_far")
    logs = {str(k): {f: v[f] for f in keep if f in v} for k, v in best.trial_logs.items()}
    assert logs == case["trial_logs"]
    assert (best.score, best.signature.instructions, [d.question for d in best.demos]) == \
        (case["score"], case["instruction"], case["demos"])


def golden_feedback_metric(gold: dx.Example, pred: dx.Prediction, trace: Any = None, pred_name: Any = None,
                           pred_trace: Any = None) -> dx.Prediction:
    ok = gold.answer == pred.answer
    return dx.Prediction(score=float(ok), feedback="Correct." if ok else
                         f"Wrong: the right answer to '{gold.question}' is {gold.answer}.")


async def test_gepa_evolves_the_candidates_dspy_does_on_the_student_server() -> None:
    case = GOLDEN["gepa_run"]
    data = {k: [dx.Example(question=q, answer=a).with_inputs("question") for q, a in v]
            for k, v in case["data"].items()}
    async with FakeLLMServer(student=StudentTask()) as server:
        lm = dx.LM("openai/student", api_base=server.url + "/v1", api_key="sk-golden", cache=False)
        optimizer = dx.GEPA(metric=golden_feedback_metric, reflection_lm=lm, track_stats=True, concurrency=4,
                            **case["settings"])
        with dx.context(lm=lm):
            best = await optimizer.acompile(dx.Predict("question -> answer"), trainset=data["train"],
                                            valset=data["val"][:10])
        await lm.aclose()
    details = best.detailed_results
    assert [c.signature.instructions for c in details["candidates"]] == case["candidates"]
    assert details["parents"] == case["parents"]
    assert details["val_aggregate_scores"] == case["val_aggregate_scores"]
    assert details["total_metric_calls"] == case["total_metric_calls"]
    assert best.signature.instructions == case["instruction"]
