"""A flow with a WebSocket sink: clients see tokens, fields and final results live."""

from __future__ import annotations

import json
from typing import Any

import anyio
from _ws_helpers import real_connect

import dspex as dx
from dspex.flows import Flow
from dspex.sinks import collect
from dspex.sinks._ws_client import websocket_client
from dspex.sinks._ws_sink import websocket
from dspex.sources import iterable
from dspex.testing import ScriptedLM

N = 6


def _flow(*sinks: Any, gate: Any = None) -> Flow:
    qa = dx.ChainOfThought("question -> answer")
    flow = Flow("ws-flow")

    async def records() -> Any:
        if gate is not None:
            await gate()  # e.g. wait for a client, so that it sees every token
        for i in range(N):
            yield {"id": f"q{i}", "question": f"What is {i} + {i}?"}

    flow.source(iterable(records())).map(qa, concurrency=3).sink(*sinks)
    return flow


def _lm() -> ScriptedLM:
    answers = [{"reasoning": f"{i} plus {i} makes {2 * i}.", "answer": str(2 * i)} for i in range(N)]
    return ScriptedLM(answers, stream_chunk_size=4)


async def test_clients_watch_a_running_flow(anyio_backend: str) -> None:
    sink = websocket(metrics_interval=0.05)
    out = collect()
    messages: list[dict[str, Any]] = []
    codes: list[int | None] = []

    async def watch() -> None:
        await sink.started.wait()
        async with real_connect(anyio_backend, sink.url) as conn:
            messages.extend([json.loads(m) async for m in conn])
            codes.append(conn.close_code)

    async def client_connected() -> None:
        while not sink.server.sessions:
            await anyio.sleep(0.005)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            report = await _flow(out, sink, gate=client_connected).run(lm=_lm(), progress=False)
    assert report.items_out == N and len(out.items) == N
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "hello" and "run_done" in kinds and codes == [1001]
    finals = {m["item_id"]: m["outputs"] for m in messages if m["type"] == "prediction_done"}
    assert len(finals) == N
    records = [m["data"] for m in messages if m["type"] == "record"]
    assert sorted(r["id"] for r in records) == [f"q{i}" for i in range(N)]
    for item_id, outputs in finals.items():  # deltas of each field add up to the final text
        for field in ("reasoning", "answer"):
            text = "".join(m["text"] for m in messages if m["type"] == "field_delta"
                           and m["item_id"] == item_id and m["field"] == field)
            assert text.strip() == str(outputs[field])
    assert any(m["type"] == "metrics" and m["values"]["items_done"] > 0 for m in messages)


async def test_flow_pushes_to_a_remote_server() -> None:
    from _ws_helpers import Receiver

    receiver = Receiver()
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        client = websocket_client(receiver.url)
        report = await _flow(client).run(lm=_lm(), progress=False)
        tg.cancel_scope.cancel()
    assert report.items_out == N
    kinds = [m["type"] for m in receiver.messages]
    assert kinds.count("record") == N and kinds.count("prediction_done") == N and kinds[-1] == "run_done"
    assert client.statistics()["unacked"] == 0
