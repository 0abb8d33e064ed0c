"""A multi-agent research flow: two ReAct agents and a judge, offline.

    python examples/research_agents.py

Each question goes to a *calculator* agent (tools ``add``, ``multiply``) and an
*encyclopedia* agent (tool ``lookup``), one after the other in the flow; a
judge (``ChainOfThought`` with a ``Literal`` verdict) then picks the answer to
keep. The agents run on one fake LM server, which plays DSPy's ReAct protocol
deterministically (it picks the tool whose name and description best match
the question); the judge runs on a second one, a stand-in for a stronger
model, whose scripted rule prefers a number for a question with numbers and a
found entry otherwise. Point the two ``dx.LM`` objects at real models and the
same flow runs unchanged.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import anyio

import dspex as dx
from dspex.testing import FakeLLMServer

FACTS = {"norway": "Oslo is the capital of Norway.", "violin": "A standard violin has 4 strings.",
         "everest": "Mount Everest is 8,849 m tall."}
QUESTIONS = ["What is 6 times 7?", "Tell me about Norway.", "What is 19 plus 23?", "Tell me about Everest."]
_BLOCK = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with |\Z)", re.S)


def add(a: int, b: int) -> int:
    """Add two numbers: a plus b."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two numbers: a times b."""
    return a * b


def lookup(topic: str) -> str:
    """Look up a topic, place or thing in the encyclopedia."""
    found = [text for key, text in FACTS.items() if key in topic.lower()]
    return found[0] if found else "no entry"


class Judge(dx.Signature):
    """Pick the better of two research answers to the question."""

    question: str = dx.InputField()
    calculator: str = dx.InputField(desc="the calculator agent's answer")
    encyclopedia: str = dx.InputField(desc="the encyclopedia agent's answer")
    verdict: Literal["calculator", "encyclopedia"] = dx.OutputField()
    answer: str = dx.OutputField()


def judge_model(request: dict[str, Any]) -> str:
    """The judge's scripted rule (a stand-in for a stronger model)."""
    user = request["messages"][-1]["content"]
    fields = {name: text.strip() for name, text in _BLOCK.findall(user)}
    numeric = bool(re.search(r"\d", fields["question"]))
    verdict = "calculator" if numeric or fields["encyclopedia"] == "no entry" else "encyclopedia"
    return (f"[[ ## reasoning ## ]]\nThe {verdict} answer fits the question.\n\n"
            f"[[ ## verdict ## ]]\n{verdict}\n\n[[ ## answer ## ]]\n{fields[verdict]}\n\n[[ ## completed ## ]]")


def _short(text: str) -> str:
    """The first line of an answer (a tool error's traceback is long)."""
    return text.strip().splitlines()[0].strip()


async def main() -> None:
    async with FakeLLMServer(latency_ms=5) as agents_server, FakeLLMServer(responder=judge_model) as judge_server:
        agent_lm = dx.LM("openai/fake-agent", api_base=agents_server.url, api_key="offline", cache=False)
        judge_lm = dx.LM("openai/fake-judge", api_base=f"{judge_server.url}/v1", api_key="offline", cache=False)
        calculator = dx.ReAct("question -> calculator", tools=[add, multiply], max_iters=4)
        encyclopedia = dx.ReAct("question -> encyclopedia", tools=[lookup], max_iters=4)
        judge = dx.ChainOfThought(Judge)
        judge.set_lm(judge_lm)
        out = dx.sinks.collect()
        flow = dx.Flow("research")
        (flow.source([{"question": q} for q in QUESTIONS])
             .map(calculator, concurrency=4, name="calculator")
             .map(encyclopedia, concurrency=4, name="encyclopedia")
             .map(judge, concurrency=4, name="judge")
             .sink(out))
        report = await flow.run(lm=agent_lm, progress=False)  # the agents use the run's LM
        for lm in (agent_lm, judge_lm):
            await lm.aclose()
    for row in out.items:
        print(f"{row['question']} -> {row['answer']}  (judge: {row['verdict']}; calculator said "
              f"{_short(row['calculator'])!r}, encyclopedia said {_short(row['encyclopedia'])!r})")
    print(f"{report.items_out}/{report.items_in} researched, {report.status}")


if __name__ == "__main__":
    anyio.run(main)
