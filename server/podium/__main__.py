"""``podium-server`` (``python -m podium``): run the Podium server, or reset a user's password from the console."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from aiohttp import web

from .app import make_app
from .auth import Users
from .auth.users import UserError
from .config import ConfigError, Settings, load
from .store import Database


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, read the settings, serve until SIGTERM or SIGINT."""
    p = argparse.ArgumentParser(prog="podium-server", description="The Podium server.")
    p.add_argument("--config", type=Path, help="TOML settings file (environment variables override it)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="serve the API (the default)")
    reset = sub.add_parser(
        "reset-password", help="give a user a new password (printed, or read from standard input)"
    )
    reset.add_argument("email")
    reset.add_argument("--password-stdin", action="store_true", help="read the new password from stdin")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        settings = load(args.config)
        if args.command == "reset-password":
            return _reset_password(settings, args.email, args.password_stdin)
        ssl_context = settings.ssl_context()
    except ConfigError as e:
        print(f"podium-server: {e.message}", file=sys.stderr)
        return 2
    web.run_app(
        make_app(settings), host=settings.host, port=settings.port, ssl_context=ssl_context, print=None
    )
    return 0


def _reset_password(settings: Settings, email: str, from_stdin: bool) -> int:
    given = sys.stdin.readline().rstrip("\n") if from_stdin else ""
    if from_stdin and not given:
        print("podium-server: no password on standard input", file=sys.stderr)
        return 2
    if "://" not in settings.database_url and not (settings.data_dir / "podium.db").exists():
        print(f"podium-server: no database in {settings.data_dir}: the server never started", file=sys.stderr)
        return 1

    async def reset() -> str:
        db = Database(settings.db_url)
        try:
            return await Users(db).reset_password(email, given)
        finally:
            await db.close()

    try:
        password = asyncio.run(reset())
    except UserError as e:
        print(f"podium-server: {e.message}", file=sys.stderr)
        return 1
    if not given:
        print(password)
    return 0


if __name__ == "__main__":
    sys.exit(main())
