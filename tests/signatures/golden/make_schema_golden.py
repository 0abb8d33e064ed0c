"""Record the provider schemas of ``schema_cases.py`` into ``schema.json`` (never collected).

Run from the worktree root after an intended change of output::

    .venv/bin/python tests/signatures/golden/make_schema_golden.py

Each value is stored as the exact ``json.dumps`` text (key order included), so
the test compares bytes, not just equal dicts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import schema_cases


def main() -> None:
    record = {
        case: {kind: json.dumps(value, ensure_ascii=False) for kind, value in outputs.items()}
        for case, outputs in schema_cases.all_outputs().items()
    }
    (HERE / "schema.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
