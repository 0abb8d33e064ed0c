"""The lazy command group and the one exit-code mapping every command shares."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from dspex.cli._app import COMMANDS, cli
from dspex.cli._exit import EXIT_FAILED, EXIT_USAGE, exit_codes
from dspex.cli._lazy import LazyCommand, LazyGroup, load_command
from dspex.errors import (
    ConfigError,
    DspexError,
    FlowFailed,
    LMTransportError,
    RunLeaseError,
    SignatureError,
)


def _imported_after(code: str) -> set[str]:
    """The ``dspex.cli`` modules a fresh interpreter holds after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(*sorted(m for m in sys.modules if m.startswith('dspex.')))"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return set(out.stdout.split())


def test_help_imports_no_command_module() -> None:
    loaded = _imported_after("from dspex.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert "dspex.cli._app" in loaded
    assert not {target.partition(":")[0] for target, _ in COMMANDS.values()} & loaded
    assert not {"dspex.flows", "dspex.modules", "dspex.lm"} & loaded


def test_a_command_imports_its_own_module_only() -> None:
    loaded = _imported_after("from dspex.cli import main\ntry:\n    main(['inspect', '--help'])\nexcept SystemExit:\n    pass")
    assert "dspex.cli._inspect" in loaded
    assert not {"dspex.cli._optimize", "dspex.cli._demo_command", "dspex.cli._serve"} & loaded


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listed_help_matches_each_commands_own(name: str) -> None:
    command = load_command(COMMANDS[name].target)
    assert command.name == name
    assert COMMANDS[name].short_help == command.get_short_help_str(limit=1000)


def test_group_help_is_the_same_before_and_after_loading() -> None:
    # a fresh group: ``cli`` itself may hold commands loaded by other tests
    fresh = LazyGroup("dspex", help=cli.help, params=cli.params, lazy_commands=COMMANDS,
                      context_settings=cli.context_settings)
    lazy = CliRunner().invoke(fresh, ["--help"], prog_name="dspex").output
    assert not fresh.commands  # listed from the kept texts
    eager = click.Group("dspex", help=cli.help, params=cli.params,
                        commands={n: load_command(c.target) for n, c in COMMANDS.items()},
                        context_settings=cli.context_settings)
    assert lazy == CliRunner().invoke(eager, ["--help"], prog_name="dspex").output
    assert "Commands:" in lazy


@pytest.mark.parametrize("target", ["dspex.cli._eval", "dspex.cli._eval:nope", "dspex.cli._eval:read_examples"])
def test_a_bad_target_is_a_config_error(target: str) -> None:
    with pytest.raises(ConfigError, match="lazy command target"):
        load_command(target)


def test_an_unknown_command_is_a_usage_error() -> None:
    group = LazyGroup("g", lazy_commands={"x": LazyCommand("dspex.cli._eval:eval_command", "Score.")})
    result = CliRunner().invoke(group, ["y"])
    assert result.exit_code == 2
    assert "No such command 'y'" in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_maps_errors_with_the_shared_helper(name: str) -> None:
    # every wrapper made by exit_codes runs the same code object: the mapping cannot differ
    callback = load_command(COMMANDS[name].target).callback
    assert callback is not None
    assert callback.__code__ is exit_codes()(lambda: None).__code__


def _raising(exc: BaseException, job: str | None = None) -> click.Command:
    @click.command()
    @exit_codes(job)
    def command() -> None:
        raise exc

    return command


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("bad file"), EXIT_USAGE),
        (SignatureError("bad signature"), EXIT_USAGE),
        (RunLeaseError("held by another runner"), EXIT_USAGE),
        (LMTransportError("connection refused"), EXIT_FAILED),
        (FlowFailed("node raised"), EXIT_FAILED),
        (DspexError("anything else"), EXIT_FAILED),
    ],
)
def test_the_mapping(exc: DspexError, code: int) -> None:
    result = CliRunner().invoke(_raising(exc))
    assert result.exit_code == code
    assert result.stderr == f"error: {exc}\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_failure_names_the_job_and_a_usage_error_does_not() -> None:
    assert CliRunner().invoke(_raising(DspexError("boom"), "evaluation")).stderr == "error: evaluation failed: boom\n"
    assert CliRunner().invoke(_raising(ConfigError("no LM"), "evaluation")).stderr == "error: no LM\n"


def test_other_exceptions_propagate_and_success_exits_0() -> None:
    result = CliRunner().invoke(_raising(KeyError("bug")))
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)  # a bug keeps its traceback

    @click.command()
    @exit_codes("job")
    def fine() -> None:
        click.echo("ok")

    assert (CliRunner().invoke(fine).exit_code, CliRunner().invoke(fine).output) == (0, "ok\n")
