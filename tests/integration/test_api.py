"""Podium's API over its WebSocket: sign-in, errors, servers, objects and notifications; xo-lib unchanged."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ..harness.serverproc import ADMIN_EMAIL, ADMIN_PASSWORD, Api, ApiError, connected, start_server

pytestmark = pytest.mark.integration

XO_LIB_PROBE = Path(__file__).resolve().parent.parent / "node" / "xo_lib_probe.mjs"


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path / "data")
    yield srv
    assert srv.stop() == 0


async def test_api_health_and_first_admin_with_a_random_password(tmp_path):
    srv = start_server(tmp_path / "d", admin=False)
    try:
        secret = (tmp_path / "d" / "initial-admin-password").read_text().split()
        assert stat.S_IMODE((tmp_path / "d" / "initial-admin-password").stat().st_mode) == 0o600
        assert secret[0] == "admin@podium.local" and len(secret[1]) >= 16 and secret[1] in srv.log()
        async with Api(srv.url) as api:
            user = await api.sign_in(secret[0], secret[1])
            assert user["permission"] == "admin" and "password" not in json.dumps(user)
    finally:
        srv.stop()
    assert srv.log().count(secret[1]) == 1  # printed once, never again


async def test_api_first_admin_from_a_hash_and_reset_password_from_the_console(tmp_path):
    from argon2 import PasswordHasher

    digest = PasswordHasher().hash("wizard-chosen passphrase")
    srv = start_server(
        tmp_path / "d",
        admin=False,
        env={"PODIUM_ADMIN_EMAIL": "root@box", "PODIUM_ADMIN_PASSWORD_HASH": digest},
    )
    env = {"PODIUM_DATA_DIR": str(tmp_path / "d"), "PATH": os.environ["PATH"]}

    def reset(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "podium", "reset-password", *args]
        return subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True)

    try:
        assert not (tmp_path / "d" / "initial-admin-password").exists()
        async with Api(srv.url) as api:
            assert (await api.sign_in("root@box", "wizard-chosen passphrase"))["permission"] == "admin"
        # Run while the server runs, as the console does: a random password printed, or one from stdin.
        out = await asyncio.to_thread(reset, "ROOT@box")
        assert out.returncode == 0, out.stderr
        new = out.stdout.strip()
        assert len(new) >= 16 and new not in out.stderr
        async with Api(srv.url) as api:
            assert (await api.sign_in("root@box", new))["email"] == "root@box"
        assert (
            await asyncio.to_thread(reset, "root@box", "--password-stdin", stdin="typed one\n")
        ).returncode == 0
        async with Api(srv.url) as api:
            await api.sign_in("root@box", "typed one")
        wrong = await asyncio.to_thread(reset, "nobody@box")
        assert wrong.returncode == 1 and wrong.stderr.strip() == "podium-server: no user nobody@box"
    finally:
        srv.stop()
    assert new not in srv.log() and "typed one" not in srv.log()
    env["PODIUM_ADMIN_PASSWORD_HASH"] = "plain"
    bad = await asyncio.to_thread(reset, "x")  # the server refuses a configuration with a non-argon2 hash
    assert bad.returncode == 2 and "must be an argon2 hash" in bad.stderr and "Traceback" not in bad.stderr


async def test_api_sign_in_errors_and_permissions(server):
    async with Api(server.url) as api:
        assert await api.call("system.getServerVersion")
        assert "session.signIn" in await api.call("system.listMethods")
        with pytest.raises(ApiError) as e:
            await api.call("xo.getAllObjects")
        assert e.value.code == 2  # not signed in
        with pytest.raises(ApiError) as e:
            await api.sign_in(ADMIN_EMAIL, "wrong")
        assert e.value.code == 3 and str(e.value) == "invalid credentials"
        with pytest.raises(ApiError) as e:  # within 2 s of a failure, even the right password waits
            await api.sign_in()
        assert e.value.code == 3 and "too many failed sign-ins" in str(e.value)
        await asyncio.sleep(2.1)
        user = await api.sign_in()
        assert user["email"] == ADMIN_EMAIL and await api.call("session.getUser") == user
        with pytest.raises(ApiError) as e:
            await api.call("server.add", {"host": 5, "username": "", "passwd": "x"})
        assert e.value.code == 10
        problems = {(err["instancePath"], err["keyword"]) for err in e.value.data["errors"]}
        assert problems == {
            ("/host", "type"),
            ("/username", "minLength"),
            ("", "required"),
            ("", "additionalProperties"),
        }
        assert {err["params"].get("missingProperty") for err in e.value.data["errors"]} >= {"password"}
        with pytest.raises(ApiError) as e:
            await api.call("vm.start", {"vm": "nope"})  # the namespace's name is an alias of id
        assert e.value.code == 1 and e.value.data == {"id": "nope", "type": "VM"}
        with pytest.raises(ApiError) as e:
            await api.call("no.suchMethod")
        assert e.value.code == -32601 and e.value.data == "no.suchMethod"
        info = await api.call("system.getMethodsInfo")
        assert info["session.signIn"]["permission"] is None and "permission" not in info["xo.getAllObjects"]
        assert info["server.add"]["permission"] == "admin"
        assert (await api.call("system.methodSignature", {"method": "vm.start"}))[0]["name"] == "vm.start"
        await api.call("session.signOut")
        assert await api.call("session.getUser") is None
        with pytest.raises(ApiError) as e:
            await api.call("server.getAll")
        assert e.value.code == 2
    async with Api(server.url) as api:
        await api.sign_in()
        records = await api.call("audit.getRecords", {"limit": 50})
    failed = [r for r in records if r["method"] == "session.signIn" and r["outcome"] == "InvalidCredentials"]
    assert failed and failed[-1]["params"] == {"email": ADMIN_EMAIL, "password": "* obfuscated *"}
    assert any(r["method"] == "server.add" and r["outcome"] == "InvalidParameters" for r in records)
    assert all(r["durationMs"] >= 0 and r["time"] for r in records)
    log = server.log()
    assert "wrong" not in log and ADMIN_PASSWORD not in log and "obfuscated" in log
    assert "wrong" not in str(records) and ADMIN_PASSWORD not in str(records)


async def test_api_servers_objects_and_notifications(server, sim):
    async with Api(server.url) as api:
        await api.sign_in()
        server_id = await connected(api, sim)
        vms = await api.call("xo.getAllObjects", {"filter": {"type": "VM"}})
        assert len(vms) == 4 and all(v["type"] == "VM" for v in vms.values())
        assert len(await api.call("xo.getAllObjects", {"limit": 3})) == 3
        vm = next(v for v in vms.values() if v["name_label"] == "23shared")
        with pytest.raises(ApiError) as e:
            await api.call("vm.start", {"id": vm["id"]})
        assert e.value.code == 13 and e.value.data["actual"] == "running"
        while not api.notifications.empty():
            api.notifications.get_nowait()
        await api.call("vm.stop", {"id": vm["id"], "force": True})
        while True:
            note = await asyncio.wait_for(api.notifications.get(), 10)
            item = note["params"]["items"].get(vm["id"])
            if (
                note["method"] == "all"
                and note["params"]["type"] == "enter"
                and item
                and item["power_state"] == "Halted"
            ):
                break
        servers = await api.call("server.getAll")
        assert servers[0]["status"] == "connected" and "password" not in servers[0]
        await api.call("server.remove", {"id": server_id})
        exits = set()
        while len(exits) < 4:
            note = await asyncio.wait_for(api.notifications.get(), 10)
            if note["params"]["type"] == "exit":
                assert set(note["params"]["items"].values()) == {0}
                exits |= set(note["params"]["items"])
        assert set(vms) <= exits and await api.call("xo.getAllObjects") == {}
    assert sim.password not in server.log()


async def test_api_works_with_xo_lib_unchanged(server, sim):
    async with Api(server.url) as api:
        await api.sign_in()
        await connected(api, sim)
        vms = await api.call("xo.getAllObjects", {"filter": {"type": "VM"}})
        vm = next(v for v in vms.values() if v["name_label"] == "16local")
        await api.call("vm.stop", {"id": vm["id"], "force": True})
    node = shutil.which("node")
    assert node and (XO_LIB_PROBE.parent / "node_modules" / "xo-lib").is_dir(), "make setup installs xo-lib"
    proc = await asyncio.to_thread(
        subprocess.run,
        [node, str(XO_LIB_PROBE), server.url, ADMIN_EMAIL, ADMIN_PASSWORD, vm["id"]],
        capture_output=True,
        text=True,
        timeout=90,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, (lines[-1:], proc.stderr[-1500:])
    events = {line["event"]: line for line in lines}
    assert events["signed_in"]["user"]["email"] == ADMIN_EMAIL
    assert events["methods"]["has"] == ["vm.start", "session.signIn"]
    assert len(events["objects"]["vms"]) == 4
    assert events["bad_call"]["code"] == 1
    assert events["started"]["result"] is True
    assert events["notified"] == {"event": "notified", "id": vm["id"], "power_state": "Running"}
