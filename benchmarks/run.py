"""dspex side by side with DSPy 3.4.1, in one run: ``python3 scripts/dev.py bench``.

    python benchmarks/run.py [--quick] [--only throughput,cpu,...] [--repeat R] [--out DIR]
    python benchmarks/run.py --show benchmarks/results/<file>.json

Builds (once) ``benchmarks/.venv-dspy`` with ``dspy==3.4.1``, starts the fake
LM server (``fake_server.py``, a separate process, one per latency setting),
runs every measurement in its own client process — dspex's in this venv
(``dspex_side.py``), DSPy's in its venv (``dspy_side.py``) — prints one table
and writes ``benchmarks/results/<UTC timestamp>.json`` with the machine's
description. Sections: micro (signature parse, adapter format and parse),
import, cpu (framework CPU per call at latency 0), stream (time to the first
field delta vs the server's first byte), throughput (N calls at 50 ms latency
and several concurrencies), memory (peak RSS), records (1M JSONL records
through ``map`` with each executor vs a plain loop; ``bench_records.py``). ``--quick`` shrinks every size
for a smoke test and saves nothing unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bench_flow
import bench_import
import bench_records
from _env import DSPY_ENV_VARS, HERE, ensure_dspy_venv, load_average, machine
from _procs import Server, checked, run_side
from _report import render

if TYPE_CHECKING:
    from collections.abc import Callable

PY = sys.executable
FULL = {"n": 2000, "latency_ms": 50.0, "concurrencies": [16, 64, 256], "trio_concurrency": 64, "cpu_calls": 1000,
        "cpu_sync_calls": 500, "dspy_cpu_calls": 300, "cpu_repeat": 3, "stream_samples": 20, "token_delay_ms": 5.0,
        "memory_items": 20_000, "memory_concurrency": 64, "jsonl_records": [20_000, 1_000_000],
        "micro_number": 2000, "import_runs": 7, "ws_clients": [10, 200], "ws_items": 24, "records": 1_000_000,
        "cpu_records": 50_000}
QUICK = dict(FULL, n=200, cpu_repeat=1, cpu_calls=100, cpu_sync_calls=50, dspy_cpu_calls=50, stream_samples=5,
             memory_items=1000, jsonl_records=[2000, 20_000], micro_number=300, import_runs=3,
             ws_clients=[10], ws_items=4, records=20_000, cpu_records=2000)
SECTIONS = ("micro", "import", "cpu", "stream", "throughput", "memory", "records")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def micro(cfg: dict[str, Any], dspy: Path) -> dict[str, Any]:
    return {"dspex": run_side(PY, "dspex_side.py", "micro", n=cfg["micro_number"]),
            "dspy": run_side(dspy, "dspy_side.py", "micro", n=cfg["micro_number"])}


def _rss_after_import(python: str | Path, module: str) -> float:
    code = f"import resource, {module}; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    return float(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)


def imports(cfg: dict[str, Any], dspy: Path) -> dict[str, Any]:
    out = {}
    for name, python in (("dspex", PY), ("dspy", dspy)):
        times = bench_import.measure(str(python), name, cfg["import_runs"])
        out[name] = {"min_s": min(times), "median_s": statistics.median(times), "runs": len(times),
                     "rss_mb": _rss_after_import(python, name)}
        say(f"import {name}: min {out[name]['min_s']:.3f} s, median {out[name]['median_s']:.3f} s")
    return out


def cpu(cfg: dict[str, Any], dspy: Path) -> list[dict[str, Any]]:
    rows = []
    with Server(latency_ms=0) as srv:
        for program in ("predict", "cot"):
            runs: list[tuple[str, str | Path, str, str, int]] = [
                    ("dspex-acall", PY, "dspex_side.py", "cpu", cfg["cpu_calls"]),
                    ("dspex-sync", PY, "dspex_side.py", "cpu-sync", cfg["cpu_sync_calls"]),
                    ("dspy-sync", dspy, "dspy_side.py", "cpu", cfg["dspy_cpu_calls"]),
                    ("dspy-async", dspy, "dspy_side.py", "cpu-async", cfg["dspy_cpu_calls"])]
            for side, python, script, mode, n in runs:  # best of 3 processes: this box is noisy (±20 %)
                reps = [checked(srv, n, python, script, mode, n=n, program=program) for _ in range(cfg["cpu_repeat"])]
                row = {**min(reps, key=lambda r: r["cpu_ms_per_call"]),
                       "cpu_ms_per_call_runs": [r["cpu_ms_per_call"] for r in reps],
                       "all_ok": all(r["all_ok"] for r in reps)}
                rows.append({"program": program, "side": side, **row})
                say(f"cpu {program:<7} {side:<12} {row['cpu_ms_per_call']:.2f} ms CPU/call "
                    f"({row['wall_ms_per_call']:.2f} ms wall), ok {row['ok']}/{n}, requests {row['server_requests']}")
    return rows


def stream(cfg: dict[str, Any], dspy: Path) -> dict[str, Any]:
    with Server(token_delay_ms=cfg["token_delay_ms"]) as srv:
        out = run_side(PY, "dspex_side.py", "stream", url=srv.url, n=cfg["stream_samples"])
    out["token_delay_ms"] = cfg["token_delay_ms"]
    say(f"stream: first byte {out['raw_first_byte_ms']:.1f} ms, first field byte {out['raw_first_field_byte_ms']:.1f} ms,"
        f" dspex first FieldDelta {out['dspex_first_delta_ms']:.1f} ms (+{out['overhead_ms']:.1f} ms)")
    out["websocket"] = []
    for clients in cfg["ws_clients"]:  # bench_ws_latency: server byte -> browser-side WebSocket client
        # all clients in one process on raw sockets: on a small box, websockets' own client
        # (50 a process) spends more CPU than the sink and blurs what is measured
        code = ("import anyio, json, bench_ws_latency as b; "
                f"print(json.dumps(anyio.run(b._run, {clients}, {cfg['ws_items']}, {clients}, True)))")
        proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=HERE, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        out["websocket"].append(row)
        say(f"stream: WebSocket, {clients} raw clients: token at client - server byte median {row['median_ms']:.1f} ms,"
            f" p99 {row['p99_ms']:.1f} ms")
    return out


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(runs, key=lambda r: r["wall_s"])
    return {**best, "walls_s": [r["wall_s"] for r in runs]}


def throughput(cfg: dict[str, Any], dspy: Path) -> list[dict[str, Any]]:
    rows, n, lat = [], cfg["n"], cfg["latency_ms"]
    with Server(latency_ms=lat) as srv:
        for program in ("predict", "cot"):
            for c in cfg["concurrencies"]:
                runs: list[tuple[str, Any, str, str, dict[str, Any]]] = [
                    ("dspex", PY, "dspex_side.py", "throughput", {"backend": "asyncio"})]
                if c == cfg["trio_concurrency"]:
                    runs.append(("dspex-trio", PY, "dspex_side.py", "throughput", {"backend": "trio"}))
                runs.append(("floor", PY, "dspex_side.py", "throughput-raw", {}))  # no framework: what the box allows
                runs += [("dspy-batch", dspy, "dspy_side.py", "throughput-batch", {}),
                         ("dspy-async", dspy, "dspy_side.py", "throughput-async", {})]
                ideal = n * lat / 1000 / c
                for side, python, script, mode, extra in runs:
                    reps = [checked(srv, n, python, script, mode, n=n, concurrency=c, program=program, **extra)
                            for _ in range(cfg["repeat"])]
                    row = {"program": program, "concurrency": c, "side": side, "ideal_s": ideal, **_best(reps)}
                    row["fraction_of_ideal"] = ideal / row["wall_s"]
                    row["all_ok"] = all(r["all_ok"] for r in reps)
                    rows.append(row)
                    say(f"{program:<7} @ {c:<3} {side:<10} {row['wall_s']:6.2f} s ({100 * row['fraction_of_ideal']:.0f} % "
                        f"of ideal {ideal:.2f} s), CPU {row['cpu_s']:.2f} s (server {row['server_cpu_s']:.2f} s), "
                        f"ok {row['ok']}/{n}, requests {row['server_requests']}")
    return rows


def memory(cfg: dict[str, Any], dspy: Path) -> dict[str, Any]:
    n, c = cfg["memory_items"], cfg["memory_concurrency"]
    out: dict[str, Any] = {}
    with Server(latency_ms=0) as srv:
        out["dspex_flow"] = checked(srv, n, PY, "dspex_side.py", "memory", n=n, concurrency=c)
        say(f"memory: dspex flow {n:,} Predict -> collect: peak RSS {out['dspex_flow']['peak_rss_mb']:.0f} MB")
        out["dspy_batch"] = checked(srv, n, dspy, "dspy_side.py", "memory", n=n, concurrency=c)
        say(f"memory: DSPy batch {n:,} Predict: peak RSS {out['dspy_batch']['peak_rss_mb']:.0f} MB")
    out["jsonl"] = bench_flow.bench_stream(cfg["jsonl_records"], "asyncio")
    return out


def records(cfg: dict[str, Any], dspy: Path) -> list[dict[str, Any]]:
    """dspex's CPU path: N JSONL records through map (each executor) vs a plain loop (bench_records)."""
    return bench_records.bench(cfg["records"], cfg["cpu_records"], repeat=cfg["repeat"])


