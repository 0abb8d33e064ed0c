"""``dspex run FLOW``: run a YAML (or Python) flow to the end and report.

``FLOW`` is a YAML flow spec (see :mod:`dspex.flows._yaml`) or a Python file
defining ``flow``. Progress goes to stderr (a live bar on a terminal, a log
line every ``--progress-every`` seconds otherwise; ``--quiet`` turns it off).
``--run-id`` commits progress to the run store so that running again with the
same id resumes (keyed sources); ``--json`` prints the run report as one JSON
object on stdout. Exit codes: 0 the run completed; 1 it failed (an error
policy raised, or more items failed than ``--max-failure-rate`` allows); 2 bad
input (unreadable or invalid flow file, unknown LM, bad option).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .._util._sync import run_sync
from ..errors import FlowFailed
from ..lm import LM
from ._exit import EXIT_FAILED, exit_codes
from ._serve import load_flow

__all__ = ["run_command"]


@click.command("run")
@click.argument("flow_path", metavar="FLOW", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--run-id", default=None, help="Name the run; the same id again resumes it (keyed sources).")
@click.option("--store", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Run store file (default ./.dspex/store.sqlite).")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as one JSON object.")
@click.option("--lm", "model", default=None, help="Default LM for the run, e.g. openai/gpt-4o-mini.")
@click.option("--api-base", default=None, help="With --lm: base URL of an OpenAI-compatible server.")
@click.option("--max-failure-rate", default=None, type=click.FloatRange(0, 1),
              help="Fail (exit 1) when more than this fraction of items fails (default: all of them).")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--progress-every", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds between progress lines when stderr is not a terminal.")
@click.option("--engine", type=click.Choice(["local", "processes", "dask"]), default="local",
              show_default=True, help="Where the flow runs: this process, local worker processes, or Dask.")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Worker processes for --engine processes/dask (default 2).")
@click.option("--address", default=None, help="With --engine dask: the scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--partitions", default=None, type=click.IntRange(min=1),
              help="Partitions of the source for --engine processes/dask (default: workers for processes, 2 x workers for dask).")
@exit_codes()
def run_command(flow_path: Path, run_id: str | None, store: Path | None, as_json: bool, model: str | None,
                api_base: str | None, max_failure_rate: float | None, quiet: bool,
                progress_every: float, engine: str, workers: int | None, address: str | None,
                partitions: int | None) -> None:
    """Run FLOW (YAML or Python) and print its report."""
    if api_base and not model:
        raise click.UsageError("--api-base needs --lm (the model served there)")
    if address and engine != "dask":
        raise click.UsageError("--address needs --engine dask")
    if engine == "local" and (workers or partitions):
        raise click.UsageError("--workers and --partitions need --engine processes or dask")
    flow, options = load_flow(flow_path)
    if model is not None:
        options["lm"] = LM(model, api_base=api_base)
    if max_failure_rate is not None:
        options["max_failure_rate"] = max_failure_rate
    if store is not None:
        options["store"] = store
    options["progress"] = False if quiet else None
    options["progress_every_s"] = progress_every
    if engine != "local":  # Flow.run loads dspex.engines on first use of a named engine
        options.update(engine=engine, workers=workers, address=address, partitions=partitions)
    try:
        report = run_sync(_run, flow, run_id, options)
    except FlowFailed as exc:
        partial = getattr(exc, "report", None)  # the runner attaches the partial report
        if as_json and partial is not None:
            click.echo(json.dumps(partial.to_dict()))
        raise  # exit_codes prints it and exits 1
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo(
            f"{report.status}: {report.items_out} out / {report.items_in} in, {report.items_failed} failed, "
            f"{report.duration_s:.2f} s, {report.items_per_s:,.1f} items/s, cost ${report.cost:.4f}"
        )
    if report.status != "completed":
        raise click.exceptions.Exit(EXIT_FAILED)


async def _run(flow: Any, run_id: str | None, options: dict[str, Any]) -> Any:
    return await flow.run(run_id=run_id, **options)
