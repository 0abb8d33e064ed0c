"""The README's 30-second example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio

README = Path(__file__).resolve().parent.parent / "README.md"


def test_thirty_second_example_runs(capsys: Any) -> None:
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    anyio.run(namespace["watch"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Paris is France's capital. Paris"
    types = [line.split(" ", 1)[0] for line in out[1:]]
    assert "field_delta" in types
    assert types[-1] == "prediction_done"
    assert types.index("field_delta") < types.index("prediction_done")
