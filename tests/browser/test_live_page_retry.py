"""The live page honours ``retry`` events: a restarted stream never piles onto its partial text.

Streams are cut after their sixth token (inside the answer) (FakeLLMServer ``fault_after_tokens``)
and restarted by the predictor, which first sends a ``retry`` event. The page
must drop the partial fields then, so at every moment each card's answer
reads as a prefix of its final answer, never partial text followed by the
restarted stream. Headless Chromium over DevTools; skipped without Chromium.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from _poll import wait_until
from test_live_page import CHROMIUM, DevTools, _devtools_url

import dspex as dx
from dspex._ws._conn import open_connection
from dspex.flows import Flow
from dspex.lm import LM, RetryPolicy
from dspex.sinks import collect
from dspex.sinks._ws_sink import websocket
from dspex.sources import iterable
from dspex.testing import FakeLLMServer

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
    pytest.mark.reliability,
    pytest.mark.slow,
]

N = 8
ANSWERS = """JSON.stringify(Array.from(document.querySelectorAll('.card')).map(function (c) {
  var f = c.querySelector('.field[data-field="answer"] .ftext');
  return {id: c.dataset.itemId, state: c.dataset.state, answer: f ? f.textContent : null,
          retries: c.querySelectorAll('.notes .retry').length};
}))"""


async def _open_page(url: str, profile: Path, process_box: list[Any]) -> DevTools:
    assert CHROMIUM is not None  # the module is skipped without it
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
    process_box.append(await anyio.open_process(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    tools = DevTools(await open_connection(await _devtools_url(profile), max_size=2**26))
    target = await tools.call("Target.createTarget", url=url)
    attached = await tools.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
    tools.session = attached["sessionId"]
    return tools


async def test_page_drops_partial_fields_on_retry(tmp_path: Path) -> None:
    sink = websocket(replay=0)
    out = collect()
    snapshots: list[list[dict[str, Any]]] = []
    process_box: list[Any] = []

    async def records() -> Any:
        with anyio.fail_after(30):
            await sink.server.wait_for_client()  # the page is connected: it sees every event
        for i in range(N):
            yield {"id": f"q{i}", "question": f"What is item number {i}?"}

    async def watch(done: anyio.Event) -> None:
        await sink.started.wait()
        tools = await _open_page(sink.page_url, tmp_path / "profile", process_box)
        while not done.is_set():
            value = await tools.evaluate(ANSWERS)
            if value:
                snapshots.append(json.loads(value))
            await anyio.sleep(0.02)
        snapshots.append(json.loads(await tools.evaluate(ANSWERS)))
        await tools.conn.aclose()

    try:
        async with FakeLLMServer(seed=3, fault_after_tokens=6, p_truncate=0.5, token_delay_ms=15) as server:
            lm = LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-page-0000", cache=False,
                    retry=RetryPolicy(max_retries=8, base_delay=0.05, max_delay=0.1))
            flow = Flow("page-retry")
            flow.source(iterable(records())).map(dx.Predict("question -> answer"), concurrency=4).sink(out, sink)
            done = anyio.Event()
            with anyio.fail_after(90):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch, done)
                    report = await flow.run(lm=lm, progress=False)
                    # let the page receive the last events
                    await wait_until(lambda: snapshots and sum(c["state"] == "done" for c in snapshots[-1]) >= N,
                                     limit_s=30, step_s=0.05)
                    done.set()
            await lm.aclose()
    finally:
        for process in process_box:
            process.terminate()
            with anyio.move_on_after(10):
                await process.wait()
    assert report.items_out == N
    assert server.stats.faults.get("truncate", 0) >= 2
    final = {c["id"]: c for c in snapshots[-1]}
    assert sum(c["retries"] for c in final.values()) >= 2  # the page saw retry events
    for snap in snapshots:
        for card in snap:
            text, answer = (card["answer"] or "").strip(), final[card["id"]]["answer"].strip()
            assert answer.startswith(text), (card, answer)  # never partial + restarted text
