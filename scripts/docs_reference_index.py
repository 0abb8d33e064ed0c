#!/usr/bin/env python3
"""Rewrite docs/reference/index.md from ``dspex.__all__`` (run after adding a public name).

    .venv/bin/python scripts/docs_reference_index.py

Each row links the name to where the reference renders it: its subpackage path
from dspex's lazy-import map (``dx.Predict`` -> ``dspex.modules.Predict``).
``tests/docs/test_site.py`` checks that the table and ``dspex.__all__`` agree
and that every target exists in the built site.
"""

from __future__ import annotations

from pathlib import Path

import dspex

INDEX = Path(__file__).resolve().parent.parent / "docs" / "reference" / "index.md"
PAGES = ("signatures", "adapters", "modules", "lm", "flows", "operators", "backpressure", "sources", "sinks",
         "store", "tools", "evaluate", "optimizers", "traces", "events", "telemetry", "errors", "testing")  # fmt: skip


def target(name: str) -> str:
    """Return the documented path of ``dspex.NAME``."""
    module, attr = dspex._LAZY[name]
    return "dspex" + module + (f".{attr}" if attr else "")


def render() -> str:
    """Return the index page's Markdown."""
    lines = [
        "# API reference index",
        "",
        "Every public name of `dspex` (`dspex.__all__`), with the page that documents it.",
        "`tests/docs/test_site.py` checks that this table and `dspex.__all__` agree and that every",
        "entry resolves in the built reference (`scripts/docs_reference_index.py` rewrites it).",
        "`dspex.__version__` is the package version string.",
        "",
        "| name | documented as |",
        "| --- | --- |",
    ]
    lines += [f"| `dx.{n}` | [`{target(n)}`][{target(n)}] |" for n in dspex.__all__ if n != "__version__"]
    pages = ", ".join(f"[`dspex.{m}`]({m}.md)" for m in PAGES)
    return "\n".join([*lines, "", f"Public subpackages: {pages}.", ""])


if __name__ == "__main__":
    INDEX.write_text(render())
    print(f"wrote {INDEX}")
