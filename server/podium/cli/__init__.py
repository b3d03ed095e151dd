"""``podium``: Xen Orchestra's ``xo-cli`` usage, on Podium's API, with errors a person can act on.

Exceptions (``errors``)::

    CliError            -> 1, or the status it carries
    ├── UsageError      -> 2   the command line cannot be run as written
    ├── ConnectError    -> 3   unreachable, untrusted certificate, connection lost
    ├── AuthError       -> 4   wrong credentials, token refused, not registered
    └── RpcError        -> 1   the server answered an error (4 for invalid credentials)

:func:`main` is the one place that turns them into a message on stderr and an exit status; a traceback is
shown only with ``--traceback``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import traceback

from .. import __version__
from .commands import COMMANDS, call
from .config import config_path
from .errors import CliError, ExitStatus, RpcError, UsageError
from .session import INVALID_CREDENTIALS, Globals

HELP = """\
Usage: podium [GLOBAL OPTIONS] COMMAND [ARGUMENTS]

Global options (before the command):
  --allowUnauthorized, --au   accept any certificate for this command (e.g. self-signed)
  --url URL, -u URL           use this server instead of the registered one; the URL carries a
                              token: https://TOKEN@podium.example.net/
  --traceback                 show the Python traceback of an unexpected failure
  --help, -h                  this help;  --version  the version

Commands (the xo-cli spellings --register, --createToken, --list-commands … work too):
  podium register [--au] [--expiresIn DURATION] [--otp CODE] URL USER [PASSWORD]
  podium register [--au] --token TOKEN URL
      Sign in and keep the server and a token (never the password) in {config}.
      Asks for the password when it is not given (or reads a line from a pipe).
      --au accepts a certificate that cannot be verified (self-signed): its SHA-256 fingerprint is
      remembered, and later connections trust that certificate and no other.
      --expiresIn: how long the token lives, e.g. '30 days' (the default), '12h', '1 year'.
  podium create-token [--au] [--expiresIn DURATION] [--otp CODE] URL USER [PASSWORD]
      Print a new token (for scripts and other machines); nothing is stored.
  podium unregister
      Forget the server and revoke its token.
  podium list-commands [--json] [PATTERN…]
      The server's methods with their parameters; patterns are globs: 'vm.*' '{{user,group}}.*' '!*.get*'.
  podium list-objects [--PROPERTY…] [PROPERTY=VALUE…]
      The objects you may see, as JSON: PROPERTY=VALUE keeps those that match (type=VM-template),
      --PROPERTY shows only those properties (--name_label --power_state).
  podium METHOD [--json] [NAME=VALUE…] [@=FILE]
      Call a method. true and false are booleans, json:… is parsed as JSON (cpus=json:2,
      tags='json:["a", "b"]'), anything else is a string. A method that answers a download writes
      it to @=FILE (@=- for standard output, @=DIR/ for its own name); one that answers an upload
      reads @=FILE (@=- for standard input). Progress shows on a terminal.
      --json prints the result as JSON even when it is a string.
        podium vm.export vm=UUID @=vm.xva        podium vm.import sr=UUID @=vm.xva
  podium watch [--ndjson]
      Print the changes the server pushes, until Ctrl-C (--ndjson: as JSON lines).

Exit status:
  0 success   1 the server refused or failed the call   2 usage (bad arguments, missing @= file)
  3 connection or TLS (unreachable, untrusted certificate, connection lost)
  4 authentication (wrong credentials, token expired or revoked, not registered)
  130 interrupted (Ctrl-C; 143 SIGTERM, 129 SIGHUP)   141 the reader of the output went away

podium {version}
"""

_SPELLINGS = re.compile(r"(?<!^)[A-Z]")


def _command_key(word: str) -> str:
    """``--createToken`` / ``create-token`` / ``--list-commands`` all name ``create-token`` …"""
    return _SPELLINGS.sub(lambda m: "-" + m.group(0).lower(), word.removeprefix("--"))


def parse_globals(argv: list[str]) -> tuple[Globals, str, list[str]]:
    """The global options, the command and its arguments."""
    g = Globals(traceback="--traceback" in argv)
    argv = [a for a in argv if a != "--traceback"]
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("--allowUnauthorized", "--au"):
            g.allow_unauthorized = True
        elif arg in ("--help", "-h", "help"):
            return g, "help", []
        elif arg == "--version":
            return g, "version", []
        elif arg in ("--url", "-u"):
            if i == len(argv):
                raise UsageError(f"{arg} needs a value: https://TOKEN@host/")
            g.url = argv[i]
            i += 1
        elif arg.startswith("--url="):
            g.url = arg[6:]
        else:
            return g, arg, argv[i:]
    return g, "", []


async def run(g: Globals, command: str, args: list[str]) -> int:
    """Run one command; SIGTERM and SIGHUP stop it as Ctrl-C does, cleaning up on the way out."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def stop(sig: signal.Signals) -> None:
        received.append(sig)
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, sig)
    try:
        key = _command_key(command)
        if key in COMMANDS:
            return await COMMANDS[key](g, args)
        if command.startswith("-"):
            raise UsageError(f"unknown option {command} (see podium --help)")
        return await call(g, [command, *args])
    except asyncio.CancelledError:
        if not received:
            raise
        status = ExitStatus.TERMINATED if received[0] == signal.SIGTERM else ExitStatus.HANGUP
        raise CliError(f"stopped by {received[0].name}", status) from None


def _report(e: CliError) -> int:
    status = e.status
    if isinstance(e, RpcError) and e.code in INVALID_CREDENTIALS:
        status = ExitStatus.AUTHENTICATION
    if e.message:
        print(f"✖ {e.message}", file=sys.stderr)
    if isinstance(e, RpcError) and e.code not in (10, -32601) and not _said(e.data, e.message):
        details = json.dumps(e.data, ensure_ascii=False, sort_keys=True)
        print(f"  details: {details[:500]}", file=sys.stderr)
    return int(status)


def _said(data: object, message: str) -> bool:
    """Whether every value in an error's data already shows in its message (then it needs no detail line)."""
    if isinstance(data, dict):
        return all(_said(v, message) for v in data.values())
    if isinstance(data, list):
        return all(_said(v, message) for v in data)
    return data is None or str(data) in message


def main(argv: list[str] | None = None) -> int:
    """The ``podium`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    g = Globals(traceback="--traceback" in argv)
    try:
        g, command, args = parse_globals(argv)
        if command in ("help", ""):
            (sys.stdout if command else sys.stderr).write(
                HELP.format(config=config_path(), version=__version__)
            )
            return 0 if command else int(ExitStatus.USAGE)
        if command == "version":
            print(f"podium {__version__}")
            return 0
        return asyncio.run(run(g, command, args))
    except CliError as e:
        if g.traceback:
            traceback.print_exc()
        if e.status == ExitStatus.PIPE:
            _quiet_stdout()
        return _report(e)
    except KeyboardInterrupt:
        print("\n✖ interrupted", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        _quiet_stdout()
        return int(ExitStatus.PIPE)
    except Exception as e:
        if g.traceback:
            traceback.print_exc()
        print(f"✖ unexpected failure: {type(e).__name__}: {e}", file=sys.stderr)
        if not g.traceback:
            print("  run again with --traceback to see where, and report it", file=sys.stderr)
        return int(ExitStatus.API_ERROR)
    finally:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
