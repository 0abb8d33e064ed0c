"""Generate the adapter golden fixtures from DSPy 3.4.1 (offline; never collected).

Run with the separate DSPy venv::

    /work/scratch/dspyvenv/bin/python tests/adapters/golden/make_golden.py

It writes ``chat_format.json``, ``json_format.json``, ``chat_parse.json`` and
``json_parse.json`` next to this file: DSPy's exact ``format(...)`` messages
and ``parse(...)`` results for the cases in ``golden_cases.py``; and
``react.json``: for each case of ``react_cases.py``, the messages of every LM
call ``dspy.ReAct`` makes under ``DummyLM`` and the final trajectory and
outputs; ``react_state.json``: what ``dspy.ReAct.save`` writes; and ``custom_types.json``: the system message of signatures with
custom-typed fields (the "Type description of ..." lines); ``media.json``: both adapters' messages for the
Image/Audio/File/Code cases of ``media_cases.py`` (content parts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dspy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import golden_cases as cases
import media_cases
import react_cases


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


def media_fixture() -> dict[str, Any]:
    """Return DSPy's messages for the content-part cases (both adapters) and Code parses."""
    import tempfile
    from types import SimpleNamespace

    from dspy.experimental import Document
    from PIL import Image as PILImage

    ns = SimpleNamespace(**{k: getattr(dspy, k) for k in dir(dspy) if not k.startswith("_")}, Document=Document)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case, sig_name, demos, inputs in media_cases.format_cases(ns, Path(tmp), PILImage):
            sig = media_cases.SIGNATURES[sig_name](ns)
            for kind, adapter in (("chat", dspy.ChatAdapter()), ("json", dspy.JSONAdapter())):
                out[f"{kind}-{case}"] = adapter.format(sig, demos, inputs)
            if case in media_cases.NATIVE:
                native = dspy.ChatAdapter(use_native_function_calling=True)
                out[f"native-{case}"] = native.format(sig, demos, inputs)
    out["parse"] = [
        {"signature": name, "completion": text,
         "result": {k: encode(v) for k, v in dspy.ChatAdapter().parse(media_cases.SIGNATURES[name](dspy), text).items()}}
        for name, text in media_cases.CODE_PARSE
    ]
    return out


PROVIDER_CASES = ["image_url", "image_data_uri", "image_list", "image_demo", "file_data", "file_path", "audio"]


def provider_fixture(media: dict[str, Any]) -> dict[str, Any]:
    """Return litellm's Anthropic messages and Gemini contents for DSPy's media messages.

    DSPy sends every request through litellm, so these are the provider
    bodies DSPy 3.4.1 produces for the chat adapter's content parts.
    """
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig
    from litellm.llms.vertex_ai.gemini.transformation import _gemini_convert_messages_with_history

    out: dict[str, Any] = {}
    for case in PROVIDER_CASES:
        messages = json.loads(json.dumps(media[f"chat-{case}"]))
        rest = [m for m in messages if m["role"] != "system"]
        if case != "audio":  # Anthropic takes no audio input
            body = AnthropicConfig().transform_request(
                model="claude-sonnet-4-5", messages=json.loads(json.dumps(messages)),
                optional_params={"max_tokens": 16}, litellm_params={}, headers={})
            out[f"anthropic-{case}"] = body["messages"]
        out[f"gemini-{case}"] = _gemini_convert_messages_with_history(messages=json.loads(json.dumps(rest)))
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
        "media.json": media_fixture(),
    }
    files["provider_parts.json"] = provider_fixture(files["media.json"])
    for name, data in files.items():
        (HERE / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {name}: {len(data)} cases")


if __name__ == "__main__":
    main()
