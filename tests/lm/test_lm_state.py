"""Secrets, history, disk cache, pricing and dump_state of dx.LM."""

from __future__ import annotations

import json
import os
import pickle
import sys
import warnings

import anyio
import pytest
from _lm_fakes import FakeTransport, Reply, fixture_json, sequence

from dspex import _context
from dspex._util._clock import SteppingClock
from dspex._util._hashing import canonical_json, stable_hash
from dspex._util._redact import REDACTED, redact, redact_obj
from dspex.errors import AuthError
from dspex.lm import LM, CacheDisabledWarning, LMCache, LMUsage, Price, inspect_history, set_prices
from dspex.lm._cache import MemoryLRU, SingleFlight
from dspex.lm._history import GLOBAL_HISTORY
from dspex.lm._pricing import cost_of, get_price

KEY = "sk-proj-SECRETkey0123456789abcdef"
MSGS = [{"role": "user", "content": "What is 2+2?"}]


def test_redact_configured_key_and_key_shapes() -> None:
    text = f"bad key {KEY}; also sk-ant-api03-xyzxyzxyz, AIzaSyA1234567890abcdefghijk and Bearer abc.def.ghi123"
    out = redact(text, ["custom-secret-value"])
    assert KEY not in out
    assert "sk-ant" not in out
    assert "AIza" not in out
    assert "abc.def" not in out
    assert out.count(REDACTED) == 4
    assert redact("my custom-secret-value here", ["custom-secret-value", None, "ab"]) == f"my {REDACTED} here"
    assert redact_obj({"a": [KEY, 3], "b": {"c": "fine"}}) == {"a": [REDACTED, 3], "b": {"c": "fine"}}


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == b'{"a":[1,{"x":1,"y":2}],"b":1}'
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    assert stable_hash({"t": (1, 2)}) == stable_hash({"t": [1, 2]})
    with pytest.raises(TypeError, match="cannot hash"):
        canonical_json({"f": object()})


@pytest.mark.slow
async def test_key_never_leaks_into_artefacts(tmp_path, capsys) -> None:
    """History, cache DB bytes, repr, dump_state and a 401 error: no key anywhere."""
    echo_401 = Reply.json({"error": {"message": f"Incorrect API key provided: {KEY}."}}, 401)
    fake = FakeTransport(sequence(Reply.json(fixture_json("openai_chat.json")), echo_401))
    cache = LMCache(tmp_path / "cache")
    lm = LM("openai/gpt-4o-mini", api_key=KEY, api_base="http://127.0.0.1:9/v1", cache=cache,
            transport=fake, temperature=0.0)
    await lm.acall(MSGS)
    await lm.acall(MSGS)  # a hit: recorded in history too
    assert fake.sent[0].headers["authorization"] == f"Bearer {KEY}"  # it is sent, and only there
    with pytest.raises(AuthError) as info:
        await lm.acall(MSGS, cache=False)
    cache.close()
    artefacts = {
        "history": json.dumps(list(lm.history), default=str),
        "global": json.dumps(list(GLOBAL_HISTORY), default=str),
        "repr": repr(lm) + str(vars(lm).get("kwargs")),
        "dump_state": json.dumps(lm.dump_state()),
        "error": str(info.value) + repr(info.value) + info.value.message,
        "inspect": inspect_history(3),
        "cache_key": lm.cache_key(MSGS, {"temperature": 0.0}),
    }
    db = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir())
    assert b"Hello! How can I assist" in db  # the cache really holds the response
    for name, text in artefacts.items():
        assert KEY not in text, name
    assert KEY.encode() not in db
    assert "127.0.0.1:9" not in artefacts["dump_state"]
    capsys.readouterr()


def test_dump_state_and_from_state_roundtrip() -> None:
    lm = LM("anthropic/claude-sonnet-4-5", api_key="sk-ant-secret-0000", api_base="http://10.0.0.1/v1",
            num_retries=5, cache=False, temperature=0.3, max_tokens=100)
    state = lm.dump_state()
    assert state == {"model": "anthropic/claude-sonnet-4-5", "temperature": 0.3, "max_tokens": 100,
                     "num_retries": 5, "cache": False}
    assert lm.dump_state(include_api_base=True)["api_base"] == "http://10.0.0.1/v1"
    again = LM.from_state(state, api_key="k")
    assert again.kwargs == lm.kwargs
    assert again.model == lm.model
    assert again.cache is False
    clone = pickle.loads(pickle.dumps(lm))
    assert clone.kwargs == lm.kwargs
    assert clone.endpoint.config.retry.max_retries == 5


async def test_history_bounded_and_inspect(capsys) -> None:
    fake = FakeTransport(sequence(Reply.json(fixture_json("openai_chat.json"))))
    lm = LM("openai/gpt-4o-mini", api_key="sk-00000000", transport=fake, cache=False)
    with _context.context(max_history_size=3):
        for i in range(5):
            await lm.acall([{"role": "system", "content": "Be nice."}, {"role": "user", "content": f"q{i}"}])
    assert len(lm.history) == 3
    entry = lm.history[-1]
    assert entry["messages"][-1]["content"] == "q4"
    assert entry["outputs"] == ["Hello! How can I assist you today?"]
    assert entry["usage"]["input_tokens"] == 19
    assert entry["cost"] > 0
    assert entry["model"] == "openai/gpt-4o-mini"
    text = inspect_history(1)
    out = capsys.readouterr().out
    assert out == text
    assert "System message:\n\nBe nice." in text
    assert "User message:\n\nq4" in text
    assert "Response:\n\nHello! How can I assist you today?" in text
    assert "19 in, 10 out" in text
    with _context.context(disable_history=True):
        await lm.acall(MSGS)
    assert len(lm.history) == 3
    assert lm.history[-1]["messages"][-1]["content"] == "q4"


