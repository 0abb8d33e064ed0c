"""``dspex demo``: the offline demos behind one command (flow, agent, one streamed answer, local model).

The options pick the demo: ``--question`` streams one ChainOfThought answer
(:mod:`._stream_demo`), ``--agent`` runs the ReAct flow (:mod:`._agent_demo`),
``--model local`` runs the flow on a real SmolLM2 (:func:`._demo.run_local_demo`),
and otherwise the ChainOfThought flow runs on the fake LM server
(:func:`._demo.run_demo_flow`). Exit codes: 0 every item completed, 1 the run
failed, 2 bad usage.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._agent_demo import run_agent_demo
from ._demo import run_demo_flow, run_local_demo
from ._exit import exit_codes
from ._stream_demo import stream_one

__all__ = ["demo_command"]


@click.command("demo")
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
@exit_codes("demo")
def demo_command(serve: bool, n: int | None, out_path: Path | None, question: str | None, agent: bool,
                 no_auth: bool, port: int, model: str) -> None:
    """Run the demo flow on a local LM server (no API key, no network)."""
    if model == "local":
        code = run_local_demo(n=20 if n is None else n, out_path=out_path or "demo_answers.jsonl")
    elif agent:
        if question is not None:
            raise click.UsageError(
                "--question streams one ChainOfThought answer; it does not combine with --agent")
        code = run_agent_demo(serve=serve, n=n, out_path=out_path or "demo_agent_answers.jsonl",
                              auth=not no_auth, port=port)
    elif question is not None:
        stream_one(question)
        code = 0
    else:
        code = run_demo_flow(serve=serve, n=n, out_path=out_path or Path("demo_answers.jsonl"),
                             auth=not no_auth, port=port)
    if code:
        raise click.exceptions.Exit(code)
