"""Hot-path CPU per LM call, layer by layer, and LM-bound flow throughput.

The fake LM server always runs in a separate process, so ``time.process_time``
of this process is the framework's CPU alone (client side: dspex + anyio +
the event loop). For each backend (asyncio, trio):

1. CPU per call at concurrency ``--concurrency`` (64) against a 0 ms server,
   for each layer, each the best of ``--repeats`` runs of ``--calls`` calls:

   - ``noop``: spawn a task, take a ``CapacityLimiter`` slot, ``sleep(0)``
     (the harness itself; every other row includes it),
   - ``transport``: one raw ``POST /v1/chat/completions`` through the pool,
   - ``lm.acall``: ``dx.LM.acall`` (cache off),
   - ``Predict.acall``: format, LM call, parse, ``Prediction``,
   - ``CoT.acall``: the same with ``ChainOfThought``,
   - ``flow map``: a ``Flow`` source -> ``map(cot, concurrency)`` -> collect
     sink, CPU per item.

2. Throughput of ``--items`` (2000) items through ``map(cot, concurrency=C)``
   against a server with ``--latency-ms`` (50 ms) latency for C = 64 and 256,
   as a fraction of the ideal ``items * latency / C`` (target >= 95 %), next to
   a bare transport loop at the same concurrency (the ceiling the box and the
   server allow at that moment).

3. Sequential ChainOfThought calls, sync ``__call__`` and ``acall`` (how the
   DSPy comparison measures framework CPU per call).

With ``--otel``, the CPU table is measured twice in one process: first with
no OpenTelemetry SDK provider (what every row above means), then after
installing SDK tracer and meter providers globally (a ``BatchSpanProcessor``
into an in-memory exporter, and an in-memory metric reader), printed side by
side with the ratio.

Run: ``.venv/bin/python benchmarks/bench_hot_path.py [--backend asyncio] [--otel]
[--skip-throughput] [--profile cot [--profiler cprofile]]`` (``--profile LAYER``
prints a profile of one layer instead of the table: pyinstrument's sampled call
tree by default, or cProfile's tables).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

LAYERS = ("noop", "transport", "lm", "predict", "cot", "flow")
LABELS = {
    "noop": "noop (harness)", "transport": "transport", "lm": "lm.acall",
    "predict": "Predict.acall", "cot": "CoT.acall", "flow": "flow map node",
}


@contextlib.contextmanager
def fake_server(latency_ms: float) -> Iterator[str]:
    """Run ``python -m dspex.testing.server`` in a subprocess; yield its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dspex.testing.server", "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _questions(n: int) -> list[dict[str, str]]:
    return [{"question": f"What is {i} + {i}?"} for i in range(n)]


async def _spread(fn: Callable[[int], Awaitable[Any]], n: int, concurrency: int) -> float:
    """Run ``fn(i)`` for ``n`` items, ``concurrency`` at a time; return CPU seconds."""
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(i: int) -> None:
        async with limiter:
            await fn(i)

    start = time.process_time()
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return time.process_time() - start


async def _flow_cpu(module: Any, lm: Any, n: int, concurrency: int) -> tuple[float, float]:
    """Run ``n`` items through ``map(module)``; return (CPU seconds, wall seconds)."""
    import dspex.flows as fl
    from dspex.sinks import collect

    flow = fl.Flow("bench-hot-path")
    out = collect()
    flow.source(_questions(n)).map(module, concurrency=concurrency, ordered=False).sink(out)
    cpu, wall = time.process_time(), time.perf_counter()
    report = await flow.run(progress=False, lm=lm)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if report.items_out != n or len(out.items) != n:
        raise RuntimeError(f"flow lost items: {report.to_dict()}")
    return cpu, wall


def _callers(url: str) -> dict[str, Callable[[int], Awaitable[Any]]]:
    import dspex as dx
    from dspex._http._factory import get_transport

    lm = dx.LM("openai/fake", api_base=url + "/v1", api_key="sk-bench-key", cache=False)
    predict = dx.Predict("question -> answer")
    cot = dx.ChainOfThought("question -> answer")
    messages = dx.ChatAdapter().format(cot.predict.signature, [], {"question": "What is 1 + 1?"})
    body = json.dumps({"model": "fake", "messages": messages}).encode()
    transport = get_transport(url=url)
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench-key"}

    async def noop(i: int) -> None:
        await anyio.lowlevel.checkpoint()

    async def raw(i: int) -> None:
        response = await transport.request("POST", url + "/v1/chat/completions", headers=headers, body=body)
        await response.aread()

    async def lm_call(i: int) -> None:
        await lm.acall(messages)

    async def predict_call(i: int) -> None:
        await predict.acall(question=f"What is {i} + {i}?", lm=lm)

    async def cot_call(i: int) -> None:
        await cot.acall(question=f"What is {i} + {i}?", lm=lm)

    return {"noop": noop, "transport": raw, "lm": lm_call, "predict": predict_call, "cot": cot_call,
            "_lm": lm, "_cot": cot}  # type: ignore[dict-item]


