"""``dspex demo --agent``: a ReAct flow with two real Python tools, offline.

The agent answers the bundled questions with ``ReAct("question -> answer")``
and two tools: ``calculate`` (async; the arithmetic in a text) and
``lookup`` (sync, run in a worker thread; the bundled reference book, with a
short blocking pause as a real lookup has). The LM is
:class:`~dspex.testing.FakeLLMServer`, which plays DSPy's ReAct protocol
deterministically: it picks the tool whose name and description fit the
question, passes the question's numbers or text, finishes once an
observation is in, and extracts the observation as the answer. With
``--serve`` every step streams to the live page, where each tool call is a
collapsible step inside its item's card.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import click

from .._util._sync import run_sync
from ..flows import Flow
from ..modules import ReAct
from ..sinks import jsonl, websocket
from ..testing import FakeLLMServer
from ._demo import _PORT, _free, load_questions, run_on_server
from ._serve import new_token

__all__ = ["agent_tools", "run_agent_demo"]

# the multiplication and division signs (U+00D7, U+00F7) too, as questions write them
_EXPRESSION = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x\u00d7\u00f7])\s*(-?\d+(?:\.\d+)?)")
_OPS = {"+": float.__add__, "-": float.__sub__, "*": float.__mul__, "\u00d7": float.__mul__, "x": float.__mul__,
        "/": float.__truediv__, "\u00f7": float.__truediv__}


async def calculate(expression: str) -> int | float:
    """Evaluate arithmetic: add, subtract, multiply or divide two numbers.

    Args:
        expression: Text holding ``<number> <operator> <number>``.
    """
    found = _EXPRESSION.search(expression)
    if found is None:
        raise ValueError(f"no arithmetic like '3 + 4' in {expression!r}")
    left, op, right = found.groups()
    value = _OPS[op](float(left), float(right))
    return int(value) if value.is_integer() else round(value, 6)


def agent_tools(rows: list[dict[str, Any]], pause_s: float = 0.005) -> list[Any]:
    """Return the demo's two tools: ``lookup`` (sync) over ``rows``, and ``calculate`` (async)."""
    book = {str(row["question"]).strip(): str(row["expected"]) for row in rows}

    def lookup(question: str) -> str:
        """Look up a fact in the bundled reference book.

        Args:
            question: The question, word for word.
        """
        time.sleep(pause_s)  # a blocking call: ReAct runs it in a worker thread
        return book.get(question.strip(), "No entry for that question.")

    return [lookup, calculate]  # lookup first: a question nothing fits goes to the book


def run_agent_demo(serve: bool = False, n: int | None = None, out_path: Path | str = "demo_agent_answers.jsonl",
                   *, wait_s: float = 15.0, port: int = _PORT, auth: bool = True) -> int:
    """Run the agent demo flow and print its report; return the exit code (0 ok, 1 failed).

    Arguments are those of :func:`~dspex.cli._demo.run_demo_flow`.
    """
    token = new_token() if serve and auth else None
    return int(run_sync(_agent_demo, serve, n, Path(out_path), wait_s, port, token))


async def _agent_demo(serve: bool, n: int | None, out_path: Path, wait_s: float, port: int = _PORT,
                      token: str | None = None) -> int:
    rows = load_questions(n)
    latency_ms, token_delay_ms = (120, 20) if serve else (20, 0)  # slow enough to watch when served
    server = FakeLLMServer(latency_ms=latency_ms, token_delay_ms=token_delay_ms)
    live = websocket(port=_free(port), replay=600, token=token, wait_for_client_s=wait_s) if serve else None
    sinks = [jsonl(out_path, mode="w"), *([live] if live else [])]
    agent = ReAct("question -> answer", tools=agent_tools(rows), max_iters=5)
    flow = Flow("demo-agent")
    flow.source(rows).map(agent, concurrency=6 if serve else 32, on_error="dead_letter").sink(*sinks)
    click.echo(f"dspex demo --agent: {len(rows)} questions -> ReAct(lookup, calculate) -> {out_path}")
    return await run_on_server(flow, server, live, out_path)
