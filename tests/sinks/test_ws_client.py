"""websocket_client sink: push to a remote server, reconnect, re-send unacknowledged finals."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _poll import wait_until
from _ws_helpers import Receiver, run_without_suspending

from dspex import events as ev
from dspex.errors import ConfigError, SinkError
from dspex.sinks import websocket_client


def _finals(messages: list[dict[str, Any]]) -> list[str]:
    return [m["item_id"] for m in messages if m["type"] == "prediction_done"]


async def _push_items(sink: Any, items: range) -> None:
    for item in items:
        run_without_suspending(sink.write_event(ev.TokenDelta(text="t", item_id=str(item))))
        run_without_suspending(sink.write_event(ev.PredictionDone(outputs={"n": item}, item_id=str(item))))
        await anyio.sleep(0.002)


async def test_pushes_events_and_records_with_push_ids() -> None:
    receiver = Receiver(token="tok")
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        async with websocket_client(receiver.url, token="tok") as sink:
            await _push_items(sink, range(3))
            await sink.write([{"id": 9, "answer": "x"}])
            await receiver.wait_for(lambda: len(receiver.messages) == 7)
        tg.cancel_scope.cancel()
    assert [m["push_id"] for m in receiver.messages] == list(range(1, 8))
    assert [m["type"] for m in receiver.messages[:2]] == ["token_delta", "prediction_done"]
    assert receiver.messages[-1] == {"type": "record", "data": {"id": 9, "answer": "x"}, "push_id": 7}
    stats = sink.statistics()
    assert stats["acked"] == 4
    assert stats["unacked"] == 0
    assert stats["connections"] == 1


async def test_reconnects_and_resends_unacknowledged_finals() -> None:
    receiver = Receiver(drop_after=5)  # drops every connection after 5 messages
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        sink = websocket_client(receiver.url, backoff_initial=0.01, backoff_max=0.05)
        async with sink:
            await _push_items(sink, range(20))
            await receiver.wait_for(lambda: set(_finals(receiver.messages)) >= {str(i) for i in range(20)})
            receiver.drop_after = None
        tg.cancel_scope.cancel()
    finals = _finals(receiver.messages)
    assert receiver.connections > 1
    assert sink.statistics()["resent"] > 0
    assert sorted(set(finals), key=int) == [str(i) for i in range(20)]  # none lost
    first_seen = sorted({f: finals.index(f) for f in set(finals)}.items(), key=lambda kv: kv[1])
    assert [f for f, _ in first_seen] == [str(i) for i in range(20)]  # first arrivals in order


async def test_buffers_while_the_server_is_down() -> None:
    receiver = Receiver()
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        port = receiver.port
        tg.cancel_scope.cancel()  # the server is gone
    sink = websocket_client(f"ws://127.0.0.1:{port}/", replay_buffer=5, backoff_initial=0.01, backoff_max=0.05)
    async with anyio.create_task_group() as tg:
        async with sink:
            await _push_items(sink, range(8))  # 8 finals into a buffer of 5
            stats = sink.statistics()
            assert stats["evicted"] == 3
            assert stats["unsent"] == 5
            await tg.start(receiver.serve)  # the server comes back on the same port
            await receiver.wait_for(lambda: len(_finals(receiver.messages)) == 5)
        tg.cancel_scope.cancel()
    assert _finals(receiver.messages) == ["3", "4", "5", "6", "7"]


async def test_refused_credentials_surface_on_the_next_write() -> None:
    receiver = Receiver(token="right")
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        async with websocket_client(receiver.url, token="wrong", backoff_initial=0.01) as sink:
            await wait_until(lambda: sink.last_error is not None)
            with pytest.raises(SinkError) as err:
                await sink.write([{"a": 1}])
            assert err.value.status == 401
        tg.cancel_scope.cancel()
    assert receiver.refused == 1  # not retried


async def test_without_acks_a_written_final_counts_as_delivered() -> None:
    receiver = Receiver(ack=False)
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        async with websocket_client(receiver.url, acks=False) as sink:
            await _push_items(sink, range(5))
            await receiver.wait_for(lambda: len(_finals(receiver.messages)) == 5)
        tg.cancel_scope.cancel()
    assert sink.statistics()["unacked"] == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [(("http://x",), {}, "ws://"), (("ws://x",), {"replay_buffer": 0}, "replay_buffer"),
     (("ws://x",), {"retries": 3}, "unknown option")],
)
def test_bad_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        websocket_client(*args, **kwargs)
