"""A flow with a WebSocket sink: clients see tokens, fields and final results live."""

from __future__ import annotations

import json
from typing import Any

import anyio
from _ws_helpers import real_connect

import dspex as dx
from dspex.flows import Flow
from dspex.sinks import collect, websocket, websocket_client
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
        await sink.server.wait_for_client()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            report = await _flow(out, sink, gate=client_connected).run(lm=_lm(), progress=False)
    assert report.items_out == N
    assert len(out.items) == N
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "hello"
    assert "run_done" in kinds
    assert codes == [1001]
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
    assert kinds.count("record") == N
    assert kinds.count("prediction_done") == N
    assert kinds[-1] == "run_done"
    assert client.statistics()["unacked"] == 0


def double(x: int) -> int:
    """Double x."""
    return 2 * x


def _agent_answers(n: int) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    for i in range(n):
        answers += [
            {"next_thought": "double it", "next_tool_name": "double", "next_tool_args": {"x": i}},
            {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "the tool said so", "answer": str(2 * i)},
        ]
    return answers


async def test_react_tool_steps_reach_event_sinks_and_the_wire(anyio_backend: str) -> None:
    """ToolCall/ToolResult events flow from a ReAct map node to a WebSocket client, per item."""
    sink = websocket()
    out = collect()
    messages: list[dict[str, Any]] = []

    async def watch() -> None:
        await sink.started.wait()
        async with real_connect(anyio_backend, sink.url) as conn:
            messages.extend([json.loads(m) async for m in conn])

    async def client_connected() -> None:
        await sink.server.wait_for_client()

    async def records() -> Any:
        await client_connected()
        for i in range(3):
            yield {"id": f"q{i}", "question": f"Double {i}?"}

    flow = Flow("agent")
    # concurrency=1: the scripted answers are consumed in order
    flow.source(iterable(records())).map(dx.ReAct("question -> answer", tools=[double]), concurrency=1).sink(out, sink)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            report = await flow.run(lm=ScriptedLM(_agent_answers(3)), progress=False)
    assert report.items_out == 3
    assert [r["answer"] for r in out.items] == ["0", "2", "4"]
    calls = [m for m in messages if m["type"] == "tool_call"]
    results = [m for m in messages if m["type"] == "tool_result"]
    args = {m["item_id"]: m["args"]["x"] for m in calls if m["name"] == "double"}
    doubled = {m["item_id"]: m["result"] for m in results if m["name"] == "double"}
    assert len(args) == 3
    assert all(doubled[item] == 2 * x for item, x in args.items())
    assert sorted(args.values()) == [0, 1, 2]
    assert sorted(m["item_id"] for m in calls if m["name"] == "finish") == sorted(args)
    assert all(m["duration_s"] >= 0 and m["node"] for m in results)
    # Each message validates against the shipped wire schema's event types.
    from dspex.events import event_from_wire

    assert all(event_from_wire(m).type == m["type"] for m in calls + results)
