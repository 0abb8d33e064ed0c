"""The live page during ``dspex demo --agent``: each tool call is a collapsible step in its card.

Runs the agent demo (ReAct with a sync and an async tool on the fake LM
server, WebSocket sink) and reads the DOM of headless Chromium over the
DevTools protocol. Skipped when Chromium is not installed.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from test_live_page import CHROMIUM, DevTools, _devtools_url, _free_port

from dspex._ws._conn import open_connection
from dspex.cli._agent_demo import _agent_demo
from dspex.cli._demo import load_questions

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"), pytest.mark.slow]

N = 4
SNAPSHOT = """JSON.stringify({
  status: document.getElementById('status').dataset.state,
  cards: Array.from(document.querySelectorAll('.card')).map(function (c) {
    var answer = c.querySelector('.field[data-field="answer"] .ftext');
    return {state: c.dataset.state, answer: answer ? answer.textContent : null,
      steps: Array.from(c.querySelectorAll('.steps > .step')).map(function (s) {
        return {tag: s.tagName, tool: s.dataset.tool, state: s.dataset.state, open: s.open,
                summary: s.querySelector('summary').textContent,
                result: s.querySelector('.step-result').textContent};
      })};
  })
})"""


async def _watch(page_url: str, profile: Path) -> dict[str, Any]:
    args = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
            "--window-size=1280,900", "about:blank"]  # fmt: skip
    process = await anyio.open_process(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tools = DevTools(await open_connection(await _devtools_url(profile), max_size=2**26))
        target = await tools.call("Target.createTarget", url=page_url)
        attached = await tools.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        tools.session = attached["sessionId"]
        with anyio.fail_after(60):
            while True:
                value = await tools.evaluate(SNAPSHOT)
                last = json.loads(value) if value else {"cards": []}
                cards = last["cards"]
                if len(cards) == N and all(c["state"] == "done" and c["answer"] for c in cards):
                    break
                await anyio.sleep(0.1)
        await tools.conn.aclose()
        return last
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_agent_tool_calls_show_as_collapsible_steps(tmp_path: Path) -> None:
    port = _free_port()
    results: list[int] = []
    final: dict[str, Any] = {}

    async def run_demo() -> None:
        results.append(await _agent_demo(True, N, tmp_path / "answers.jsonl", 60.0, port))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_demo)
        final = await _watch(f"http://127.0.0.1:{port}/", tmp_path / "profile")
    assert results == [0]
    expected = {row["expected"] for row in load_questions(N)}
    assert {c["answer"] for c in final["cards"]} == expected
    for card in final["cards"]:
        steps = card["steps"]
        assert [s["tag"] for s in steps] == ["DETAILS", "DETAILS"]
        assert not any(s["open"] for s in steps)
        assert steps[0]["tool"] in ("lookup", "calculate")
        assert steps[1]["tool"] == "finish"
        assert all(s["state"] == "ok" for s in steps)
        assert card["answer"] in steps[0]["result"]
        assert steps[0]["summary"].startswith("\u2192 " + steps[0]["tool"])
    tools_used = {c["steps"][0]["tool"] for c in final["cards"]}
    assert tools_used == {"lookup", "calculate"}  # both the sync and the async tool ran
