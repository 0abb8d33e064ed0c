"""dspex's side of the benchmarks; runs in the project venv, one mode per process.

    python benchmarks/dspex_side.py MODE [--url URL] [--n N] [--concurrency C]
                                         [--program predict|cot] [--backend asyncio|trio]

Modes print one JSON object as their last stdout line:
  throughput  ``dx.Flow``: iterable source -> ``map(program, concurrency=C,
              ordered=False)`` -> ``collect()`` sink, N questions
  throughput-raw  the floor: the same N requests (bodies rendered before the
              clock) from C bare asyncio-stream workers, no framework
  cpu         process CPU per call: ``acall`` one at a time in one event loop
  cpu-sync    the same through the sync ``__call__`` (an event loop per call)
  memory      peak RSS after the ``throughput`` flow over N questions
  stream      time to the first ``FieldDelta`` of ``ChainOfThought.stream``
              vs a raw socket's first byte and first field byte, same server
  micro       µs per signature parse, ChatAdapter format and parse
The server runs in another process, so process CPU time is the client's alone.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import socket
import statistics
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import anyio
from _common import (
    COMPLETION,
    FORMAT_INPUTS,
    SIGNATURE,
    SIGNATURE_CASES,
    Clock,
    best_us,
    emit,
    peak_rss_mb,
    questions,
)

import dspex as dx

if TYPE_CHECKING:
    from collections.abc import Callable


def _program(kind: str) -> dx.Module:
    return dx.ChainOfThought(SIGNATURE) if kind == "cot" else dx.Predict(SIGNATURE)


def _lm(url: str) -> dx.LM:
    return dx.LM("openai/fake-model", api_base=url.rstrip("/") + "/v1", api_key="sk-bench", cache=False)


def _answered(record: Any) -> bool:
    return isinstance(record, dict) and bool(record.get("answer"))


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    prog, lm, inputs = _program(args.program), _lm(args.url), questions(args.n)
    sink = dx.sinks.collect()
    flow = dx.Flow("bench")
    flow.source(dx.sources.iterable(inputs)).map(prog, concurrency=args.concurrency, ordered=False).sink(sink)

    async def main() -> dict[str, Any]:
        clock = Clock()
        report = await flow.run(progress=False, lm=lm)
        return {**clock.read(), "items_out": report.items_out}

    out = anyio.run(main, backend=args.backend)
    out["ok"] = sum(1 for r in sink.items if _answered(r))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def throughput_raw(args: argparse.Namespace) -> dict[str, Any]:
    """The box's floor: the same requests from a minimal client (asyncio streams, no framework).

    Request bodies are rendered before the clock starts and replies are only
    split at the HTTP framing, so what is left is the server, the kernel and
    the timers: the best any client could do at this concurrency, this run.
    """
    import asyncio

    prog, parts = _program(args.program), urlsplit(args.url)
    messages = [dx.ChatAdapter().format(prog.predictors()[0].signature, [], q) for q in questions(args.n)]
    bodies = [json.dumps({"model": "fake-model", "messages": m}).encode() for m in messages]
    heads = [(f"POST /v1/chat/completions HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
              f"authorization: Bearer sk-bench\r\ncontent-length: {len(b)}\r\n\r\n").encode() + b for b in bodies]
    answered = 0

    async def worker(queue: list[bytes]) -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while queue:
            writer.write(queue.pop())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            answered += b"answer ## ]]" in await reader.readexactly(length)
        writer.close()

    async def main() -> dict[str, float]:
        clock = Clock()
        await asyncio.gather(*(worker(heads) for _ in range(args.concurrency)))
        return clock.read()

    out: dict[str, Any] = asyncio.run(main())
    return {**out, "ok": answered}


def cpu(args: argparse.Namespace, sync: bool) -> dict[str, Any]:
    prog, lm, inputs = _program(args.program), _lm(args.url), questions(args.n)
    warm = questions(20)
    if sync:
        for q in warm:
            prog(**q, lm=lm)
        clock = Clock()
        ok = sum(1 for q in inputs if prog(**q, lm=lm).answer)
        out = clock.read()
    else:
        async def main() -> tuple[int, dict[str, float]]:
            for q in warm:
                await prog.acall(**q, lm=lm)
            clock = Clock()
            done = 0
            for q in inputs:
                done += bool((await prog.acall(**q, lm=lm)).answer)
            return done, clock.read()

        ok, out = anyio.run(main, backend=args.backend)
    return {**out, "ok": ok, "calls": args.n, "cpu_ms_per_call": 1000 * out["cpu_s"] / args.n,
            "wall_ms_per_call": 1000 * out["wall_s"] / args.n}


# -- streaming --------------------------------------------------------------------

_FIELD_TEXT = re.compile(r"\[\[ ## \w+ ## \]\]\s*\S")


class RawClient:
    """One keep-alive socket to the server, timing a streamed request at the byte level."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        parts = urlsplit(url)
        payload = json.dumps(body).encode()
        self.request = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {parts.netloc}\r\n"
                        f"content-type: application/json\r\nauthorization: Bearer sk-bench\r\n"
                        f"content-length: {len(payload)}\r\n\r\n").encode() + payload
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def timed(self) -> tuple[float, float]:
        """Send the request; return (first response byte, first byte of field text) in s."""
        start = time.perf_counter()
        self.sock.sendall(self.request)
        first_byte = field_byte = 0.0
        raw, text = b"", ""
        while not raw.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's last chunk
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"the server closed the stream early: {raw[-300:]!r}")
            first_byte = first_byte or time.perf_counter() - start
            raw += chunk
            if not field_byte:  # each SSE frame is a `data: {...}` line; join every content delta so far
                deltas = re.findall(rb'"content":\s*"((?:[^"\\]|\\.)*)"', raw)
                text = "".join(json.loads(b'"' + d + b'"') for d in deltas)
                if _FIELD_TEXT.search(text):
                    field_byte = time.perf_counter() - start
        if not field_byte:
            raise RuntimeError(f"no field text in the raw stream: {text!r:.300}")
        return first_byte, field_byte

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def stream(args: argparse.Namespace) -> dict[str, Any]:
    cot, lm = dx.ChainOfThought(SIGNATURE), _lm(args.url)
    messages = dx.ChatAdapter().format(cot.predict.signature, [], {"question": "What is 7 plus 7?"})
    body = {"model": "fake-model", "messages": messages, "stream": True}

    async def first_delta(question: str) -> tuple[float, float, str]:
        start, first, field = time.perf_counter(), 0.0, ""
        async with cot.stream(question=question, lm=lm) as events:
            async for ev in events:
                if isinstance(ev, dx.events.FieldDelta) and not first:
                    first, field = time.perf_counter() - start, ev.field
        return first, time.perf_counter() - start, field

    raw = RawClient(args.url, body)

    async def main() -> dict[str, Any]:
        await first_delta("warm up")
        raw.timed()
        rows: dict[str, list[float]] = {"raw_first_byte": [], "raw_first_field_byte": [], "dspex_first_delta": [],
                                        "dspex_total": []}
        field = ""
        for i in range(args.n):
            fb, ff = raw.timed()
            delta, total, field = await first_delta(f"What is {i} plus 7?")
            for key, value in zip(rows, (fb, ff, delta, total), strict=True):
                rows[key].append(value * 1000)
        out: dict[str, Any] = {f"{k}_ms": statistics.median(v) for k, v in rows.items()}
        out["overhead_ms"] = statistics.median(d - f for d, f in zip(rows["dspex_first_delta"],
                                                                      rows["raw_first_field_byte"], strict=True))
        out["after_first_byte_ms"] = out["dspex_first_delta_ms"] - out["raw_first_byte_ms"]
        return {**out, "first_field": field, "samples": args.n}

    try:
        return anyio.run(main, backend=args.backend)
    finally:
        raw.close()


