"""How the fake LM server plays an agent: ReAct steps and native tool calls.

Deterministic rules, read from the prompt itself, so examples, the demo,
tests and benchmarks can run tool-using programs offline:

* **Pick a tool.** Among the offered tools (DSPy ReAct's ``(1) name, whose
  description is <desc>…</desc>. It takes arguments {…}.`` lines, or a
  request's native ``tools``), the one whose name and description share the
  most words with the question wins, where an operator in the question (a
  symbol or a word) counts as all its synonyms (``+``/plus → add/sum/plus,
  ``*``/times → multiply/product/times …); ties
  go to the first listed. ``finish`` is never picked first.
* **Fill its arguments.** Numeric parameters take the question's numbers in
  order, string parameters the question, booleans ``true``; anything left
  comes from the schema (as for other fake values).
* **Finish.** Once the trajectory holds an observation of a real tool (or the
  request carries a tool result), the step is ``finish`` with ``{}``.
* **Extract.** A prompt whose inputs hold such a trajectory gets the last
  real observation as its answer fields (``reasoning`` says where it came
  from).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AgentTool",
    "choose_step",
    "extract_answer",
    "native_tool",
    "question_text",
    "real_observation",
    "tools_from_prompt",
]

_TOOL_LINE = re.compile(
    r"^\s*\(\d+\) (?P<name>[^\s,.]+)(?:, whose description is <desc>(?P<desc>.*)</desc>)?\. "
    r"It takes arguments (?P<args>\{.*\})\.\s*$"
)
_BLOCK = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with |\Z)", re.S)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[a-z]+")
_OPERATORS = {
    "+": ("add", "sum", "plus"),
    "*": ("multiply", "product", "times", "mul"),
    "\u00d7": ("multiply", "product", "times", "mul"),
    "/": ("divide", "quotient", "div"),
    " - ": ("subtract", "minus", "difference", "sub"),
}


@dataclass(frozen=True)
class AgentTool:
    """A tool the prompt offers: name, description and JSON-schema properties."""

    name: str
    desc: str = ""
    properties: tuple[tuple[str, dict[str, Any]], ...] = ()


def tools_from_prompt(system: str) -> list[AgentTool]:
    """Return the tools listed in a DSPy ReAct instruction block (in order)."""
    tools = []
    for line in system.splitlines():
        m = _TOOL_LINE.match(line)
        if m is None:
            continue
        try:
            args = ast.literal_eval(m.group("args"))
        except (ValueError, SyntaxError):
            args = {}
        props = tuple((k, v if isinstance(v, dict) else {}) for k, v in args.items()) if isinstance(args, dict) else ()
        tools.append(AgentTool(m.group("name"), m.group("desc") or "", props))
    return tools


def native_tool(name: str, schema: dict[str, Any], desc: str = "") -> AgentTool:
    """Return the :class:`AgentTool` of a native tool definition (its parameters schema)."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    items = tuple((k, v if isinstance(v, dict) else {}) for k, v in (props or {}).items())
    return AgentTool(name, desc, items)


def question_text(user: str) -> str:
    """Return the request's inputs without the trajectory (where the question's numbers are)."""
    return user.split("[[ ## trajectory ## ]]", 1)[0]


def real_observation(user: str) -> str | None:
    """Return the last observation of a tool other than ``finish``, if the trajectory has one."""
    blocks = dict(_BLOCK.findall(user.split("[[ ## trajectory ## ]]", 1)[-1])) if "observation_" in user else {}
    found = None
    for key, value in blocks.items():
        if key.startswith("observation_"):
            idx = key.removeprefix("observation_")
            if blocks.get(f"tool_name_{idx}", "").strip() != "finish":
                found = value.strip()
    return found


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _score(tool: AgentTool, question: str) -> int:
    wanted = _words(question)
    for symbol, words in _OPERATORS.items():
        if symbol in question or wanted.intersection(words):
            wanted.update(words)
    offered = _words(tool.name.replace("_", " ")) | _words(tool.desc)
    return len(wanted & offered)


def _number(text: str, integer: bool) -> int | float:
    value = float(text)
    return int(value) if integer or value.is_integer() else value


def _arguments(tool: AgentTool, question: str) -> dict[str, Any]:
    numbers = _NUMBER.findall(question)
    args: dict[str, Any] = {}
    for name, schema in tool.properties:
        kind = schema.get("type")
        if kind in ("integer", "number") and numbers:
            args[name] = _number(numbers.pop(0), kind == "integer")
        elif kind == "boolean":
            args[name] = True
        elif kind in ("string", None):
            args[name] = question.strip()
        elif kind == "array":
            args[name] = [_number(n, False) for n in numbers]
            numbers = []
    return args


def choose_step(tools: list[AgentTool], user: str, tool_result: bool = False) -> tuple[str, str, dict[str, Any]]:
    """Return ``(thought, tool name, args)`` for the next agent step (see the module doc)."""
    candidates = [t for t in tools if t.name != "finish"]
    if tool_result or real_observation(user) is not None or not candidates:
        return "The observation answers the question, so I can finish.", "finish", {}
    question = _first_input(question_text(user))
    best = max(candidates, key=lambda t: _score(t, question))  # max keeps the first of equals
    args = _arguments(best, question)
    return f"I will call {best.name} with {args} to answer this.", best.name, args


def _first_input(text: str) -> str:
    """Return the first input field's value (the question), else the text itself."""
    blocks = _BLOCK.findall(text)
    return blocks[0][1] if blocks else text


def extract_answer(user: str) -> tuple[str, str] | None:
    """Return ``(reasoning, answer)`` from the trajectory's last real observation, or None."""
    found = real_observation(user)
    if found is None:
        return None
    return f"The tool's observation was {found}, which answers the question.", found
