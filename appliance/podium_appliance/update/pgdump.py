"""The server's database when it is PostgreSQL (``database_url`` in its configuration): backed up before an
upgrade migrates it, and put back when the upgrade fails or is rolled back, with PostgreSQL's own tools.

A SQLite database lives in the data folder, which the installer copies; a PostgreSQL one does not, so:

- backup: the list of tables of the database's schema, then ``pg_dump --format=custom``;
- restore, in one transaction (``psql --single-transaction``): the tables made since the backup (by the new
  release's migrations: the server was stopped between) dropped, then the dump's SQL from ``pg_restore
  --clean --if-exists``, which replaces every table it holds. A failure leaves the database as it was.

The password goes to the tools in ``PGPASSWORD``, never on a command line (where ``ps`` would show it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ApplianceError
from ..layout import write_atomic
from .signing import UpdateRefused

DUMP = "database.pgdump"
TABLES = "database.tables.json"
TOOLS = ("pg_dump", "pg_restore", "psql")


def is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """The SQLAlchemy URL as libpq's connection string without the password, and the environment with it."""
    parts = urlsplit(url)
    if not parts.hostname and not parts.path.strip("/"):
        raise ApplianceError("the server's database_url names no PostgreSQL host or database")
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    user = f"{unquote(parts.username)}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    query = parse_qs(parts.query)
    sslmode = (query.get("sslmode") or query.get("ssl") or [""])[0]  # asyncpg says ssl=, libpq sslmode=
    conninfo = f"postgresql://{user}{host}{port}{parts.path}" + (f"?sslmode={sslmode}" if sslmode else "")
    env = {**os.environ, "PGCONNECT_TIMEOUT": "15"}
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    return conninfo, env


def check_tools() -> None:
    """Refuse an upgrade up front when the tools are missing (before anything is stopped)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise UpdateRefused(
            f"the server's database is PostgreSQL, which the updater backs up before migrating it, but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: install Debian's "
            "postgresql-client (of the server's major version or newer), then upgrade again"
        )


def _run(argv: list[str], env: dict[str, str], what: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ApplianceError(f"{what}: {e}") from e
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise ApplianceError(f"{what} failed: {said[-1] if said else f'exit status {done.returncode}'}")
    return done.stdout


def tables(url: str) -> list[str]:
    """The tables of the database's current schema, schema-qualified and quoted."""
    conninfo, env = libpq(url)
    sql = (
        "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
        "WHERE schemaname = current_schema() ORDER BY 1"
    )
    said = _run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
        env,
        "listing the database's tables",
    )
    return said.decode().split()


def backup(url: str, dest: Path) -> None:
    """The database as it is now, into ``dest`` (the data backup's folder)."""
    conninfo, env = libpq(url)
    write_atomic(dest / TABLES, json.dumps(tables(url)) + "\n", mode=0o600)
    part = dest / f"{DUMP}.part"
    _run(
        ["pg_dump", "--format=custom", "--no-owner", "--no-acl", f"--file={part}", "-d", conninfo],
        env,
        "backing up the PostgreSQL database (pg_dump)",
    )
    os.chmod(part, 0o600)
    os.replace(part, dest / DUMP)


def has_backup(folder: Path) -> bool:
    return (folder / DUMP).is_file() and (folder / TABLES).is_file()


def restore(url: str, folder: Path) -> None:
    """The database as :func:`backup` saw it, in one transaction."""
    conninfo, env = libpq(url)
    try:
        before = set(json.loads((folder / TABLES).read_text()))
    except (OSError, ValueError) as e:
        raise ApplianceError(f"the database backup in {folder} is unreadable: {e}") from e
    made_since = [t for t in tables(url) if t not in before]
    script = _run(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-acl", "--file=-", str(folder / DUMP)],
        env,
        "reading the PostgreSQL backup (pg_restore)",
    )
    drops = "".join(f"DROP TABLE IF EXISTS {t} CASCADE;\n" for t in made_since).encode()
    _run(
        ["psql", "-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-"],
        env,
        "putting the PostgreSQL database back (psql)",
        stdin=drops + script,
    )
