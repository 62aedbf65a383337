"""What every ``distcore`` subcommand shares: bad input becomes one line and exit status 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from distcore.exceptions import DistcoreError

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status for bad input (a bad config, address or argument), as click's usage errors.
EXIT_BAD_INPUT = 2


class CliError(click.ClickException):
    """A one-line error for the user; exits with status 2 and no traceback."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file or sys.stderr)


def one_line(e: BaseException) -> str:
    """The error's message on one line (a KeyError's message without its quotes)."""
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(msg).split())


def user_errors(f: F) -> F:
    """Turns the errors bad input causes into a one-line message and exit status 2."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (DistcoreError, ValueError, KeyError, TypeError, OSError) as e:
            raise CliError(one_line(e)) from None

    return wrapper  # type: ignore[return-value]
