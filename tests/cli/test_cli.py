"""The ``dspex`` command line: help, version, and the one-question stream demo."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from dspex import __version__
from dspex.cli._app import cli


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {"demo", "eval", "inspect", "optimize", "run", "serve"}


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_demo_streams_one_answer_over_http() -> None:
    # a real subprocess: the demo starts the embedded server and an event loop of its own
    out = subprocess.run(
        [sys.executable, "-m", "dspex", "demo", "--question", "Why is the sky blue?"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "question: Why is the sky blue?"
    reasoning = next(line for line in lines if line.startswith("reasoning: "))
    answer = next(line for line in lines if line.startswith("answer: "))
    assert len(reasoning) > len("reasoning: ")
    assert len(answer) > len("answer: ")
    done = next(line for line in lines if line.startswith("done: "))
    assert answer[len("answer: "):] in done  # the streamed text equals the final prediction


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["nope"])
    assert result.exit_code == 2


def test_demo_agent_with_question_is_a_usage_error() -> None:
    # --question streams one ChainOfThought answer; with --agent it used to be ignored silently
    result = CliRunner().invoke(cli, ["demo", "--agent", "--question", "What is 2 + 2?"])
    assert result.exit_code == 2
    assert "does not combine with --agent" in result.output
