"""``ReAct``: DSPy's thought → tool → observation agent loop, on the event loop.

The prompts are DSPy 3.4.1's byte for byte: the same instructions (tool list,
``finish`` tool), the inner ``react`` signature (``next_thought``,
``next_tool_name``, ``next_tool_args``), the trajectory rendered by the
adapter as ``[[ ## thought_0 ## ]]`` blocks, and the ``extract``
``ChainOfThought`` over the trajectory. What differs is how tools run:
through :func:`~dspex.modules._tools.run_tool` (sync tools in a worker
thread, per-tool timeouts, failures and unknown names as observations,
``ToolCall``/``ToolResult`` events). With an adapter built with
``use_native_function_calling=True`` (explicitly: JSONAdapter's default does
not count, so DSPy's prompts stay) and an LM whose provider has tool calling,
the tool choice travels as a native tool call (OpenAI ``tools``, Anthropic
``tool_use``, Gemini ``functionDeclarations``) instead of text fields.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from .._context import get_setting
from ..adapters._native import supports_function_calling
from ..errors import ContextWindowExceededError, ParseError
from ..signatures import (
    InputField,
    OutputField,
    Signature,
    Tool,
    ToolCalls,
    ensure_signature,
    make_signature,
)
from ._chain_of_thought import ChainOfThought
from ._module import Module
from ._predict import Predict, default_adapter
from ._prediction import Prediction
from ._tools import format_error_for_lm, run_tool, tool_map

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..signatures._types import ToolCall

__all__ = ["ReAct"]

logger = logging.getLogger("dspex.react")

#: One step the LM chose: thought, tool name, arguments, and the provider's call id (native mode).
_Step = tuple[str, str, Any, str | None]


async def _completed() -> str:
    return "Completed."


def _instructions(signature: type[Signature], tools: dict[str, Tool]) -> str:
    inputs = ", ".join(f"`{k}`" for k in signature.input_fields)
    outputs = ", ".join(f"`{k}`" for k in signature.output_fields)
    instr = [f"{signature.instructions}\n"] if signature.instructions else []
    instr.extend([
        f"You are an Agent. In each episode, you will be given the fields {inputs} as input. "
        "And you can see your past trajectory so far.",
        f"Your goal is to use one or more of the supplied tools to collect any necessary information for "
        f"producing {outputs}.\n",
        "To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, "
        "and also when finishing the task.",
        "After each tool call, you receive a resulting observation, which gets appended to your trajectory.\n",
        "When writing next_thought, you may reason about the current situation and plan for future steps.",
        "When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n",
    ])
    instr.extend(f"({i + 1}) {tool}" for i, tool in enumerate(tools.values()))
    instr.append("When providing `next_tool_args`, the value inside the field must be in JSON format")
    return "\n".join(instr)


class ReAct(Module):
    """An agent: think, pick a tool, observe, repeat; then extract the outputs.

    Args:
        signature: The task (``"question -> answer"`` or a class).
        tools: Callables (sync or async) or ``dx.Tool`` objects; only these
            (and ``finish``) can ever run.
        max_iters: Most tool steps per call (a call may pass ``max_iters=``).

    Each step asks ``react`` for a thought, a tool name and arguments, runs
    the tool and appends the observation to the trajectory; ``finish`` or
    ``max_iters`` ends the loop and ``extract`` (a ``ChainOfThought``)
    produces the outputs. A tool's exception, timeout or invalid arguments
    and an unknown tool name become the observation; the loop goes on. When
    the LM reports a context-window overflow, the oldest step is dropped
    and the call retried (3 attempts).

    Raises:
        ContextWindowExceededError: Extraction still overflows after 3
            truncations, or the trajectory holds a single step.
        ParseError: An LM reply cannot be parsed even with a lenient tool
            name (after the predictor's own feedback retries).
        ToolError: ``tools`` holds a non-callable or duplicate names.

    Example:
        >>> import dspex as dx
        >>> from dspex.testing import ScriptedLM
        >>> def add(a: int, b: int) -> int:
        ...     '''Add two integers.'''
        ...     return a + b
        >>> agent = dx.ReAct("question -> answer", tools=[add])
        >>> lm = ScriptedLM([
        ...     {"next_thought": "Add them.", "next_tool_name": "add", "next_tool_args": {"a": 2, "b": 3}},
        ...     {"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}},
        ...     {"reasoning": "The tool said 5.", "answer": "5"},
        ... ])
        >>> pred = agent(question="What is 2 + 3?", lm=lm)
        >>> pred.answer, pred.trajectory["observation_0"]
        ('5', 5)
    """

    def __init__(self, signature: str | type[Signature], tools: Iterable[Callable[..., Any] | Tool] = (),
                 max_iters: int = 20) -> None:
        super().__init__()
        self.signature = signature = ensure_signature(signature)
        self.max_iters = max_iters
        registry = tool_map(tools)
        outputs = ", ".join(f"`{k}`" for k in signature.output_fields)
        registry["finish"] = Tool(
            _completed,
            name="finish",
            desc="Marks the task as complete. That is, signals that all information for producing the outputs, "
            f"i.e. {outputs}, are now available to be extracted.",
            args={},
        )
        self.tools = registry
        react_signature = (
            make_signature(dict(signature.input_fields), _instructions(signature, registry))
            .append("trajectory", InputField(), type_=str)
            .append("next_thought", OutputField(), type_=str)
            .append("next_tool_name", OutputField(), type_=Literal[tuple(registry)])
            .append("next_tool_args", OutputField(), type_=dict[str, Any])
        )
        fallback_signature = make_signature(
            {**signature.input_fields, **signature.output_fields}, signature.instructions
        ).append("trajectory", InputField(), type_=str)
        self.react = Predict(react_signature)
        self.extract = ChainOfThought(fallback_signature)
        # Parses a reply naming a tool that does not exist, so it can be fed back as an observation.
        self._lenient = react_signature.with_updated_fields("next_tool_name", type_=str)
        self._native_cache: tuple[type[Signature], type[Signature]] | None = None

    # -- trajectory ---------------------------------------------------------------
    def _format_trajectory(self, trajectory: dict[str, Any]) -> str:
        adapter = get_setting("adapter") or default_adapter()
        trajectory_signature = make_signature(f"{', '.join(trajectory)} -> x")
        text: str = adapter.format_user_message_content(trajectory_signature, trajectory)
        return text

    def truncate_trajectory(self, trajectory: dict[str, Any]) -> dict[str, Any]:
        """Drop the oldest step (its 4 keys) so the prompt fits; override to change the policy.

        Raises:
            ContextWindowExceededError: The trajectory holds one step or less.
        """
        keys = list(trajectory)
        if len(keys) <= 4:
            raise ContextWindowExceededError(
                "The trajectory is too long so your prompt exceeded the context window, but the trajectory "
                "cannot be truncated because it only has one tool call."
            )
        for key in keys[:4]:
            trajectory.pop(key)
        return trajectory

    async def _call_truncating(self, module: Module, trajectory: dict[str, Any], inputs: dict[str, Any]) -> Any:
        last: ContextWindowExceededError | None = None
        for _ in range(3):
            try:
                return await module.acall(**inputs, trajectory=self._format_trajectory(trajectory))
            except ContextWindowExceededError as err:
                logger.warning("Trajectory exceeded the context window, truncating the oldest tool call information.")
                last = err
                trajectory = self.truncate_trajectory(trajectory)
        raise ContextWindowExceededError(
            "The context window was exceeded even after 3 attempts to truncate the trajectory."
        ) from last

    # -- loop ------------------------------------------------------------------------
    async def _next_step(
        self, trajectory: dict[str, Any], inputs: dict[str, Any], native: bool = False
    ) -> _Step | None:
        """Return ``(thought, tool name, args, call id)``, or None when the loop must end."""
        try:
            if native:
                return await self._next_native_step(trajectory, inputs)
            pred = await self._call_truncating(self.react, trajectory, inputs)
        except ContextWindowExceededError as err:
            logger.warning("Ending the trajectory: %s", format_error_for_lm(err))
            return None
        except ParseError as err:
            step = self._lenient_step(err)
            if step is None:
                raise
            return step
        except ValueError as err:  # as DSPy: a ValueError ends the trajectory
            logger.warning("Ending the trajectory: Agent failed to select a valid tool: %s", format_error_for_lm(err))
            return None
        return pred.next_thought, pred.next_tool_name, pred.next_tool_args, None

    def _lenient_step(self, err: ParseError) -> _Step | None:
        """Re-read a reply whose only fault is an unknown tool name (it becomes an observation)."""
        adapter = get_setting("adapter") or default_adapter()
        for candidate in (adapter, adapter.fallback):
            if candidate is None or not err.raw:
                continue
            try:
                values = candidate.parse(self._lenient, err.raw)
            except ParseError:
                continue
            if values["next_tool_name"] not in self.tools:
                return values["next_thought"], values["next_tool_name"], values["next_tool_args"], None
        return None

    def _native_mode(self) -> bool:
        """Return True if this call's adapter asks for native tool calls and its LM has them."""
        adapter = get_setting("adapter") or default_adapter()
        if not adapter.use_native_function_calling or adapter.native_by_default:
            return False
        return supports_function_calling(self.react.lm if self.react.lm is not None else get_setting("lm"))

    def _native_signature(self) -> type[Signature]:
        """Return ``react``'s signature with the tool choice as native tool calls.

        Built from the current ``react`` signature (so tuned instructions
        carry over): ``next_tool_name``/``next_tool_args`` give way to a
        ``tools`` input and a ``next_tool_calls`` output, which the adapter
        sends and reads natively.
        """
        base = self.react.signature
        cached = self._native_cache
        if cached is None or cached[0] is not base:
            sig = (
                base.delete("next_tool_name").delete("next_tool_args")
                .append("tools", InputField(), type_=list[Tool])
                .append("next_tool_calls", OutputField(), type_=ToolCalls)
            )
            cached = self._native_cache = (base, sig)
        return cached[1]

    async def _next_native_step(self, trajectory: dict[str, Any], inputs: dict[str, Any]) -> _Step:
        """Return ``(thought, tool name, args, call id)`` from a native tool call (the first, if several)."""
        pred = await self._call_truncating(
            self.react, trajectory,
            {**inputs, "tools": list(self.tools.values()), "signature": self._native_signature()},
        )
        calls = pred.get("next_tool_calls")
        thought = pred.get("next_thought") or ""
        if not isinstance(calls, ToolCalls) or not calls.tool_calls:
            return thought, "", {}, None
        first: ToolCall = calls.tool_calls[0]
        return thought, first.name, first.args, first.id

    async def aforward(self, **inputs: Any) -> Prediction:
        """Run the loop and the extraction; return the outputs plus ``trajectory``."""
        max_iters = inputs.pop("max_iters", self.max_iters)
        trajectory: dict[str, Any] = {}
        native = self._native_mode()
        for idx in range(max_iters):
            step = await self._next_step(trajectory, inputs, native)
            if step is None:
                break
            thought, name, args, call_id = step
            trajectory[f"thought_{idx}"] = thought
            trajectory[f"tool_name_{idx}"] = name
            trajectory[f"tool_args_{idx}"] = args
            outcome = await run_tool(self.tools, name, args, call_id=call_id or str(idx))
            trajectory[f"observation_{idx}"] = outcome.observation
            if name == "finish":
                break
        extract = await self._call_truncating(self.extract, trajectory, inputs)
        return Prediction(trajectory=trajectory, **dict(extract.items()))

