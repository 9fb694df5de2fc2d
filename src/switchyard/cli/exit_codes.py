"""The exit codes of the `switchyard` command, in one table so that scripts (and the
README) can rely on them: a script tells "not there" from "refused" from "the server is
down" without reading the message."""

from __future__ import annotations

from enum import IntEnum
from typing import IO, Any

import click
import grpc


class ExitCode(IntEnum):
    """What a `switchyard` process exit code means."""

    OK = 0
    DIFFERENCES = 1
    """Differences found, for diff-like commands only (as diff(1) says it)."""
    USAGE = 2
    """A usage error: Click's own code for a bad flag or argument."""
    NOT_FOUND = 3
    INVALID = 4
    """The input was refused: INVALID_ARGUMENT, OUT_OF_RANGE."""
    CONFLICT = 5
    """ALREADY_EXISTS, ABORTED (a stale version), FAILED_PRECONDITION."""
    DENIED = 6
    """UNAUTHENTICATED, PERMISSION_DENIED."""
    UNAVAILABLE = 7
    """UNAVAILABLE, DEADLINE_EXCEEDED: the server is unreachable, down or too slow."""
    ERROR = 8
    """Anything else: INTERNAL, UNKNOWN, ..."""


_BY_STATUS: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.INVALID,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.INVALID,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.CONFLICT,
    grpc.StatusCode.ABORTED: ExitCode.CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.CONFLICT,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.DENIED,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.DENIED,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
}


class Failure(click.ClickException):
    """A command failed in a way a person can act on: `message` (several lines, advice
    included) goes to stderr as it is, and the process exits with `code`."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = int(code)  # type: ignore[misc]  # Click reads it per instance

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), err=file is None, file=file)


def exit_code_for(status: grpc.StatusCode) -> ExitCode:
    """The exit code for a call that ended with `status` (ERROR for any not listed)."""
    return _BY_STATUS.get(status, ExitCode.ERROR)


__all__ = ["ExitCode", "Failure", "exit_code_for"]
