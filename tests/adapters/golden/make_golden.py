"""Generate the adapter golden fixtures from DSPy 3.4.1 (offline; never collected).

Run with the separate DSPy venv::

    /work/scratch/dspyvenv/bin/python tests/adapters/golden/make_golden.py

It writes ``chat_format.json``, ``json_format.json``, ``chat_parse.json`` and
``json_parse.json`` next to this file: DSPy's exact ``format(...)`` messages
and ``parse(...)`` results for the cases in ``golden_cases.py``; and
``react.json``: for each case of ``react_cases.py``, the messages of every LM
call ``dspy.ReAct`` makes under ``DummyLM`` and the final trajectory and
outputs; ``react_state.json``: what ``dspy.ReAct.save`` writes; and ``custom_types.json``: the system message of signatures with
custom-typed fields (the "Type description of ..." lines).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dspy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import golden_cases as cases  # noqa: E402
import react_cases  # noqa: E402


def encode(value: Any) -> dict[str, str]:
    return {"type": type(value).__name__, "repr": repr(value)}


def format_fixture(adapter: Any) -> dict[str, Any]:
    out = {}
    for case, sig_name, demos, inputs in cases.format_cases(dspy):
        sig = cases.SIGNATURES[sig_name](dspy)
        out[case] = adapter.format(sig, demos, inputs)
    return out


def parse_fixture(adapter: Any, completions: list[tuple[str, str]]) -> list[dict[str, Any]]:
    out = []
    for sig_name, completion in completions:
        sig = cases.SIGNATURES[sig_name](dspy)
        entry: dict[str, Any] = {"signature": sig_name, "completion": completion}
        try:
            entry["result"] = {k: encode(v) for k, v in adapter.parse(sig, completion).items()}
        except Exception as exc:  # record which failures DSPy raises
            entry["error"] = type(exc).__name__
            entry["message"] = str(exc)
        out.append(entry)
    return out


def react_fixture() -> dict[str, Any]:
    from dspy.utils.dummies import DummyLM

    out = {}
    for case, spec, kind in react_cases.runs():
        sig = react_cases.SIGNATURES[spec["signature"]](dspy)
        tools = [react_cases.TOOLS[name] for name in spec["tools"]]
        adapter = dspy.JSONAdapter() if kind == "json" else dspy.ChatAdapter()
        lm = DummyLM(spec["answers"], adapter=adapter)
        agent = dspy.ReAct(sig, tools=tools, max_iters=spec.get("max_iters", 20))
        with dspy.context(lm=lm, adapter=adapter):
            pred = agent(**spec["inputs"])
        out[case] = {
            "calls": [entry["messages"] for entry in lm.history],
            "trajectory": {k: encode(v) for k, v in pred.trajectory.items()},
            "outputs": {k: encode(v) for k, v in pred.items() if k != "trajectory"},
        }
    return out


def react_state_fixture() -> dict[str, Any]:
    """Return ``dspy.ReAct.save`` output (with a demo) for the load-compatibility test."""
    import tempfile

    agent = dspy.ReAct("question -> answer", tools=[react_cases.get_weather])
    agent.react.demos = [dspy.Example(question="q", trajectory="t", next_thought="n", next_tool_name="finish",
                                      next_tool_args={})]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "react.json"
        agent.save(str(path))
        return json.loads(path.read_text())


def custom_types_fixture() -> dict[str, Any]:
    out = {}
    for case, build in cases.CUSTOM_TYPE_SIGNATURES.items():
        sig = build(dspy)
        for kind, adapter in (("chat", dspy.ChatAdapter()), ("json", dspy.JSONAdapter())):
            out[f"{kind}-{case}"] = adapter.format(sig, [], {})[0]["content"]
    return out


def main() -> None:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    chat, js = dspy.ChatAdapter(), dspy.JSONAdapter()
    files = {
        "chat_format.json": format_fixture(chat),
        "json_format.json": format_fixture(js),
        "chat_parse.json": parse_fixture(chat, cases.CHAT_PARSE),
        "json_parse.json": parse_fixture(js, cases.JSON_PARSE),
        "react.json": react_fixture(),
        "custom_types.json": custom_types_fixture(),
        "react_state.json": react_state_fixture(),
    }
    for name, data in files.items():
        (HERE / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {name}: {len(data)} cases")


if __name__ == "__main__":
    main()
