"""Engines side by side: local vs processes vs Dask LocalCluster (2 workers).

Two workloads, each case in its own process (so peak RSS is that run's):

* records: N JSONL records (default 200,000) through ``map`` (no LM) into a
  JSONL sink, keyed and checkpointed (``run_id``) on every engine;
* cot: M questions (default 20,000) through ``ChainOfThought`` against the
  fake LM server (50 ms) at total concurrency C (default 256; a multi-process
  engine gives each of its W workers C / W), next to the bare-client floor
  (``dspex_side.py throughput-raw``: the same requests to the same server,
  no framework), measured before and after every case (see ``cot_rows``).

Throughput is items/s over the whole run (start-up of worker processes or the
cluster included), and again for a second run in the same process
(``warm_``: the fork server or cluster up, what a long job sees); peak RSS is
per process (the driver, and each worker)::

    python benchmarks/bench_engines.py [--records 200000] [--cot 20000]
        [--concurrency 256] [--workers 2] [--partitions 0] [--backend asyncio]
        [--only records,cot] [--engines local,processes,dask] [--repeat 1]
        [--baseline-src /path/to/older/checkout]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from _common import SIGNATURE, emit, peak_rss_mb, questions
from _procs import Server, checked, run_side

import dspex as dx
from dspex._util._sync import run_sync
from dspex.engines import ProcessesEngine

ENGINES = ("local", "processes", "dask")
VARIANTS = ("processes-pygc",)  # processes with Python's default GC in the workers


def square(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "y": r["x"] * r["x"], "tag": r["tag"].upper()}


def _run(flow: dx.Flow, args: argparse.Namespace, **kw: Any) -> dx.RunReport:
    """Run ``flow`` on ``args.engine``; the local engine's loop is ``args.backend`` too."""
    if args.engine == "local":
        return run_sync(partial(flow.run, **kw), backend=args.backend)
    engine: Any = args.engine
    if engine == "processes-pygc":
        engine = ProcessesEngine(workers=args.workers, gc_threshold=None)
    return flow.run_sync(engine=engine, workers=args.workers, backend=args.backend,
                         partitions=args.partitions or None, **kw)


