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
from dspex.testing._fake_embeddings import fake_embedding  # noqa: E402 - pure function, no dspex deps

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


def main() -> None:
    fields = dspy.Predict("question -> answer").signature.fields
    golden = {
        "dspy": dspy.__version__,
        "questions": QUESTIONS,
        "prompts": prompt_cases(),
        "gepa_prompt": gepa_case(),
        "knn": knn_cases(),
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
