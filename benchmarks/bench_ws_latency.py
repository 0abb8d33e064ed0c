"""Token latency through the WebSocket sink: fake LM server byte -> browser-side client.

    python benchmarks/bench_ws_latency.py [--clients 10 200] [--items 24] [--backend asyncio] [--raw]

For each client count, one process runs the fake OpenAI-compatible server,
a flow (``ChainOfThought`` over the server, concurrency 4) and the WebSocket
sink; other processes hold the WebSocket clients (``websockets``' asyncio
client, 50 a process; with ``--raw`` all of them in one process on raw
sockets and one epoll loop that only stores what it reads and parses it
after the stream, so that on a small box the clients' own CPU counts as
little as possible), so the two sides do not share an event loop. Every
streamed token is unique (``w<item>_<k>``); the server records ``time.time()``
right before it writes the SSE chunk holding a token, each client when its
``token_delta`` arrives. Prints, as medians and p99s over all clients and
tokens (all in ms from the LM server's byte):

- token->client: when the client code reads the token (what a user sees; on
  a small box it includes the clients' own CPU and backlog);
- at the client's socket (``--raw``): the kernel's ``SO_TIMESTAMPNS`` receive
  stamp of the read that brought it (the stamp of that read's last segment,
  so a client that lags and reads several writes at once makes it late too);
- server byte -> written to every client: when the flush that wrote it to
  every client ended (the server's own figure; this dspex only);
- the split at ``sink.write_event(s)``, the hold before the flush, the flush
  count and duration, when each token first shows up in a ``field_delta``
  (what the live page renders);
- the flow process's CPU time for the streaming part (steadier than latency
  on a shared machine), also per streamed token, and the client processes'.

All stamps are ``time.time()`` (the kernel stamps are wall-clock time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import statistics
import struct
import sys
import time
from typing import Any

TOKEN = re.compile(rb"w\d+_\d+")
SO_TIMESTAMPNS = 35  # Linux (asm-generic): kernel receive stamp as a struct timespec; SCM_TIMESTAMPNS too


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the client process -------------------------------------------------------
async def _clients(url: str, n: int) -> None:
    import asyncio

    from websockets.asyncio.client import connect

    received: dict[str, list[float]] = {}
    fields: dict[str, list[float]] = {}

    async def one() -> None:
        seen: set[str] = set()
        async with connect(url, max_queue=None) as ws:
            async for raw in ws:
                now = time.time()
                if '"token_delta"' in raw:
                    text = json.loads(raw)["text"].strip()
                    received.setdefault(text, []).append(now)
                elif '"field_delta"' in raw:  # when the token shows up in its output field
                    for token in TOKEN.findall(json.loads(raw)["text"].encode()):
                        if token not in seen:
                            seen.add(token)
                            fields.setdefault(token.decode(), []).append(now)

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await asyncio.gather(*tasks)
    sys.stdout.write(json.dumps({"token": received, "field": fields}) + "\n")


def _raw_clients(url: str, n: int) -> None:
    """All ``n`` clients in one thread: raw sockets, one epoll loop, parsing deferred.

    Much cheaper per message than ``websockets``' asyncio client, so on a small
    box the measured latency is the sink's, not the clients' CPU: while the
    stream runs, each read only stores its bytes with its read time and kernel
    stamp, and walks the frame headers (to answer a ping or a close); the JSON
    is searched for tokens once the server has closed. The server sends
    unmasked, unfragmented text frames (no extensions are negotiated), so a
    frame is a 2/4/10-byte header and the JSON payload.
    """
    import base64
    import bisect
    import os
    import selectors
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    streams: dict[socket.socket, _RawStream] = {}
    for _ in range(n):
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.sendall(request)
        sock.setblocking(False)
        streams[sock] = _RawStream()
        sel.register(sock, selectors.EVENT_READ)
    ancillary = socket.CMSG_SPACE(16)
    live = dict(streams)
    while live:
        for key_, _ in sel.select():
            sock = key_.fileobj
            data, cmsgs, _flags, _addr = sock.recvmsg(1 << 20, ancillary)
            now = time.time()
            if not data:
                sel.unregister(sock)
                sock.close()
                del live[sock]
                continue
            stamp = now
            for level, kind, value in cmsgs:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    stamp = sec + nsec / 1e9
            live[sock].feed(sock, data, now, stamp)
    received: dict[str, list[float]] = {}
    arrived: dict[str, list[float]] = {}
    fields: dict[str, list[float]] = {}
    for stream in streams.values():
        seen: set[bytes] = set()
        for end, payload in stream.frames():
            i = bisect.bisect_left(stream.ends, end)  # the read that completed this frame
            now, stamp = stream.times[i]
            if b'"token_delta"' in payload:
                for token in TOKEN.findall(payload):
                    received.setdefault(token.decode(), []).append(now)
                    arrived.setdefault(token.decode(), []).append(stamp)
            elif b'"field_delta"' in payload:
                for token in TOKEN.findall(payload):
                    if token not in seen:
                        seen.add(token)
                        fields.setdefault(token.decode(), []).append(now)
    sys.stdout.write(json.dumps({"token": received, "arrived": arrived, "field": fields}) + "\n")


class _RawStream:
    """One raw client's bytes, with the time (read, kernel) at which each read ended."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.start = -1  # where the frames begin (after the 101 response)
        self.pos = 0  # next frame header to walk
        self.ends: list[int] = []
        self.times: list[tuple[float, float]] = []

    def feed(self, sock: Any, data: bytes, now: float, stamp: float) -> None:
        buf = self.buf
        buf += data
        self.ends.append(len(buf))
        self.times.append((now, stamp))
        if self.start < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.start = self.pos = end + 4
        for opcode, begin, stop in self._walk():
            if opcode == 8:  # close: echo it (masked, empty payload) and let the server hang up
                with contextlib.suppress(OSError):
                    sock.send(b"\x88\x80\x00\x00\x00\x00")
            elif opcode == 9:  # ping: pong with the same payload (short, masked with zeros)
                sock.send(bytes([0x8A, 0x80 | (stop - begin)]) + b"\x00\x00\x00\x00" + bytes(buf[begin:stop]))

    def _walk(self) -> Any:
        """Yield (opcode, payload start, payload end) of each frame completed since the last walk."""
        while (frame := _frame_at(self.buf, self.pos)) is not None:
            opcode, start, self.pos = frame
            yield opcode, start, self.pos

    def frames(self) -> Any:
        """Yield (end offset, payload) of every text frame received."""
        pos = self.start
        while pos >= 0 and (frame := _frame_at(self.buf, pos)) is not None:
            opcode, start, pos = frame
            if opcode == 1:
                yield pos, bytes(self.buf[start:pos])


