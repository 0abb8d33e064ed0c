"""Content parts reach Anthropic and Gemini as DSPy 3.4.1 (through litellm) sends them.

``golden/provider_parts.json`` holds litellm's Anthropic ``messages`` and
Gemini ``contents`` for DSPy's own chat-adapter messages (``media.json``),
written by ``tests/adapters/golden/make_golden.py``. Gemini accepts its JSON
fields in camelCase or snake_case; dspex writes camelCase, litellm snake_case,
so keys are compared in snake_case. Anthropic accepts a plain string where
litellm writes a single text block; those are compared as blocks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dspex.lm.providers._anthropic import _convert as anthropic_convert
from dspex.lm.providers._gemini import _convert as gemini_convert

GOLDEN = Path(__file__).resolve().parents[1] / "adapters" / "golden"
EXPECTED = json.loads((GOLDEN / "provider_parts.json").read_text())
MEDIA = json.loads((GOLDEN / "media.json").read_text())


def _snake(node: Any) -> Any:
    if isinstance(node, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): _snake(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_snake(v) for v in node]
    return node


def _blocks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**m, "content": [{"type": "text", "text": m["content"]}] if isinstance(m["content"], str)
             else m["content"]} for m in messages]


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_provider_parts_match_dspy_via_litellm(key: str) -> None:
    provider, case = key.split("-", 1)
    messages = MEDIA[f"chat-{case}"]
    if provider == "anthropic":
        _, converted = anthropic_convert(messages)
        assert _blocks(converted) == _blocks(EXPECTED[key])
    else:
        _, contents = gemini_convert(messages)
        assert _snake(contents) == EXPECTED[key]


def test_anthropic_refuses_audio_parts_with_a_typed_error() -> None:
    from dspex.errors import ConfigError

    with pytest.raises(ConfigError, match="no audio input"):
        anthropic_convert(MEDIA["chat-audio"])
