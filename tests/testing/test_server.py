"""FakeLLMServer: the three provider protocols, streaming, faults, stats and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import anyio
import pytest

from dspex._http._pool import ConnectionPool
from dspex._http._sse import SSEDecoder, SSEEvent
from dspex.errors import ConfigError, LMTimeoutError, LMTransportError
from dspex.lm import Timeouts
from dspex.testing import FakeLLMServer
from dspex.testing._fake_answers import fields_from_prompt

SYSTEM = (
    "Your input fields are:\n1. `question` (str):\nYour output fields are:\n"
    "1. `reasoning` (str): \n2. `answer` (str): \n3. `score` (float): \n4. `count` (int): \n"
    "5. `ok` (bool): \n6. `tags` (list[str]): \n7. `label` (Literal['yes', 'no']):\n"
    "All interactions will be structured in the following way, with the appropriate values "
    "filled in.\n\n[[ ## question ## ]]\n{question}\n\n[[ ## reasoning ## ]]\n{reasoning}\n\n"
    "[[ ## answer ## ]]\n{answer}\n\n[[ ## score ## ]]\n{score}        # note: the value you "
    "produce must be a single float value\n\n[[ ## count ## ]]\n{count}        # note: the value "
    "you produce must be a single int value\n\n[[ ## ok ## ]]\n{ok}        # note: the value you "
    "produce must be True or False\n\n[[ ## tags ## ]]\n{tags}        # note: the value you "
    'produce must adhere to the JSON schema: {"type": "array", "items": {"type": "string"}}\n\n'
    "[[ ## label ## ]]\n{label}        # note: the value you produce must exactly match (no extra "
    "characters) one of: yes; no\n\n[[ ## completed ## ]]\nIn adhering to this structure, your "
    "objective is: \n        Answer things."
)
USER = "[[ ## question ## ]]\nWhat?\n\nRespond with the corresponding output fields."
JSON_SYSTEM = (
    "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (str): \n"
    "2. `score` (float):\nAll interactions will be structured in the following way, with the "
    "appropriate values filled in.\n\nInputs will have the following structure:\n\n"
    "[[ ## question ## ]]\n{question}\n\nOutputs will be a JSON object with the following "
    'fields.\n\n{\n  "answer": "{answer}",\n  "score": "{score}        # note: the value you '
    'produce must be a single float value"\n}\nIn adhering to this structure, your objective '
    "is: \n        Answer."
)
DEFAULT_TIMEOUTS = Timeouts()
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-x:generateContent",
}


def request_body(provider: str, **extra: Any) -> dict[str, Any]:
    if provider == "openai":
        return {"model": "gpt-x", "messages": MESSAGES, **extra}
    if provider == "anthropic":
        return {"model": "claude-x", "max_tokens": 1000, "system": SYSTEM,
                "messages": [{"role": "user", "content": USER}], **extra}  # fmt: skip
    return {"systemInstruction": {"parts": [{"text": SYSTEM}]},
            "contents": [{"role": "user", "parts": [{"text": USER}]}], **extra}  # fmt: skip


def text_of(provider: str, reply: dict[str, Any], i: int = 0) -> str:
    if provider == "openai":
        return str(reply["choices"][i]["message"]["content"])
    if provider == "anthropic":
        return str(reply["content"][0]["text"])
    return str(reply["candidates"][i]["content"]["parts"][0]["text"])


async def post(
    pool: ConnectionPool, url: str, body: Any, headers: dict[str, str] | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> tuple[int, Any, Any]:  # fmt: skip
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await pool.request("POST", url, headers=headers or {}, body=raw, timeouts=timeouts)
    data = await resp.aread()
    try:
        return resp.status, json.loads(data), resp
    except ValueError:
        return resp.status, data, resp


async def stream_events(pool: ConnectionPool, url: str, body: dict[str, Any]) -> list[SSEEvent]:
    async with pool.stream("POST", url, headers={}, body=json.dumps(body).encode()) as resp:
        assert resp.status == 200
        decoder = SSEDecoder()
        return [ev async for chunk in resp.aiter_bytes() for ev in decoder.feed(chunk)]


def parse_chat(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for block in text.split("[[ ## ")[1:]:
        name, _, value = block.partition(" ## ]]")
        out[name] = value.strip()
    return out


@pytest.fixture
async def pool() -> Any:
    p = ConnectionPool()
    yield p
    await p.aclose()


# -- answers from the prompt ------------------------------------------------------------


def test_fields_are_read_from_chat_and_json_prompts() -> None:
    specs, fmt = fields_from_prompt(SYSTEM)  # type: ignore[misc]
    assert fmt == "chat"
    kinds = {s.name: s.kind for s in specs}
    assert kinds == {"reasoning": "str", "answer": "str", "score": "float", "count": "int",
                     "ok": "bool", "tags": "schema", "label": "choice"}  # fmt: skip
    specs, fmt = fields_from_prompt(JSON_SYSTEM)  # type: ignore[misc]
    assert (fmt, [s.kind for s in specs]) == ("json", ["str", "float"])
    assert fields_from_prompt("Just chat with me.") is None


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_typed_deterministic_answers(provider: str, pool: ConnectionPool) -> None:
    async with FakeLLMServer() as srv:
        status, reply, _ = await post(pool, srv.url + PATHS[provider], request_body(provider))
        assert status == 200
        text = text_of(provider, reply)
        fields = parse_chat(text)
        assert list(fields) == ["reasoning", "answer", "score", "count", "ok", "tags", "label",
                                "completed"]  # fmt: skip
        assert fields["reasoning"].startswith("Let's think step by step")
        assert 0.0 <= float(fields["score"]) <= 1.0
        int(fields["count"])
        assert fields["ok"] in ("True", "False")
        assert all(isinstance(t, str) for t in json.loads(fields["tags"]))
        assert fields["label"] in ("yes", "no")
        _, again, _ = await post(pool, srv.url + PATHS[provider], request_body(provider))
        assert text_of(provider, again) == text


async def test_json_adapter_prompt_gets_a_json_object(pool: ConnectionPool) -> None:
    body = {"model": "m", "messages": [{"role": "system", "content": JSON_SYSTEM},
                                       {"role": "user", "content": "q"}]}  # fmt: skip
    async with FakeLLMServer() as srv:
        _, reply, _ = await post(pool, srv.url + PATHS["openai"], body)
        value = json.loads(reply["choices"][0]["message"]["content"])
        assert set(value) == {"answer", "score"}
        assert isinstance(value["score"], float)


async def test_response_format_json_schema_is_followed(pool: ConnectionPool) -> None:
    props = {"n": {"type": "integer"}, "kind": {"type": "string", "enum": ["a", "b"]}}
    schema = {"type": "object", "properties": props, "required": ["n", "kind"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}
    async with FakeLLMServer() as srv:
        _, reply, _ = await post(pool, srv.url + PATHS["openai"],
                                 request_body("openai", response_format=fmt))  # fmt: skip
        value = json.loads(reply["choices"][0]["message"]["content"])
        assert isinstance(value["n"], int)
        assert value["kind"] in ("a", "b")


async def test_openai_reply_shape_n_and_usage(pool: ConnectionPool) -> None:
    async with FakeLLMServer() as srv:
        _, reply, _ = await post(pool, srv.url + PATHS["openai"], request_body("openai", n=3))
        assert reply["object"] == "chat.completion"
        assert [c["index"] for c in reply["choices"]] == [0, 1, 2]
        assert {c["finish_reason"] for c in reply["choices"]} == {"stop"}
        usage = reply["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert srv.stats.prompt_tokens == usage["prompt_tokens"]
        assert srv.stats.completion_tokens == usage["completion_tokens"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_max_tokens_truncates(provider: str, pool: ConnectionPool) -> None:
    extra: dict[str, Any] = {"max_tokens": 3}
    if provider == "gemini":
        extra = {"generationConfig": {"maxOutputTokens": 3}}
    async with FakeLLMServer() as srv:
        body = request_body(provider, **extra)
        _, reply, _ = await post(pool, srv.url + PATHS[provider], body)
        if provider == "openai":
            assert reply["choices"][0]["finish_reason"] == "length"
        elif provider == "anthropic":
            assert reply["stop_reason"] == "max_tokens"
        else:
            assert reply["candidates"][0]["finishReason"] == "MAX_TOKENS"
        assert srv.stats.completion_tokens == 3


async def test_responder_overrides_the_answer(pool: ConnectionPool) -> None:
    seen: list[dict[str, Any]] = []

    def responder(request: dict[str, Any]) -> str:
        seen.append(request)
        return "scripted"

    async with FakeLLMServer(responder=responder) as srv:
        _, reply, _ = await post(pool, srv.url + PATHS["openai"], request_body("openai"))
        assert text_of("openai", reply) == "scripted"
        assert seen[0]["model"] == "gpt-x"


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_native_tool_calls(provider: str, pool: ConnectionPool) -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    if provider == "openai":
        extra: dict[str, Any] = {"tools": [{"type": "function", "function": {
            "name": "weather", "parameters": params}}]}  # fmt: skip
    elif provider == "anthropic":
        extra = {"tools": [{"name": "weather", "input_schema": params}]}
    else:
        extra = {"tools": [{"functionDeclarations": [{"name": "weather", "parameters": params}]}]}
    async with FakeLLMServer() as srv:
        _, reply, _ = await post(pool, srv.url + PATHS[provider], request_body(provider, **extra))
    if provider == "openai":
        call = reply["choices"][0]["message"]["tool_calls"][0]
        assert reply["choices"][0]["finish_reason"] == "tool_calls"
        name, args = call["function"]["name"], json.loads(call["function"]["arguments"])
    elif provider == "anthropic":
        # a DSPy prompt gets its text fields first, then the tool use (as Claude answers)
        assert [b["type"] for b in reply["content"]] == ["text", "tool_use"]
        assert reply["stop_reason"] == "tool_use"
        block = reply["content"][1]
        name, args = block["name"], block["input"]
    else:
        parts = reply["candidates"][0]["content"]["parts"]
        assert "text" in parts[0]
        fc = parts[1]["functionCall"]
        name, args = fc["name"], fc["args"]
    assert name == "weather"
    assert isinstance(args["city"], str)


# -- streaming --------------------------------------------------------------------------------


async def test_openai_stream_with_usage_chunk(pool: ConnectionPool) -> None:
    async with FakeLLMServer(tokens_per_chunk=2) as srv:
        url = srv.url + PATHS["openai"]
        _, whole, _ = await post(pool, url, request_body("openai"))
        body = request_body("openai", stream=True, stream_options={"include_usage": True})
        events = await stream_events(pool, url, body)
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == text_of("openai", whole)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_anthropic_stream_event_sequence(pool: ConnectionPool) -> None:
    async with FakeLLMServer() as srv:
        url = srv.url + PATHS["anthropic"]
        _, whole, _ = await post(pool, url, request_body("anthropic"))
        events = await stream_events(pool, url, request_body("anthropic", stream=True))
    kinds = [e.event for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(json.loads(e.data)["type"] == e.event for e in events)
    text = "".join(json.loads(e.data)["delta"]["text"] for e in events
                   if e.event == "content_block_delta")  # fmt: skip
    assert text == text_of("anthropic", whole)
    final = json.loads(events[-2].data)
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] == whole["usage"]["output_tokens"]


async def test_gemini_sse_stream(pool: ConnectionPool) -> None:
    async with FakeLLMServer() as srv:
        _, whole, _ = await post(pool, srv.url + PATHS["gemini"], request_body("gemini"))
        url = srv.url + "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
        events = await stream_events(pool, url, request_body("gemini"))
    bodies = [json.loads(e.data) for e in events]
    text = "".join(b["candidates"][0]["content"]["parts"][0]["text"] for b in bodies)
    assert text == text_of("gemini", whole)
    assert bodies[-1]["candidates"][0]["finishReason"] == "STOP"
    assert bodies[-1]["usageMetadata"] == whole["usageMetadata"]


# -- faults, auth, errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "kind"),
    [("openai", "rate_limit_exceeded"), ("anthropic", "rate_limit_error"),
     ("gemini", "RESOURCE_EXHAUSTED")],
)  # fmt: skip
async def test_429_has_retry_after_and_provider_error_body(
    provider: str, kind: str, pool: ConnectionPool
) -> None:
    async with FakeLLMServer(p_429=1.0, retry_after=2) as srv:
        status, reply, resp = await post(pool, srv.url + PATHS[provider], request_body(provider))
        assert (status, resp.header("retry-after")) == (429, "2")
        assert kind in json.dumps(reply)
        assert srv.stats.faults == {"429": 1}
        assert srv.stats.statuses == {429: 1}


@pytest.mark.parametrize("fault", ["500", "503"])
async def test_server_errors(fault: str, pool: ConnectionPool) -> None:
    async with FakeLLMServer(**{f"p_{fault}": 1.0}) as srv:  # type: ignore[arg-type]
        status, reply, _ = await post(pool, srv.url + PATHS["openai"], request_body("openai"))
        assert status == int(fault)
        assert "error" in reply
        assert srv.stats.prompt_tokens == 0


async def test_hang_reset_truncate_and_malformed(pool: ConnectionPool) -> None:
    url_body = (PATHS["openai"], request_body("openai"))
    async with FakeLLMServer(p_hang=1.0) as srv:
        with pytest.raises(LMTimeoutError):
            await post(pool, srv.url + url_body[0], url_body[1], timeouts=Timeouts(read=0.1))
    async with FakeLLMServer(p_reset=1.0) as srv:
        with pytest.raises(LMTransportError):
            await post(pool, srv.url + url_body[0], url_body[1])
    async with FakeLLMServer(p_truncate=1.0) as srv:
        with pytest.raises(LMTransportError):
            await post(pool, srv.url + url_body[0], url_body[1])
    async with FakeLLMServer(p_malformed=1.0) as srv:
        status, reply, _ = await post(pool, srv.url + url_body[0], url_body[1])
        assert status == 200
        assert isinstance(reply, bytes)
        events = await stream_events(pool, srv.url + url_body[0], {**url_body[1], "stream": True})
        assert any(e.data == "{not json" for e in events)
        assert srv.stats.faults == {"malformed": 2}
        assert srv.stats.completion_tokens == 0


async def test_truncated_stream_stops_before_the_end(pool: ConnectionPool) -> None:
    body = request_body("anthropic", stream=True)
    async with FakeLLMServer(p_truncate=1.0) as srv:
        seen: list[SSEEvent] = []
        with pytest.raises(LMTransportError):
            async with pool.stream("POST", srv.url + PATHS["anthropic"], headers={},
                                   body=json.dumps(body).encode()) as resp:  # fmt: skip
                decoder = SSEDecoder()
                async for chunk in resp.aiter_bytes():
                    seen += decoder.feed(chunk)
        assert seen
        assert seen[-1].event != "message_stop"


def test_faults_follow_the_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        srv = FakeLLMServer(p_429=0.3, p_500=0.3, seed=seed)
        return [srv._draw_fault() for _ in range(50)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)
    assert {"429", "500", None} == set(draws(1))


@pytest.mark.parametrize(
    ("provider", "good", "status"),
    [("openai", {"Authorization": "Bearer k"}, 401), ("anthropic", {"x-api-key": "k"}, 401),
     ("gemini", {"x-goog-api-key": "k"}, 403)],
)  # fmt: skip
async def test_require_api_key(
    provider: str, good: dict[str, str], status: int, pool: ConnectionPool
) -> None:
    async with FakeLLMServer(require_api_key="k") as srv:
        url = srv.url + PATHS[provider]
        assert (await post(pool, url, request_body(provider)))[0] == status
        assert (await post(pool, url, request_body(provider), good))[0] == 200
        wrong = {k: v.replace("k", "nope") for k, v in good.items()}
        assert (await post(pool, url, request_body(provider), wrong))[0] == status
    if provider == "gemini":
        async with FakeLLMServer(require_api_key="k") as srv:
            assert (await post(pool, srv.url + PATHS[provider] + "?key=k",
                               request_body(provider)))[0] == 200  # fmt: skip


async def test_bad_requests(pool: ConnectionPool) -> None:
    async with FakeLLMServer() as srv:
        assert (await post(pool, srv.url + "/nope", {}))[0] == 404
        assert (await post(pool, srv.url + PATHS["openai"], b"{not json"))[0] == 400
        status, reply, _ = await post(pool, srv.url + PATHS["anthropic"], {"messages": []})
        assert status == 400
        assert reply["error"]["type"] == "invalid_request_error"
        resp = await pool.request("GET", srv.url + PATHS["openai"], headers={})
        assert resp.status == 405
        assert srv.stats.requests == 4


def test_loopback_only_and_option_checks() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        FakeLLMServer(host="0.0.0.0")
    with pytest.raises(ConfigError, match="p_429"):
        FakeLLMServer(p_429=1.5)


# -- scale, threads, parsers, CLI --------------------------------------------------------------


@pytest.mark.slow
async def test_many_concurrent_keepalive_connections() -> None:
    pool = ConnectionPool(max_connections_per_host=300)
    async with FakeLLMServer(latency_ms=50) as srv:
        url, body = srv.url + PATHS["openai"], request_body("openai")
        async with anyio.create_task_group() as tg:
            for _ in range(300):
                tg.start_soon(post, pool, url, body)
        assert srv.stats.requests == 300
        assert srv.stats.connections_opened == 300
        assert srv.stats.active_connections == 300
        await pool.aclose()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_sync_context_manager_runs_in_a_thread(backend: str, parser: str) -> None:
    pool = ConnectionPool()
    with FakeLLMServer(backend=backend, parser=parser, max_requests_per_connection=2) as srv:

        async def calls() -> list[int]:
            statuses = [(await post(pool, srv.url + PATHS["openai"], request_body("openai")))[0]
                        for _ in range(3)]  # fmt: skip
            dropped = await anyio.to_thread.run_sync(srv.drop_idle_connections)
            return [*statuses, dropped]

        assert anyio.run(calls, backend=backend) == [200, 200, 200, 1]
        # the server closed the first connection silently after 2 requests
        assert srv.stats.connections_opened == 2


def test_cli_prints_url_and_serves() -> None:
    cmd = [sys.executable, "-m", "dspex.testing.server", "--port", "0", "--latency-ms", "1"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")

            async def call() -> int:
                pool = ConnectionPool()
                return (await post(pool, url + PATHS["openai"], request_body("openai")))[0]

            assert anyio.run(call) == 200
        finally:
            proc.terminate()
            proc.wait(timeout=10)
