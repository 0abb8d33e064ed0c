"""The exit codes every ``dspex`` command shares, as one decorator.

0 the command succeeded; 1 the job failed (any other :class:`~dspex.errors.DspexError`);
2 bad usage or configuration (:class:`~dspex.errors.ConfigError`, a run held by
another runner, or click's own usage errors). The error is printed to stderr
as ``error: ...``, without a traceback; anything that is not a dspex error
propagates unchanged (a bug shows its traceback).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from ..errors import ConfigError, DspexError, RunLeaseError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "USAGE_ERRORS", "exit_codes"]

EXIT_FAILED = 1
EXIT_USAGE = 2
# Errors the user fixes by changing the command or its files, not by retrying.
USAGE_ERRORS: tuple[type[DspexError], ...] = (ConfigError, RunLeaseError)

P = ParamSpec("P")
R = TypeVar("R")


def exit_codes(job: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Map dspex errors raised by a command's callback to its exit code.

    Put it under the ``@click.command`` decorators, directly on the callback.

    Args:
        job: What the command does, for the failure message (``"evaluation"``
            gives ``error: evaluation failed: ...``); None prints ``error: ...``.

    Returns:
        A decorator; the wrapped callback exits 2 on :data:`USAGE_ERRORS`, 1 on
        any other :class:`~dspex.errors.DspexError` (via :class:`click.exceptions.Exit`,
        so click's standalone mode and ``CliRunner`` see the code), and
        otherwise returns or raises what the callback does.
    """

    def decorate(callback: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(callback)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return callback(*args, **kwargs)
            except USAGE_ERRORS as exc:
                click.echo(f"error: {exc}", err=True)
                raise click.exceptions.Exit(EXIT_USAGE) from None
            except DspexError as exc:
                failed = f"{job} failed: " if job else ""
                click.echo(f"error: {failed}{exc}", err=True)
                raise click.exceptions.Exit(EXIT_FAILED) from None

        return wrapper

    return decorate
