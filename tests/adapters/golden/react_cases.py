"""ReAct golden cases, written once for both DSPy and dspex.

Each case names a signature builder, the tools (plain functions shared by
both libraries), the inputs, ``max_iters`` and the scripted LM answers (one
dict per LM call, DummyLM style). The generator records the messages DSPy
3.4.1 sends for each call and the final trajectory; the dspex test replays the
same script and compares. Tools never raise here: a traceback names the
library's own files, so error observations are tested by shape elsewhere.
This module never imports dspy itself.
"""

from __future__ import annotations

from typing import Any


def get_weather(city: str) -> str:
    """Return the current weather in a city."""
    return f"The weather in {city} is sunny, 21 C."


def search(query: str, k: int = 2) -> list[str]:
    """Search the web.

    Returns up to k snippets.
    """
    return [f"{query} result {i}" for i in range(k)]


def lookup(item_id: int, fields: list[str] | None = None) -> dict[str, Any]:
    return {"id": item_id, "fields": fields or [], "price": 9.5}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def qa(ns: Any) -> Any:
    return ns.Signature("question -> answer")


def typed(ns: Any) -> Any:
    class Shop(ns.Signature):
        """Answer shopping questions using the catalogue tools."""

        question: str = ns.InputField(desc="what the customer asks")
        budget: float = ns.InputField()
        answer: str = ns.OutputField(desc="a short reply")
        total: float = ns.OutputField()

    return Shop


SIGNATURES = {"qa": qa, "typed": typed}
TOOLS = {"get_weather": get_weather, "search": search, "lookup": lookup, "add": add}

CASES: dict[str, dict[str, Any]] = {
    "weather_two_steps": {
        "signature": "qa",
        "tools": ["get_weather", "search"],
        "inputs": {"question": "What is the weather in Tokyo?"},
        "answers": [
            {"next_thought": "I should check the weather.", "next_tool_name": "get_weather",
             "next_tool_args": {"city": "Tokyo"}},
            {"next_thought": "Now search for more.", "next_tool_name": "search",
             "next_tool_args": {"query": "Tokyo weather", "k": 3}},
            {"next_thought": "I have enough.", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "The tool said sunny.", "answer": "Sunny, 21 C."},
        ],
    },
    "typed_dict_observation": {
        "signature": "typed",
        "tools": ["lookup", "add"],
        "inputs": {"question": "How much are items 7 and 8?", "budget": 20.0},
        "answers": [
            {"next_thought": "Look up item 7.", "next_tool_name": "lookup",
             "next_tool_args": {"item_id": 7, "fields": ["price"]}},
            {"next_thought": "Add prices.", "next_tool_name": "add", "next_tool_args": {"a": 9, "b": 10}},
            {"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "9 + 10 = 19.", "answer": "19 in total.", "total": 19.0},
        ],
    },
    "max_iters_without_finish": {
        "signature": "qa",
        "tools": ["search"],
        "inputs": {"question": "Who won?"},
        "max_iters": 2,
        "answers": [
            {"next_thought": "Search.", "next_tool_name": "search", "next_tool_args": {"query": "winner"}},
            {"next_thought": "Search again.", "next_tool_name": "search",
             "next_tool_args": {"query": "winner 2024", "k": 1}},
            {"reasoning": "Not sure.", "answer": "Unknown."},
        ],
    },
}


def runs() -> list[tuple[str, dict[str, Any], str]]:
    """Return ``(fixture key, case, adapter kind)``: every case with ChatAdapter, two with JSONAdapter."""
    out = [(name, case, "chat") for name, case in CASES.items()]
    out += [(f"json-{name}", CASES[name], "json") for name in ("weather_two_steps", "typed_dict_observation")]
    return out
