"""Generate the golden file of the search optimizers from DSPy 3.4.1 (offline; never collected).

Run with a DSPy venv::

    .venv-dspy/bin/python tests/optimizers/golden/make_golden_search.py

It writes ``dspy_search_golden.json``: the chat messages DSPy sends for every
proposer signature of COPRO and MIPROv2 (so dspex's prompts are byte-identical),
``strip_prefix`` and the proposer's example/dataset strings, and the
neighbours DSPy's ``KNN`` picks with dspex's fake embeddings (a pure function
of the text, imported from the dspex source tree).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dspy
import numpy as np
from dspy.predict.knn import KNN
from dspy.propose import dataset_summary_generator as ds
from dspy.propose import grounded_proposer as gp
from dspy.propose.utils import create_example_string, strip_prefix
from dspy.teleprompt import copro_optimizer as copro
from dspy.teleprompt.gepa import instruction_proposal as gepa_proposal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "src"))
from dspex.testing._fake_embeddings import fake_embedding

QUESTIONS = ["mirror lantern", "double harbor", "shift pepper", "rotate violin", "mirror marble",
             "sort canyon", "devowel falcon", "double meadow", "shift silver", "mirror thunder",
             "rotate garden", "sort rocket"]
QUERIES = ["mirror candle", "double wizard", "sort lantern", "shift harbor copper"]

INPUTS: dict[str, dict[str, Any]] = {
    "BasicGenerateInstruction": {"basic_instruction": "Given the fields `question`, produce the fields `answer`."},
    "GenerateInstructionGivenAttempts": {"attempted_instructions": ["Instruction #1: a", "Prefix #1: Answer:",
                                                                    "Resulting Score #1: 50.0"]},
    "DatasetDescriptor": {"examples": "[Example({'question': 'a'}) (input_keys={'question'})]"},
    "DatasetDescriptorWithPriorObservations": {"examples": "[]", "prior_observations": "They are short."},
    "ObservationSummarizer": {"observations": "They are short."},
    "DescribeProgram": {"program_code": "\n\n", "program_example": "No task demos provided."},
    "DescribeModule": {"program_code": "\n\n", "program_example": "No task demos provided.",
                       "program_description": "It answers.", "module": "Predict(question) -> answer"},
}
PROPOSAL_INPUTS = {"dataset_description": "Words.", "program_code": "\n\n", "program_description": "It answers.",
                   "module": "Predict(question) -> answer", "module_description": "Answers.",
                   "task_demos": "Question: mirror abc\nAnswer: cba\n\n", "basic_instruction": "Do it.",
                   "tip": "Keep the instruction clear and concise."}


def messages(signature: Any, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    return dspy.ChatAdapter().format(signature, demos=[], inputs=inputs)


def prompt_cases() -> list[dict[str, Any]]:
    signatures = {"BasicGenerateInstruction": copro.BasicGenerateInstruction,
                  "GenerateInstructionGivenAttempts": copro.GenerateInstructionGivenAttempts,
                  "DatasetDescriptor": ds.DatasetDescriptor,
                  "DatasetDescriptorWithPriorObservations": ds.DatasetDescriptorWithPriorObservations,
                  "ObservationSummarizer": ds.ObservationSummarizer,
                  "DescribeProgram": gp.DescribeProgram, "DescribeModule": gp.DescribeModule}
    out = [{"name": name, "inputs": INPUTS[name], "messages": messages(sig, INPUTS[name])}
           for name, sig in signatures.items()]
    for summary in (True, False):
        for aware in (True, False):
            for tip in (True, False):
                sig = gp.generate_instruction_class(use_dataset_summary=summary, program_aware=aware,
                                                    use_task_demos=True, use_instruct_history=False,
                                                    use_tip=tip).signature
                inputs = {k: v for k, v in PROPOSAL_INPUTS.items() if k in sig.input_fields}
                out.append({"name": "GenerateSingleModuleInstruction", "flags": [summary, aware, tip],
                            "inputs": inputs, "messages": messages(sig, inputs)})
    return out


GEPA_INPUTS = {"current_instruction": "Given the fields `question`, produce the fields `answer`.",
               "examples_with_feedback": [{"Inputs": {"question": "mirror abc"}, "Generated Outputs": {"answer": "abc"},
                                           "Feedback": "Wrong: the right answer is cba."}]}


def gepa_case() -> dict[str, Any]:
    return {"inputs": GEPA_INPUTS,
            "messages": dspy.JSONAdapter().format(gepa_proposal.ProposeInstruction, demos=[], inputs=GEPA_INPUTS)}


def knn_cases() -> list[dict[str, Any]]:
    train = [dspy.Example(question=q, answer="x").with_inputs("question") for q in QUESTIONS]
    embed = dspy.Embedder(lambda texts: np.array([fake_embedding(t) for t in texts]))
    out = []
    for k in (1, 3, 5):
        knn = KNN(k, train, embed)
        out.append({"k": k, "neighbours": {q: [e.question for e in knn(question=q)] for q in QUERIES}})
    return out


DSPEX_PYTHON = HERE.parents[2] / ".venv" / "bin" / "python"
MIPRO = {"init": {"auto": None, "num_candidates": 4, "max_bootstrapped_demos": 2, "max_labeled_demos": 2, "seed": 9},
         "compile": {"num_trials": 5, "minibatch_size": 6, "minibatch_full_eval_steps": 2,
                     "program_aware_proposer": False, "data_aware_proposer": False}}


def student_data() -> dict[str, list[list[str]]]:
    code = ("import json; from dspex.testing import StudentTask; t = StudentTask(); "
            "print(json.dumps({k: [[e.question, e.answer] for e in t.examples(n, seed=s)] "
            "for k, n, s in (('train', 16, 1), ('val', 12, 2))}))")
    return json.loads(subprocess.run([str(DSPEX_PYTHON), "-c", code], check=True, capture_output=True,
                                     text=True).stdout)


class StudentServer:
    """dspex's fake student server in a dspex subprocess (``with StudentServer() as url``)."""

    def __enter__(self) -> str:
        self.proc = subprocess.Popen([str(DSPEX_PYTHON), str(HERE.parents[2] / "benchmarks" / "fake_server.py"),
                                      "--port", "0", "--student", "all"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self.proc.stdout.readline().strip()  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=10)


def mipro_case() -> dict[str, Any]:
    """Run DSPy's MIPROv2 against dspex's fake student server (a dspex subprocess); record every choice."""
    from dspy.evaluate.metrics import answer_exact_match

    data = student_data()
    with StudentServer() as url:
        lm = dspy.LM("openai/student", api_base=url + "/v1", api_key="sk-golden", cache=False)
        dspy.configure(lm=lm)
        seen: dict[str, Any] = {}
        cls = dspy.MIPROv2
        boot, propose = cls._bootstrap_fewshot_examples, cls._propose_instructions
        cls._bootstrap_fewshot_examples = lambda self, *a, **k: seen.setdefault("demos", boot(self, *a, **k))
        cls._propose_instructions = lambda self, *a, **k: seen.setdefault("instructions", propose(self, *a, **k))
        examples = {k: [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in v]
                    for k, v in data.items()}
        best = cls(metric=answer_exact_match, num_threads=8, **MIPRO["init"]).compile(
            dspy.Predict("question -> answer"), trainset=examples["train"], valset=examples["val"], **MIPRO["compile"])
    keep = ("0_predictor_instruction", "0_predictor_demos", "mb_score", "full_eval_score", "total_eval_calls_so_far")
    return {"settings": MIPRO, "data": data,
            "demo_sets": [[d["question"] for d in demos] for demos in seen["demos"][0]],
            "instructions": seen["instructions"][0],
            "trial_logs": {str(k): {f: v[f] for f in keep if f in v} for k, v in best.trial_logs.items()},
            "score": best.score, "instruction": best.signature.instructions,
            "demos": [d["question"] for d in best.demos]}


GEPA_SETTINGS = {"max_metric_calls": 60, "reflection_minibatch_size": 3, "seed": 0}


def gepa_feedback_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
                         pred_trace: Any = None) -> Any:
    ok = gold.answer == pred.answer
    return dspy.Prediction(score=float(ok), feedback="Correct." if ok else
                           f"Wrong: the right answer to '{gold.question}' is {gold.answer}.")