def case_records(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    src = tmp / "in.jsonl"
    with src.open("w") as f:
        for i in range(args.n):
            f.write(json.dumps({"id": i, "x": i, "tag": f"rec-{i % 97}"}) + "\n")
    flow = dx.Flow("records")
    flow.source(dx.sources.jsonl(src, id_field="id")).map(square).sink(dx.sinks.jsonl(tmp / "out.jsonl"))
    start = time.perf_counter()
    report = _run(flow, args, run_id="bench", store=tmp / "s.sqlite", progress=False)
    wall = time.perf_counter() - start
    return {"engine": args.engine, "items_out": report.items_out, "wall_s": round(wall, 3),
            "items_per_s": round(report.items_out / wall), "driver_rss_mb": round(peak_rss_mb(), 1),
            "worker_rss_mb": report.memory.get("worker_peak_rss_mb", {})}


def case_cot(args: argparse.Namespace) -> dict[str, Any]:
    lm = dx.LM("openai/fake-model", api_base=args.url.rstrip("/") + "/v1", cache=False)
    items = [{"id": i, **q} for i, q in enumerate(questions(args.n))]
    per_worker = args.concurrency if args.engine == "local" else args.concurrency // args.workers
    got = dx.sinks.collect()
    flow = dx.Flow("cot")
    flow.source(dx.sources.iterable(items, id_field="id")).map(
        dx.ChainOfThought(SIGNATURE), concurrency=per_worker, ordered=False).sink(got)
    tmp = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    start = time.perf_counter()
    report = _run(flow, args, run_id="bench", store=tmp / "s.sqlite", progress=False, lm=lm)
    wall = time.perf_counter() - start
    ok = sum(1 for r in got.items if r.get("answer"))
    # The same run again (a new run id): what a long job sees once the engine is up
    # (the fork server started, modules imported, connections open).
    start = time.perf_counter()
    again = _run(flow, args, run_id="bench-warm", store=tmp / "s.sqlite", progress=False, lm=lm)
    warm = time.perf_counter() - start
    ok_warm = sum(1 for r in got.items if r.get("answer")) - ok
    return {"engine": args.engine, "items_out": report.items_out, "wall_s": round(wall, 3),
            "items_per_s": round(report.items_out / wall, 1), "per_worker_concurrency": per_worker,
            "warm_items_per_s": round(again.items_out / warm, 1),
            "ok": ok, "warm_ok": ok_warm,
            "driver_rss_mb": round(peak_rss_mb(), 1),
            "worker_rss_mb": report.memory.get("worker_peak_rss_mb", {})}


def _floor(server: Server, args: argparse.Namespace) -> float:
    out = checked(server, args.cot, sys.executable, "dspex_side.py", "throughput-raw",
                  n=args.cot, concurrency=args.concurrency, program="cot")
    print(json.dumps({"bench": "cot", "engine": "floor", "items_per_s": round(args.cot / out["wall_s"], 1),
                      "ok": out["ok"]}), file=sys.stderr)
    return float(args.cot / out["wall_s"])


def cot_rows(args: argparse.Namespace, env: dict[str, str]) -> list[dict[str, Any]]:
    """Each engine case between two floor runs: its ``of_floor`` is against their mean.

    The box is shared and its load moves within a minute, so a floor measured
    once at the start says little about a case run two minutes later.
    ``--baseline-src DIR`` also runs every case on the dspex in ``DIR/src``
    (an older checkout), interleaved, for before/after figures.
    """
    cases = [(e, None) for e in args.engines.split(",")]
    if args.baseline_src:
        cases = [c for e, _ in cases for c in ((e, args.baseline_src), (e, None))]
    rows: list[dict[str, Any]] = []
    with Server(latency_ms=50) as server:
        before = _floor(server, args)
        for _ in range(args.repeat):
            for engine, src in cases:
                case_env = {**env, "PYTHONPATH": str(Path(src) / "src")} if src else env
                out = checked(server, args.cot, sys.executable, "bench_engines.py", "case-cot",
                              env=case_env, engine=engine, n=args.cot, concurrency=args.concurrency,
                              workers=args.workers, backend=args.backend, partitions=args.partitions)
                after = _floor(server, args)
                floor = (before + after) / 2
                out.update(code="baseline" if src else "this", floor_items_per_s=round(floor, 1),
                           all_ok=out["all_ok"] and out.get("warm_ok") == args.cot,
                           of_floor=round(out["items_per_s"] / floor, 3),
                           warm_of_floor=round(out.get("warm_items_per_s", 0) / floor, 3))
                rows.append({"bench": "cot", **out})
                print(json.dumps(rows[-1]), file=sys.stderr)
                before = after
    return rows


def drive(args: argparse.Namespace) -> None:
    here = Path(__file__).resolve().parent
    env = {**__import__("os").environ, "OPENAI_API_KEY": "sk-bench"}
    rows: list[dict[str, Any]] = []
    only = set(args.only.split(","))
    if "records" in only:
        for engine in args.engines.split(","):
            rows.append({"bench": "records", **run_side(
                sys.executable, "bench_engines.py", "case-records", env=env, engine=engine,
                n=args.records, workers=args.workers, backend=args.backend,
                partitions=args.partitions)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    if "cot" in only:
        rows += cot_rows(args, env)
    results = here / "results" / f"engines-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    results.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    emit({"rows": rows, "saved": str(results)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="drive", choices=["drive", "case-records", "case-cot"])
    p.add_argument("--engine", choices=ENGINES + VARIANTS, default="local")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--url", default="")
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--cot", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--partitions", type=int, default=0, help="0: the engine's default")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--repeat", type=int, default=1, help="rounds of the cot cases")
    p.add_argument("--baseline-src", default="", help="a checkout whose src/ to compare against")
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    p.add_argument("--only", default="records,cot")
    args = p.parse_args()
    if args.mode == "drive":
        drive(args)
    else:
        emit((case_records if args.mode == "case-records" else case_cot)(args))


if __name__ == "__main__":
    main()