def _frame_at(buf: bytearray, pos: int) -> tuple[int, int, int] | None:
    """(opcode, payload start, payload end) of the frame at ``pos``, or None if incomplete."""
    if len(buf) - pos < 2:
        return None
    opcode, size, start = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, pos + 2
    if size == 126:
        size, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
    elif size == 127:
        size, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
    return None if len(buf) < start + size else (opcode, start, start + size)


# -- the server process -------------------------------------------------------
def _server_class() -> Any:
    from dspex.testing import FakeLLMServer

    class TimedServer(FakeLLMServer):
        """Record when each unique token leaves the server."""

        emitted: dict[str, float]

        async def _stream(self, stream: Any, *args: Any, **kwargs: Any) -> bool:
            emitted = self.emitted

            class Timed:
                async def send(self, data: bytes) -> None:
                    now = time.time()
                    for token in TOKEN.findall(data):
                        emitted.setdefault(token.decode(), now)
                    await stream.send(data)

            return await super()._stream(Timed(), *args, **kwargs)  # type: ignore[arg-type]

    return TimedServer


def _responder(request: dict[str, Any]) -> str:
    prompt = json.dumps(request.get("messages", []))
    item = re.findall(r"question \d+", prompt)[-1].split()[-1]
    words = " ".join(f"w{item}_{k}" for k in range(24))
    return f"[[ ## reasoning ## ]]\n{words}\n\n[[ ## answer ## ]]\nw{item}_99\n\n[[ ## completed ## ]]"


