"""Provider schemas stay byte-identical to ``golden/schema.json``.

The golden file records, for every signature and tool of
``golden/schema_cases.py``, what each schema path produced before the schema
rewriting became one module: ``output_json_schema`` and ``tool_json_schema``
per provider, JSONAdapter's strict ``response_format``, and what the Gemini
provider sends for each of those. Values are compared as ``json.dumps`` text,
so key order counts too. Regenerate with ``golden/make_schema_golden.py``
only for an intended change, and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _golden import load_module

GOLDEN = Path(__file__).resolve().parent / "golden"


cases = load_module(GOLDEN / "schema_cases.py", "dspex_schema_golden_cases")
RECORDED: dict[str, dict[str, str]] = json.loads((GOLDEN / "schema.json").read_text(encoding="utf-8"))


def _dumped(outputs: dict[str, Any]) -> dict[str, str]:
    # The recorded messages name the cases module by its file name; this test loads it under another.
    text = {k: json.dumps(v, ensure_ascii=False) for k, v in outputs.items()}
    return {k: v.replace("dspex_schema_golden_cases.", "schema_cases.") for k, v in text.items()}


def test_every_case_is_recorded() -> None:
    expected = {f"signature:{n}" for n in cases.SIGNATURES} | {f"tool:{n}" for n in cases.TOOLS}
    assert set(RECORDED) == expected


@pytest.mark.parametrize("name", sorted(cases.SIGNATURES))
def test_signature_schemas_match_the_golden_file(name: str) -> None:
    assert _dumped(cases.signature_outputs(name)) == RECORDED[f"signature:{name}"]


@pytest.mark.parametrize("name", sorted(cases.TOOLS))
def test_tool_declarations_match_the_golden_file(name: str) -> None:
    assert _dumped(cases.tool_outputs(name)) == RECORDED[f"tool:{name}"]
