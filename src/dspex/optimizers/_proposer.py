"""MIPROv2's grounded instruction proposer (DSPy 3.4.1's ``GroundedProposer``).

The signatures' instructions and field descriptions are DSPy's, byte for
byte, so the prompt model sees the same prompts. Grounding is DSPy's: a
dataset summary (``DatasetDescriptor`` over batches, then
``ObservationSummarizer``), the program's code and a description of the
program and of each module (program-aware), a random prompting tip
(tip-aware), and up to three bootstrapped demos from the demo-set candidates
(fewshot-aware). DSPy proposes one instruction after another; dspex draws
every random choice (tips, rollout ids) first in DSPy's order, then runs all
proposals at once through the flow engine.
"""

from __future__ import annotations

import inspect
import random
import re
from typing import TYPE_CHECKING, Any

from .._context import context, get_setting
from ..errors import ConfigError
from ..evaluate._batch import run_batch
from ..modules import Module, Predict
from ..signatures import InputField, OutputField, Signature

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TIPS", "GroundedProposer", "dataset_summary", "program_source", "strip_prefix"]

TIPS = {
    "none": "",
    "creative": "Don't be afraid to be creative when creating the new instruction!",
    "simple": "Keep the instruction clear and concise.",
    "description": "Make sure your instruction is very informative and descriptive.",
    "high_stakes": "The instruction should include a high stakes scenario in which the LM must solve the task!",
    "persona": 'Include a persona that is relevant to the task in the instruction (ie. "You are a ...")',
}


class ObservationSummarizer(Signature):
    """Given a series of observations I have made about my dataset, please summarize them into a brief 2-3 sentence summary which highlights only the most important details."""

    observations = InputField(desc="Observations I have made about my dataset")
    summary = OutputField(desc="Two to Three sentence summary of only the most significant highlights of my observations")


class DatasetDescriptor(Signature):
    """Given several examples from a dataset please write observations about trends that hold for most or all of the samples. Some areas you may consider in your observations: topics, content, syntax, conciseness, etc. It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative"""

    examples = InputField(desc="Sample data points from the dataset")
    observations = OutputField(desc="Somethings that holds true for most or all of the data you observed")


class DatasetDescriptorWithPriorObservations(Signature):
    """Given several examples from a dataset please write observations about trends that hold for most or all of the samples. I will also provide you with a few observations I have already made.  Please add your own observations or if you feel the observations are comprehensive say 'COMPLETE' Some areas you may consider in your observations: topics, content, syntax, conciceness, etc. It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative"""

    examples = InputField(desc="Sample data points from the dataset")
    prior_observations = InputField(desc="Some prior observations I made about the data")
    observations = OutputField(desc="Somethings that holds true for most or all of the data you observed or COMPLETE if you have nothing to add")


class DescribeProgram(Signature):
    """Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe what type of task this program appears to be designed to solve, and how it appears to work."""

    program_code = InputField(desc="Pseudocode for a language model program designed to solve a particular task.")
    program_example = InputField(desc="An example of the program in use.")
    program_description = OutputField(
        desc="Describe what task the program is designed to solve, and how it goes about solving this task.")


class DescribeModule(Signature):
    """Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe the purpose of one of the specified module in this pipeline."""

    program_code = InputField(desc="Pseudocode for a language model program designed to solve a particular task.")
    program_example = InputField(desc="An example of the program in use.")
    program_description = InputField(
        desc="Summary of the task the program is designed to solve, and how it goes about solving it.")
    module = InputField(desc="The module in the program that we want to describe.")
    module_description = OutputField(desc="Description of the module's role in the broader program.")


def instruction_signature(use_dataset_summary: bool, program_aware: bool, use_tip: bool) -> type[Signature]:
    """Return DSPy's ``GenerateSingleModuleInstruction`` with the chosen inputs (no history)."""

    class GenerateSingleModuleInstruction(Signature):
        """Use the information below to learn about a task that we are trying to solve using calls to an LM, then generate a new instruction that will be used to prompt a Language Model to better solve the task."""

        if use_dataset_summary:
            dataset_description = InputField(desc="A description of the dataset that we are using.")
        if program_aware:
            program_code = InputField(desc="Language model program designed to solve a particular task.")
            program_description = InputField(
                desc="Summary of the task the program is designed to solve, and how it goes about solving it.")
            module = InputField(desc="The module to create an instruction for.")
            module_description = InputField(desc="Description of the module to create an instruction for.")
        task_demos = InputField(desc="Example inputs/outputs of our module.")
        basic_instruction = InputField(desc="Basic instruction.")
        if use_tip:
            tip = InputField(desc="A suggestion for how to go about generating the new instruction.")
        proposed_instruction = OutputField(
            desc="Propose an instruction that will be used to prompt a Language Model to perform this task.")

    return GenerateSingleModuleInstruction


