"""The schema's revisions: a fresh database, one made before migrations, an added revision, a newer one."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from podium.__main__ import main
from podium.db import Base, Database, schema
from podium.db.schema import BASELINE, BASELINE_TABLES, SchemaError

# A revision as a developer would add it: a column (SQLite copies the table: batch mode) and its data.
ADDED = '''"""Servers get a note."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("note", sa.String(255), nullable=False, server_default=""))
    op.execute("UPDATE users SET permission = 'admin' WHERE email = 'old@podium.test'")


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("note")
'''

# One that fails half-way, after DDL of its own.
BROKEN = '''"""Fails after creating a table."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half", sa.Column("id", sa.Integer, primary_key=True))
    raise RuntimeError("this revision fails")


def downgrade() -> None:
    pass
'''


SHIPPED = schema.SCRIPTS


def url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def ddl(path: Path) -> list[tuple[str, str, str]]:
    """What SQLite has made, but Alembic's own table."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE '%alembic_version%'")
        return sorted((kind, name, " ".join((sql or "").split())) for kind, name, sql in rows)


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


async def create_all(path: Path) -> None:
    """The database as the releases from before migrations made it, with a user in it."""
    engine = create_async_engine(url(path))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            text(
                "INSERT INTO users (id, email, password_hash, permission, preferences, created) "
                "VALUES ('u1', 'old@podium.test', '', 'read', '{}', '2026-01-01 00:00:00')"
            )
        )
    await engine.dispose()


async def model_differences(database: str) -> list[object]:
    """What Alembic's autogenerate finds between the models and the database (types compared too)."""
    engine = create_async_engine(database)
    try:
        async with engine.connect() as conn:

            def differences(sync: Connection) -> list[object]:
                context = MigrationContext.configure(sync, opts={"compare_type": True})
                return list(compare_metadata(context, Base.metadata))

            return await conn.run_sync(differences)
    finally:
        await engine.dispose()


