"""Exit statuses and the one exception the CLI turns into a message and a status."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """What ``podium`` exits with (documented in ``--help``)."""

    SUCCESS = 0
    API_ERROR = 1  # the server refused or failed the call
    USAGE = 2  # the command line cannot be run as written
    CONNECTION = 3  # the server cannot be reached, its certificate is not trusted, the link broke
    AUTHENTICATION = 4  # wrong credentials, a token expired or revoked, not registered
    HANGUP = 129  # the terminal went away (128 + SIGHUP)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    PIPE = 141  # the reader of our output went away (128 + SIGPIPE), as other Unix tools
    TERMINATED = 143  # SIGTERM (128 + 15)


class CliError(Exception):
    """A failure with what a person should read and the status to exit with."""

    status = ExitStatus.API_ERROR

    def __init__(self, message: str, status: ExitStatus | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class UsageError(CliError):
    """The command line cannot be run as written."""

    status = ExitStatus.USAGE


class ConnectError(CliError):
    """The server cannot be reached or trusted, or the connection broke."""

    status = ExitStatus.CONNECTION


class AuthError(CliError):
    """The server did not accept who we said we are."""

    status = ExitStatus.AUTHENTICATION


class RpcError(CliError):
    """A JSON-RPC error answered by the server (code, message, data as sent)."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data
