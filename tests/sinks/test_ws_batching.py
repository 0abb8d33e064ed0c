"""Event batches: the engine hands ready events over at once, the sink frames each once."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
from _poll import wait_until
from _ws_helpers import real_connect, run_without_suspending
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

import dspex as dx
from dspex import events as ev
from dspex.flows import Flow
from dspex.sinks import Sink, websocket
from dspex.sinks._ws_clients import DETAIL, TOKEN, _Entry, _frame_into, server_frame
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from collections.abc import Sequence


def test_server_frame_is_what_websockets_sends() -> None:
    twin = ServerProtocol(state=State.OPEN)
    twin.send_text(b'{"type":"token_delta","text":"hi"}')
    assert server_frame(b'{"type":"token_delta","text":"hi"}') == twin.data_to_send()[0]
    big = b"x" * 70_000  # 64-bit length header
    twin.send_text(big)
    assert server_frame(big) == twin.data_to_send()[0]


def test_frames_are_reused_only_without_extensions() -> None:
    entries = [_Entry(b'{"n":1}', TOKEN, b"not a real frame"), _Entry(b'{"n":2}', DETAIL, None)]
    plain = ServerProtocol(state=State.OPEN)
    _frame_into(plain, entries)
    assert plain.data_to_send() == [b"not a real frame", server_frame(b'{"n":2}')]

    deflating = ServerProtocol(state=State.OPEN)
    deflating.extensions = [PerMessageDeflate(False, False, 15, 15)]
    twin = ServerProtocol(state=State.OPEN)
    twin.extensions = [PerMessageDeflate(False, False, 15, 15)]
    _frame_into(deflating, entries)
    for entry in entries:
        twin.send_text(entry.data)
    assert deflating.data_to_send() == twin.data_to_send()  # compressed by websockets, per client
    assert Frame(Opcode.TEXT, b"x").serialize(mask=False) == server_frame(b"x")


async def test_write_events_delivers_a_batch_in_order(anyio_backend: str) -> None:
    events = [ev.TokenDelta(text=f"t{i}", item_id="1", seq=i) for i in range(50)]
    events.append(ev.PredictionDone(outputs={"answer": "a"}, item_id="1", seq=50))
    received: list[list[dict[str, Any]]] = [[], []]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            async with websocket(metrics_interval=None) as sink:

                async def read(index: int) -> None:
                    async with real_connect(anyio_backend, sink.url) as conn:
                        async for message in conn:
                            received[index].append(json.loads(message))

                for index in range(2):
                    tg.start_soon(read, index)
                await wait_until(lambda: len(sink.server.sessions) == 2)
                run_without_suspending(sink.write_events(events[:30]))  # never blocks the engine
                run_without_suspending(sink.write_events(events[30:]))
                await wait_until(lambda: all(any(m["type"] == "prediction_done" for m in r) for r in received))
    for messages in received:
        assert [m.get("seq") for m in messages if m["type"] != "hello"] == list(range(51))
        assert messages[-1] == {**events[-1].to_wire(), "type": "prediction_done"}
    assert sink.statistics()["messages"] == 51
    assert sink.statistics()["items_done"] == 1


class _Recorder(Sink):
    """An event-aware sink that records what the engine hands it."""

    wants_events = True

    def __init__(self, batched: bool) -> None:
        self.name = f"recorder:{batched}"
        self.batches: list[list[Any]] = []
        self.records: list[Any] = []
        if batched:
            self.write_events = self._write_events  # type: ignore[method-assign]

    async def _write_events(self, events: Sequence[Any]) -> None:
        self.batches.append(list(events))

    async def write_event(self, event: Any) -> None:
        self.batches.append([event])

    async def write(self, records: Sequence[Any]) -> None:
        self.records.extend(records)

    async def flush(self) -> None:
        return None


async def test_engine_hands_events_to_both_kinds_of_sink() -> None:
    answers = [{"reasoning": f"{i} and {i} is {2 * i}.", "answer": str(2 * i)} for i in range(5)]
    lm = ScriptedLM(answers, stream_chunk_size=3)
    batched, single = _Recorder(batched=True), _Recorder(batched=False)
    flow = Flow("batches")
    rows = [{"id": f"q{i}", "question": f"{i}+{i}?"} for i in range(5)]
    flow.source(rows).map(dx.ChainOfThought("question -> answer"), concurrency=3).sink(batched, single)
    report = await flow.run(lm=lm, progress=False)
    assert report.items_out == 5
    assert all(len(batch) == 1 for batch in single.batches)
    flat = [e for batch in batched.batches for e in batch]
    assert [e.seq for e in flat] == [e.seq for batch in single.batches for e in batch]
    for item_id in {e.item_id for e in flat if e.item_id}:  # each item's events stay in order
        seqs = [e.seq for e in flat if e.item_id == item_id]
        assert seqs == sorted(seqs)
    done = [e for e in flat if e.type == "prediction_done"]
    assert sorted(e.outputs["answer"] for e in done) == sorted(r["answer"] for r in batched.records)
    assert len(done) == 5
    assert flat[-1].type == "run_done"
