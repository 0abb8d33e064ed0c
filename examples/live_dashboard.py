"""A live dashboard: a flow's tokens, answers and metrics on a web page, offline.

    python examples/live_dashboard.py            # open the printed URL in a browser
    python examples/live_dashboard.py --watch    # no browser: a WebSocket client reads the feed

The flow answers ``data/questions.jsonl`` with ``ChainOfThought`` on the fake
LM server (slowed down so tokens can be watched) and adds a WebSocket sink:
it serves the live page on ``/`` and every event (token deltas, fields,
predictions, records, metrics, the final report) on the same port, behind a
random bearer token carried by the printed URL. The sources start once a page
connects (``wait_for_client_s``) and the page stays served after the run while
it is open (``linger_s``). ``--watch`` connects a client of its own instead and
prints what a dashboard receives.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

import dspex as dx
from dspex._ws._conn import open_connection  # the WebSocket client dspex's own tests use
from dspex.testing import FakeLLMServer

DATA = Path(__file__).with_name("data") / "questions.jsonl"
_QUESTION = re.compile(r"\[\[ ## question ## \]\]\s*\n(.*?)\s*(?:\n\n|$)", re.S)


def responder(expected: dict[str, str]) -> Any:
    """Answer from the answer key, in the ChatAdapter format (a stand-in model)."""

    def respond(request: dict[str, Any]) -> str:
        prompt = "\n".join(str(m.get("content", "")) for m in request["messages"])
        question = _QUESTION.findall(prompt)[-1].strip()
        return (f"[[ ## reasoning ## ]]\nRecalling what I know about: {question}\n\n"
                f"[[ ## answer ## ]]\n{expected.get(question, 'unknown')}\n\n[[ ## completed ## ]]")

    return respond


async def watch(live: Any, token: str) -> Counter[str]:
    """Read the feed as a dashboard would, until the run's final report."""
    await live.started.wait()
    seen: Counter[str] = Counter()
    conn = await open_connection(live.url, token=token)
    try:
        while (text := await conn.recv()) is not None:
            message = json.loads(text)
            seen[message["type"]] += 1
            if message["type"] == "run_done":
                seen[f"status {message['report']['status']}"] += 1
                break
    finally:
        await conn.aclose()
    return seen


async def main(port: int, wait_s: float, linger_s: float, watching: bool) -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    token = secrets.token_urlsafe(16)
    live = dx.sinks.websocket(port=port, token=token, wait_for_client_s=wait_s,
                              linger_s=0 if watching else linger_s, metrics_interval=0.5)
    flow = dx.Flow("dashboard")
    (flow.source(rows)
         .map(dx.ChainOfThought("question -> answer"), concurrency=4, name="answer")
         .sink(live, dx.sinks.collect()))
    seen: Counter[str] = Counter()
    async with FakeLLMServer(responder=responder({r["question"]: r["expected"] for r in rows}),
                             latency_ms=60, token_delay_ms=15) as server, anyio.create_task_group() as tg:

        async def announce() -> None:
            await live.started.wait()
            print(f"live page: {live.page_url}?token={token}", flush=True)

        async def client() -> None:
            seen.update(await watch(live, token))

        tg.start_soon(announce)
        if watching:
            tg.start_soon(client)
        lm = dx.LM("openai/fake", api_base=f"{server.url}/v1", api_key="offline", cache=False)
        report = await flow.run(lm=lm, progress=False, sink_timeout_s=30 + linger_s)
        await lm.aclose()
    print(f"{report.status}: {report.items_out}/{report.items_in} answered")
    if watching:
        print(f"dashboard saw {seen['record']} records, {seen['prediction_done']} predictions, "
              f"{'token deltas' if seen['token_delta'] or seen['field_delta'] else 'no deltas'}, "
              f"{'metrics' if seen['metrics'] else 'no metrics'}, run {'completed' if seen['status completed'] else '?'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A live dashboard of a flow, offline.")
    parser.add_argument("--port", type=int, default=8765, help="port of the page and feed (0: any free one)")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait for a page before starting")
    parser.add_argument("--linger", type=float, default=60.0, help="seconds to keep the page up after the run")
    parser.add_argument("--watch", action="store_true", help="read the feed with a client instead of a browser")
    args = parser.parse_args()
    anyio.run(main, args.port, args.wait, args.linger, args.watch)
