"""FakeLLMServer: a real loopback HTTP server speaking OpenAI, Anthropic and Gemini.

It listens on 127.0.0.1 (a free port by default) with anyio, parses requests
with the same httptools/h11 layer as the client pool, and answers chat calls
deterministically (see ``_fake_answers.py``) in each provider's wire format
(``_fake_providers.py``), streamed as SSE when asked. Latency, per-token
delays and faults drawn from a seeded RNG (429 with ``Retry-After``, 500, 503,
hang, connection reset, truncated body, malformed JSON; mid-answer with
``fault_after_tokens``) make it a test target for retries, timeouts and
streaming, and a cheap load target for benchmarks:
each connection is one task and waits are sleeps, so thousands of keep-alive
connections cost little. ``stats`` counts requests, faults, connections and
the usage it reported. Use ``async with`` inside a running loop (either
backend), or ``with`` from sync code to run it on a background thread.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
from collections import deque
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.lowlevel
from anyio.abc import SocketAttribute, SocketStream, TaskStatus
from anyio.from_thread import start_blocking_portal

from .._http._aio import asyncio_loop, start_server
from .._http._h1 import HTTPProtocolError, ParsedRequest
from .._http._parsers import make_request_parser
from ..errors import ConfigError
from . import _fake_providers as fp
from ._fake_agent import choose_step, native_tool
from ._fake_answers import (
    count_tokens_cached,
    fake_completion,
    fields_from_prompt,
    media_echo,
    split_tokens,
    value_for_schema,
)
from ._fake_embeddings import embeddings_response
from ._fake_faults import hang, reset_on_close
from ._fake_quirks import (
    check_quirks,
    quirk_frames,
    quirk_payload,
    quirk_refusal,
    send_response,
    text_error,
)
from ._server_stats import ServerStats

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._fake_student import StudentTask

__all__ = ["FakeLLMServer", "ServerStats"]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip
_FAULTS = ("429", "500", "503", "hang", "reset", "truncate", "malformed")


class _ConnState:
    __slots__ = ("busy", "closed", "drop", "idle_scope")

    def __init__(self) -> None:
        self.idle_scope: anyio.CancelScope | None = None
        self.busy = False
        self.drop = False
        self.closed = anyio.Event()


class FakeLLMServer:
    """A deterministic LM HTTP server on loopback with latency and fault injection.

    Options are plain attributes and may be changed while it runs (the next
    request sees them). Faults are drawn per chat request from ``random.Random(seed)``
    in the order 429, 500, 503, hang, reset, truncate, malformed.

    Args:
        host: A loopback address; anything else raises ``ConfigError``.
        port: Port to bind (0 picks a free one; read ``url`` after start).
        responder: ``responder(request_json) -> str`` (sync or async) giving the
            completion text instead of the prompt-derived answer.
        latency_ms: Time from a request's arrival to the start of its response
            (the server's own work on the answer happens within it).
        token_delay_ms: Delay per streamed token.
        tokens_per_chunk: Tokens per streamed delta event.
        p_429: Probability in [0, 1] of a 429 response.
        p_500: Probability in [0, 1] of a 500 response.
        p_503: Probability in [0, 1] of a 503 response.
        p_hang: Probability in [0, 1] of a request that is never answered.
        p_reset: Probability in [0, 1] of a reset connection.
        p_truncate: Probability in [0, 1] of a truncated response.
        p_malformed: Probability in [0, 1] of a malformed response body.
        retry_after: Seconds sent in ``Retry-After`` on 429 responses.
        seed: Seed of the fault RNG.
        require_api_key: When set, requests must carry this key the way their
            provider does (``Authorization: Bearer``, ``x-api-key``,
            ``x-goog-api-key`` or ``?key=``).
        model: Model name reported when the request names none.
        backend: Event loop for the background thread (``with`` use).
        parser: Force ``"httptools"`` or ``"h11"`` request parsing.
        max_requests_per_connection: Close a connection silently (no
            ``Connection: close``) after this many requests.
        quirks: Real servers' quirks to reproduce on OpenAI-style requests
            (names in ``_fake_quirks.QUIRKS``: ``refuse_json_schema_500``,
            ``no_stream_usage``, ``keepalive_comments``, ...).
        student: A :class:`~dspex.testing.StudentTask`: its questions are
            answered right only when the prompt teaches the rule (see
            ``_fake_student.py``); other prompts are answered as usual.
        fault_after_tokens: Make a stream's reset, hang, truncate and malformed
            faults strike after this many tokens went out, as a provider failing
            mid-answer does (default None: reset and hang before any byte, the
            others halfway); non-streamed responses are unaffected.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        responder: Callable[[dict[str, Any]], Any] | None = None,
        latency_ms: float = 0.0,
        token_delay_ms: float = 0.0,
        tokens_per_chunk: int = 1,
        p_429: float = 0.0,
        p_500: float = 0.0,
        p_503: float = 0.0,
        p_hang: float = 0.0,
        p_reset: float = 0.0,
        p_truncate: float = 0.0,
        p_malformed: float = 0.0,
        retry_after: float = 1.0,
        seed: int = 0,
        require_api_key: str | None = None,
        model: str = "fake-model",
        backend: str = "asyncio",
        parser: str | None = None,
        max_requests_per_connection: int | None = None,
        quirks: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
        student: StudentTask | None = None,
        fault_after_tokens: int | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
            raise ConfigError(f"FakeLLMServer binds loopback only; host={host!r} is not loopback")
        if fault_after_tokens is not None and (type(fault_after_tokens) is not int or fault_after_tokens < 0):
            raise ConfigError(f"fault_after_tokens must be None or an int >= 0, got {fault_after_tokens!r}")
        if tokens_per_chunk < 1:
            raise ConfigError(f"tokens_per_chunk must be >= 1, got {tokens_per_chunk!r}")
        probs = {"p_429": p_429, "p_500": p_500, "p_503": p_503, "p_hang": p_hang, "p_reset": p_reset,
                 "p_truncate": p_truncate, "p_malformed": p_malformed}
        for name, p in probs.items():
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {p!r}")
        self.host, self.port = host, port
        self.responder = responder
        self.latency_ms, self.token_delay_ms = latency_ms, token_delay_ms
        self.tokens_per_chunk = tokens_per_chunk
        self.p_429, self.p_500, self.p_503 = p_429, p_500, p_503
        self.p_hang, self.p_reset = p_hang, p_reset
        self.p_truncate, self.p_malformed = p_truncate, p_malformed
        self.retry_after = retry_after
        self.require_api_key = require_api_key
        self.model = model
        self.backend = backend
        self.parser = parser
        self.max_requests_per_connection = max_requests_per_connection
        self.quirks = check_quirks(quirks)
        self.student = student
        self.fault_after_tokens = fault_after_tokens
        self.stats = ServerStats()
        self._rng = random.Random(seed)
        self._conns: set[_ConnState] = set()
        self._scope: anyio.CancelScope | None = None
        self._tg: Any = None
        self._portal_cm: Any = None
        self._portal: Any = None

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:54321``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------

    async def _serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        loop = asyncio_loop(anyio.lowlevel.current_token().native_token)
        if loop is not None:  # asyncio: plain Protocol connections (_http/_aio.py), a lot cheaper
            await self._serve_asyncio(loop, task_status)
            return
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            self.port = listener.extra(SocketAttribute.local_port)
            with anyio.CancelScope() as scope:
                self._scope = scope
                async with anyio.create_task_group() as tg:
                    task_status.started(self.port)
                    await listener.serve(self._handle, task_group=tg)

    async def _serve_asyncio(self, loop: Any, task_status: TaskStatus[int]) -> None:
        with anyio.CancelScope() as scope:
            self._scope = scope
            async with anyio.create_task_group() as tg:
                server = await start_server(loop, self.host, self.port, lambda s: tg.start_soon(self._handle, s))
                try:
                    self.port = server.sockets[0].getsockname()[1]
                    task_status.started(self.port)
                    await anyio.sleep_forever()
                finally:
                    server.close()

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self._tg.start(self._serve)
        except BaseException as exc:
            await self._tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._scope is not None:
            self._scope.cancel()
        await self._tg.__aexit__(et, e, tb)

    def __enter__(self) -> Self:
        # A test helper may own a loop thread: the portal is anyio's way to run one.
        self._portal_cm = start_blocking_portal(backend=self.backend)
        self._portal = self._portal_cm.__enter__()
        try:
            self._future, _ = self._portal.start_task(self._serve)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._scope is not None:
            self._portal.call(self._scope.cancel)
        try:
            self._future.result()
        finally:
            self._portal_cm.__exit__(None, None, None)

    async def adrop_idle_connections(self) -> int:
        """Close keep-alive connections silently, as a server's idle timeout does.

        Connections waiting for a request close now (this waits until they
        have); a connection still answering closes right after its response.
        Returns how many connections were marked.
        """
        marked = list(self._conns)
        for conn in marked:
            conn.drop = True
            if conn.idle_scope is not None:
                conn.idle_scope.cancel()
        for conn in marked:
            if not conn.busy:
                await conn.closed.wait()
        return len(marked)

    def drop_idle_connections(self) -> int:
        """Sync form of :meth:`adrop_idle_connections` (for ``with`` use)."""
        if self._portal is None:
            raise RuntimeError("drop_idle_connections() needs `with`; use the async form")
        return int(self._portal.call(self.adrop_idle_connections))

    # -- connections -----------------------------------------------------------------

    async def _handle(self, stream: SocketStream) -> None:
        state = _ConnState()
        self._conns.add(state)
        self.stats.connections_opened += 1
        try:
            await self._serve_connection(stream, state)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError,
                OSError, HTTPProtocolError):  # fmt: skip
            pass
        finally:
            await anyio.aclose_forcefully(stream)
            self._conns.discard(state)
            self.stats.connections_closed += 1
            state.closed.set()

    async def _serve_connection(self, stream: SocketStream, state: _ConnState) -> None:
        parser = make_request_parser(self.parser)
        pending: deque[ParsedRequest] = deque()
        served = 0
        while True:
            if not pending:
                data = b""
                with anyio.CancelScope() as idle:
                    state.idle_scope = idle
                    if not state.drop:
                        data = await stream.receive(65536)
                state.idle_scope = None
                if state.drop:
                    return
                pending.extend(parser.feed(data))
                state.busy = bool(pending)
                continue
            request = pending.popleft()
            served += 1
            limit = self.max_requests_per_connection
            keep = await self._respond(stream, request)
            state.busy = bool(pending)
            if not keep or state.drop or (limit is not None and served >= limit):
                return

    # -- responses ----------------------------------------------------------------------

    async def _send(
        self,
        stream: SocketStream,
        status: int,
        body: bytes,
        *,
        ctype: str = "application/json",
        extra: tuple[tuple[str, str], ...] = (),
        keep: bool = True,
        declared: int | None = None,
    ) -> None:
        self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n",
                 f"content-type: {ctype}\r\n",
                 f"content-length: {len(body) if declared is None else declared}\r\n"]  # fmt: skip
        lines += [f"{k}: {v}\r\n" for k, v in extra]
        if not keep:
            lines.append("connection: close\r\n")
        lines.append("\r\n")
        await send_response(stream, "".join(lines).encode("latin-1"), body, self.quirks)

    async def _error(
        self, stream: SocketStream, provider: str, status: int, msg: str, keep: bool, **kw: Any
    ) -> bool:
        if "text_errors" in self.quirks:
            await self._send(stream, status, text_error(status, msg), ctype="text/html", keep=keep, **kw)
            return keep
        body = json.dumps(fp.error_body(provider, status, msg)).encode()
        await self._send(stream, status, body, keep=keep, **kw)
        return keep

    def _authorized(self, provider: str, req: ParsedRequest, qs: dict[str, list[str]]) -> bool:
        key = self.require_api_key
        if key is None:
            return True
        h = req.headers_map
        if provider == "anthropic":
            return h.get("x-api-key") == key or h.get("authorization") == f"Bearer {key}"
        if provider == "gemini":
            return h.get("x-goog-api-key") == key or qs.get("key", [None])[0] == key
        return h.get("authorization") == f"Bearer {key}"

    def _draw_fault(self) -> str | None:
        probs = (self.p_429, self.p_500, self.p_503, self.p_hang, self.p_reset,
                 self.p_truncate, self.p_malformed)  # fmt: skip
        if not any(probs):
            return None
        u, edge = self._rng.random(), 0.0
        for name, p in zip(_FAULTS, probs, strict=True):
            edge += p
            if u < edge:
                self.stats.faults[name] = self.stats.faults.get(name, 0) + 1
                return name
        return None

    async def _respond(self, stream: SocketStream, req: ParsedRequest) -> bool:
        # The latency runs from the request's arrival: the server's own work on
        # the answer happens inside it, as an LM's does, not on top of it.
        ready_at = anyio.current_time() + self.latency_ms / 1000
        self.stats.requests += 1
        keep = req.keep_alive
        route = fp.route(req.target)
        if route is None:
            return await self._unrouted(stream, req, keep)
        provider, model, path_stream, qs = route
        self.stats.by_provider[provider] = self.stats.by_provider.get(provider, 0) + 1
        if req.method != "POST":
            return await self._error(stream, provider, 405, "use POST", keep)
        if not self._authorized(provider, req, qs):
            status = 403 if provider == "gemini" else 401
            return await self._error(stream, provider, status, "invalid or missing API key", keep)
        try:
            body = json.loads(req.body)
            if not isinstance(body, dict):
                raise fp.BadRequest("the request body must be a JSON object")
            call = fp.parse_call(provider, body, model or self.model, path_stream)
        except (ValueError, fp.BadRequest) as exc:
            return await self._error(stream, provider, 400, f"bad request: {exc}", keep)
        refusal = quirk_refusal(self.quirks, body) if provider == "openai" and self.quirks else None
        if refusal is not None:
            return await self._error(stream, provider, refusal[0], refusal[1], keep)
        if call.media:
            self.stats.last_media = call.media
            self.stats.media_parts += len(call.media)
        fault = self._draw_fault()
        streamed = call.stream and not (provider == "gemini" and "sse" not in qs.get("alt", []))
        mid_stream = streamed and self.fault_after_tokens is not None  # hang/reset strike in _stream
        if fault in ("429", "500", "503") or (fault in ("hang", "reset") and not mid_stream):
            await anyio.sleep_until(ready_at)  # answered without a completion
        if fault in ("429", "500", "503"):
            status = int(fault)
            extra: tuple[tuple[str, str], ...] = ()
            if status == 429:
                extra = (("retry-after", str(round(self.retry_after))),
                         ("retry-after-ms", str(int(self.retry_after * 1000))))  # fmt: skip
            return await self._error(stream, provider, status, f"injected {fault}", keep,
                                     extra=extra)  # fmt: skip
        if fault == "hang" and not mid_stream:
            await hang(stream)
            return False
        if fault == "reset" and not mid_stream:
            reset_on_close(stream)
            return False
        # Streaming or not, the same request gets the same answer.
        basis = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        canonical = json.dumps([provider, call.model, basis], sort_keys=True).encode()
        full_digest = hashlib.sha256(canonical).hexdigest()
        choices = await self._choices(call, body, full_digest)
        digest = full_digest[:24]
        # tokens never span the "\n" joining the texts, so per-text counts add up
        prompt_tokens = sum(count_tokens_cached(t) for t in call.texts)
        if streamed:
            return await self._stream(stream, call, choices, digest, prompt_tokens, fault, keep, ready_at)
        payload: Any = fp.render(call, choices, digest, prompt_tokens)
        if provider == "openai" and self.quirks:
            payload = quirk_payload(self.quirks, payload)
        if provider == "gemini" and call.stream:
            payload = [payload]
        data = json.dumps(payload, ensure_ascii=False).encode()
        await anyio.sleep_until(ready_at)
        if fault == "truncate":
            await self._send(stream, 200, data[: len(data) // 2], declared=len(data))
            return False
        if fault == "malformed":
            await self._send(stream, 200, data[: len(data) // 2], keep=keep)
            return keep
        self._count_usage(prompt_tokens, choices)
        await self._send(stream, 200, data, keep=keep)
        return keep

    async def _unrouted(self, stream: SocketStream, req: ParsedRequest, keep: bool) -> bool:
        """Answer what is not a chat call: embeddings, the health check, else 404."""
        path = req.target.split("?")[0]
        if req.method == "POST" and path in ("/v1/embeddings", "/embeddings"):
            return await self._embeddings(stream, req, keep)
        if req.method == "GET" and path in ("/", "/health"):
            await self._send(stream, 200, b'{"status":"ok"}', keep=keep)
            return keep
        return await self._error(stream, "openai", 404, f"no route {req.target}", keep)

    async def _embeddings(self, stream: SocketStream, req: ParsedRequest, keep: bool) -> bool:
        """Answer an OpenAI ``/v1/embeddings`` call with :func:`fake_embedding` vectors."""
        if not self._authorized("openai", req, {}):
            return await self._error(stream, "openai", 401, "invalid or missing API key", keep)
        try:
            payload = embeddings_response(req.body, self.model)
        except ValueError as exc:
            return await self._error(stream, "openai", 400, f"bad request: {exc}", keep)
        await anyio.sleep(self.latency_ms / 1000)
        await self._send(stream, 200, json.dumps(payload).encode(), keep=keep)
        return keep

    def _count_usage(self, prompt_tokens: int, choices: list[fp.Choice]) -> None:
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += sum(c.tokens for c in choices)

    async def _choices(
        self, call: fp.ChatCall, body: dict[str, Any], digest: str
    ) -> list[fp.Choice]:
        out: list[fp.Choice] = []
        for i in range(call.n):
            key = f"{digest}:{i}"
            if call.tools and (call.forced_tool is not None or not call.tool_results or "finish" in call.tools):
                out.append(self._tool_choice(call, int(digest[:12], 16) + i, key))
                continue
            if call.tool_results and self.responder is None and fields_from_prompt(call.system) is None:
                # a plain tool conversation: answer with what the tool returned
                text = f"The answer is {call.texts[-1].strip()}."
                out.append(fp.Choice(text=text, tokens=len(split_tokens(text))))
                continue
            if self.responder is not None:
                result = self.responder(body)
                text = str(await result if inspect.isawaitable(result) else result)
            elif self.student is not None and (taught := self.student.complete(call.system, call.texts, str(i))):
                text = taught
            else:
                text = fake_completion(call.system, key, json_schema=call.json_schema,
                                       json_mode=call.json_mode, user=call.texts[-1] if call.texts else "",
                                       overrides=media_echo(call.media, call.system))  # fmt: skip
            tokens = split_tokens(text)
            finish = "stop"
            if call.max_tokens is not None and len(tokens) > call.max_tokens:
                tokens, finish = tokens[: call.max_tokens], "length"
                text = "".join(tokens)
            out.append(fp.Choice(text=text, finish=finish, tokens=len(tokens)))
        return out

    @staticmethod
    def _tool_choice(call: fp.ChatCall, seed: int, key: str) -> fp.Choice:
        """Answer a request offering native tools with a tool call (see ``_fake_agent``).

        A forced tool gets schema-valid arguments; otherwise the agent rules
        pick the tool and its arguments from the question. A DSPy prompt also
        gets its text fields (``next_thought`` for a native ReAct step).
        """
        user = call.texts[-1] if call.texts else ""
        if call.forced_tool:
            name = call.forced_tool
            args = value_for_schema(call.tools.get(name, {"type": "object"}), seed)
            thought = ""
        else:
            offered = [native_tool(n, schema, call.tool_descs.get(n, "")) for n, schema in call.tools.items()]
            thought, name, args = choose_step(offered, user, call.tool_results)
            if name not in call.tools:  # a "finish" the request does not offer: its first tool
                name = next(iter(call.tools))
                args = {}
            schema = call.tools.get(name, {"type": "object"})
            required = [k for k in schema.get("required", ()) if k not in args]
            if required:  # what the question could not supply comes from the schema
                filled = value_for_schema(schema, seed)
                args = {**args, **{k: filled[k] for k in required if isinstance(filled, dict) and k in filled}}
        text = ""
        if fields_from_prompt(call.system) is not None:
            text = fake_completion(call.system, key, user=user, overrides={"next_thought": thought} if thought else None)
        tokens = len(split_tokens(text)) + len(split_tokens(json.dumps(args)))
        return fp.Choice(text=text, tool=(name, args), finish="tool", tokens=tokens)

    async def _stream(
        self,
        stream: SocketStream,
        call: fp.ChatCall,
        choices: list[fp.Choice],
        rid: str,
        prompt_tokens: int,
        fault: str | None,
        keep: bool,
        ready_at: float,
    ) -> bool:
        frames = list(fp.stream(call, choices, rid, prompt_tokens, self.tokens_per_chunk))
        if call.provider == "openai" and self.quirks:
            frames = quirk_frames(self.quirks, frames)
        cut = fp.fault_frame(frames, fault, self.fault_after_tokens)
        if fault == "malformed" and cut is not None:
            frames.insert(cut, (b"data: {not json\n\n", 0))
            cut = None
        await anyio.sleep_until(ready_at)
        self.stats.statuses[200] = self.stats.statuses.get(200, 0) + 1
        head = ("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                "transfer-encoding: chunked\r\n" + ("" if keep else "connection: close\r\n")
                + "\r\n").encode()  # fmt: skip
        delay = self.token_delay_ms / 1000
        counted = fault != "malformed" and (call.include_usage or call.provider != "openai")
        if not delay and cut is None:
            if counted:  # count before the last byte leaves, so clients see it
                self._count_usage(prompt_tokens, choices)
            body = b"".join(b"%x\r\n%s\r\n" % (len(d), d) for d, _ in frames)
            await stream.send(head + body + b"0\r\n\r\n")
            return keep
        await stream.send(head)
        for i, (data, tokens) in enumerate(frames):
            if i == cut:
                if fault == "reset":
                    reset_on_close(stream)
                elif fault == "hang":
                    await hang(stream)
                return False
            if delay and tokens:
                await anyio.sleep(delay * tokens)
            if counted and i == len(frames) - 1:
                self._count_usage(prompt_tokens, choices)
            await stream.send(b"%x\r\n%s\r\n" % (len(data), data))
        await stream.send(b"0\r\n\r\n")
        return keep
