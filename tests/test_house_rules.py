"""House rules that CI enforces: module size and backend neutrality (STYLE.md)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "dspex"
HARD_LIMIT = 600
RAW_IMPORT = re.compile(r"^\s*(import (asyncio|trio|sniffio)\b|from (asyncio|trio|sniffio)[ .])", re.M)
ALLOWED_RAW = {"# asyncio-only:"}  # a module may opt out with this marker comment and a reason


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def test_modules_under_hard_limit() -> None:
    too_big = {str(p.relative_to(SRC)): n for p in _sources() if (n := len(p.read_text().splitlines())) > HARD_LIMIT}
    assert not too_big, f"modules over {HARD_LIMIT} lines (split by concept): {too_big}"


def test_no_raw_asyncio_or_trio_imports() -> None:
    offenders = []
    for path in _sources():
        text = path.read_text()
        if RAW_IMPORT.search(text) and not any(marker in text for marker in ALLOWED_RAW):
            offenders.append(str(path.relative_to(SRC)))
    assert not offenders, f"use anyio, not asyncio/trio/sniffio, in: {offenders}"