def strip_prefix(text: str) -> str:
    """Drop a leading ``"Some Label:"`` (up to five words) and quotes, as DSPy does."""
    return re.sub(r"^[\*\s]*(([\w\'\-]+\s+){0,4}[\w\'\-]+):\s*", "", text).strip('"')


async def _predict(signature: type[Signature], lm: Any = None, *, summary: bool = False, **inputs: Any) -> Any:
    """Run ``signature`` with only its own inputs (DSPy ignores extra keyword arguments).

    ``summary`` calls use DSPy's ``n=1, temperature=1.0``; proposals use the LM's own settings.
    """
    given = {k: v for k, v in inputs.items() if k in signature.input_fields}
    settings = {"lm": lm} if lm is not None else {}
    with context(**settings):
        predictor = Predict(signature, n=1, temperature=1.0) if summary else Predict(signature)
        return await predictor.acall(**given)


def _order_input_keys(text: str) -> str:
    return re.sub(r"input_keys=\{([^\}]+)\}",
                  lambda m: "input_keys={" + ", ".join(sorted(k.strip() for k in m.group(1).split(","))) + "}", text)


async def dataset_summary(trainset: Sequence[Any], view_data_batch_size: int, prompt_model: Any) -> str:
    """Return DSPy's dataset summary: observations over batches, then a 2-3 sentence summary."""
    upper = min(len(trainset), view_data_batch_size)
    first = await _predict(DatasetDescriptor, prompt_model, summary=True, examples=_order_input_keys(repr(list(trainset[:upper]))))
    observations = first["observations"]
    skips = calls = 0
    for b in range(view_data_batch_size, len(trainset), view_data_batch_size):
        calls += 1
        if calls >= 10:
            break
        batch = repr(list(trainset[b : min(len(trainset), b + view_data_batch_size)]))
        try:
            out = await _predict(DatasetDescriptorWithPriorObservations, prompt_model, summary=True,
                                 prior_observations=observations, examples=_order_input_keys(batch))
        except Exception:
            break
        if len(out["observations"]) >= 8 and out["observations"][:8].upper() == "COMPLETE":
            skips += 1
            if skips >= 5:
                break
            continue
        observations += out["observations"]
    summary = await _predict(ObservationSummarizer, prompt_model, summary=True, observations=observations)
    return strip_prefix(summary.summary)


def program_source(module: Module, seen: set[Any] | None = None) -> str:
    """Return DSPy's "program code": signature sources of direct predictors, sub-modules', the class source."""
    seen = set() if seen is None else seen
    header: list[str] = []
    base = ""
    if type(module).__name__ not in ("Predict", "ChainOfThought"):
        try:
            base = inspect.getsource(type(module))
        except (OSError, TypeError):
            base = ""
    for value in vars(module).values():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, Predict) and id(item.signature) not in seen:
                try:
                    header.append(inspect.getsource(item.signature))
                except (OSError, TypeError):
                    header.append(str(item.signature))
                seen.add(id(item.signature))
            if isinstance(item, Module) and not isinstance(item, Predict):
                code = program_source(item, seen).strip()
                if code not in seen:
                    header.append(code)
                    seen.add(code)
    return "\n\n".join(header) + "\n\n" + base


def example_string(fields: dict[str, Any], example: Any) -> str:
    """Return a demo as DSPy shows it to the proposer: ``"<prefix> <value>"`` per field."""
    return "\n".join(f"{(f.json_schema_extra or {}).get('prefix')} {example.get(name)}" for name, f in fields.items())


