"""A ReAct agent with two Python tools, against the local fake LM server: no network, no key.

    python examples/agent_offline.py

The fake server (a real OpenAI-compatible HTTP server on 127.0.0.1) plays
DSPy's ReAct protocol deterministically, so the same code runs unchanged
against a real model: point ``dx.LM`` at it instead.
"""

from __future__ import annotations

import time

import anyio

import dspex as dx
from dspex.events import ToolCall, ToolResult
from dspex.testing import FakeLLMServer

TEMPERATURES = {"Paris": 18, "Oslo": 4}


async def add(a: int, b: int) -> int:
    """Add two integers."""
    await anyio.sleep(0.01)  # an async tool: awaits on the event loop
    return a + b


def temperature(city: str) -> str:
    """Look up the current temperature of a city in Celsius."""
    time.sleep(0.01)  # a blocking tool: ReAct runs it in a worker thread
    name = next((c for c in TEMPERATURES if c in city), None)
    return f"{TEMPERATURES[name]} °C in {name}" if name else "unknown city"


async def main() -> None:
    agent = dx.ReAct("question -> answer", tools=[add, temperature], max_iters=5)
    async with FakeLLMServer(latency_ms=5) as server:
        lm = dx.LM("openai/fake-agent", api_base=server.url, api_key="offline", cache=False)
        with dx.context(lm=lm):
            # One call, streamed: every tool step is an event.
            async for event in agent.stream(question="What is 20 + 22?"):
                if isinstance(event, ToolCall):
                    print(f"call   {event.name}({event.args})")
                elif isinstance(event, ToolResult):
                    print(f"result {event.name} -> {event.error or event.result}")
            # Many calls at once on the same event loop: dx.Parallel (tasks, not threads).
            questions = ["What is 1 + 2?", "What is the temperature in Oslo?", "What is 40 + 2?"]
            preds = await dx.Parallel(num_threads=3).acall([(agent, {"question": q}) for q in questions])
            for question, pred in zip(questions, preds, strict=True):
                print(f"{question} -> {pred.answer}")
        await lm.aclose()


if __name__ == "__main__":
    anyio.run(main)
