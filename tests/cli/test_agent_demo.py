"""``dspex demo --agent``: a ReAct flow with a sync and an async tool, answers checked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from dspex.cli._agent_demo import _agent_demo, agent_tools, calculate
from dspex.cli._demo import load_questions

if TYPE_CHECKING:
    from pathlib import Path


async def test_agent_demo_answers_every_question_with_its_tool(tmp_path: Path) -> None:
    out = tmp_path / "agent.jsonl"
    assert await _agent_demo(False, 40, out, 0.0) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 40
    assert all(r["answer"] == r["expected"] for r in records)
    used = {r["trajectory"]["tool_name_0"] for r in records}
    assert used == {"lookup", "calculate"}
    assert all(r["trajectory"]["tool_name_1"] == "finish" for r in records)


async def test_the_demo_tools() -> None:
    assert await calculate("What is 9 \u00d7 10?") == 90  # the multiplication sign
    assert await calculate("7 / 2") == 3.5
    with pytest.raises(ValueError, match="no arithmetic"):
        await calculate("no numbers here")
    lookup, calc = agent_tools(load_questions(5), pause_s=0)
    assert lookup("Who wrote The Trial?") == "Franz Kafka"
    assert calc is calculate
    assert lookup("Unknown?") == "No entry for that question."


def test_cli_flag_runs_the_agent_demo(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "dspex", "demo", "--agent", "-n", "8", "--out", str(out)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert "ReAct(lookup, calculate)" in done.stdout
    assert "exact match vs the answer key: 8/8" in done.stdout
    assert len(out.read_text().splitlines()) == 8


@pytest.mark.slow
async def test_served_agent_demo_leaves_the_wait_for_a_page_out_of_its_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No page connects: the run starts after wait_s, and the summary says so instead of
    # counting that wait in duration and items/s (as the ChainOfThought demo already did).
    out = tmp_path / "agent.jsonl"
    assert await _agent_demo(True, 1, out, 0.2, 0) == 0
    printed = capsys.readouterr().out
    assert "live page: http://127.0.0.1:" in printed
    summary = next(line for line in printed.splitlines() if line.startswith("completed: 1/1 items in "))
    assert re.search(r" s \(\+ 0\.\d s waiting for the page\) \(", summary), summary
