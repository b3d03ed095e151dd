"""The schema's version: Alembic's revisions (``migrations/``), run at start and by ``podium-server migrate``.

A database is in one of these states:

- empty: the revisions create every table;
- made by a release from before migrations (Podium's tables, no ``alembic_version``): its tables are
  checked against :data:`BASELINE_TABLES`, then it is stamped as :data:`BASELINE` and upgraded;
- at a revision this code knows: upgraded to the newest (:func:`upgrade`), or left alone if it is;
- at a revision this code does not know, written by a newer release: refused (:class:`SchemaError`),
  since an older server must not run on a newer schema; going back means restoring the backup that
  was taken before the upgrade.

Every upgrade runs in one transaction (on SQLite too: the engine here opens it with
``BEGIN IMMEDIATE``, which also keeps a second migration out until the first is done; on PostgreSQL an
advisory lock does that), so a failed revision leaves the database as it was.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import String, column, event, inspect, make_url, pool, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .. import __version__
from ..errors import PodiumError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Alembic's scripts, shipped in the package (found beside this file, in a checkout or a wheel).
SCRIPTS = Path(__file__).resolve().with_name("migrations")

#: The first revision: the schema of the releases from before migrations.
BASELINE = "0001"

#: The tables (and their columns) that the releases from before migrations created; a database that
#: has them and no version is one of theirs, stamped as :data:`BASELINE`. Never changes.
BASELINE_TABLES: dict[str, frozenset[str]] = {
    "servers": frozenset(
        {
            "id",
            "label",
            "host",
            "username",
            "password",
            "allow_unauthorized",
            "fingerprint",
            "read_only",
            "auto_connect",
            "enabled",
            "pool_uuid",
            "known_hosts",
            "created",
        }
    ),
    "users": frozenset({"id", "email", "password_hash", "permission", "preferences", "created"}),
    "groups": frozenset({"id", "name", "users"}),
    "acls": frozenset({"id", "subject", "object", "action"}),
    "tokens": frozenset(
        {"id", "user_id", "client_id", "description", "sealed", "created", "expires", "last_use"}
    ),
    "audit": frozenset({"id", "time", "user", "remote", "method", "params", "outcome", "duration_ms"}),
}

VERSION_TABLE = "alembic_version"  # Alembic's default name

_PG_LOCK = 0x706F6469756D  # "podium": the advisory lock that keeps concurrent migrations in turn


class SchemaError(PodiumError):
    """The database's schema cannot be used or upgraded by this release."""


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema is, and where this code would take it."""

    current: str | None  # the database's revision; None: it has none (empty, or made before migrations)
    head: str  # the newest revision this code knows
    legacy: bool = False  # made by a release from before migrations: to be stamped as BASELINE

    @property
    def pending(self) -> bool:
        """Whether :func:`upgrade` would change the database."""
        return self.legacy or self.current != self.head

    @property
    def label(self) -> str:
        """The current revision, or what the database is when it has none."""
        return self.current or ("unversioned" if self.legacy else "empty")


def config(connection: Connection | None = None, url: str = "") -> Config:
    """Alembic's configuration, made here rather than read from an ``alembic.ini``."""
    cfg = Config(attributes={"connection": connection})
    cfg.set_main_option("script_location", str(SCRIPTS).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def where(url: str) -> str:
    """The database, as a message names it (never its password)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or "(in memory)"
    return parsed.render_as_string(hide_password=True)


async def state(url: str) -> SchemaState:
    """Where the database's schema is (read only); :class:`SchemaError` if this code cannot use it."""
    return await _run(url, _state, write=False)


async def upgrade(url: str) -> SchemaState:
    """Bring the database to the newest revision (creating it when empty); the state it was in before.

    :class:`SchemaError` when its revision is unknown here (a newer release's) or when it has tables
    but no version and they are not Podium's."""
    before = await _run(url, _upgrade, write=True)
    if before.pending:
        log.info("database schema upgraded from %s to %s", before.label, before.head)
    return before


def _state(conn: Connection) -> SchemaState:
    script = ScriptDirectory.from_config(config(conn))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise SchemaError(f"no schema revisions in {SCRIPTS}: the installation is incomplete")
    heads = _current_heads(conn)
    if not heads:
        return _unversioned(conn, head)
    for revision in heads:
        try:
            known = script.get_revision(revision)
        except CommandError:
            known = None
        if known is None:
            raise SchemaError(
                f"the database {where(str(conn.engine.url))} is at schema revision {revision}, which "
                f"Podium {__version__} does not know (its newest is {head}): a newer release upgraded it. "
                "This release will not run on it. To go back to an older release, restore the backup of "
                "the database taken before that upgrade (the updater's rollback puts it back with the "
                "release), or run the newer release again."
            )
    if len(heads) > 1:  # pragma: no cover - Podium's revisions are one line
        raise SchemaError(f"the database is at several schema revisions at once: {', '.join(heads)}")
    return SchemaState(heads[0], head)


def _current_heads(conn: Connection) -> tuple[str, ...]:
    """The revisions in ``alembic_version`` (read here: Alembic's own reader logs at each call)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return ()
    query = select(column("version_num", String)).select_from(table(VERSION_TABLE))
    return tuple(str(revision) for revision in conn.execute(query).scalars())


def _unversioned(conn: Connection, head: str) -> SchemaState:
    inspector = inspect(conn)
    present = set(inspector.get_table_names()) & set(BASELINE_TABLES)
    if not present:  # tables of other programs, if any, are not Podium's to mind
        return SchemaState(None, head)
    problems = [f"missing table {t}" for t in sorted(set(BASELINE_TABLES) - present)]
    for name in sorted(present):
        columns = {c["name"] for c in inspector.get_columns(name)}
        problems += [f"missing column {name}.{c}" for c in sorted(BASELINE_TABLES[name] - columns)]
        problems += [f"unexpected column {name}.{c}" for c in sorted(columns - BASELINE_TABLES[name])]
    if problems:
        raise SchemaError(
            f"the database {where(str(conn.engine.url))} has no schema version, and its tables are not "
            f"those of a Podium database ({'; '.join(problems)}): it is left as it is. Point the data "
            "directory or database_url at Podium's database, or move this one away to start anew."
        )
    return SchemaState(None, head, legacy=True)


def _upgrade(conn: Connection) -> SchemaState:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
    before = _state(conn)
    if not before.pending:
        log.debug("database schema at %s, the newest", before.head)
        return before
    log.info("database schema: upgrading from %s to %s", before.label, before.head)
    cfg = config(conn)
    if before.legacy:
        command.stamp(cfg, BASELINE)  # made before migrations: its tables are the baseline's
    command.upgrade(cfg, "head")
    return before


async def _run(url: str, work: Callable[[Connection], T], write: bool) -> T:
    engine = _engine(url, write)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    except DBAPIError as e:  # SQLite's OperationalError, PostgreSQL's refusals (a wrong password …)
        raise SchemaError(f"cannot use the database {where(url)}: {e.orig}") from e
    except OSError as e:  # no PostgreSQL server at that address
        raise SchemaError(f"cannot reach the database {where(url)}: {e}") from e
    finally:
        await engine.dispose()


def _engine(url: str, write: bool) -> AsyncEngine:
    """An engine of its own: no pool, and on SQLite real transactions around the DDL too."""
    engine = create_async_engine(url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate if write else _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_conn: object, _record: object) -> None:
    dbapi_conn.isolation_level = None  # type: ignore[attr-defined]  # the driver begins nothing itself
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # as the server's engine has it
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first: one migration at a time


def revision(message: str, autogenerate: bool = True) -> Path:
    """For developers: write the next revision (``versions/NNNN_message.py``) from the differences
    between the models and a scratch database at the newest revision; returns its path."""

    def write(conn: Connection) -> Path:
        cfg = config(conn)
        ruff = Path(sys.executable).with_name("ruff")
        if ruff.exists() or shutil.which("ruff"):
            cfg.set_section_option("post_write_hooks", "hooks", "fix, format")
            for name, args in (("fix", "check --fix --quiet"), ("format", "format --quiet")):
                cfg.set_section_option("post_write_hooks", f"{name}.type", "exec")
                cfg.set_section_option(
                    "post_write_hooks", f"{name}.executable", str(ruff) if ruff.exists() else "ruff"
                )
                cfg.set_section_option(
                    "post_write_hooks", f"{name}.options", f"{args} REVISION_SCRIPT_FILENAME"
                )
        script = ScriptDirectory.from_config(cfg)
        numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
        made = command.revision(
            cfg, message=message, autogenerate=autogenerate, rev_id=f"{max(numbers, default=0) + 1:04d}"
        )
        assert made is not None and not isinstance(made, list)
        return Path(made.path)

    async def make() -> Path:
        with tempfile.TemporaryDirectory() as scratch:
            url = f"sqlite+aiosqlite:///{Path(scratch) / 'scratch.db'}"
            await upgrade(url)
            return await _run(url, write, write=True)

    return asyncio.run(make())
