"""Records through ``map`` into a JSONL file: dspex's CPU path next to plain Python.

1. N JSONL records (default 1,000,000) -> ``map(cheap)`` -> JSONL file, with
   each executor (``inline``, the default; ``threads``; ``processes``) at
   concurrency 1, 4 and 16, next to a plain read-parse-write loop and an
   asyncio pipeline with bounded queues (reader -> mapper -> writer tasks),
   and bytewax when it is installed in this venv.
2. A CPU-bound function (a regex-heavy text cleaner) on fewer records: plain
   loop, ``inline``, and ``processes`` at concurrency 1, 2 and 4, to show
   whether processes scale with cores.

Every case runs in its own subprocess, so its wall time, CPU time (its own
plus its reaped children's: the worker processes) and peak RSS belong to it
alone. A dspex case first runs the same flow on 10 records, outside the timed
part, so that one-time lazy imports (about 0.2 s of CPU) are not counted: the
loops import nothing. Prints one table; ``--json PATH`` also saves the rows.

Run: ``.venv/bin/python benchmarks/bench_records.py [--records 1000000] [--cpu-records 50000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONCURRENCIES = (1, 4, 16)
EXECUTORS = ("inline", "threads", "processes")

_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]+>")
_URL = re.compile(r"https?://\S+")
_WORD = re.compile(r"\b(\w)(\w*)\b")
_PUNCT = re.compile(r"([!?.,;:])\1+")


def cheap(r: dict[str, Any]) -> dict[str, Any]:
    """The cheap per-record function: a reshape, as between LM stages."""
    return {**r, "len": len(r["text"])}


def clean(r: dict[str, Any]) -> dict[str, Any]:
    """A CPU-bound cleaner: many regex passes over a longer text."""
    text = (r["text"] + " <b>see</b> http://example.org/x?y=1 wow!!! ok,, ") * 8
    for _ in range(6):
        text = _TAG.sub(" ", text)
        text = _URL.sub("<url>", text)
        text = _PUNCT.sub(r"\1", text)
        text = _WORD.sub(lambda m: m.group(1).upper() + m.group(2).lower(), text)
        text = _SPACE.sub(" ", text).strip()
    return {**r, "clean": text[:80], "words": text.count(" ") + 1}


FUNCTIONS = {"cheap": cheap, "clean": clean}


def write_input(path: str, n: int) -> None:
    """Write ``n`` records of the shape the other flow benchmarks use."""
    with open(path, "w") as f:
        f.writelines(json.dumps({"id": i, "text": f"record number {i} with some text"}) + "\n" for i in range(n))


# -- cases (each in its own process) -----------------------------------------
def case_plain(src: str, dst: str, fn: Any) -> int:
    n = 0
    dumps, loads = json.dumps, json.loads
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            fout.write(dumps(fn(loads(line)), ensure_ascii=False) + "\n")
            n += 1
    return n


def case_asyncio(src: str, dst: str, fn: Any, size: int = 1000) -> int:
    import asyncio

    async def main() -> int:
        lines: asyncio.Queue[Any] = asyncio.Queue(size)
        done: asyncio.Queue[Any] = asyncio.Queue(size)
        count = 0

        async def reader() -> None:
            with open(src, encoding="utf-8") as fin:  # noqa: ASYNC230 (the plain asyncio script blocks, as one would)
                for line in fin:
                    await lines.put(json.loads(line))
            await lines.put(None)

        async def mapper() -> None:
            while (record := await lines.get()) is not None:
                await done.put(fn(record))
            await done.put(None)

        async def writer() -> None:
            nonlocal count
            with open(dst, "w", encoding="utf-8") as fout:  # noqa: ASYNC230 (as above)
                while (record := await done.get()) is not None:
                    fout.write(json.dumps(record, ensure_ascii=False) + "\n")
                    count += 1

        await asyncio.gather(reader(), mapper(), writer())
        return count

    return asyncio.run(main())


def case_bytewax(src: str, dst: str, fn: Any) -> int:
    from bytewax import operators as op
    from bytewax.connectors.files import FileSink, FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main

    flow = Dataflow("bench")
    lines = op.input("in", flow, FileSource(src))
    out = op.map("map", lines, lambda line: json.dumps(fn(json.loads(line)), ensure_ascii=False))
    op.output("out", out, FileSink(Path(dst)))
    run_main(flow)
    with open(dst, "rb") as f:
        return sum(1 for _ in f)


def case_dspex(src: str, dst: str, fn: Any, concurrency: int, executor: str, backend: str) -> int:
    import dspex.flows as fl
    from dspex.sinks import jsonl
    from dspex.sources import jsonl as jsonl_source

    os.environ["DSPEX_BACKEND"] = backend
    flow = fl.Flow("bench-records")
    (flow.source(jsonl_source(src))
         .map(fn, concurrency=concurrency, executor=executor)
         .sink(jsonl(dst, mode="w")))
    return flow.run_sync(progress=False).items_out


def _warm_up(fn: Any, backend: str) -> None:
    """Run the same flow on 10 records: dspex imports some modules on first use."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
        write_input(src, 10)
        case_dspex(src, dst, fn, 1, "inline", backend)


