"""``podium-server`` (``python -m podium``): run the Podium server; from the console, reset a user's
password, upgrade the database's schema (``migrate``) or issue a short-lived admin token (``issue-token``).

The commands that write to a SQLite database refuse to run as root on a database that is another user's:
the files SQLite creates beside it would be root's, and the server could no longer open them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import pwd
import sys
from pathlib import Path

import uvloop
from aiohttp import web
from sqlalchemy import make_url, select

from .app import make_app
from .auth import Tokens, Users
from .auth.users import UserError
from .config import ConfigError, Settings, load
from .db import Database, SecretBox, User, schema
from .db.schema import SchemaError

log = logging.getLogger("podium")

TOKEN_TTL = 900  # issue-token's default lifetime, in seconds
TOKEN_TTL_MAX = 86400
TOKEN_TTL_MIN = 60  # as token.create's


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
    migrate = sub.add_parser(
        "migrate",
        help="upgrade the database's schema to this release's, printing from -> to",
        description="Upgrade the database's schema to this release's newest revision (the server also "
        "does it when it starts). Exit status: 0 done, 1 the database cannot be used or upgraded.",
    )
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing: print the current and newest revisions; exit 0 if up to date, "
        "1 if an upgrade is pending, 2 if the database cannot be used (missing, newer, not Podium's)",
    )
    issue = sub.add_parser(
        "issue-token",
        help="print a new short-lived API token of an admin (for scripts that run as the server's user)",
    )
    issue.add_argument("--email", help="the admin to sign in as (default: the oldest admin)")
    issue.add_argument(
        "--ttl",
        type=int,
        default=TOKEN_TTL,
        metavar="SECONDS",
        help=f"how long the token is valid, {TOKEN_TTL_MIN} to {TOKEN_TTL_MAX} s (default {TOKEN_TTL})",
    )
    issue.add_argument(
        "--description", default="podium-server issue-token", help="shown in the list of tokens"
    )
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
        if args.command == "migrate":
            return _migrate(settings, args.check)
        if args.command == "issue-token":
            return _issue_token(settings, args.email, args.ttl, args.description)
        ssl_context = settings.ssl_context()
    except ConfigError as e:
        print(f"podium-server: {e.message}", file=sys.stderr)
        return 2
    # The schema first, so that a database this release cannot use stops it before it listens.
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        asyncio.run(schema.upgrade(settings.db_url))
    except SchemaError as e:
        print(f"podium-server: {e.message}", file=sys.stderr)
        return 1
    # uvloop: libuv's sockets cost the server about 15% less CPU per relayed byte than asyncio's selector loop
    # (tests/bench/bench_transfer.py), where the relay shares the appliance's CPUs with everything else
    web.run_app(
        make_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_context=ssl_context,
        print=None,
        loop=uvloop.new_event_loop(),
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


def _missing_database(settings: Settings) -> str:
    """Why there is no database to work on (a SQLite file that does not exist), or ""."""
    url = make_url(settings.db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return ""
    if Path(url.database).exists():
        return ""
    if not settings.database_url:
        return f"no database in {settings.data_dir}: the server never started"
    return f"no database {url.database}: the server never started"


def _not_its_owner(settings: Settings) -> str:
    """Why root must not write to this SQLite database (another user's), or ""."""
    url = make_url(settings.db_url)
    if os.geteuid() != 0 or url.get_backend_name() != "sqlite" or not url.database:
        return ""
    owner = Path(url.database).stat().st_uid
    if owner == 0:
        return ""
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    return (
        f"the database {url.database} is {name}'s: run this as {name} (runuser -u {name} -- podium-server ...), "
        "or the files SQLite makes beside it would be root's and the server could not open them"
    )


def _migrate(settings: Settings, check: bool) -> int:
    problem = _missing_database(settings) or ("" if check else _not_its_owner(settings))
    if problem:
        print(f"podium-server: {problem}", file=sys.stderr)
        return 2 if check else 1
    try:
        if check:
            state = asyncio.run(schema.state(settings.db_url))
            print(f"current: {state.label}")
            print(f"head: {state.head}")
            return 1 if state.pending else 0
        before = asyncio.run(schema.upgrade(settings.db_url))
    except SchemaError as e:
        print(f"podium-server: {e.message}", file=sys.stderr)
        return 2 if check else 1
    print(f"{before.label} -> {before.head}" + ("" if before.pending else " (already the newest)"))
    return 0


def _issue_token(settings: Settings, email: str | None, ttl: int, description: str) -> int:
    if not TOKEN_TTL_MIN <= ttl <= TOKEN_TTL_MAX:
        print(f"podium-server: --ttl: from {TOKEN_TTL_MIN} to {TOKEN_TTL_MAX} seconds", file=sys.stderr)
        return 2
    key = settings.data_dir / "secret.key"
    problem = _missing_database(settings) or _not_its_owner(settings)
    if not problem and not key.exists():  # made by the server's first start; never made here
        problem = f"no secret key {key}: the server never started with this data directory"
    if problem:
        print(f"podium-server: {problem}", file=sys.stderr)
        return 1

    async def issue() -> tuple[User, str]:
        state = await schema.state(settings.db_url)
        if state.pending:
            raise SchemaError(
                f"the database's schema is at {state.label}, this release's is {state.head}: "
                "start the server or run podium-server migrate first"
            )
        db = Database(settings.db_url)
        try:
            user = await _admin(db, email)
            token = await Tokens(db, SecretBox(key)).create(
                user.id, datetime.timedelta(seconds=ttl), description
            )
            return user, token
        finally:
            await db.close()

    try:
        user, token = asyncio.run(issue())
    except (SchemaError, UserError) as e:
        print(f"podium-server: {e.message}", file=sys.stderr)
        return 1
    log.info("issued a token for %s, valid %d s (%s)", user.email, ttl, description)
    print(token)
    return 0


async def _admin(db: Database, email: str | None) -> User:
    """The admin of this e-mail, or the oldest admin; :class:`UserError` if there is none."""
    if email is not None:
        user = await Users(db).by_email(email)
        if user is None:
            raise UserError(f"no user {email}")
        if user.permission != "admin":
            raise UserError(f"{user.email} is not an admin (permission {user.permission})")
        return user
    async with db.session() as s:
        oldest = await s.scalar(
            select(User).where(User.permission == "admin").order_by(User.created, User.id).limit(1)
        )
    if oldest is None:
        raise UserError("no admin user: give one the admin permission, or name a user with --email")
    return oldest


if __name__ == "__main__":
    sys.exit(main())
