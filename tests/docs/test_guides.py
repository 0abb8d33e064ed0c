"""Every ```python block in docs/*.md runs, in page order, on both anyio backends.

A page's blocks share one namespace (a guide builds on its earlier blocks) and
run in a fresh temporary working directory. A block whose code has a top-level
``await`` runs as a coroutine under ``anyio.run`` with the backend under test;
other blocks run as plain code. A block right after the line
``<!-- docs: no-run -->`` is skipped (DSPy code in the migration guide, commands
that need a real provider); the marker is meant to be rare, and a test counts it.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
NO_RUN = "<!-- docs: no-run -->"
_FENCE = re.compile(r"^(?P<marker><!-- docs: no-run -->\n)?```python\n(?P<code>.*?)^```$", re.M | re.S)
PAGES = sorted(p.name for p in DOCS.glob("*.md"))


def _blocks(page: str) -> list[tuple[int, str, bool]]:
    """(line, code, runs) for every python block of a page."""
    text = (DOCS / page).read_text()
    return [
        (text.count("\n", 0, m.start("code")) + 1, m.group("code"), m.group("marker") is None)
        for m in _FENCE.finditer(text)
    ]


def _run_block(code: str, filename: str, namespace: dict[str, Any], backend: str) -> None:
    compiled = compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if compiled.co_flags & inspect.CO_COROUTINE:

        async def main() -> None:
            await eval(compiled, namespace)

        anyio.run(main, backend=backend)
    else:
        exec(compiled, namespace)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("page", [p for p in PAGES if any(runs for _, _, runs in _blocks(p))])
def test_guide_code_runs(page: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"docs_{page[:-3].replace('-', '_')}"}
    for line, code, runs in _blocks(page):
        if runs:
            # Padding keeps tracebacks' line numbers those of the Markdown file.
            _run_block("\n" * (line - 1) + code, str(DOCS / page), namespace, backend)



def test_guides_have_code_and_few_skipped_blocks() -> None:
    blocks = {page: _blocks(page) for page in PAGES}
    without_code = [p for p, bs in blocks.items() if not any(runs for _, _, runs in bs)]
    assert [p for p in without_code if p != "index.md"] == [], "guides without a runnable block"
    skipped = sum(not runs for bs in blocks.values() for _, _, runs in bs)
    total = sum(len(bs) for bs in blocks.values())
    assert skipped <= total // 4, f"{skipped} of {total} blocks are marked no-run"
