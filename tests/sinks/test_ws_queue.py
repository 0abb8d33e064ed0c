"""ClientQueue: the per-client bounded queue and its drop policy (no sockets)."""

from __future__ import annotations

import json

import pytest

from dspex.sinks._ws_clients import DETAIL, FINAL, TOKEN, ClientQueue, tier_of


def _msg(kind: str, n: int) -> bytes:
    return json.dumps({"type": kind, "n": n}).encode()


def _decode(batch: list[bytes]) -> list[tuple[str, int | None]]:
    out = []
    for data in batch:
        message = json.loads(data)
        out.append((message["type"], message.get("n", message.get("count"))))
    return out


@pytest.mark.parametrize(
    ("kind", "tier"),
    [("token_delta", TOKEN), ("field_delta", TOKEN), ("field_done", DETAIL), ("metrics", DETAIL),
     ("usage", DETAIL), ("prediction_done", FINAL), ("item_error", FINAL), ("run_done", FINAL),
     ("record", FINAL), (None, DETAIL)],
)
def test_tiers(kind: str | None, tier: int) -> None:
    assert tier_of(kind) == tier


async def test_fifo_when_not_full() -> None:
    queue = ClientQueue(10)
    for n in range(5):
        assert queue.push(_msg("token_delta", n), TOKEN)
    assert len(queue) == 5
    assert _decode(queue.pop_batch()) == [("token_delta", n) for n in range(5)]
    assert len(queue) == 0
    assert queue.dropped == 0


async def test_full_queue_evicts_tokens_before_details_and_keeps_finals() -> None:
    queue = ClientQueue(4)
    queue.push(_msg("token_delta", 0), TOKEN)
    queue.push(_msg("field_done", 1), DETAIL)
    queue.push(_msg("token_delta", 2), TOKEN)
    queue.push(_msg("prediction_done", 3), FINAL)
    assert queue.behind_since is None
    assert queue.push(_msg("prediction_done", 4), FINAL)  # evicts token 0
    assert queue.push(_msg("item_error", 5), FINAL)  # evicts token 2
    assert queue.push(_msg("run_done", 6), FINAL)  # evicts detail 1
    assert queue.behind_since is not None
    assert queue.dropped == 3
    batch = _decode(queue.pop_batch())
    assert batch[0] == ("dropped", 3)
    assert batch[1:] == [("prediction_done", 3), ("prediction_done", 4), ("item_error", 5), ("run_done", 6)]


async def test_token_dropped_when_nothing_lower_is_queued() -> None:
    queue = ClientQueue(2)
    queue.push(_msg("prediction_done", 0), FINAL)
    queue.push(_msg("prediction_done", 1), FINAL)
    assert queue.push(_msg("token_delta", 2), TOKEN)  # dropped, not refused
    assert queue.push(_msg("metrics", 3), DETAIL)
    assert queue.dropped == 2
    assert [n for _, n in _decode(queue.pop_batch())] == [2, 0, 1]


async def test_final_refused_when_queue_is_all_finals() -> None:
    queue = ClientQueue(2)
    assert queue.push(_msg("prediction_done", 0), FINAL)
    assert queue.push(_msg("prediction_done", 1), FINAL)
    assert not queue.push(_msg("prediction_done", 2), FINAL)
    assert [n for _, n in _decode(queue.pop_batch())] == [0, 1]


async def test_same_tier_overflow_drops_the_newcomer() -> None:
    queue = ClientQueue(4)
    for n in range(6):
        queue.push(_msg("token_delta", n), TOKEN)
    assert queue.behind_since is not None
    assert queue.dropped == 2
    assert _decode(queue.pop_batch(limit=2)) == [("dropped", 2), ("token_delta", 0)]
    assert len(queue) == 3
    assert queue.behind_since is not None  # 3 queued: still more than half full
    assert _decode(queue.pop_batch(limit=1)) == [("token_delta", 1)]
    assert queue.behind_since is None  # drained to half: caught up
    assert _decode(queue.pop_batch()) == [("token_delta", 2), ("token_delta", 3)]


async def test_peak_and_capacity_floor() -> None:
    queue = ClientQueue(0)
    assert queue.capacity == 1
    queue.push(_msg("token_delta", 0), TOKEN)
    queue.push(_msg("token_delta", 1), TOKEN)
    assert queue.peak == 1
    assert _decode(queue.pop_batch()) == [("dropped", 1), ("token_delta", 0)]
    assert queue.pop_batch() == []