SECTION_FNS: dict[str, Callable[[dict[str, Any], Path], Any]] = {
    "micro": micro, "import": imports, "cpu": cpu, "stream": stream, "throughput": throughput, "memory": memory,
    "records": records}


def wait_for_load(limit: float, max_s: float) -> None:
    """Sleep until the 1-minute load average is below ``limit`` or ``max_s`` have passed."""
    deadline = time.monotonic() + max_s
    while (load := load_average()) and load[0] >= limit and time.monotonic() < deadline:
        say(f"load average {load[0]} >= {limit}; waiting")
        time.sleep(15)


def problems(results: dict[str, Any]) -> list[str]:
    """Return the rows whose answers did not all parse or whose requests never reached the server."""
    rows = [*results.get("throughput", []), *results.get("cpu", [])]
    rows += [r for k, r in results.get("memory", {}).items() if k != "jsonl"]
    return [f"{r.get('program', 'predict')} {r.get('side', '')}: ok {r.get('ok')}/{r['expected']}, "
            f"server saw {r['server_requests']} requests" for r in rows if not r.get("all_ok", True)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--only", default="", help=f"comma-separated sections among {', '.join(SECTIONS)}")
    p.add_argument("--repeat", type=int, default=1, help="throughput repetitions (best wall time kept)")
    p.add_argument("--out", default=None, help="results directory (default benchmarks/results)")
    p.add_argument("--show", default=None, help="print the table of a saved results JSON and exit")
    p.add_argument("--wait-load", type=float, default=None, metavar="L",
                   help="first wait (at most --wait-max s) until the 1-minute load average is below L")
    p.add_argument("--wait-max", type=float, default=900.0)
    args = p.parse_args()
    if args.show:
        render(json.loads(Path(args.show).read_text()))
        return 0
    only = [s for s in args.only.split(",") if s] or list(SECTIONS)
    if unknown := set(only) - set(SECTIONS):
        p.error(f"unknown sections {sorted(unknown)}; expected some of {', '.join(SECTIONS)}")
    os.environ.update(DSPY_ENV_VARS)
    dspy = ensure_dspy_venv()
    # An installed wheel has compiled bytecode, as DSPy's site-packages do; an editable
    # checkout under PYTHONDONTWRITEBYTECODE would compile dspex's sources in every run.
    subprocess.run([PY, "-m", "compileall", "-q", str(HERE.parent / "src" / "dspex")], check=True)
    if args.wait_load is not None:
        wait_for_load(args.wait_load, args.wait_max)
    cfg = {**(QUICK if args.quick else FULL), "repeat": args.repeat, "quick": args.quick}
    started = time.perf_counter()
    results: dict[str, Any] = {"started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               "machine": machine(), "config": cfg, "load_average_by_section": {}}
    say(f"load average {results['machine']['load_average_start']}; sections: {', '.join(only)}")
    for section in SECTIONS:
        if section in only:
            results["load_average_by_section"][section] = load_average()
            say(f"--- {section}")
            results[section] = SECTION_FNS[section](cfg, dspy)
    results["load_average_end"] = load_average()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["problems"] = problems(results)
    render(results)
    if args.out or not args.quick:
        out_dir = Path(args.out) if args.out else HERE / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(results, indent=1) + "\n")
        say(f"results written to {path} ({results['duration_s']:.0f} s)")
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
