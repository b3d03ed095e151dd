"""PostgreSQL by URL (``database_url``/``PODIUM_DATABASE_URL``), on a real PostgreSQL server the tests start:
the schema's revisions (fresh, added, failed, newer, two at once), and the server keeping users, groups,
ACLs, tokens and pools (their passwords encrypted) across a restart."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest

from podium.db import Database, schema
from podium.db.schema import SchemaError

from ..harness.pgproc import Postgres
from ..harness.serverproc import ADMIN_EMAIL, Api, ApiError, connected, free_port, start_server
from ..unit.podium.db.test_schema import ADDED, BROKEN, model_differences

pytestmark = pytest.mark.integration


@pytest.fixture
def db(pg: Postgres, request: pytest.FixtureRequest) -> str:
    """A fresh database for one test; its URL."""
    return pg.create_database(request.node.name[:60].lower())


@pytest.fixture
def added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scripts = tmp_path / "migrations"
    shutil.copytree(schema.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0002_servers_note.py").write_text(ADDED)
    monkeypatch.setattr(schema, "SCRIPTS", scripts)
    return scripts


def tables(pg: Postgres, database: str) -> set[str]:
    listed = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database)
    return set(listed.split())


async def test_the_revisions_make_what_the_models_say(pg: Postgres, db: str) -> None:
    before = await schema.upgrade(db)
    assert before.label == "empty"
    after = await schema.state(db)
    assert after.current == after.head and not after.pending
    assert await schema.upgrade(db) == after
    assert await model_differences(db) == []  # PostgreSQL's types as the models say


async def test_an_added_revision_then_a_failing_one_then_a_newer_release(
    pg: Postgres, db: str, added: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = db.rsplit("/", 1)[1]
    await schema.upgrade(db)
    assert (await schema.state(db)).current == "0002"
    assert "note" in pg.psql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'servers'", database
    )
    kept = tables(pg, database)

    # PostgreSQL's DDL is transactional: the failed revision's table is gone with it
    (added / "versions" / "0003_broken.py").write_text(BROKEN)
    with pytest.raises(RuntimeError, match="this revision fails"):
        await schema.upgrade(db)
    assert tables(pg, database) == kept
    assert (await schema.state(db)).current == "0002"
    (added / "versions" / "0003_broken.py").unlink()

    monkeypatch.setattr(schema, "SCRIPTS", schema.Path(schema.__file__).with_name("migrations"))
    with pytest.raises(SchemaError, match="is at schema revision 0002"):
        await Database(db).create()  # this release knows up to 0001: refused, left as it is
    assert pg.psql("SELECT version_num FROM alembic_version", database).split() == ["0002"]


async def test_two_servers_starting_at_once_migrate_once(db: str) -> None:
    first, second = await asyncio.gather(schema.upgrade(db), schema.upgrade(db))
    assert sorted([first.label, second.label]) == sorted(["empty", (await schema.state(db)).head])


async def test_a_wrong_password_or_no_server_is_said_clearly(pg: Postgres) -> None:
    wrong = pg.url().replace(pg.password, "not-the-password")
    with pytest.raises(SchemaError, match="cannot use the database") as e:
        await schema.state(wrong)
    assert "password authentication failed" in e.value.message
    assert "not-the-password" not in e.value.message  # the URL is shown without its password
    nobody = pg.url().replace(f":{pg.port}/", f":{free_port()}/")
    with pytest.raises(SchemaError, match="cannot reach the database"):
        await schema.state(nobody)


async def test_the_server_keeps_everything_in_postgresql_across_a_restart(
    pg: Postgres, db: str, sim, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    env = {"PODIUM_DATABASE_URL": db}
    srv = start_server(tmp_path / "data", env=env)
    try:
        async with Api(srv.url) as api:
            await api.sign_in()
            user = await api.call(
                "user.create", {"email": "ops@podium.test", "password": "a long enough secret"}
            )
            group = await api.call("group.create", {"name": "operators"})
            await api.call("group.addUser", {"id": group, "userId": user})
            token = await api.call("token.create", {"description": "automation"})
            await connected(api, sim)
            (pool,) = [o for o in (await api.call("xo.getAllObjects", {"filter": {"type": "pool"}})).values()]
            await api.call("acl.add", {"subject": group, "object": pool["id"], "action": "viewer"})
    finally:
        assert srv.stop() == 0
    assert not (tmp_path / "data" / "podium.db").exists()  # nothing went to SQLite
    database = db.rsplit("/", 1)[1]
    (stored,) = pg.psql("SELECT encode(password, 'hex') FROM servers", database).split()
    assert sim.password.encode() not in bytes.fromhex(stored)  # encrypted at rest
    (kept,) = pg.psql("SELECT id || encode(sealed, 'hex') FROM tokens", database).split()
    assert hashlib.sha256(token.encode()).hexdigest() in kept and token not in kept  # hashed, sealed

    srv = start_server(tmp_path / "data", env=env)
    try:
        assert "upgrading" not in srv.log()
        async with Api(srv.url) as api:
            assert (await api.call("session.signIn", {"token": token}))["email"] == ADMIN_EMAIL
            assert {u["email"] for u in await api.call("user.getAll")} >= {ADMIN_EMAIL, "ops@podium.test"}
            (acl,) = await api.call("acl.get")
            assert acl["subject"] == group and acl["action"] == "viewer"
            for _ in range(300):  # the pool's password decrypts: the server connects to it again by itself
                (server,) = await api.call("server.getAll")
                if server["status"] == "connected":
                    break
                await asyncio.sleep(0.05)
            assert server["status"] == "connected", server
        async with Api(srv.url) as api:
            with pytest.raises(ApiError, match="invalid credentials"):
                await api.call("session.signIn", {"email": "ops@podium.test", "password": "wrong"})
    finally:
        assert srv.stop() == 0