def gepa_run_case() -> dict[str, Any]:
    """Run DSPy's GEPA against the fake student; record the candidates, their parents and scores."""
    data = student_data()
    examples = {k: [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in v]
                for k, v in data.items()}
    with StudentServer() as url:
        lm = dspy.LM("openai/student", api_base=url + "/v1", api_key="sk-golden", cache=False)
        dspy.configure(lm=lm)
        best = dspy.GEPA(metric=gepa_feedback_metric, reflection_lm=lm, track_stats=True, num_threads=4,
                         **GEPA_SETTINGS).compile(dspy.Predict("question -> answer"), trainset=examples["train"],
                                                  valset=examples["val"][:10])
    details = best.detailed_results
    return {"settings": GEPA_SETTINGS, "data": data,
            "candidates": [c.signature.instructions for c in details.candidates], "parents": details.parents,
            "val_aggregate_scores": details.val_aggregate_scores, "total_metric_calls": details.total_metric_calls,
            "instruction": best.signature.instructions}


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no model-metadata download
    fields = dspy.Predict("question -> answer").signature.fields
    golden = {
        "dspy": dspy.__version__,
        "questions": QUESTIONS,
        "prompts": prompt_cases(),
        "gepa_prompt": gepa_case(),
        "knn": knn_cases(),
        "mipro": mipro_case(),
        "gepa_run": gepa_run_case(),
        "strip_prefix": {t: strip_prefix(t) for t in ["Proposed Instruction: Do X.", '"Quoted"', "No prefix here",
                                                        "**New instruction:** Be brief.", "a b c d e f: g"]},
        "example_string": create_example_string(fields, dspy.Example(question="mirror abc", answer="cba",
                                                                     augmented=True)),
        "dataset_repr": ds.order_input_keys_in_string(repr(
            [dspy.Example(question=q, answer="x", hint="h").with_inputs("question", "hint") for q in QUESTIONS[:2]])),
    }
    (HERE / "dspy_search_golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
