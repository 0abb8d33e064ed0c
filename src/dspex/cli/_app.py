"""The ``dspex`` command group: ``demo``, ``serve``, ``run``, ``inspect``, ``eval``, ``optimize``.

Exit codes: 0 success, 1 the job failed, 2 bad usage or configuration.
Heavy parts (flows, servers) are imported inside the commands so that
``dspex --help`` answers instantly.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from .._version import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dspex")
def cli() -> None:
    """dspex: LM programs as streaming dataflows."""


@cli.command()
@click.option("--serve", is_flag=True, help="Also serve the live page and WebSocket feed.")
@click.option("-n", "--items", "n", default=None, type=click.IntRange(min=1),
              help="How many bundled questions to run (at least 1; default: all).")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Where the JSONL answers go (demo_answers.jsonl, or demo_agent_answers.jsonl with --agent).")
@click.option("--question", default=None, help="Stream one ChainOfThought answer for this question and stop.")
@click.option("--agent", is_flag=True, help="Run a ReAct agent with two Python tools instead of ChainOfThought.")
@click.option("--no-auth", is_flag=True, help="With --serve: no bearer token (default: a random one, in the URL).")
@click.option("--port", default=8765, show_default=True, type=int,
              help="With --serve: port to try first (a free one if taken; 0 picks one).")
@click.option("--model", "model", type=click.Choice(["fake", "local"]), default="fake", show_default=True,
              help="fake: the embedded server answering placeholder text from the answer key; local: a real "
                   "SmolLM2-135M on llama-cpp-python's server (needs the 'local' extra).")
def demo(serve: bool, n: int | None, out_path: Path | None, question: str | None, agent: bool,
         no_auth: bool, port: int, model: str) -> None:
    """Run the demo flow on a local LM server (no API key, no network)."""
    if model == "local":
        demo_mod = importlib.import_module("dspex.cli._demo")
        sys.exit(demo_mod.run_local_demo(n=20 if n is None else n, out_path=out_path or "demo_answers.jsonl") or 0)
    if agent:
        if question is not None:
            raise click.UsageError(
                "--question streams one ChainOfThought answer; it does not combine with --agent")
        agent_mod = importlib.import_module("dspex.cli._agent_demo")
        code = agent_mod.run_agent_demo(serve=serve, n=n, out_path=out_path or "demo_agent_answers.jsonl",
                                        auth=not no_auth, port=port)
        sys.exit(code or 0)
    out_path = out_path or Path("demo_answers.jsonl")
    if question is not None:
        from ._stream_demo import stream_one

        stream_one(question)
        return
    demo_mod = importlib.import_module("dspex.cli._demo")
    code = demo_mod.run_demo_flow(serve=serve, n=n, out_path=out_path, auth=not no_auth, port=port)
    sys.exit(code or 0)


def _register_optional() -> None:
    """Attach the commands defined in their own modules (serve, run, inspect, eval, optimize).

    Each module is imported here, not at the top, so that importing ``_app``
    stays light; a module that fails to import raises (no command is hidden).
    """
    for module, attr in (("dspex.cli._serve", "serve_command"), ("dspex.cli._run", "run_command"),
                         ("dspex.cli._inspect", "inspect_command"), ("dspex.cli._eval", "eval_command"),
                         ("dspex.cli._optimize", "optimize_command")):
        cli.add_command(getattr(importlib.import_module(module), attr))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``dspex`` script."""
    _register_optional()
    cli.main(args=argv, prog_name="dspex")