async def measure_layers(url: str, layers: list[str], calls: int, concurrency: int, repeats: int) -> dict[str, float]:
    """Return the best µs of CPU per call for each layer."""
    fns = _callers(url)
    results: dict[str, float] = {}
    for layer in layers:
        best = float("inf")
        for _ in range(repeats):
            if layer == "flow":
                await _flow_cpu(fns["_cot"], fns["_lm"], concurrency, concurrency)  # warm
                cpu, _ = await _flow_cpu(fns["_cot"], fns["_lm"], calls, concurrency)
            else:
                await _spread(fns[layer], concurrency, concurrency)  # warm: open connections
                cpu = await _spread(fns[layer], calls, concurrency)
            best = min(best, cpu / calls * 1e6)
        results[layer] = best
    return results


async def measure_throughput(
    url: str, items: int, latency_ms: float, concurrencies: list[int]
) -> dict[int, tuple[float, float]]:
    """Return (flow, bare transport) fractions of ideal throughput per concurrency.

    The bare transport row (raw requests, ``concurrency`` at a time) is the
    ceiling the box and the server allow right now.
    """
    fns = _callers(url)
    fractions = {}
    for c in concurrencies:
        ideal = items * latency_ms / 1000 / c
        await _spread(fns["transport"], c, c)
        start = time.perf_counter()
        await _spread(fns["transport"], items, c)
        bare = ideal / (time.perf_counter() - start)
        await _flow_cpu(fns["_cot"], fns["_lm"], c, c)  # open the connections
        _, wall = await _flow_cpu(fns["_cot"], fns["_lm"], items, c)
        fractions[c] = (ideal / wall, bare)
    return fractions


def measure_sequential(url: str, calls: int, repeats: int, backends: list[str]) -> dict[str, float]:
    """Return µs CPU per sequential ChainOfThought call: sync ``__call__`` and ``acall`` per backend.

    This is how the DSPy comparison measures (DSPy 3.4.1: 1.87 ms sync, 4.8 ms async).
    """
    import dspex as dx

    lm = dx.LM("openai/fake", api_base=url + "/v1", api_key="sk-bench-key", cache=False)
    cot = dx.ChainOfThought("question -> answer")
    rows: dict[str, float] = {}
    for i in range(20):
        cot(question=f"warm {i}", lm=lm)
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for i in range(calls):
            cot(question=f"What is {i} + {i}?", lm=lm)
        best = min(best, (time.process_time() - start) / calls * 1e6)
    rows["sync"] = best

    async def run_async() -> float:
        for i in range(20):
            await cot.acall(question=f"warm {i}", lm=lm)
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            for i in range(calls):
                await cot.acall(question=f"What is {i} + {i}?", lm=lm)
            best = min(best, (time.process_time() - start) / calls * 1e6)
        return best

    for b in backends:
        rows[b] = anyio.run(run_async, backend=b)
    return rows


def profile_layer(url: str, layer: str, calls: int, concurrency: int, backend: str, tool: str = "pyinstrument") -> None:
    """Print a profile of one layer: pyinstrument's call tree (sampling), or cProfile's tables."""
    import cProfile
    import pstats

    async def run(fns: dict[str, Any], n: int) -> None:
        if layer == "flow":
            await _flow_cpu(fns["_cot"], fns["_lm"], n, concurrency)
        else:
            await _spread(fns[layer], n, concurrency)

    async def main() -> None:
        fns = _callers(url)
        await _spread(fns["noop"], 10, 10)
        await run(fns, concurrency)  # warm: connections open, modules imported
        if tool == "pyinstrument":  # sampling: the whole thread, the event loop included
            from pyinstrument import Profiler

            sampler = Profiler(interval=0.0002, async_mode="disabled")
            sampler.start()
            await run(fns, calls)
            sampler.stop()
            print(sampler.output_text(unicode=True, color=False, show_all=False))
            return
        profiler = cProfile.Profile(time.process_time)  # CPU, not wall: the box is shared
        profiler.enable()
        await run(fns, calls)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats("dspex", 40)

    anyio.run(main, backend=backend)


