"""Servers: persisted with encrypted passwords, connected, refused when duplicate, read-only, removable."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time

import pytest

from podium.cache import ObjectCache
from podium.db import Database, SecretBox
from podium.servers import InvalidServer, NoSuchServer, ServerManager
from podium.xapi import ReadOnly

from ..harness.simproc import Sim

pytestmark = pytest.mark.integration


async def wait(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def manager(tmp_path) -> ServerManager:
    db = Database.in_dir(tmp_path)
    await db.create()
    return ServerManager(db, SecretBox(tmp_path / "secret.key"), ObjectCache())


async def shutdown(m: ServerManager) -> None:
    await m.close()
    await m.db.close()


async def status(m: ServerManager, server_id: str) -> dict:
    return next(s for s in await m.get_all() if s["id"] == server_id)


async def test_servers_add_connect_persist_encrypted(sim: Sim, tmp_path):
    m = await manager(tmp_path)
    try:
        sid = await m.add(sim.master().url, sim.user, sim.password, label="lab")
        await wait(lambda: m.connections[sid].status.state == "connected")
        s = await status(m, sid)
        assert (
            s["status"] == "connected" and s["label"] == "lab" and "password" not in s and s["error"] is None
        )
        assert len(m.objects.of_type("VM")) == 4 and s["master"] == sim.master().url
        await wait(
            lambda: bool(
                sqlite3.connect(tmp_path / "podium.db")
                .execute("select known_hosts from servers")
                .fetchone()[0]
                != "[]"
            )
        )
        row = (
            sqlite3.connect(tmp_path / "podium.db")
            .execute("select password, pool_uuid, known_hosts from servers")
            .fetchone()
        )
        assert sim.password.encode() not in row[0] and row[1] == m.connections[sid].cache.pool_id
        assert "127.42.0.2" in row[2]
        assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    finally:
        await shutdown(m)
    # A restart reconnects every enabled server, with the password decrypted from the database.
    m2 = await manager(tmp_path)
    try:
        await m2.start()
        await wait(lambda: sid in m2.connections and m2.connections[sid].status.state == "connected")
        assert len(m2.objects.of_type("VM")) == 4
    finally:
        await shutdown(m2)


async def test_servers_refuse_a_pool_connected_twice(sim: Sim, tmp_path):
    m = await manager(tmp_path)
    try:
        first = await m.add(sim.master().url, sim.user, sim.password)
        await wait(lambda: m.connections[first].status.state == "connected")
        objects = len(m.objects)
        second = await m.add(sim.member().url, sim.user, sim.password)  # the same pool, through a member
        await wait(lambda: "already connected" in m.connections[second].status.last_error)
        assert first in m.connections[second].status.last_error
        assert len(m.objects) == objects and m.connections[first].status.state == "connected"
        await m.remove(first)
        assert len(m.objects) == 0
        await wait(
            lambda: m.connections[second].status.state == "connected", timeout=60
        )  # takes over by itself
        assert len(m.objects) == objects
    finally:
        await shutdown(m)


async def test_servers_disable_enable_set_and_errors(sim: Sim, tmp_path):
    m = await manager(tmp_path)
    try:
        sid = await m.add(sim.master().url, sim.user, "wrong password")
        await wait(lambda: "SESSION_AUTHENTICATION_FAILED" in m.connections[sid].status.last_error)
        assert (await status(m, sid))["status"] == "disconnected"
        await m.set(sid, password=sim.password, read_only=True)
        await wait(lambda: m.connections[sid].status.state == "connected")
        pool_id = m.connections[sid].cache.pool_id
        vm = next(iter(m.objects.of_type("VM").values()))
        with pytest.raises(ReadOnly):
            await m.client_of(pool_id).call("VM.hard_shutdown", vm["_xapiRef"])
        assert await m.client_of(pool_id).call("VM.get_power_state", vm["_xapiRef"]) == "Running"
        await m.disable(sid)
        assert len(m.objects) == 0 and (await status(m, sid))["enabled"] is False
        await m.enable(sid)
        await wait(lambda: len(m.objects.of_type("VM")) == 4)
        for bad in ({"host": "ftp://x"}, {"fingerprint": "12:34"}, {"colour": "red"}):
            with pytest.raises(InvalidServer):
                await m.set(sid, **bad)
        with pytest.raises(InvalidServer, match="host"):
            await m.add("http://", "root", "x")
        with pytest.raises(NoSuchServer):
            await m.remove("no-such-id")
    finally:
        await shutdown(m)


async def test_servers_many_pools_share_one_store(tmp_path):
    from ..harness.simproc import TEST_DBS, start_sim

    sim = start_sim(
        "--db", str(TEST_DBS / "xapidb_app.xml"), "--db", str(TEST_DBS / "tampa-db_inc_snapshots.xml")
    )
    m = await manager(tmp_path)
    try:
        a = await m.add(sim.master(0).url, sim.user, sim.password)
        b = await m.add(sim.master(1).url, sim.user, sim.password)
        await wait(lambda: all(m.connections[s].status.state == "connected" for s in (a, b)))
        pools = {m.connections[s].cache.pool_id for s in (a, b)}
        assert len(pools) == 2 and set(m.objects.by_pool) == pools
        counts = {p: len(m.objects.by_pool[p]) for p in pools}
        snapshots = [o for o in m.objects.of_type("VM-snapshot").values()]
        assert snapshots and all(o["$poolId"] == m.connections[b].cache.pool_id for o in snapshots)
        await m.remove(a)
        assert set(m.objects.by_pool) - {m.connections[b].cache.pool_id} <= {
            p for p in pools if not m.objects.by_pool[p]
        }
        assert len(m.objects) == counts[m.connections[b].cache.pool_id]
    finally:
        await shutdown(m)
        sim.stop()
