"""Client CPU per LM request: the lean pool vs the httpx transport, asyncio vs trio.

The fake LM server runs in a separate process (``python -m dspex.testing.server``),
so the process CPU time measured here (``time.process_time``) is the client's
alone: event loop, transport, HTTP parsing, body reads and SSE decoding. Each
case sends REQUESTS requests with CONCURRENCY in flight: plain JSON replies of
about 1 KB (``n=3`` choices of a ChatAdapter answer) and streamed replies of
about 40 SSE events (decoded with the SSE decoder). Usage::

    python benchmarks/bench_transport.py [--requests 2000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio

from dspex._http._httpx_transport import HttpxTransport
from dspex._http._pool import ConnectionPool
from dspex._http._sse import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Callable

    from dspex._http._transport import Transport

SYSTEM = (
    "Your input fields are:\n1. `question` (str):\nYour output fields are:\n"
    "1. `reasoning` (str): \n2. `answer` (str):\nAll interactions will be structured in the "
    "following way, with the appropriate values filled in.\n\n[[ ## question ## ]]\n{question}\n\n"
    "[[ ## reasoning ## ]]\n{reasoning}\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]\n"
    "In adhering to this structure, your objective is: \n        Answer questions."
)


def body(stream: bool) -> bytes:
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": "[[ ## question ## ]]\nWhat is 2+2?"}]  # fmt: skip
    payload: dict[str, Any] = {"model": "fake", "messages": messages, "n": 1 if stream else 3}
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return json.dumps(payload).encode()


async def one_json(t: Transport, url: str, data: bytes) -> int:
    resp = await t.request("POST", url, headers={"content-type": "application/json"}, body=data)
    return len(await resp.aread())


async def one_stream(t: Transport, url: str, data: bytes) -> int:
    events = 0
    decoder = SSEDecoder()
    async with t.stream("POST", url, headers={}, body=data) as resp:
        async for chunk in resp.aiter_bytes():
            events += len(decoder.feed(chunk))
    return events


async def drive(
    make: Callable[[], Transport], url: str, stream: bool, total: int, concurrency: int
) -> tuple[float, float, int]:
    transport = make()
    data = body(stream)
    call = one_stream if stream else one_json
    sizes: list[int] = []

    async def worker(count: int) -> None:
        sizes.extend([await call(transport, url, data) for _ in range(count)])

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker, 4)
    sizes.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        per, extra = divmod(total, concurrency)
        for i in range(concurrency):
            tg.start_soon(worker, per + (1 if i < extra else 0))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await transport.aclose()
    return cpu, wall, sizes[0]


async def floor(url: str, stream: bool, total: int, concurrency: int) -> tuple[float, float, int]:
    """The floor: raw anyio sockets, one send and receives until the reply's end."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    data = body(stream)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data  # fmt: skip
    end = b"0\r\n\r\n" if stream else b"}"
    sizes: list[int] = []

    async def worker(count: int) -> None:
        async with await anyio.connect_tcp(host, int(port)) as conn:
            for _ in range(count):
                await conn.send(head)
                got = b""
                while not got.endswith(end):
                    got += await conn.receive(65536)
                sizes.append(len(got))

    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        per, extra = divmod(total, concurrency)
        for i in range(concurrency):
            tg.start_soon(worker, per + (1 if i < extra else 0))
    return time.process_time() - cpu0, time.perf_counter() - wall0, sizes[0]


def start_server() -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dspex.testing.server", "--port", "0", "--tokens-per-chunk", "1"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--httpx-requests", type=int, default=500,
                        help="requests for the (much slower) httpx transport")  # fmt: skip
    parser.add_argument("--only", default="", help="run transports whose name contains this")
    args = parser.parse_args()
    for var in [k for k in os.environ if "proxy" in k.lower()]:
        del os.environ[var]
    proc, root = start_server()
    url = root + "/v1/chat/completions"
    transports: dict[str, Callable[[], Transport]] = {
        "lean pool (httptools)": lambda: ConnectionPool(),
        "lean pool (h11)": lambda: ConnectionPool(parser="h11"),
        "httpx": lambda: HttpxTransport(),
    }
    rows = []
    try:
        for mode in ("json", "stream"):
            for name, make in transports.items():
                if args.only not in name:
                    continue
                n = args.httpx_requests if name == "httpx" else args.requests
                for backend in ("asyncio", "trio"):
                    cpu, wall, size = anyio.run(
                        drive, make, url, mode == "stream", n, args.concurrency, backend=backend
                    )
                    rows.append((mode, name, backend, size, n, cpu, wall))
                    print(".", end="", flush=True, file=sys.stderr)
            if "floor" in args.only or not args.only:
                for backend in ("asyncio", "trio"):
                    cpu, wall, size = anyio.run(
                        floor, url, mode == "stream", args.requests, args.concurrency,
                        backend=backend,
                    )  # fmt: skip
                    rows.append((mode, "raw socket floor", backend, size, args.requests, cpu, wall))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(file=sys.stderr)
    print(f"{args.concurrency} in flight, server in a separate process\n")
    print(f"{'reply':<7} {'transport':<22} {'backend':<8} {'size':>10} {'req':>6} {'req/s':>8} "
          f"{'CPU ms/req':>11}")  # fmt: skip
    for mode, name, backend, size, n, cpu, wall in rows:
        shown = f"{size} ev" if mode == "stream" and "floor" not in name else f"{size} B"
        print(f"{mode:<7} {name:<22} {backend:<8} {shown:>10} {n:>6} {n / wall:>8.0f} "
              f"{cpu / n * 1000:>11.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