async def _run(
    n_clients: int, items: int, per_process: int = 50, raw: bool = False, flush: float | None = None,
) -> dict[str, float]:
    import anyio

    import dspex as dx
    from dspex.flows import Flow
    from dspex.lm._lm import LM
    from dspex.sinks import websocket

    server = _server_class()(responder=_responder, token_delay_ms=4, latency_ms=5)
    server.emitted = {}
    options: dict[str, Any] = {} if flush is None else {"flush_interval": flush}
    sink = websocket(queue_size=10_000, metrics_interval=None, **options)
    ready = anyio.Event()

    async def questions() -> Any:
        await ready.wait()
        for i in range(items):
            yield {"question": f"question {i}"}

    at_sink: dict[str, float] = {}
    original = sink.write_event

    async def timed_write_event(event: Any) -> None:
        if event.type == "token_delta" and TOKEN.fullmatch(event.text.strip().encode()):
            at_sink.setdefault(event.text.strip(), time.time())
        await original(event)

    original_many = sink.write_events

    async def timed_write_events(events: Any) -> None:
        now = time.time()
        for event in events:
            if event.type == "token_delta" and TOKEN.fullmatch(event.text.strip().encode()):
                at_sink.setdefault(event.text.strip(), now)
        await original_many(events)

    flushed: dict[str, tuple[float, float]] = {}  # token -> (flush began, flush ended)
    original_flush = getattr(sink.server, "flush", None)

    def timed_flush() -> None:
        began = time.time()
        held = [data for data, _, _ in sink.server._outbox]
        original_flush()
        ended = time.time()
        for data in held:
            for token in TOKEN.findall(data):
                flushed.setdefault(token.decode(), (began, ended))

    if original_flush is not None:
        sink.server.flush = timed_flush  # type: ignore[method-assign]
    sink.write_event = timed_write_event  # type: ignore[method-assign]
    if original_many is not None:
        sink.write_events = timed_write_events  # type: ignore[method-assign]
    flow = Flow("ws-latency")
    flow.source(questions()).map(dx.ChainOfThought("question -> answer"), concurrency=4).sink(sink)
    output: list[bytes] = []
    cpu_at_start: list[float] = []
    async with server:
        lm = LM("openai/m", api_base=f"{server.url}/v1", api_key="x", cache=False)

        async def clients(n: int) -> None:
            await sink.started.wait()
            cmd = [sys.executable, __file__, "--client", sink.url, "--n", str(n), *(["--raw"] if raw else [])]
            async with await anyio.open_process(cmd) as proc:
                assert proc.stdout is not None
                chunks = [chunk async for chunk in proc.stdout]
            output.append(b"".join(chunks))

        async def connected() -> None:
            await sink.started.wait()
            if hasattr(sink.server, "wait_for_client"):
                await sink.server.wait_for_client(n_clients)
            else:  # an older dspex (before/after comparisons) has no event for it: poll
                while True:
                    if len(sink.server.sessions) >= n_clients:
                        break
                    await anyio.sleep(0.01)
            cpu_at_start.append(time.process_time())  # CPU of the streaming part only
            ready.set()

        async with anyio.create_task_group() as tg:
            for start in range(0, n_clients, per_process):
                tg.start_soon(clients, min(per_process, n_clients - start))
            tg.start_soon(connected)
            await flow.run(lm=lm, progress=False)
            cpu = time.process_time() - cpu_at_start[0]
        clients_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # the client processes, all exited
        await lm.aclose()
    received: dict[str, list[float]] = {}
    arrived: dict[str, list[float]] = {}
    fields: dict[str, list[float]] = {}
    for blob in output:
        parts = json.loads(blob)
        for tok, times in parts["token"].items():
            received.setdefault(tok, []).extend(times)
        for tok, times in parts.get("arrived", {}).items():
            arrived.setdefault(tok, []).extend(times)
        for tok, times in parts["field"].items():
            fields.setdefault(tok, []).extend(times)
    in_field = [(t - server.emitted[tok]) * 1000 for tok, times in fields.items()
                if tok in server.emitted for t in times]
    latencies = [(t - server.emitted[tok]) * 1000 for tok, times in received.items()
                 if tok in server.emitted for t in times]
    at_socket = [(t - server.emitted[tok]) * 1000 for tok, times in arrived.items()
                 if tok in server.emitted for t in times] or [float("nan")]
    to_flush = [(flushed[tok][0] - at_sink[tok]) * 1000 for tok in at_sink if tok in flushed] or [float("nan")]
    flush_ms = [(end - began) * 1000 for began, end in set(flushed.values())] or [float("nan")]
    # the server's own figure: the token is in every client's socket (or transport) when its flush ends
    written = [(flushed[tok][1] - server.emitted[tok]) * 1000 for tok in flushed if tok in server.emitted]
    written = written or [float("nan")]
    from_sink = [(t - at_sink[tok]) * 1000 for tok, times in received.items() if tok in at_sink for t in times]
    to_sink = [(at_sink[tok] - server.emitted[tok]) * 1000 for tok in at_sink if tok in server.emitted]
    return {
        "to_sink_median_ms": statistics.median(to_sink),
        "from_sink_median_ms": statistics.median(from_sink),
        "from_sink_p99_ms": _percentile(from_sink, 0.99),
        "to_sink_p99_ms": _percentile(to_sink, 0.99),
        "clients": n_clients,
        "to_flush_median_ms": statistics.median(to_flush),
        "to_flush_p99_ms": _percentile(to_flush, 0.99),
        "flush_median_ms": statistics.median(flush_ms),
        "flush_p99_ms": _percentile(flush_ms, 0.99),
        "flushes": len(flush_ms),
        "written_median_ms": statistics.median(written),
        "written_p99_ms": _percentile(written, 0.99),
        "cpu_s": cpu,
        "clients_cpu_s": clients_cpu.ru_utime + clients_cpu.ru_stime,
        "cpu_per_token_us": cpu / max(1, len(server.emitted)) * 1e6,
        "socket_median_ms": statistics.median(at_socket),
        "socket_p99_ms": _percentile(at_socket, 0.99),
        "samples": len(latencies),
        "median_ms": statistics.median(latencies),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "field_median_ms": statistics.median(in_field),
        "field_p99_ms": _percentile(in_field, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 200])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flush-interval", type=float, default=None,
                        help="the sink's flush_interval in seconds (default: the sink's default)")
    parser.add_argument("--raw", action="store_true",
                        help="clients on raw sockets, all in one process (default: websockets, 50 a process)")
    args = parser.parse_args()
    if args.client:
        import asyncio

        if args.raw:
            _raw_clients(args.client, args.n)
        else:
            asyncio.run(_clients(args.client, args.n))
        return
    import anyio

    for n in args.clients:
        per_process = n if args.raw else 50
        r = anyio.run(_run, n, args.items, per_process, args.raw, args.flush_interval, backend=args.backend)
        print(f"{args.backend:7} {r['clients']:4} {'raw' if args.raw else 'websockets'} clients  token->client latency: median "
              f"{r['median_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms  "
              f"({r['samples']} samples; server byte -> sink.write_event: median "
              f"{r['to_sink_median_ms']:.2f} ms, p99 {r['to_sink_p99_ms']:.2f} ms; sink.write_event -> "
              f"client: median {r['from_sink_median_ms']:.2f} ms, p99 {r['from_sink_p99_ms']:.2f} ms; "
              f"flow process CPU {r['cpu_s']:.2f} s, {r['cpu_per_token_us']:.0f} us a token; "
              f"client processes CPU {r['clients_cpu_s']:.2f} s (whole run); "
              f"sink -> flush: median {r['to_flush_median_ms']:.2f} ms, p99 {r['to_flush_p99_ms']:.2f} ms; "
              f"{r['flushes']} flushes of median {r['flush_median_ms']:.2f} ms, p99 {r['flush_p99_ms']:.2f} ms; "
              f"server byte -> written to every client: median {r['written_median_ms']:.2f} ms, "
              f"p99 {r['written_p99_ms']:.2f} ms; "
              f"at the client's socket (kernel stamp): median {r['socket_median_ms']:.2f} ms, "
              f"p99 {r['socket_p99_ms']:.2f} ms; token in its field_delta: median "
              f"{r['field_median_ms']:.2f} ms, p99 {r['field_p99_ms']:.2f} ms)", flush=True)


if __name__ == "__main__":
    main()
