"""Render a benchmark run (the results dict, or a saved results JSON) as one rich table.

Columns: the benchmark, dspex's figure, DSPy's figure (``batch`` / sync
calls), DSPy's ``acall`` figure where there is one, and the ratio DSPy ÷ dspex
(time, CPU, memory: above 1 means dspex needs less). A section missing from
the results (``--only``) is left out.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

DASH = "—"


def _ratio(dspy: float | None, dspex: float | None) -> str:
    if not dspy or not dspex:
        return DASH
    return f"{dspy / dspex:.1f}\u00d7" if dspy / dspex < 100 else f"{dspy / dspex:.0f}\u00d7"


def _get(row: dict[str, Any] | None, key: str) -> float | None:
    """``row[key]``, or None for a missing row."""
    return None if row is None else float(row[key])


def _cell(row: dict[str, Any] | None, template: str) -> str:
    """``template`` filled from ``row``, or a dash for a missing row."""
    return template.format(**row) if row else DASH


def _tp(row: dict[str, Any] | None) -> str:
    if row is None:
        return DASH
    mark = "" if row.get("all_ok", True) else " [red]✗[/]"
    return f"{row['wall_s']:.2f} s · {100 * row['fraction_of_ideal']:.0f} %{mark}"


def _title(table: Table, text: str) -> None:
    table.add_section()
    table.add_row(f"[bold]{text}[/]", "", "", "", "")


def _throughput(table: Table, rows: list[dict[str, Any]], cfg: dict[str, Any]) -> None:
    _title(table, f"Throughput, {cfg['n']:,} calls at {cfg['latency_ms']:g} ms: wall · % of ideal")
    by = {(r["program"], r["concurrency"], r["side"]): r for r in rows}
    for program, label in (("predict", "Predict"), ("cot", "ChainOfThought")):
        for c in cfg["concurrencies"]:
            dx, batch, aio = by.get((program, c, "dspex")), by.get((program, c, "dspy-batch")), by.get((program, c, "dspy-async"))
            if dx is None and batch is None:
                continue
            name = f"  {label}, concurrency {c}"
            best_dspy = min((r["wall_s"] for r in (batch, aio) if r), default=None)
            table.add_row(name, _tp(dx), _tp(batch), _tp(aio), _ratio(best_dspy, _get(dx, "wall_s")))
            trio = by.get((program, c, "dspex-trio"))
            if trio:
                table.add_row("    the same on trio", _tp(trio), DASH, DASH, _ratio(best_dspy, trio["wall_s"]))
            floor = by.get((program, c, "floor"))
            if floor and dx:
                share = f"dspex {100 * floor['wall_s'] / dx['wall_s']:.0f} % of it"
                table.add_row("    floor: bare client, no framework", _tp(floor), share, DASH, DASH)


def _cpu(table: Table, rows: list[dict[str, Any]]) -> None:
    _title(table, "Framework CPU per call, latency 0 (client only)")
    by = {(r["program"], r["side"]): r for r in rows}
    for program, label in (("predict", "Predict"), ("cot", "ChainOfThought")):
        for kind, dx_side, dspy_side in (("async", "dspex-acall", "dspy-async"), ("sync", "dspex-sync", "dspy-sync")):
            dx, dspy = by.get((program, dx_side)), by.get((program, dspy_side))
            if dx is None and dspy is None:
                continue
            call = "acall" if kind == "async" else "__call__"
            table.add_row(f"  {label}, {kind} ({call})", _cell(dx, "{cpu_ms_per_call:.2f} ms"),
                          _cell(dspy, "{cpu_ms_per_call:.2f} ms"), DASH,
                          _ratio(_get(dspy, "cpu_ms_per_call"), _get(dx, "cpu_ms_per_call")))


def _imports(table: Table, imp: dict[str, Any]) -> None:
    _title(table, "Import, fresh interpreter")
    dx, dspy = imp.get("dspex"), imp.get("dspy")
    wall = "{min_s:.3f} / {median_s:.3f} s"
    table.add_row("  wall time (minus python start), min / median", _cell(dx, wall), _cell(dspy, wall), DASH,
                  _ratio(_get(dspy, "median_s"), _get(dx, "median_s")))
    table.add_row("  peak RSS after import", _cell(dx, "{rss_mb:.0f} MB"), _cell(dspy, "{rss_mb:.0f} MB"), DASH,
                  _ratio(_get(dspy, "rss_mb"), _get(dx, "rss_mb")))


def _stream(table: Table, s: dict[str, Any]) -> None:
    _title(table, f"Streaming, ChainOfThought over HTTP, {s['token_delay_ms']:g} ms/token")
    table.add_row("  server's first byte (raw socket)", f"{s['raw_first_byte_ms']:.1f} ms", DASH, DASH, DASH)
    table.add_row("  first byte of field text (raw socket)", f"{s['raw_first_field_byte_ms']:.1f} ms", DASH, DASH, DASH)
    table.add_row("  first FieldDelta, ChainOfThought.stream", f"{s['dspex_first_delta_ms']:.1f} ms", DASH, DASH, DASH)
    table.add_row("  FieldDelta \u2212 field text byte (paired)", f"{s['overhead_ms']:+.1f} ms", DASH, DASH, DASH)
    for ws in s.get("websocket", []):
        table.add_row(f"  WebSocket token \u2212 server byte, {ws['clients']} clients",
                      f"{ws['median_ms']:.1f} ms (p99 {ws['p99_ms']:.0f})", DASH, DASH, DASH)


def _memory(table: Table, m: dict[str, Any]) -> None:
    _title(table, "Peak RSS (ru_maxrss), one process each")
    dx, dspy = m.get("dspex_flow"), m.get("dspy_batch")
    shown = dx or dspy
    if shown:
        table.add_row(f"  {shown['expected']:,} Predict calls (flow → collect | batch)",
                      _cell(dx, "{peak_rss_mb:.0f} MB"), _cell(dspy, "{peak_rss_mb:.0f} MB"), DASH,
                      _ratio(_get(dspy, "peak_rss_mb"), _get(dx, "peak_rss_mb")))
    for row in m.get("jsonl", []):
        table.add_row(f"  {row['records']:,} JSONL records → map → JSONL sink",
                      f"{row['peak_rss_mb']:.0f} MB · {row['records_per_s'] / 1000:.0f}k rec/s", DASH, DASH, DASH)


def _micro(table: Table, micro: dict[str, Any]) -> None:
    _title(table, "Per call, µs (best of 5)")
    dx, dspy = micro.get("dspex", {}), micro.get("dspy", {})
    for case in ("simple", "typed"):
        key = f"signature_{case}_us"
        table.add_row(f"  signature parse, {case}: cold / cached",
                      f"{dx[key]:.0f} / {dx[f'signature_{case}_cached_us']:.0f} µs" if key in dx else DASH,
                      f"{dspy[key]:.0f} µs" if key in dspy else DASH, DASH, _ratio(dspy.get(key), dx.get(key)))
    for key, label in (("format_us", "  ChatAdapter.format, ChainOfThought"),
                       ("parse_us", "  ChatAdapter.parse, ChainOfThought")):
        table.add_row(label, f"{dx[key]:.1f} µs" if key in dx else DASH, f"{dspy[key]:.1f} µs" if key in dspy else DASH,
                      DASH, _ratio(dspy.get(key), dx.get(key)))


def records_table(rows: list[dict[str, Any]]) -> Table:
    """Return the table of ``bench_records`` rows: each case's time against the plain loop's."""
    table = Table(title="Records through map → JSONL: dspex executors vs plain Python (each case its own process)")
    for name in ("function", "case", "concurrency", "records", "wall", "\u00d7 plain", "records/s", "CPU", "CPU \u00d7 plain",
                 "peak RSS"):
        table.add_column(name, justify="left" if name in ("function", "case") else "right", no_wrap=True)
    for r in rows:
        cpu = r["cpu_s"] + r.get("children_cpu_s", 0.0)
        rss = f"{r['peak_rss_mb']:.0f} MB"
        if r.get("children_cpu_s", 0.0) > 0.5:
            rss += f" + {r['children_peak_rss_mb']:.0f} MB/worker"
        table.add_row(r["fn"], r["side"], DASH if r["concurrency"] is None else str(r["concurrency"]),
                      f"{r['records']:,}", f"{r['wall_s']:.2f} s", f"{r['x_plain']:.2f}",
                      f"{r['records_per_s'] / 1000:.0f}k", f"{cpu:.2f} s", f"{r['cpu_x_plain']:.2f}", rss)
    return table


def render(results: dict[str, Any], console: Console | None = None) -> Table:
    """Print the results as one table (and the machine line) and return the table."""
    console = console or Console(width=max(Console().width, 132))
    m, cfg = results["machine"], results["config"]
    table = Table(title=f"dspex {m['dspex_version']} vs DSPy {m['dspy_version']} — same run, same fake server",
                  caption=f"{m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, "
                          f"load {m['load_average_start']} → {results.get('load_average_end')}; "
                          "DSPy column: batch(num_threads=C) for throughput, else the call named in the row; "
                          "throughput ratio against the faster DSPy variant")
    table.add_column("benchmark", no_wrap=True)
    for name in ("dspex", "DSPy", "DSPy acall", "DSPy/dspex"):
        table.add_column(name, justify="right", no_wrap=True)
    if "throughput" in results:
        _throughput(table, results["throughput"], cfg)
    if "cpu" in results:
        _cpu(table, results["cpu"])
    if "import" in results:
        _imports(table, results["import"])
    if "stream" in results:
        _stream(table, results["stream"])
    if "memory" in results:
        _memory(table, results["memory"])
    if "micro" in results:
        _micro(table, results["micro"])
    console.print(table)
    if "records" in results:
        console.print(records_table(results["records"]))
    for problem in results.get("problems", []):
        console.print(f"[red]problem:[/] {problem}")
    return table