class GroundedProposer:
    """Propose instructions per predictor and demo set, grounded as in DSPy (no instruction history).

    Args:
        prompt_model: The proposing LM (default: the context's LM).
        program: The program whose predictors get instructions.
        trainset: The data summarised when ``use_dataset_summary``.
        view_data_batch_size: Examples per summarising call.
        use_dataset_summary, program_aware, use_task_demos, use_tip: DSPy's
            data-, program-, fewshot- and tip-aware switches.
        num_demos_in_context: Most demos shown per proposal.
        rng: The optimizer's RNG (tips and rollout ids are drawn from it).
        init_temperature: Temperature of the proposal calls.
        concurrency: Most proposal calls in flight.

    Raises:
        ConfigError: No prompt model given and none in the context.
    """

    def __init__(self, prompt_model: Any, program: Module, trainset: Sequence[Any], *, view_data_batch_size: int = 10,
                 use_dataset_summary: bool = True, program_aware: bool = True, use_task_demos: bool = True,
                 num_demos_in_context: int = 3, use_tip: bool = True, rng: random.Random | None = None,
                 init_temperature: float = 1.0, concurrency: int = 8) -> None:
        self.prompt_model = prompt_model if prompt_model is not None else get_setting("lm")
        if self.prompt_model is None:
            raise ConfigError("the instruction proposer needs prompt_model= or an LM in dx.context(lm=...)")
        self.program = program
        self.trainset = list(trainset)
        self.view_data_batch_size = view_data_batch_size
        self.use_dataset_summary = use_dataset_summary
        self.program_aware = program_aware
        self.use_task_demos = use_task_demos
        self.num_demos_in_context = num_demos_in_context
        self.use_tip = use_tip
        self.rng = rng or random.Random()
        self.init_temperature = init_temperature
        self.concurrency = concurrency
        self.program_code = program_source(program) if program_aware else None
        self.data_summary: str | None = None

    async def summarize(self) -> None:
        """Make the dataset summary (once); it needs only the trainset, so it may run early."""
        if self.use_dataset_summary and self.data_summary is None:
            try:
                self.data_summary = await dataset_summary(self.trainset, self.view_data_batch_size,
                                                          self.prompt_model)
            except Exception:
                self.use_dataset_summary = False

    async def propose(self, demo_candidates: dict[int, list[list[Any]]] | None, n: int) -> dict[int, list[str]]:
        """Return ``n`` (or one per demo set) instructions per predictor index."""
        await self.summarize()
        sets = max(len(demo_candidates[0]), 1) if demo_candidates else n
        jobs: list[tuple[int, int, str, int]] = []
        for pred_i in range(len(self.program.predictors())):
            for set_i in range(sets)[: min(n, sets)]:
                tip = TIPS[self.rng.choice(list(TIPS))] if self.use_tip else ""
                jobs.append((pred_i, set_i, tip, self.rng.randint(0, 10**9)))
        out: dict[int, list[str]] = {}
        results: dict[int, str] = {}

        async def one(index: int, job: tuple[int, int, str, int]) -> dict[str, Any]:
            results[index] = await self._one(demo_candidates, *job)
            return {}

        await run_batch(one, jobs, concurrency=self.concurrency, name="propose-instructions")
        for index, (pred_i, *_rest) in enumerate(jobs):
            out.setdefault(pred_i, []).append(results[index])
        return out

    def _task_demos(self, demo_candidates: dict[int, list[list[Any]]] | None, pred_i: int, set_i: int) -> str:
        if not (self.use_task_demos and demo_candidates) or set_i == 0:
            return "No task demos provided."
        sets = demo_candidates[pred_i]
        fields = self.program.predictors()[pred_i].signature.fields
        shown = [example_string(fields, ex) for s in [sets[set_i], *sets[set_i + 1 :], *sets[:set_i]]
                 for ex in s if "augmented" in ex][: self.num_demos_in_context]
        text = "\n\n".join(shown) + "\n\n"
        return text if text.strip() else "No task demos provided."

    async def _one(self, demo_candidates: dict[int, list[list[Any]]] | None, pred_i: int, set_i: int, tip: str,
                   rollout: int) -> str:
        predictor = self.program.predictors()[pred_i]
        lm = self.prompt_model.copy(rollout_id=rollout, temperature=self.init_temperature)
        demos = self._task_demos(demo_candidates, pred_i, set_i)
        module_code = module_description = "Not provided"
        program_description = "Not available"
        aware = self.program_aware
        if aware:
            try:
                described = await _predict(DescribeProgram, lm, program_code=self.program_code, program_example=demos)
                program_description = strip_prefix(described.program_description)
                inputs = ", ".join(predictor.signature.input_fields)
                outputs = ", ".join(predictor.signature.output_fields)
                module_code = f"{type(predictor).__name__}({inputs}) -> {outputs}"
                module_description = (await _predict(
                    DescribeModule, lm, program_code=self.program_code, program_description=program_description,
                    program_example=demos, module=module_code)).module_description
            except Exception:
                aware = False
        signature = instruction_signature(self.use_dataset_summary, aware, bool(tip))
        pred = await _predict(
            signature, lm, dataset_description=self.data_summary, program_code=self.program_code,
            module=module_code, program_description=program_description, module_description=module_description,
            task_demos=demos, tip=tip, basic_instruction=predictor.signature.instructions)
        return strip_prefix(strip_prefix(pred.proposed_instruction))