def run_case(args: argparse.Namespace) -> None:
    """Run one case in this process and print its row as JSON."""
    sys.path.insert(0, str(HERE))
    import bench_records as me  # functions by module name: worker processes import them

    fn = me.FUNCTIONS[args.fn]
    if args.kind == "dspex":  # one-time imports outside the timed part (the loops import nothing)
        _warm_up(fn, args.backend)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if args.kind == "plain":
        n = case_plain(args.src, args.dst, fn)
    elif args.kind == "asyncio":
        n = case_asyncio(args.src, args.dst, fn)
    elif args.kind == "bytewax":
        n = case_bytewax(args.src, args.dst, fn)
    else:
        n = case_dspex(args.src, args.dst, fn, args.concurrency, args.executor, args.backend)
    wall = time.perf_counter() - wall0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "records": n, "wall_s": wall, "cpu_s": time.process_time() - cpu0,
        "children_cpu_s": children.ru_utime + children.ru_stime,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_peak_rss_mb": children.ru_maxrss / 1024,
    }), flush=True)


# -- driver ---------------------------------------------------------------------
def _one(kind: str, fn: str, src: str, dst: str, *, concurrency: int = 1, executor: str = "",
         backend: str = "asyncio") -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "bench_records.py"), "case", "--kind", kind, "--fn", fn,
           "--src", src, "--dst", dst, "--concurrency", str(concurrency),
           "--executor", executor or "inline", "--backend", backend]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"case {kind} {executor} @ {concurrency} failed:\n{proc.stderr[-2000:]}")
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    side = kind if kind != "dspex" else f"dspex {executor}"
    row.update(fn=fn, side=side, concurrency=concurrency if kind == "dspex" else None,
               records_per_s=row["records"] / row["wall_s"])
    return row


def _say(row: dict[str, Any]) -> None:
    c = "" if row["concurrency"] is None else f"@ {row['concurrency']:<2}"
    cpu = row["cpu_s"] + row["children_cpu_s"]
    print(f"{row['fn']:<5} {row['side']:<16} {c:<4} {row['records']:>9,} rec  {row['wall_s']:6.2f} s "
          f"({row['x_plain']:4.2f}x plain)  {row['records_per_s'] / 1000:6.0f}k rec/s  "
          f"CPU {cpu:6.2f} s ({row['cpu_x_plain']:4.2f}x)  peak RSS {row['peak_rss_mb']:4.0f} MB"
          + (f" (+ workers {row['children_peak_rss_mb']:.0f} MB each)" if row["children_cpu_s"] > 0.5 else ""),
          flush=True)


def _have_bytewax() -> bool:
    import importlib.util

    return importlib.util.find_spec("bytewax") is not None


def bench(records: int, cpu_records: int, backend: str = "asyncio",
          only: tuple[str, ...] = ("cheap", "clean"), repeat: int = 1,
          executors: tuple[str, ...] = EXECUTORS) -> list[dict[str, Any]]:
    """Run every case (of the functions in ``only``); return the rows, also printed as they finish.

    With ``repeat`` > 1 each case runs that many times (fresh processes) and
    the run with the least CPU time is kept; ``walls_s`` lists every wall time.
    """
    rows: list[dict[str, Any]] = []
    parts = (("cheap", records, _cheap_plan(executors)), ("clean", cpu_records, _clean_plan(executors)))
    with tempfile.TemporaryDirectory() as tmp:
        for fn, n, plan in (part for part in parts if part[0] in only):
            src, dst = os.path.join(tmp, f"{fn}.jsonl"), os.path.join(tmp, "out.jsonl")
            write_input(src, n)
            plain: dict[str, Any] = {}
            for kind, concurrency, executor in plan:
                runs = [_one(kind, fn, src, dst, concurrency=concurrency, executor=executor, backend=backend)
                        for _ in range(repeat)]
                row = min(runs, key=lambda r: r["cpu_s"] + r["children_cpu_s"])
                row["walls_s"] = [round(r["wall_s"], 2) for r in runs]
                plain = plain or row  # the plan starts with the plain loop
                row["x_plain"] = row["wall_s"] / plain["wall_s"]
                row["cpu_x_plain"] = (row["cpu_s"] + row["children_cpu_s"]) / plain["cpu_s"]
                rows.append(row)
                _say(row)
            os.remove(src)
    return rows


def _cheap_plan(executors: tuple[str, ...]) -> list[tuple[str, int, str]]:
    plan = [("plain", 1, ""), ("asyncio", 1, "")]
    if _have_bytewax():
        plan.append(("bytewax", 1, ""))
    plan += [("dspex", c, e) for e in EXECUTORS if e in executors for c in CONCURRENCIES]
    return plan


def _clean_plan(executors: tuple[str, ...]) -> list[tuple[str, int, str]]:
    plan = [("plain", 1, ""), ("dspex", 1, "inline"), ("dspex", 4, "threads"),
            *[("dspex", c, "processes") for c in (1, 2, 4)]]
    return [case for case in plan if case[0] == "plain" or case[2] in executors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "case"])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--cpu-records", type=int, default=50_000)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--only", default="cheap,clean", help="which functions: cheap, clean or both")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the least CPU is kept")
    parser.add_argument("--executors", default=",".join(EXECUTORS), help="dspex executors to run")
    # case mode (internal)
    parser.add_argument("--kind", default="dspex")
    parser.add_argument("--fn", default="cheap")
    parser.add_argument("--src", default="")
    parser.add_argument("--dst", default="")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--executor", default="inline")
    args = parser.parse_args()
    if args.mode == "case":
        run_case(args)
        return
    rows = bench(args.records, args.cpu_records, args.backend, tuple(args.only.split(",")), args.repeat,
                 tuple(args.executors.split(",")))
    from _report import records_table
    from rich.console import Console

    Console(width=160).print(records_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
