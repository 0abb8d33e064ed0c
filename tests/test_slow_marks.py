"""The ``slow`` marker: the table of slow tests elsewhere names real tests, and marks them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from _slow import SLOW_ELSEWHERE

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("path", sorted(SLOW_ELSEWHERE))
def test_every_listed_slow_test_exists(path: str) -> None:
    tree = ast.parse((TESTS / path).read_text(encoding="utf-8"))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert not set(SLOW_ELSEWHERE[path]) - defined, f"{path} defines none of these (renamed?)"


def _collected(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
                         capture_output=True, text=True, cwd=TESTS.parent, timeout=120, check=False)
    return [line for line in out.stdout.splitlines() if "::" in line]


def test_the_table_marks_its_tests_so_fast_runs_leave_them_out() -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow",
                          "tests/sinks/test_ws_broadcast.py"],
                         capture_output=True, text=True, cwd=TESTS.parent, timeout=120, check=False)
    collected = [line for line in out.stdout.splitlines() if "::" in line]
    assert collected, out.stdout + out.stderr  # the file's other tests stay in
    assert not [line for line in collected if "test_200_clients_with_20_slow_ones" in line]
