"""``dspex inspect``: show a saved program, the program versions in a run store, or a run.

- ``dspex inspect PROGRAM.json``: a saved program (predictors, instructions, demos).
- ``dspex inspect --store S``: every program saved in the store, and the runs.
- ``dspex inspect --store S NAME``: the versions of ``NAME`` (score, optimizer, parent).
- ``dspex inspect --store S NAME --version N``: that version's program.
- ``dspex inspect --store S --run RUN_ID``: a run's progress and recorded traces.

Tables are drawn with rich; ``--json`` prints one JSON object instead.
Exit codes: 0 shown, 1 the store could not be read, 2 nothing to show
(unknown file, program, version or run).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .._util._sync import run_sync
from ..errors import ConfigError
from ..modules import load
from ..modules._versions import aload_version
from ..store import RunStore
from ._exit import exit_codes

__all__ = ["inspect_command"]


def _when(ts: float | None) -> str:
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _program_view(program: Any) -> dict[str, Any]:
    return {"class": type(program).__name__,
            "predictors": [{"name": n, "signature": p.signature.signature, "instructions": p.signature.instructions,
                            "demos": len(p.demos)} for n, p in program.named_predictors()]}


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


async def _gather(store_path: Path, name: str | None, version: int | None, run_id: str | None) -> dict[str, Any]:
    async with RunStore(store_path) as store:
        if run_id is not None:
            run = next((r for r in await store.runs() if r["run_id"] == run_id), None)
            traces = await store.traces(run_id=run_id)
            if run is None and not traces:
                raise ConfigError(f"no run {run_id!r} in {store_path}")
            return {"run": run, "run_id": run_id, "traces": len(traces),
                    "scored": sum(t["score"] is not None for t in traces)}
        if name is None:
            return {"programs": await store.programs(), "runs": await store.runs()}
        if version is not None:
            program = await aload_version(name, version, store=store, load_lm=False)
            return {"name": name, "version": version, "program": _program_view(program)}
        versions = await store.versions(name)
    if not versions:
        raise ConfigError(f"no program named {name!r} in {store_path}")
    return {"name": name, "versions": [{k: v[k] for k in ("version", "score", "created", "meta")} for v in versions]}


def _print(data: dict[str, Any]) -> None:
    if "program" in data:
        view = data["program"]
        _table(f"{data.get('name', view['class'])}" + (f" v{data['version']}" if "version" in data else ""),
               ["predictor", "signature", "demos", "instructions"],
               [[p["name"], p["signature"], p["demos"], p["instructions"]] for p in view["predictors"]])
    elif "versions" in data:
        _table(f"versions of {data['name']}", ["version", "score", "optimizer", "parent", "saved"],
               [[v["version"], v["score"], v["meta"].get("optimizer"),
                 "{name} v{version}".format(**v["meta"]["parent"]) if v["meta"].get("parent") else None,
                 _when(v["created"])] for v in data["versions"]])
    elif "programs" in data:
        _table("programs", ["name", "versions", "best score", "updated"],
               [[p["name"], p["versions"], p["best_score"], _when(p["updated"])] for p in data["programs"]])
        _table("runs", ["run", "done", "commits", "updated"],
               [[r["run_id"], r["done"], r["commits"], _when(r["updated"])] for r in data["runs"]])
    else:
        run = data["run"] or {}
        _table(f"run {data['run_id']}", ["done", "commits", "traces", "scored traces", "updated"],
               [[run.get("done"), run.get("commits"), data["traces"], data["scored"], _when(run.get("updated"))]])


@click.command("inspect")
@click.argument("target", required=False, metavar="[PROGRAM.json | NAME]")
@click.option("--store", "store_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="A run store (.sqlite): list its programs and runs, or show NAME's versions.")
@click.option("--version", "version", default=None, type=click.IntRange(min=1), help="Show this version of NAME.")
@click.option("--run", "run_id", default=None, help="Show this run's progress and traces (with --store).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@exit_codes()
def inspect_command(target: str | None, store_path: Path | None, version: int | None, run_id: str | None,
                    as_json: bool) -> None:
    """Show a saved program, a run store's program versions, or a run."""
    if store_path is None:
        if target is None or run_id is not None or version is not None:
            raise ConfigError("give PROGRAM.json, or --store (with NAME, --version or --run)")
        data = {"program": _program_view(load(Path(target), load_lm=False))}
    else:
        if not store_path.exists():
            raise ConfigError(f"no run store at {store_path}")
        data = run_sync(lambda: _gather(store_path, target, version, run_id))
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        _print(data)