def install_sdk() -> Any:
    """Install SDK tracer and meter providers globally; return the span exporter.

    Spans go through a ``BatchSpanProcessor`` (its worker thread's CPU counts:
    ``process_time`` covers every thread) to an exporter that counts and drops
    them, as a network exporter would after sending.
    """
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class CountingExporter(SpanExporter):
        def __init__(self) -> None:
            self.exported = 0

        def export(self, spans: Any) -> SpanExportResult:
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return exporter


def cpu_with_otel(args: argparse.Namespace, backends: list[str], layers: list[str]) -> None:
    """Print the CPU rows with no SDK provider, then with SDK providers installed."""
    with fake_server(0) as url:
        off = {b: anyio.run(measure_layers, url, layers, args.calls, args.concurrency, args.repeats, backend=b)
               for b in backends}
        exporter = install_sdk()
        on = {b: anyio.run(measure_layers, url, layers, args.calls, args.concurrency, args.repeats, backend=b)
              for b in backends}
    print(f"CPU per call, µs (concurrency {args.concurrency}, 0 ms server in another process, "
          f"best of {args.repeats} x {args.calls}): no OTel SDK | OTel SDK (batch exporter) | ratio")
    print(f"{'layer':<16}" + "".join(f"{b + ' off':>14}{b + ' on':>12}{'x':>7}" for b in backends))
    for layer in layers:
        cells = "".join(f"{off[b][layer]:>14.0f}{on[b][layer]:>12.0f}{on[b][layer] / off[b][layer]:>7.2f}"
                        for b in backends)
        print(f"{LABELS[layer]:<16}" + cells, flush=True)
    from opentelemetry import trace

    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    print(f"spans exported: {exporter.exported}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", action="append", choices=["asyncio", "trio"])
    parser.add_argument("--layer", action="append", choices=LAYERS)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--profile", choices=LAYERS)
    parser.add_argument("--otel", action="store_true", help="CPU rows without, then with, an OTel SDK")
    parser.add_argument("--profiler", choices=["pyinstrument", "cprofile"], default="pyinstrument")
    args = parser.parse_args()
    backends = args.backend or ["asyncio", "trio"]
    layers = args.layer or list(LAYERS)
    if args.profile:
        with fake_server(0) as url:
            profile_layer(url, args.profile, args.calls, args.concurrency, backends[0], args.profiler)
        return
    if args.otel and not args.skip_cpu:
        cpu_with_otel(args, backends, layers)
    elif not args.skip_cpu:
        with fake_server(0) as url:
            rows = {b: anyio.run(measure_layers, url, layers, args.calls, args.concurrency, args.repeats, backend=b)
                    for b in backends}
            seq = measure_sequential(url, min(args.calls, 1000), args.repeats, backends)
        print(f"CPU per call, µs (concurrency {args.concurrency}, 0 ms server in another process, "
              f"best of {args.repeats} x {args.calls})")
        print(f"{'layer':<16}" + "".join(f"{b:>10}" for b in backends))
        for layer in layers:
            print(f"{LABELS[layer]:<16}" + "".join(f"{rows[b][layer]:>10.0f}" for b in backends), flush=True)
        print("Sequential ChainOfThought calls (the DSPy comparison; DSPy 3.4.1: 1870 sync, 4800 async), µs CPU:")
        print(f"{'sync __call__':<16}{seq['sync']:>10.0f}")
        print(f"{'acall':<16}" + "".join(f"{seq[b]:>10.0f}" for b in backends), flush=True)
    if not args.skip_throughput:
        with fake_server(args.latency_ms) as url:
            for b in backends:
                fractions = anyio.run(measure_throughput, url, args.items, args.latency_ms, [64, 256], backend=b)
                for c, (f, bare) in fractions.items():
                    ideal = args.items * args.latency_ms / 1000 / c
                    print(f"throughput [{b}] {args.items} items @ {c} ({args.latency_ms:.0f} ms): "
                          f"flow map(cot) {100 * f:.1f} % of ideal (ideal {ideal:.2f} s, took {ideal / f:.2f} s); "
                          f"bare transport {100 * bare:.1f} %", flush=True)


if __name__ == "__main__":
    main()
