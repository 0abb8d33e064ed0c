"""The GEPA adapter: runs dspex programs for the ``gepa`` engine (DSPy 3.4.1's ``DspyAdapter``).

The ``gepa`` package drives the search (Pareto frontier over validation
examples, reflective mutation of one component at a time, merges) and calls
this adapter synchronously from a worker thread. Each call hops back to the
event loop (``anyio.from_thread.run``) where the batch runs through the flow
engine with ``concurrency`` calls in flight, then returns the results. A
candidate is a mapping predictor name → instruction; the reflective dataset
and the proposal prompt (``ProposeInstruction`` through a JSON adapter) are
DSPy's.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import anyio.from_thread

from .._context import context
from ..adapters import JSONAdapter
from ..evaluate._batch import run_batch
from ..evaluate._evaluate import call_program, split_score
from ..modules import Module, Predict
from ..signatures import InputField, OutputField, Signature

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["DspexGEPAAdapter", "ProposeInstruction"]


class ProposeInstruction(Signature):
    """I provided an assistant with instructions to perform a task for me. You are given those instructions, along with examples of different task inputs provided to the assistant, the assistant's response for each of them, and some feedback on how the assistant's response could be better.

    Your task is to write a new instruction for the assistant.

    Read the inputs carefully and identify the input format and infer detailed task description about the task I wish to solve with the assistant.

    Read all the assistant responses and the corresponding feedback. Identify all niche and domain specific factual information about the task and include it in the instruction, as a lot of it may not be available to the assistant in the future. The assistant may have utilized a generalizable strategy to solve the task, if so, include that in the instruction as well."""

    current_instruction: str = InputField(desc="The instructions I provided to the assistant.")
    examples_with_feedback: list[dict[str, Any]] = InputField(
        desc="Task inputs provided to the assistant, the assistant's response for each, "
        "and feedback on how the response could be better.")
    new_instruction: str = OutputField(desc="The new instruction for the assistant.")


async def call_feedback_metric(metric: Callable[..., Any], example: Any, pred: Any, trace: Any,
                               pred_name: str | None = None, pred_trace: Any = None) -> Any:
    """Call a GEPA metric ``(gold, pred, trace, pred_name, pred_trace)``, sync or async."""
    result = metric(example, pred, trace, pred_name, pred_trace)
    return await result if inspect.isawaitable(result) else result


class DspexGEPAAdapter:
    """``gepa.GEPAAdapter`` over a dspex program (see the module doc).

    Args:
        student: The program whose predictors' instructions evolve.
        metric: ``metric(gold, pred, trace, pred_name, pred_trace)``.
        task_lm, reflection_lm: LMs for the program and for proposals (None: the context's).
        failure_score: Score of an example whose program or metric raised.
        concurrency: Most calls in flight per batch.
        rng: Picks a trace step when a predictor ran several times (DSPy's choice).
        instruction_proposer: A custom ``ProposalFn`` (sync), or None for DSPy's default.
        add_format_failure_as_feedback: Accepted for DSPy parity; failed parses
            are not kept as traces in dspex, so it changes nothing.
    """

    def __init__(self, student: Module, metric: Callable[..., Any], *, task_lm: Any, reflection_lm: Any,
                 failure_score: float, concurrency: int, rng: random.Random,
                 instruction_proposer: Callable[..., Any] | None = None,
                 add_format_failure_as_feedback: bool = False) -> None:
        self.student = student
        self.metric = metric
        self.task_lm = task_lm
        self.reflection_lm = reflection_lm
        self.failure_score = failure_score
        self.concurrency = concurrency
        self.rng = rng
        self.custom_proposer = instruction_proposer
        self.add_format_failure_as_feedback = add_format_failure_as_feedback
        self.propose_new_texts = self._propose if instruction_proposer is None else self._custom_propose

    def build_program(self, candidate: Mapping[str, str]) -> Module:
        """Return a copy of the student with the candidate's instructions."""
        program: Module = self.student.deepcopy()
        for name, predictor in program.named_predictors():
            if name in candidate:
                predictor.signature = predictor.signature.with_instructions(candidate[name])
        return program

    # -- called by the gepa engine (worker thread) ------------------------------------

    def get_adapter_state(self) -> dict[str, Any]:
        """Return the RNG state, saved with a ``log_dir`` run so a resumed run picks the same steps."""
        return {"rng_state": self.rng.getstate()}

    def set_adapter_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_adapter_state` returned (on resume)."""
        if "rng_state" in state:
            self.rng.setstate(state["rng_state"])

    def evaluate(self, batch: list[Any], candidate: dict[str, str], capture_traces: bool = False) -> Any:
        """Run the candidate on ``batch``; return a ``gepa.EvaluationBatch``."""
        return anyio.from_thread.run(self._aevaluate, batch, candidate, capture_traces)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: Any,
                                components_to_update: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Return, per component, DSPy's ``{"Inputs", "Generated Outputs", "Feedback"}`` records."""
        return anyio.from_thread.run(self._areflective, candidate, eval_batch, components_to_update)

    def _propose(self, candidate: dict[str, str], reflective_dataset: Mapping[str, Sequence[Mapping[str, Any]]],
                 components_to_update: list[str]) -> dict[str, str]:
        return anyio.from_thread.run(self._apropose, candidate, reflective_dataset, components_to_update)

    def _custom_propose(self, candidate: dict[str, str], reflective_dataset: Any,
                        components_to_update: list[str]) -> dict[str, str]:
        assert self.custom_proposer is not None
        return dict(self.custom_proposer(candidate=candidate, reflective_dataset=reflective_dataset,
                                          components_to_update=components_to_update))

    # -- the async work (event loop) ---------------------------------------------------

    async def _aevaluate(self, batch: list[Any], candidate: dict[str, str], capture: bool) -> Any:
        # the optional extra, present whenever the engine calls us
        from gepa.core.adapter import EvaluationBatch

        program = self.build_program(candidate)
        outputs: list[Any] = [None] * len(batch)
        scores = [self.failure_score] * len(batch)
        trajectories: list[dict[str, Any]] = [{} for _ in batch]

        async def one(index: int, example: Any) -> dict[str, Any]:
            trace: list[Any] = []
            try:
                with context(trace=trace, **({"lm": self.task_lm} if self.task_lm is not None else {})):
                    pred = await call_program(program, example)
                score = split_score(await call_feedback_metric(self.metric, example, pred, trace))[0]
                outputs[index], scores[index] = pred, float(score)
            except Exception:
                pred = None
            trajectories[index] = {"example": example, "prediction": pred, "trace": trace, "score": scores[index]}
            return {}

        await run_batch(one, batch, concurrency=self.concurrency, name="gepa-eval")
        return EvaluationBatch(outputs=outputs, scores=scores, trajectories=trajectories if capture else None)

    async def _areflective(self, candidate: dict[str, str], eval_batch: Any,
                           components: list[str]) -> dict[str, list[dict[str, Any]]]:
        program = self.build_program(candidate)
        found: dict[str, list[dict[str, Any]]] = {}
        for name, predictor in program.named_predictors():
            if name not in components:
                continue
            items = []
            for data in eval_batch.trajectories or []:
                steps = [t for t in data.get("trace", []) if t[0].signature.equals(predictor.signature)]
                if not steps or data.get("prediction") is None:
                    continue
                step = self.rng.choice(steps)
                fb = await call_feedback_metric(self.metric, data["example"], data["prediction"], data["trace"],
                                                name, [step])
                score, feedback = split_score(fb)
                items.append({"Inputs": dict(step[1]), "Generated Outputs": dict(step[2].items()),
                              "Feedback": feedback if feedback is not None else
                              f"This trajectory got a score of {score}."})
            if items:
                found[name] = items
        if not found:
            raise RuntimeError("No valid predictions found for any module.")  # gepa skips this proposal
        return found

    async def _apropose(self, candidate: dict[str, str], reflective_dataset: Mapping[str, Sequence[Any]],
                        components: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        settings = {"lm": self.reflection_lm} if self.reflection_lm is not None else {}
        for name in components:
            if name not in candidate or name not in reflective_dataset:
                continue
            with context(adapter=JSONAdapter(), **settings):
                pred = await Predict(ProposeInstruction).acall(
                    current_instruction=candidate[name],
                    examples_with_feedback=[dict(e) for e in reflective_dataset[name]])
            draft = str(pred.new_instruction).strip()
            if not draft:
                raise ValueError(f"The reflection LM returned an empty instruction for component {name!r}.")
            out[name] = draft
        return out
