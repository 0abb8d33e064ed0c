"""dx.LM end to end over an in-test transport: calls, streams, retries, cache."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
import pytest
from _lm_fakes import FakeTransport, Reply, fixture_bytes, fixture_json, sequence

from dspex._util._clock import SteppingClock
from dspex.errors import (
    AuthError,
    CircuitOpenError,
    ConfigError,
    InputError,
    LMTimeoutError,
    LMTransportError,
    RateLimitError,
    ServerError,
)
from dspex.lm import LM, BaseLM, CircuitBreakerPolicy, LMCache, RateLimit

if TYPE_CHECKING:
    from dspex.lm import Transport

MSGS = [{"role": "user", "content": "Say hello"}]


def openai_lm(transport: Transport, **kw) -> LM:
    kw.setdefault("cache", False)
    return LM("openai/gpt-4o-mini", api_key="sk-unit-test-key-000000", transport=transport, clock=SteppingClock(), **kw)


def completion(text: str, prompt: int = 5, out: int = 2) -> Reply:
    return Reply.json({"model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": out}})


async def test_acall_returns_outputs_usage_and_cost() -> None:
    fake = FakeTransport(sequence(Reply.json(fixture_json("openai_chat.json"))))
    lm = openai_lm(fake, temperature=0.0)
    assert isinstance(lm, BaseLM)
    assert lm.provider == "openai"
    r = await lm.acall(MSGS, max_tokens=20)
    assert r.outputs == ["Hello! How can I assist you today?"]
    assert r.usage.input_tokens == 19
    assert r.usage.output_tokens == 10
    assert not r.usage.cache_hit
    assert r.usage.cost == pytest.approx((19 * 0.15 + 10 * 0.60) / 1e6)
    sent = fake.sent[0]
    assert sent.url == "https://api.openai.com/v1/chat/completions"
    assert sent.json == {"model": "gpt-4o-mini", "messages": MSGS, "temperature": 0.0, "max_tokens": 20}


async def test_string_prompt_and_bad_messages() -> None:
    fake = FakeTransport(sequence(completion("hi")))
    lm = openai_lm(fake)
    assert (await lm.acall("hello")).outputs == ["hi"]
    assert fake.sent[0].json["messages"] == [{"role": "user", "content": "hello"}]
    with pytest.raises(InputError, match="invalid messages"):
        await lm.acall([{"content": "no role"}])


def test_model_validation_lists_providers() -> None:
    with pytest.raises(ConfigError, match=r"unknown provider 'mistralx'.*known providers: anthropic, gemini"):
        LM("mistralx/large")
    with pytest.raises(ConfigError, match="expected 'provider/name'"):
        LM("gpt-4o")
    with pytest.raises(ConfigError, match="needs api_base"):
        LM("vllm/llama-3")
    with pytest.raises(ConfigError, match="invalid timeout"):
        LM("openai/gpt-4o", timeout=-1)


async def test_missing_key_is_an_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    fake = FakeTransport(sequence(completion("x")))
    lm = LM("anthropic/claude-sonnet-4-5", transport=fake, cache=False)
    with pytest.raises(AuthError, match="ANTHROPIC_API_KEY"):
        await lm.acall(MSGS)
    assert fake.sent == []


async def test_env_key_is_read_in_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyEnvKey-000000000000000")
    fake = FakeTransport(sequence(Reply.json(fixture_json("gemini_generate.json"))))
    lm = LM("gemini/gemini-2.5-flash", transport=fake, cache=False)
    monkeypatch.delenv("GEMINI_API_KEY")
    r = await lm.acall(MSGS, n=2)
    assert fake.sent[0].headers["x-goog-api-key"] == "AIzaSyEnvKey-000000000000000"
    assert len(fake.sent) == 1
    assert fake.sent[0].json["generationConfig"]["candidateCount"] == 2
    assert r.usage.cached_tokens == 2


async def test_n_without_native_support_fans_out_concurrently() -> None:
    texts = iter(["a", "b", "c"])

    def handler(sent):
        body = json.loads(fixture_bytes("anthropic_message.json"))
        body["content"][0]["text"] = next(texts)
        assert "n" not in sent.json
        return Reply.json(body)

    fake = FakeTransport(handler)
    lm = LM("anthropic/claude-sonnet-4-5", api_key="sk-ant-x-000000", transport=fake, cache=False)
    r = await lm.acall(MSGS, n=3)
    assert sorted(r.outputs) == ["a", "b", "c"]
    assert len(fake.sent) == 3
    assert r.usage.input_tokens == 60
    assert r.usage.output_tokens == 30
    assert len(r.finish_reasons) == 3


async def test_retries_honour_retry_after_then_succeed() -> None:
    clock = SteppingClock()
    fake = FakeTransport(sequence(
        Reply.json({"error": {"message": "slow down"}}, 429, [("retry-after", "0.01")]),
        Reply.json({"error": {"message": "oops"}}, 503),
        LMTransportError("connection reset"),
        Reply(200, b'{"choices": [ truncated'),
        completion("finally"),
    ))
    lm = LM("openai/gpt-4o-mini", api_key="sk-x-0000000", transport=fake, clock=clock, cache=False, num_retries=5)
    r = await lm.acall(MSGS)
    assert r.outputs == ["finally"]
    assert len(fake.sent) == 5
    assert clock.sleeps[0] == 0.01
    assert len(clock.sleeps) == 4
    assert lm.endpoint.retries == 4


async def test_retries_exhausted_and_non_retryable() -> None:
    fake = FakeTransport(sequence(Reply.json({"error": {"message": "down"}}, 500)))
    lm = openai_lm(fake, num_retries=2)
    with pytest.raises(ServerError, match="server error 500") as info:
        await lm.acall(MSGS)
    assert info.value.status == 500
    assert len(fake.sent) == 3
    fake401 = FakeTransport(sequence(Reply.json({"error": {"message": "bad key"}}, 401)))
    with pytest.raises(AuthError):
        await openai_lm(fake401).acall(MSGS)
    assert len(fake401.sent) == 1
    fake429 = FakeTransport(sequence(Reply.json({"error": {"message": "rl"}}, 429, [("retry-after", "7")])))
    with pytest.raises(RateLimitError) as rl:
        await openai_lm(fake429, num_retries=0).acall(MSGS)
    assert rl.value.retry_after == 7.0


async def test_deadline_timeout_is_typed() -> None:
    class Hang(FakeTransport):
        async def request(self, *a, **k):
            await anyio.sleep_forever()

    lm = openai_lm(Hang(sequence(completion("x"))), timeout=0.05, num_retries=1)
    with pytest.raises(LMTimeoutError, match=r"0.05s timeout"):
        await lm.acall(MSGS)


async def test_cache_hit_is_a_copy_with_zero_usage(tmp_path) -> None:
    fake = FakeTransport(sequence(completion("cached answer", 7, 3)))
    lm = openai_lm(fake, cache=LMCache(tmp_path))
    first = await lm.acall(MSGS, temperature=0)
    first.outputs.append("mutated by caller")
    second = await lm.acall(MSGS, temperature=0)
    assert second.outputs == ["cached answer"]
    assert len(fake.sent) == 1
    assert second.usage.cache_hit
    assert second.usage.input_tokens == 0
    assert second.usage.cost == 0
    second.outputs.clear()
    assert (await lm.acall(MSGS, temperature=0)).outputs == ["cached answer"]
    await lm.acall(MSGS, temperature=0, cache=False)
    await lm.acall(MSGS, temperature=0, rollout_id=1)
    assert len(fake.sent) == 3
    assert "rollout_id" not in fake.sent[-1].json
    await lm.acall(MSGS, temperature=0, rollout_id=1)
    assert len(fake.sent) == 3


def test_sync_and_async_share_cache_keys(tmp_path) -> None:
    fake = FakeTransport(sequence(completion("sync")))
    lm = openai_lm(fake, cache=LMCache(tmp_path))
    assert lm("Say hello") == ["sync"]
    assert lm(messages=MSGS) == ["sync"]
    assert len(fake.sent) == 1
    assert fake.closed == 0  # sync calls share one long-lived loop: connections stay open

    async def main() -> list[str]:
        return (await lm.acall(MSGS)).outputs

    assert anyio.run(main) == ["sync"]
    assert len(fake.sent) == 1
    with pytest.raises(InputError, match="exactly one"):
        lm()


async def test_concurrent_identical_calls_single_flight(tmp_path) -> None:
    gate = anyio.Event()
    calls = 0

    class Slow(FakeTransport):
        async def request(self, *a, **k):
            nonlocal calls
            calls += 1
            await gate.wait()
            return await super().request(*a, **k)

    lm = openai_lm(Slow(sequence(completion("one", 10, 5))), cache=LMCache(tmp_path, disk=False))
    results = []

    async def call() -> None:
        results.append(await lm.acall(MSGS))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert calls == 1
    assert all(r.outputs == ["one"] for r in results)
    assert sum(r.usage.input_tokens for r in results) == 10
    assert sum(not r.usage.cache_hit for r in results) == 1


async def test_stream_yields_deltas_then_usage(tmp_path) -> None:
    fake = FakeTransport(sequence(Reply.sse(fixture_bytes("openai_stream.sse"))))
    lm = openai_lm(fake, cache=LMCache(tmp_path))
    chunks = [c async for c in lm.stream(MSGS)]
    assert [c.text for c in chunks[:-1]] == ["Hello", " there"]
    last = chunks[-1]
    assert last.done
    assert last.usage.input_tokens == 9
    assert last.finish_reason == "stop"
    assert fake.sent[0].stream
    assert fake.sent[0].json["stream"] is True
    hit = [c async for c in lm.stream(MSGS)]
    assert [c.text for c in hit] == ["Hello there", ""]
    assert hit[-1].usage.cache_hit
    assert len(fake.sent) == 1
    assert (await lm.acall(MSGS)).outputs == ["Hello there"]  # streamed result is cached for acall too
    with pytest.raises(InputError, match="one completion"):
        [c async for c in lm.stream(MSGS, n=2)]


async def test_stream_tool_calls_reach_final_chunk() -> None:
    fake = FakeTransport(sequence(Reply.sse(fixture_bytes("anthropic_stream_tools.sse"))))
    lm = LM("anthropic/claude-sonnet-4-5", api_key="sk-ant-000000", transport=fake, cache=False)
    chunks = [c async for c in lm.stream(MSGS, tools=[{"name": "get_weather", "parameters": {"type": "object"}}])]
    assert chunks[-1].tool_calls[0].args == {"location": "San Francisco, CA"}
    assert chunks[-1].finish_reason == "tool_calls"


async def test_stream_retries_only_before_first_delta() -> None:
    raw = fixture_bytes("openai_stream.sse")
    truncated = Reply.sse(raw[: raw.index(b'"finish_reason":"stop"')])
    fake = FakeTransport(sequence(
        Reply.json({"error": {"message": "busy"}}, 503),
        Reply.sse(fixture_bytes("openai_stream.sse")),
    ))
    chunks = [c async for c in openai_lm(fake).stream(MSGS)]
    assert "".join(c.text for c in chunks) == "Hello there"
    assert len(fake.sent) == 2
    fake2 = FakeTransport(sequence(truncated, Reply.sse(fixture_bytes("openai_stream.sse"))))
    seen = []
    with pytest.raises(LMTransportError, match="truncated"):
        async for chunk in openai_lm(fake2).stream(MSGS):
            seen.append(chunk.text)  # noqa: PERF401  # the chunks before the error are the point
    assert seen == ["Hello", " there"]
    assert len(fake2.sent) == 1


async def test_fallback_chain_acall_and_stream() -> None:
    down = FakeTransport(sequence(Reply.json({"error": {"message": "down"}}, 500)))
    up = FakeTransport(sequence(completion("from secondary")))
    chain = LM.fallback(openai_lm(down, num_retries=1), openai_lm(up))
    assert isinstance(chain, BaseLM)
    assert chain.model == "openai/gpt-4o-mini"
    assert (await chain.acall(MSGS)).outputs == ["from secondary"]
    assert len(down.sent) == 2
    up_stream = FakeTransport(sequence(Reply.sse(fixture_bytes("openai_stream.sse"))))
    chain = LM.fallback(openai_lm(down, num_retries=0), openai_lm(up_stream))
    assert "".join([c.text async for c in chain.stream(MSGS)]) == "Hello there"
    with pytest.raises(ServerError):
        await LM.fallback(openai_lm(down, num_retries=0), openai_lm(down, num_retries=0)).acall(MSGS)
    with pytest.raises(ConfigError, match="at least two"):
        LM.fallback(openai_lm(up))


async def test_circuit_breaker_fails_fast_then_probes() -> None:
    clock = SteppingClock()
    fake = FakeTransport(sequence(Reply.json({"error": {"message": "down"}}, 502)))
    lm = LM("openai/gpt-4o-mini", api_key="sk-0000000", transport=fake, clock=clock, cache=False, num_retries=5,
            circuit_breaker=CircuitBreakerPolicy(failure_threshold=3, recovery_time=60))
    with pytest.raises(CircuitOpenError):
        await lm.acall(MSGS)
    assert len(fake.sent) == 3  # the fourth attempt was refused locally
    fake.handler = sequence(completion("healthy"))
    clock.advance(60)
    assert (await lm.acall(MSGS)).outputs == ["healthy"]
    assert lm.endpoint.config.breaker.state == "closed"


async def test_adaptive_concurrency_backs_off_on_429() -> None:
    replies = [Reply.json({"error": {"message": "rl"}}, 429, [("retry-after", "0")])] * 3
    fake = FakeTransport(sequence(*replies, completion("ok")))
    lm = openai_lm(fake, adaptive_concurrency=True, max_concurrency=16, num_retries=5)
    await lm.acall(MSGS)
    aimd = lm.endpoint.config.adaptive
    assert aimd.limit == 2
    assert aimd.decreases == 3


async def test_rate_limit_spaces_requests_in_virtual_time() -> None:
    clock = SteppingClock()
    fake = FakeTransport(sequence(completion("x", 10, 10)))
    lm = LM("openai/gpt-4o-mini", api_key="sk-0000000", transport=fake, clock=clock, cache=False,
            rate_limit=RateLimit(requests_per_minute=120, burst_seconds=0.5))
    for _ in range(5):
        await lm.acall(MSGS)
    assert clock.now() == pytest.approx(2.0)  # 1 free, then 4 at 2/s


async def test_copy_keeps_endpoint_and_updates_params() -> None:
    fake = FakeTransport(sequence(completion("x")))
    lm = openai_lm(fake, temperature=0.0)
    other = lm.copy(rollout_id=5, temperature=1.0)
    assert other.kwargs == {"temperature": 1.0, "rollout_id": 5}
    assert lm.kwargs == {"temperature": 0.0}
    assert other.endpoint is lm.endpoint
    assert len(other.history) == 0
    await other.acall(MSGS)
    assert fake.sent[0].json["temperature"] == 1.0
    assert len(lm.history) == 0
    assert len(other.history) == 1


async def test_retry_listener_sees_each_retry() -> None:
    from dspex.lm._engine import RETRY_LISTENER

    seen: list[tuple[int, str, float]] = []
    fake = FakeTransport(sequence(
        Reply.json({"error": {"message": "rl"}}, 429, [("retry-after-ms", "20")]),
        Reply.json({"error": {"message": "busy"}}, 503),
        Reply.sse(fixture_bytes("openai_stream.sse")),
    ))
    lm = openai_lm(fake)
    token = RETRY_LISTENER.set(lambda a, e, d: seen.append((a, type(e).__name__, d)))
    try:
        assert "".join([c.text async for c in lm.stream(MSGS)]) == "Hello there"
    finally:
        RETRY_LISTENER.reset(token)
    assert [s[:2] for s in seen] == [(1, "RateLimitError"), (2, "ServerError")]
    assert seen[0][2] == 0.02
