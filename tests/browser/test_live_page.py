"""The live page in headless Chromium: streamed tokens, final answers and metrics.

Runs the demo flow (ChainOfThought on the fake LM server, WebSocket sink) and
drives Chromium over the DevTools protocol (a WebSocket, spoken with dspex's own
client) to read the DOM while the flow streams, then saves a screenshot.
Skipped when Chromium is not installed.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
from itertools import count
from pathlib import Path
from typing import Any

import anyio
import pytest
from _poll import wait_until

from dspex._ws._conn import WebSocketConnection, open_connection
from dspex.cli._demo import _demo, load_questions

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and Path("/usr/bin/chromium").exists():
    CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"), pytest.mark.slow]

N = 6
SNAPSHOT = """JSON.stringify({
  status: document.getElementById('status').dataset.state,
  done: document.getElementById('m-done').textContent,
  tokens: document.getElementById('m-tokens').textContent,
  inflight: document.getElementById('m-inflight').textContent,
  cards: Array.from(document.querySelectorAll('.card')).map(function (c) {
    var fields = {}, order = [], raw = c.querySelector('.raw');
    c.querySelectorAll('.field').forEach(function (f) {
      fields[f.dataset.field] = f.querySelector('.ftext').textContent;
      order.push(f.dataset.field);
    });
    return {id: c.dataset.itemId, state: c.dataset.state, streamed: Number(c.dataset.streamed), fields: fields,
            order: order, raw: raw && !raw.hidden ? raw.textContent : ''};
  })
})"""


class DevTools:
    """A minimal Chrome DevTools Protocol client over one WebSocket."""

    def __init__(self, conn: WebSocketConnection) -> None:
        self.conn = conn
        self.ids = count(1)
        self.session: str | None = None

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"id": next(self.ids), "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        await self.conn.send(json.dumps(message))
        while True:  # skip events until our answer
            text = await self.conn.recv()
            assert text is not None, "DevTools connection closed"
            reply = json.loads(text)
            if reply.get("id") == message["id"]:
                assert "error" not in reply, reply
                return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _devtools_url(profile: Path) -> str:
    marker = profile / "DevToolsActivePort"
    await wait_until(lambda: marker.exists() and len(marker.read_text().splitlines()) >= 2, limit_s=30,
                     step_s=0.05)
    port, path = marker.read_text().splitlines()[:2]
    return f"ws://127.0.0.1:{port}{path}"


async def _watch_page(page_url: str, profile: Path, shot: Path) -> list[dict[str, Any]]:
    assert CHROMIUM is not None  # the module is skipped without it
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
            "--window-size=1280,900", "about:blank"]
    process = await anyio.open_process(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    snapshots: list[dict[str, Any]] = []
    try:
        tools = DevTools(await open_connection(await _devtools_url(profile), max_size=2**26))
        target = await tools.call("Target.createTarget", url=page_url)
        attached = await tools.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        tools.session = attached["sessionId"]
        with anyio.fail_after(60):
            while True:
                value = await tools.evaluate(SNAPSHOT)
                if value:
                    snapshots.append(json.loads(value))
                    last = snapshots[-1]
                    if last["status"] == "finished" and last["done"] == str(N) and all(
                        c["state"] == "done" for c in last["cards"]
                    ):
                        break
                await anyio.sleep(0.1)
        png = await tools.call("Page.captureScreenshot", format="png")
        await anyio.Path(shot).write_bytes(base64.b64decode(png["data"]))
        await tools.conn.aclose()
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
    return snapshots


async def test_live_page_streams_answers(tmp_path: Path) -> None:
    port = _free_port()
    results: list[int] = []
    snapshots: list[dict[str, Any]] = []

    token = "page-token-0123456789"

    async def run_demo() -> None:
        results.append(await _demo(True, N, tmp_path / "answers.jsonl", 60.0, port, token))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_demo)
        # the page reads the token from its own URL and sends it with the WebSocket upgrade
        page = f"http://127.0.0.1:{port}/?token={token}"
        snapshots = await _watch_page(page, tmp_path / "profile", tmp_path / "page.png")
    assert results == [0]
    final = snapshots[-1]
    expected = {row["expected"] for row in load_questions(N)}
    answers = {card["fields"]["answer"] for card in final["cards"]}
    assert answers == expected  # the final predictions are on the page
    assert all(card["streamed"] > 0 for card in final["cards"])  # text arrived as deltas
    assert all(card["fields"]["reasoning"] for card in final["cards"])
    streaming = [c for snap in snapshots for c in snap["cards"] if c["state"] == "streaming" and c["streamed"]]
    assert streaming, "the page never showed an answer while it was being typed"
    assert final["done"] == str(N)
    assert int(final["tokens"]) > 0
    # no adapter markers in what a card shows, fields in the signature's order, no call left in flight
    assert not [c["raw"] for snap in snapshots for c in snap["cards"] if "[[" in c["raw"]]
    assert all(card["order"] == ["reasoning", "answer"] for card in final["cards"])
    assert final["inflight"] == "0"
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
