"""Image/Audio/File/Code inputs format exactly as DSPy 3.4.1 (golden/media.json, from make_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _golden import load_module
from PIL import Image as PILImage  # a dev dependency: the Pillow cases must run in CI

import dspex
from dspex.adapters import ChatAdapter, JSONAdapter

GOLDEN = Path(__file__).resolve().parent / "golden"
NS = SimpleNamespace(
    Signature=dspex.Signature, InputField=dspex.InputField, OutputField=dspex.OutputField, History=dspex.History,
    Image=dspex.Image, Audio=dspex.Audio, File=dspex.File, Code=dspex.Code, Document=dspex.Document,
    ToolCalls=dspex.ToolCalls, ToolCallResults=dspex.ToolCallResults,
)
ADAPTERS = {"chat": ChatAdapter, "json": JSONAdapter,
            "native": lambda: ChatAdapter(use_native_function_calling=True)}


cases = load_module(GOLDEN / "media_cases.py", "dspex_media_golden_cases")
FIXTURE = json.loads((GOLDEN / "media.json").read_text())


@pytest.mark.parametrize("key", sorted(k for k in FIXTURE if k != "parse"))
def test_media_format_matches_dspy(key: str, tmp_path: Path) -> None:
    kind, case = key.split("-", 1)
    built = {c: (s, d, i) for c, s, d, i in cases.format_cases(NS, tmp_path, PILImage)}
    sig_name, demos, inputs = built[case]
    signature = cases.SIGNATURES[sig_name](NS)
    assert ADAPTERS[kind]().format(signature, demos, inputs) == FIXTURE[key]


@pytest.mark.parametrize("entry", FIXTURE["parse"], ids=lambda e: e["completion"][:30])
def test_code_output_parses_like_dspy(entry: dict[str, Any]) -> None:
    signature = cases.SIGNATURES[entry["signature"]](NS)
    parsed = ChatAdapter().parse(signature, entry["completion"])
    expected = entry["result"]
    assert {k: type(v).__name__ for k, v in parsed.items()} == {k: v["type"] for k, v in expected.items()}
    assert {k: v.code for k, v in parsed.items()} == {"code": expected["code"]["repr"].split("code='")[1][:-2]
                                                       .encode().decode("unicode_escape")}
