"""A click group whose commands are imported when used, not when the group is.

Click's documented ``LazyGroup`` pattern: the group maps each command name to
``"module:attr"`` and imports that module only when the command is invoked
(or its own ``--help`` is asked for). One step further than the pattern, the
group's ``--help`` listing uses a short help kept in the map, so that
``dspex --help`` imports no command module at all; a test checks that each
kept text matches its command's own short help.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from ..errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["LazyCommand", "LazyGroup", "load_command"]


class LazyCommand(NamedTuple):
    """Where a command lives (``"module:attr"``) and its one-line help for listings."""

    target: str
    short_help: str


def load_command(target: str) -> click.Command:
    """Import ``"module:attr"`` and return the click command found there.

    Raises:
        ConfigError: ``target`` is not ``module:attr``, or names no click command.
        ImportError: The module cannot be imported (a broken install; not hidden).
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"lazy command target {target!r}: expected 'module:attr'")
    command = getattr(importlib.import_module(module_name), attr, None)
    if not isinstance(command, click.Command):
        raise ConfigError(f"lazy command target {target!r}: expected a click command, "
                          f"found {type(command).__name__}")
    return command


class LazyGroup(click.Group):
    """A :class:`click.Group` with commands imported on first use.

    Args:
        lazy_commands: Command name -> :class:`LazyCommand`. A command is
            imported (once) when it is looked up to run or to show its help;
            the group's own ``--help`` lists it from ``short_help``.
        *args: Passed to :class:`click.Group`.
        **kwargs: Passed to :class:`click.Group`.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, eager and lazy, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the command, importing its module the first time."""
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            self.add_command(load_command(self.lazy_commands[cmd_name].target), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the ``Commands:`` section without importing the lazy commands."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None:  # not imported yet: a stand-in cuts the kept text as click would
                command = click.Command(name, help=self.lazy_commands[name].short_help)
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