@pytest.fixture
def added(tmp_path, monkeypatch) -> Path:
    """The package's scripts copied, with revision 0002 added; schema.py uses the copy."""
    scripts = tmp_path / "migrations"
    shutil.copytree(schema.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0002_servers_note.py").write_text(ADDED)
    monkeypatch.setattr(schema, "SCRIPTS", scripts)
    return scripts


async def test_a_fresh_database_is_created_at_the_newest_revision_as_the_models_say(tmp_path, caplog):
    caplog.set_level(logging.INFO, "podium.db.schema")
    before = await schema.upgrade(url(tmp_path / "fresh.db"))
    assert (before.current, before.legacy, before.label) == (None, False, "empty")
    after = await schema.state(url(tmp_path / "fresh.db"))
    assert after.current == after.head and not after.pending
    assert f"database schema: upgrading from empty to {after.head}" in caplog.text
    assert (await schema.upgrade(url(tmp_path / "fresh.db"))) == after  # at the newest: nothing to do

    # The revisions and the models agree (a model changed without its revision fails here).
    assert await model_differences(url(tmp_path / "fresh.db")) == []
    with sqlite3.connect(tmp_path / "fresh.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_the_baseline_revision_creates_what_the_releases_before_migrations_did(tmp_path):
    def to_baseline(conn: Connection) -> None:
        command.upgrade(schema.config(conn), BASELINE)

    await schema._run(url(tmp_path / "baseline.db"), to_baseline, write=True)
    await create_all(tmp_path / "old.db")
    assert ddl(tmp_path / "baseline.db") == ddl(tmp_path / "old.db")  # the very same SQL
    with sqlite3.connect(tmp_path / "baseline.db") as db:
        made = {t: {c[1] for c in db.execute(f"PRAGMA table_info({t})")} for t in BASELINE_TABLES}
    assert made == BASELINE_TABLES
    assert tables(tmp_path / "baseline.db") == {*BASELINE_TABLES, "alembic_version"}


async def test_a_database_made_before_migrations_is_stamped_then_upgraded_with_its_data(tmp_path, caplog):
    caplog.set_level(logging.INFO, "podium.db.schema")
    await create_all(tmp_path / "old.db")
    state = await schema.state(url(tmp_path / "old.db"))
    assert (state.current, state.legacy, state.pending, state.label) == (None, True, True, "unversioned")
    assert "alembic_version" not in tables(tmp_path / "old.db")  # reading changes nothing

    db = Database(url(tmp_path / "old.db"))  # as the server starts
    await db.create()
    await db.close()
    after = await schema.state(url(tmp_path / "old.db"))
    assert after.current == after.head and not after.legacy
    assert f"upgrading from unversioned to {after.head}" in caplog.text
    with sqlite3.connect(tmp_path / "old.db") as conn:
        assert conn.execute("SELECT email FROM users").fetchall() == [("old@podium.test",)]


async def test_tables_that_are_not_podiums_are_refused_and_left_as_they_are(tmp_path):
    with sqlite3.connect(tmp_path / "odd.db") as db:
        db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, login TEXT)")
    with pytest.raises(SchemaError) as e:
        await schema.upgrade(url(tmp_path / "odd.db"))
    message = e.value.message
    assert "has no schema version, and its tables are not those of a Podium database" in message
    assert "missing table servers" in message and "missing column users.email" in message
    assert "unexpected column users.login" in message
    assert tables(tmp_path / "odd.db") == {"users"}

    with sqlite3.connect(tmp_path / "other.db") as db:  # another program's tables alone: not Podium's to mind
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    await schema.upgrade(url(tmp_path / "other.db"))
    assert tables(tmp_path / "other.db") == {*BASELINE_TABLES, "alembic_version", "notes"}


async def test_an_added_revision_upgrades_old_and_stamped_databases(tmp_path, added, caplog):
    caplog.set_level(logging.INFO)
    await create_all(tmp_path / "old.db")
    before = await schema.upgrade(url(tmp_path / "old.db"))
    assert before.legacy and before.head == "0002"
    assert "upgrading from unversioned to 0002" in caplog.text
    assert "Running upgrade 0001 -> 0002" in caplog.text
    with sqlite3.connect(tmp_path / "old.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
        assert "note" in {c[1] for c in db.execute("PRAGMA table_info(servers)")}
        assert db.execute("SELECT permission FROM users").fetchall() == [("admin",)]

    await schema.upgrade(url(tmp_path / "new.db"))  # and a fresh one goes through both
    assert (await schema.state(url(tmp_path / "new.db"))).current == "0002"


async def test_a_failed_revision_leaves_the_database_as_it_was(tmp_path, added, caplog):
    caplog.set_level(logging.INFO, "podium.db.schema")
    await create_all(tmp_path / "old.db")
    (added / "versions" / "0003_broken.py").write_text(BROKEN)
    with pytest.raises(RuntimeError, match="this revision fails"):
        await schema.upgrade(url(tmp_path / "old.db"))
    # 0002's copy of servers, its UPDATE, 0003's table and the stamp: all rolled back together.
    assert tables(tmp_path / "old.db") == set(BASELINE_TABLES)
    with sqlite3.connect(tmp_path / "old.db") as db:
        assert "note" not in {c[1] for c in db.execute("PRAGMA table_info(servers)")}
        assert db.execute("SELECT permission FROM users").fetchall() == [("read",)]
    assert (await schema.state(url(tmp_path / "old.db"))).legacy
    assert "upgrading from unversioned to 0003" in caplog.text and "upgraded" not in caplog.text


async def test_a_database_of_a_newer_release_is_refused(tmp_path, added, monkeypatch):
    await schema.upgrade(url(tmp_path / "newer.db"))  # upgraded by a release that knows 0002
    monkeypatch.setattr(schema, "SCRIPTS", SHIPPED)  # this release's own revisions: up to 0001
    for attempt in (schema.state, schema.upgrade, lambda u: Database(u).create()):
        with pytest.raises(SchemaError) as e:
            await attempt(url(tmp_path / "newer.db"))
        assert "is at schema revision 0002, which Podium" in e.value.message
        assert "restore the backup of the database taken before that upgrade" in e.value.message
    with sqlite3.connect(tmp_path / "newer.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]


def test_migrate_and_its_check(tmp_path, added, monkeypatch, capsys):
    monkeypatch.setenv("PODIUM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PODIUM_DATABASE_URL", raising=False)
    assert main(["migrate", "--check"]) == 2  # no database: nothing to tell
    assert "no database in" in capsys.readouterr().err
    assert main(["migrate"]) == 1  # nor to upgrade: a wrong data directory must not get an empty one
    assert not (tmp_path / "data" / "podium.db").exists()

    (tmp_path / "data").mkdir()
    asyncio.run(create_all(tmp_path / "data" / "podium.db"))
    assert main(["migrate", "--check"]) == 1
    assert capsys.readouterr().out == "current: unversioned\nhead: 0002\n"
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == "unversioned -> 0002\n"
    assert main(["migrate", "--check"]) == 0
    assert capsys.readouterr().out == "current: 0002\nhead: 0002\n"
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == "0002 -> 0002 (already the newest)\n"

    (added / "versions" / "0002_servers_note.py").unlink()  # this release is older than the database
    assert main(["migrate", "--check"]) == 2
    assert "restore the backup" in capsys.readouterr().err
    assert main(["migrate"]) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give the database to another user")
def test_root_does_not_write_to_the_servers_database(tmp_path, monkeypatch, capsys):
    """As root, migrate and issue-token refuse a database that is another user's (the server's): the
    files SQLite makes beside it would be root's, and the server could not open them."""
    monkeypatch.setenv("PODIUM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PODIUM_DATABASE_URL", raising=False)
    (tmp_path / "data").mkdir()
    asyncio.run(create_all(tmp_path / "data" / "podium.db"))
    (tmp_path / "data" / "secret.key").write_text("not read\n")
    os.chown(tmp_path / "data" / "podium.db", 65534, 65534)
    try:
        owner = pwd.getpwuid(65534).pw_name
    except KeyError:
        owner = "65534"
    for argv in (["migrate"], ["issue-token"]):
        assert main(argv) == 1
        said = capsys.readouterr()
        assert f"is {owner}'s: run this as {owner} (runuser -u {owner} -- podium-server ...)" in said.err
        assert not said.out
    assert main(["migrate", "--check"]) == 1  # reading is harmless
    assert "alembic_version" not in tables(tmp_path / "data" / "podium.db")


def test_a_developer_adds_a_revision(tmp_path, added):
    """``schema.revision`` writes the next revision from the models: here 0002's column, which the
    models do not have, is dropped again."""
    path = schema.revision("drop the note")
    assert path == added / "versions" / "0003_drop_the_note.py"
    source = path.read_text()
    assert 'revision = "0003"' in source and 'down_revision = "0002"' in source  # ruff formatted it
    assert 'batch_op.drop_column("note")' in source
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("ruff")), "check", "--isolated", "--select", "F", str(path)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    assert (await_upgrade(tmp_path / "dev.db")).head == "0003"


def await_upgrade(path: Path) -> schema.SchemaState:
    asyncio.run(schema.upgrade(url(path)))
    return asyncio.run(schema.state(url(path)))
