"""The ``dspex`` command group: ``demo``, ``serve``, ``run``, ``inspect``, ``eval``, ``optimize``.

Exit codes (:mod:`._exit`): 0 success, 1 the job failed, 2 bad usage or
configuration. The group is a :class:`~._lazy.LazyGroup`: each command lives
in its own module, which imports what it needs at module level and is itself
imported only when its command runs, so ``dspex --help`` answers instantly.
"""

from __future__ import annotations

import click

from .._version import __version__
from ._lazy import LazyCommand, LazyGroup

__all__ = ["COMMANDS", "cli", "main"]

# The short help repeats each command's docstring summary (a test keeps them equal).
COMMANDS = {
    "demo": LazyCommand("dspex.cli._demo_command:demo_command",
                        "Run the demo flow on a local LM server (no API key, no network)."),
    "eval": LazyCommand("dspex.cli._eval:eval_command", "Score a saved program on DATA.jsonl with a metric."),
    "inspect": LazyCommand("dspex.cli._inspect:inspect_command",
                           "Show a saved program, a run store's program versions, or a run."),
    "optimize": LazyCommand("dspex.cli._optimize:optimize_command",
                            "Compile a saved program on TRAIN.jsonl and save it to --out."),
    "run": LazyCommand("dspex.cli._run:run_command", "Run FLOW (YAML or Python) and print its report."),
    "serve": LazyCommand("dspex.cli._serve:serve_command",
                         "Run FLOW with its tokens, results and metrics live on a web page."),
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dspex")
def cli() -> None:
    """dspex: LM programs as streaming dataflows."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``dspex`` script: run the command group on ``argv`` (default ``sys.argv``)."""
    cli.main(args=argv, prog_name="dspex")