def test_memory_lru_is_bounded_by_bytes() -> None:
    lru = MemoryLRU(max_bytes=100)
    lru.put("a", b"x" * 40)
    lru.put("b", b"y" * 40)
    assert lru.get("a") == b"x" * 40  # a is now most recent
    lru.put("c", b"z" * 40)
    assert lru.get("b") is None
    assert lru.get("a") is not None
    assert lru.size_bytes <= 100
    lru.put("huge", b"h" * 500)
    assert lru.get("huge") is None
    assert len(lru) == 2


async def test_disk_cache_is_lazy_and_survives_memory_loss(tmp_path) -> None:
    directory = tmp_path / "lazy" / "cache"
    cache = LMCache(directory)
    assert not directory.exists()
    fake = FakeTransport(sequence(Reply.json(fixture_json("openai_chat.json"))))
    lm = LM("openai/gpt-4o-mini", api_key="sk-00000000", transport=fake, cache=cache)
    assert not directory.exists()
    await lm.acall(MSGS)
    assert cache.disk_path is not None
    assert cache.disk_path.exists()
    cache.memory.clear()
    hit = await lm.acall(MSGS)
    assert hit.usage.cache_hit
    assert len(fake.sent) == 1
    cache.close()


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root ignores directory permissions")
async def test_read_only_cache_dir_warns_once(tmp_path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        await _read_only_case(ro / "cache")
    finally:
        ro.chmod(0o700)


async def test_unwritable_cache_dir_warns_once(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    await _read_only_case(blocker / "cache")


async def _read_only_case(directory) -> None:
    fake = FakeTransport(sequence(Reply.json(fixture_json("openai_chat.json"))))
    lm = LM("openai/gpt-4o-mini", api_key="sk-00000000", transport=fake, cache=LMCache(directory))
    with pytest.warns(CacheDisabledWarning, match="disk cache disabled"):
        await lm.acall(MSGS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await lm.acall(MSGS)  # no second warning; the memory tier still serves
        await lm.acall(MSGS, temperature=1)
    assert len(fake.sent) == 2


async def test_single_flight_shares_errors_and_frees_key() -> None:
    flight = SingleFlight()
    gate = anyio.Event()
    runs = 0

    async def boom() -> None:
        nonlocal runs
        runs += 1
        await gate.wait()
        raise ValueError("shared failure")

    failures = []

    async def call() -> None:
        try:
            await flight.run("k", boom)
        except ValueError as exc:
            failures.append(str(exc))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert runs == 1
    assert failures == ["shared failure"] * 3

    async def ok() -> str:
        return "fresh"

    assert await flight.run("k", ok) == ("fresh", False)


def test_prices_lookup_overrides_and_cost() -> None:
    assert get_price("openai/gpt-4o-mini-2024-07-18") == get_price("gpt-4o-mini")
    assert get_price("openai/gpt-4o-2024-08-06").input == 2.5  # longest prefix, not gpt-4o-mini
    assert get_price("unknown/model") is None
    usage = LMUsage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=500_000)
    assert cost_of("openai/gpt-4o-mini", usage) == pytest.approx(0.5 * 0.15 + 0.5 * 0.075 + 0.60)
    assert cost_of("openai/gpt-4o-mini", usage.model_copy(update={"cache_hit": True})) == 0
    set_prices({"my-local-model": {"input": 1.0, "output": 2.0}})
    assert cost_of("openai/my-local-model", LMUsage(input_tokens=10**6, output_tokens=10**6)) == 3.0
    lm = LM("openai/gpt-4o-mini", api_key="k", prices={"gpt-4o-mini": Price(10.0, 20.0)})
    assert lm._priced(_resp(LMUsage(input_tokens=10**6))).usage.cost == 10.0
    from dspex.errors import ConfigError

    with pytest.raises(ConfigError, match="invalid price for model 'x'"):
        set_prices({"x": {"input": "cheap"}})


def _resp(usage: LMUsage):
    from dspex.lm import LMResponse

    return LMResponse(outputs=["x"], usage=usage)


async def test_stepping_clock_records_sleeps() -> None:
    clock = SteppingClock(5.0)
    await clock.sleep(1.5)
    clock.advance(0.5)
    assert clock.now() == 7.0
    assert clock.sleeps == [1.5]
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


async def test_default_cache_dir_from_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dspex.lm import _cache, configure_cache

    monkeypatch.setattr(_cache, "_default", None)  # restored after the test
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path / "envcache"))
    configure_cache()  # a fresh process-wide cache: resolves its directory on first use
    try:
        fake = FakeTransport(sequence(Reply.json(fixture_json("openai_chat.json"))))
        lm = LM("openai/gpt-4o-mini", api_key="sk-00000000", transport=fake)
        assert not (tmp_path / "envcache").exists()
        await lm.acall([{"role": "user", "content": "env cache"}])
        assert (tmp_path / "envcache" / "lm_cache.sqlite").exists()
        with _context.context(cache=False):
            await lm.acall([{"role": "user", "content": "env cache"}])
        assert len(fake.sent) == 2  # the cache setting turns caching off
    finally:
        _cache.default_cache().close()
