"""Faults after the first streamed token, with a WebSocket sink watching (issue 12, item 3).

An event-aware sink makes every module call stream. Resets, truncations and
malformed chunks that strike after the first token used to turn
~3 % of items into dead letters; now each such call restarts within the LM's
retry policy and the live client sees a ``retry`` event first. Checked: 0
dead letters, every item written exactly once, usage equal to what the server
served, and a client that drops an item's partial fields on ``retry`` ends
with exactly the final outputs. Real loopback LM server and WebSocket client.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import anyio
import pytest
from _ws_helpers import real_connect

import dspex as dx
from dspex.flows import Flow
from dspex.lm import LM, RetryPolicy
from dspex.sinks import collect, websocket
from dspex.sources import iterable
from dspex.testing import FakeLLMServer

pytestmark = pytest.mark.reliability

N = 150
# a stall after the first token is covered in tests/modules/test_stream_restart.py: its short
# read timeout would also cut slow answers on a loaded box, which the server has already counted
FAULTS = {"p_reset": 0.03, "p_truncate": 0.03, "p_malformed": 0.03}


def _client_view(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Rebuild each item's answer as a client honouring the contract does."""
    answers: dict[str, str] = {}
    for m in messages:
        if m["type"] == "retry":
            answers.pop(m["item_id"], None)  # discard the partial fields of that item
        elif m["type"] == "field_delta" and m["field"] == "answer":
            answers[m["item_id"]] = answers.get(m["item_id"], "") + m["text"]
    return {k: v.strip() for k, v in answers.items()}


async def test_no_dead_letters_from_faults_after_the_first_token(anyio_backend: str) -> None:
    sink = websocket(metrics_interval=0.5, queue_size=100_000)  # room for every event: nothing dropped
    out = collect()
    messages: list[dict[str, Any]] = []

    async def watch() -> None:
        await sink.started.wait()
        async with real_connect(anyio_backend, sink.url, max_size=None) as conn:
            messages.extend([json.loads(m) async for m in conn])

    async def records() -> Any:
        with anyio.fail_after(10):
            await sink.server.wait_for_client()  # the client sees every event from the start
        for i in range(N):
            yield {"id": f"q{i}", "question": f"What is item number {i}?"}

    async with FakeLLMServer(seed=5, fault_after_tokens=2, **FAULTS) as server:
        lm = LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-ws-fault-0000", cache=False,
                retry=RetryPolicy(max_retries=6, base_delay=0.001, max_delay=0.01))
        flow = Flow("stream-faults")
        qa = dx.Predict("question -> answer")
        flow.source(iterable(records())).map(qa, concurrency=16, on_error="dead_letter").sink(out, sink)
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                report = await flow.run(lm=lm, progress=False)
        await lm.aclose()
    faults = server.stats.faults
    assert sum(faults.values()) >= 5, faults
    assert report.dead_letter_count == 0
    assert report.items_failed == 0
    ids = Counter(r["id"] for r in out.items)
    assert sorted(ids) == sorted(f"q{i}" for i in range(N))
    assert set(ids.values()) == {1}
    assert report.usage["output_tokens"] == server.stats.completion_tokens
    retries = [m for m in messages if m["type"] == "retry"]
    assert retries
    assert all(m["item_id"] and m["predictor"] for m in retries)
    assert not any(m["type"] == "dropped" for m in messages)  # the client saw every event
    finals = {m["item_id"]: m["outputs"]["answer"] for m in messages if m["type"] == "prediction_done"}
    assert len(finals) == N
    assert _client_view(messages) == finals