def micro(args: argparse.Namespace) -> dict[str, Any]:
    from dspex.signatures._make import signature_from_string

    # dx.Signature(text) is answered by its metaclass (cached), which mypy does not see through
    signature_from_text = cast("Callable[[str], object]", dx.Signature)

    sig = dx.ChainOfThought(SIGNATURE).predict.signature
    adapter = dx.ChatAdapter()
    out: dict[str, Any] = {}
    for name, text in SIGNATURE_CASES.items():
        out[f"signature_{name}_us"] = best_us(functools.partial(signature_from_string, text), max(args.n // 10, 50), 5)
        out[f"signature_{name}_cached_us"] = best_us(functools.partial(signature_from_text, text), args.n, 5)
    out["format_us"] = best_us(lambda: adapter.format(sig, [], FORMAT_INPUTS), args.n, 5)
    out["parse_us"] = best_us(lambda: adapter.parse(sig, COMPLETION), args.n, 5)
    assert adapter.parse(sig, COMPLETION)["answer"] == "42"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["throughput", "throughput-raw", "cpu", "cpu-sync", "memory", "stream", "micro"])
    p.add_argument("--url", default="")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--program", choices=["predict", "cot"], default="predict")
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = p.parse_args()
    modes = {"throughput": throughput, "throughput-raw": throughput_raw, "memory": throughput, "cpu": lambda a: cpu(a, False),
             "cpu-sync": lambda a: cpu(a, True), "stream": stream, "micro": micro}
    emit(modes[args.mode](args))


if __name__ == "__main__":
    main()
