"""The final ParseError keeps every attempt's reason and raw completion (issue 12, item 8).

When the chat parse, its feedback retry and the JSON fallback all fail, the
error used to say only why the JSON fallback failed; the real cause (the chat
format's missing field) was lost. Now each attempt is listed in the message
and in ``.attempts``, and the errors are chained first to last.
"""

from __future__ import annotations

import pickle

import pytest

import dspex as dx
from dspex.errors import ParseError
from dspex.events import Retry
from dspex.testing import ScriptedLM


async def test_final_parse_error_lists_every_attempt_and_chains_them() -> None:
    lm = ScriptedLM(["garbage one", "garbage two", "still not json"])
    with pytest.raises(ParseError) as info:
        await dx.Predict("question -> answer").acall(question="q", lm=lm)
    err = info.value
    assert [(a, raw) for a, _, raw in err.attempts] == [
        ("ChatAdapter", "garbage one"), ("ChatAdapter", "garbage two"), ("JSONAdapter", "still not json")
    ]
    chat_reason, json_reason = err.attempts[0][1], err.attempts[2][1]
    assert "answer" in chat_reason
    assert chat_reason != json_reason
    assert "after 3 attempt(s): 1. ChatAdapter: " in err.message
    assert f"3. JSONAdapter: {json_reason.rstrip('.')}" in err.message
    assert chat_reason.rstrip(".") in err.message
    chain = []
    cause = err.__cause__
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    assert [c.raw for c in chain] == ["still not json", "garbage two", "garbage one"]
    assert all(isinstance(c, ParseError) for c in chain)
    assert err.raw == "still not json"
    assert err.adapter == "JSONAdapter"
    copy = pickle.loads(pickle.dumps(err))  # dead letters travel between processes
    assert copy.attempts == err.attempts
    assert copy.message == err.message


async def test_streamed_parse_retries_are_numbered_with_the_predictor() -> None:
    lm = ScriptedLM(["garbage one", "garbage two", '{"answer": "rescued"}'])
    with dx.context(lm=lm):
        events = [ev async for ev in dx.Predict("question -> answer").stream(question="q")]
    retries = [ev for ev in events if isinstance(ev, Retry)]
    assert [r.attempt for r in retries] == [1, 2]
    assert retries[0].reason.startswith("parse error: ")
    assert retries[1].reason.startswith("falling back to JSONAdapter")
    assert {r.predictor for r in retries} == {"self"}
    assert events[-1].outputs == {"answer": "rescued"}
