"""How every `millpond` command reports a problem: one line on stderr and an exit code."""

from __future__ import annotations

import typer

USAGE_ERROR = 2
RUNTIME_ERROR = 1


def fail(message: str, code: int = USAGE_ERROR) -> typer.Exit:
    typer.echo(f"millpond: error: {message}", err=True)
    return typer.Exit(code)


class CliError(Exception):
    """A problem to report as `millpond: error: <message>` with `code` as the exit status."""

    def __init__(self, message: str, code: int = RUNTIME_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class UsageError(CliError):
    """Bad arguments (a malformed duration, date, config…): exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE_ERROR)
