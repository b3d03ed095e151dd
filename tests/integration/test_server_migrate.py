"""``podium-server`` and its database: the schema upgraded at start or by ``migrate``, a newer one refused,
and ``issue-token``'s short-lived admin token used over the API of a running server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from podium.db import Base

from ..harness.serverproc import ADMIN_EMAIL, Api, ApiError, free_port, start_server

pytestmark = pytest.mark.integration


def podium_server(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``podium-server ARGS`` on this data directory, as the console or the updater runs it."""
    env = {
        "PATH": os.environ["PATH"],
        "PODIUM_DATA_DIR": str(data_dir),
        "PODIUM_LISTEN": f"127.0.0.1:{free_port()}",
    }
    argv = [sys.executable, "-m", "podium", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


async def made_before_migrations(data_dir: Path) -> None:
    """A data directory whose database the releases from before migrations made (create_all)."""
    await asyncio.to_thread(data_dir.mkdir, mode=0o700)
    engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / 'podium.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


def revision(data_dir: Path) -> list[tuple[str]]:
    with sqlite3.connect(data_dir / "podium.db") as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchall()


async def test_the_server_upgrades_a_database_made_before_migrations(tmp_path):
    data = tmp_path / "data"
    missing = await asyncio.to_thread(podium_server, data, "migrate", "--check")
    assert missing.returncode == 2 and "no database in" in missing.stderr and not missing.stdout
    await made_before_migrations(data)
    pending = await asyncio.to_thread(podium_server, data, "migrate", "--check")
    assert pending.returncode == 1, pending.stderr
    assert pending.stdout == "current: unversioned\nhead: 0001\n"

    srv = start_server(data)
    try:
        assert "database schema: upgrading from unversioned to 0001" in srv.log()
        assert "database schema upgraded from unversioned to 0001" in srv.log()
        async with Api(srv.url) as api:
            assert (await api.sign_in())["email"] == ADMIN_EMAIL
        done = await asyncio.to_thread(podium_server, data, "migrate", "--check")  # while it runs
        assert done.returncode == 0 and done.stdout == "current: 0001\nhead: 0001\n"
        again = await asyncio.to_thread(podium_server, data, "migrate")
        assert again.returncode == 0 and again.stdout == "0001 -> 0001 (already the newest)\n"
    finally:
        assert srv.stop() == 0
    assert revision(data) == [("0001",)]

    # A restart finds it at the newest revision and says nothing of an upgrade.
    srv = start_server(data)
    assert "upgrading" not in srv.log()
    assert srv.stop() == 0


async def test_migrate_upgrades_a_database_made_before_migrations(tmp_path):
    data = tmp_path / "data"
    await made_before_migrations(data)
    out = await asyncio.to_thread(podium_server, data, "migrate")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "unversioned -> 0001\n" and "upgrading from unversioned to 0001" in out.stderr
    assert revision(data) == [("0001",)]


async def test_the_server_refuses_a_database_of_a_newer_release(tmp_path):
    data = tmp_path / "data"
    start_server(data).stop()
    with sqlite3.connect(data / "podium.db") as db:  # as a later release's upgrade leaves it
        db.execute("UPDATE alembic_version SET version_num = '0999'")
    serve = await asyncio.to_thread(podium_server, data)
    assert serve.returncode == 1 and "Traceback" not in serve.stderr
    assert "podium-server: the database" in serve.stderr and "is at schema revision 0999" in serve.stderr
    assert "restore the backup of the database taken before that upgrade" in serve.stderr
    assert "serving on" not in serve.stderr
    check = await asyncio.to_thread(podium_server, data, "migrate", "--check")
    assert check.returncode == 2 and "0999" in check.stderr and not check.stdout
    upgrade = await asyncio.to_thread(podium_server, data, "migrate")
    assert upgrade.returncode == 1 and "0999" in upgrade.stderr
    token = await asyncio.to_thread(podium_server, data, "issue-token")
    assert token.returncode == 1 and "0999" in token.stderr and not token.stdout
    assert revision(data) == [("0999",)]


async def test_issue_token_signs_the_updater_in_on_a_running_server(tmp_path):
    data = tmp_path / "data"
    never = await asyncio.to_thread(podium_server, data, "issue-token")
    assert never.returncode == 1 and "no database in" in never.stderr and not never.stdout
    assert not data.exists()

    srv = start_server(data)
    try:
        out = await asyncio.to_thread(podium_server, data, "issue-token")
        assert out.returncode == 0, out.stderr
        token = out.stdout.strip()
        assert out.stdout == token + "\n" and len(token) >= 40  # the token alone on stdout
        assert token not in out.stderr and f"issued a token for {ADMIN_EMAIL}, valid 900 s" in out.stderr
        async with Api(srv.url) as api:
            user = await api.call("session.signIn", {"token": token})
            assert user["email"] == ADMIN_EMAIL and user["permission"] == "admin"
            assert await api.call("session.getUser") == user
            listed = await api.call("user.getAuthenticationTokens")
            (mine,) = [t for t in listed if t["description"] == "podium-server issue-token"]
            lifetime = (mine["expiration"] - mine["created_at"]) / 1000
            assert 899 <= lifetime <= 901
            await api.call(
                "user.create", {"email": "reader@podium.test", "password": "x" * 12, "permission": "read"}
            )

        short = await asyncio.to_thread(
            podium_server,
            data,
            "issue-token",
            "--email",
            ADMIN_EMAIL.upper(),
            "--ttl",
            "120",
            "--description",
            "updater health check",
        )
        assert short.returncode == 0, short.stderr
        async with Api(srv.url) as api:
            await api.call("session.signIn", {"token": short.stdout.strip()})
            (mine,) = [
                t
                for t in await api.call("user.getAuthenticationTokens")
                if t["description"] == "updater health check"
            ]
            assert 119 <= (mine["expiration"] - mine["created_at"]) / 1000 <= 121
            with pytest.raises(ApiError) as e:
                await api.call("session.signIn", {"token": token[:-2]})
            assert e.value.code == 3

        refusals = [
            (["--email", "nobody@podium.test"], 1, "no user nobody@podium.test"),
            (["--email", "reader@podium.test"], 1, "reader@podium.test is not an admin (permission read)"),
            (["--ttl", "86401"], 2, "--ttl: from 60 to 86400 seconds"),
            (["--ttl", "59"], 2, "--ttl: from 60 to 86400 seconds"),
        ]
        for args, status, said in refusals:
            no = await asyncio.to_thread(podium_server, data, "issue-token", *args)
            assert (no.returncode, no.stderr, no.stdout) == (status, f"podium-server: {said}\n", "")
    finally:
        srv.stop()
    assert token not in srv.log()


async def test_issue_token_defaults_to_the_oldest_admin(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)

    async def signed_in_as() -> str:
        out = await asyncio.to_thread(podium_server, data, "issue-token")
        assert out.returncode == 0, out.stderr
        async with Api(srv.url) as api:
            user = await api.call("session.signIn", {"token": out.stdout.strip()})
        with sqlite3.connect(data / "podium.db") as db:  # stored as its hash, as token.create stores them
            sealed = db.execute("SELECT sealed FROM tokens WHERE id = ?", (digest(out.stdout),)).fetchone()
        assert sealed is not None and out.stdout.strip().encode() not in sealed[0]
        return str(user["email"])

    try:
        async with Api(srv.url) as api:
            first = await api.sign_in()
            second = {"email": "second@podium.test", "password": "y" * 12, "permission": "admin"}
            await api.call("user.create", second)
        assert await signed_in_as() == ADMIN_EMAIL  # two admins: the older one
        async with Api(srv.url) as api:
            await api.sign_in(second["email"], second["password"])
            await api.call("user.set", {"id": first["id"], "permission": "read"})
        assert await signed_in_as() == second["email"]  # the first is no longer an admin
    finally:
        srv.stop()


def digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()
