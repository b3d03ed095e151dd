"""ACLs over the real server: a user sees and does only what their rights allow, through every path."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from ..harness.serverproc import Api, ApiError, connected, start_server

pytestmark = pytest.mark.integration


async def drain(api: Api) -> list[dict]:
    out = []
    await asyncio.sleep(0.3)
    while not api.notifications.empty():
        out.append(api.notifications.get_nowait())
    return out


def ids(notes: list[dict], kind: str) -> set[str]:
    return {i for n in notes if n["params"]["type"] == kind for i in n["params"]["items"]}


async def test_acl_user_sees_and_acts_only_within_their_rights(tmp_path, sim):
    srv = start_server(tmp_path / "data")
    try:
        async with Api(srv.url) as admin, Api(srv.url) as bob:
            await admin.sign_in()
            await connected(admin, sim)
            vms = await admin.call("xo.getAllObjects", {"filter": {"type": "VM"}})
            mine = next(v for v in vms.values() if v["name_label"] == "23shared")
            other = next(v for v in vms.values() if v["name_label"] == "16shared")
            bob_id = await admin.call(
                "user.create", {"email": "bob@example.org", "password": "bob's long secret"}
            )
            group = await admin.call("group.create", {"name": "operators"})
            await admin.call("group.addUser", {"id": group, "userId": bob_id})
            user = await bob.sign_in("bob@example.org", "bob's long secret")
            assert user["permission"] == "none" and user["groups"] == [group]
            assert await bob.call("xo.getAllObjects") == {}
            for method, params in (("server.getAll", {}), ("user.getAll", {}), ("acl.get", {})):
                with pytest.raises(ApiError) as e:
                    await bob.call(method, params)
                assert e.value.code == 2

            # A viewer role given to bob's group: the VM and what hangs under it enter at once.
            await admin.call("acl.add", {"subject": group, "object": mine["id"], "action": "viewer"})
            entered = ids(await drain(bob), "enter")
            visible = await bob.call("xo.getAllObjects")
            assert mine["id"] in entered and set(visible) == entered
            # the same through the ndjson download, whose rights are the user's own
            path = (await bob.call("xo.getAllObjects", {"ndjson": True}))["$getFrom"]
            async with aiohttp.ClientSession() as http, http.get(srv.url + path) as resp:
                assert resp.headers["Content-Type"] == "application/x-ndjson"
                lines = (await resp.read()).decode().splitlines()
            assert {json.loads(line)["id"] for line in lines} == set(visible)
            assert {o["type"] for o in visible.values()} <= {"VM", "VBD", "VIF", "VDI", "message"}
            assert other["id"] not in visible and all(
                o.get("$VM", mine["id"]) == mine["id"] for o in visible.values()
            )
            with pytest.raises(ApiError) as e:  # view only
                await bob.call("vm.stop", {"id": mine["id"], "force": True})
            assert e.value.code == 2 and e.value.data == {
                "object": {"id": mine["id"], "type": "VM"},
                "permission": "operate",
            }
            with pytest.raises(ApiError) as e:  # invisible: as if it did not exist
                await bob.call("vm.stop", {"id": other["id"], "force": True})
            assert e.value.code == 1

            # Operator, given to bob himself: he can stop it, and sees it stop.
            await admin.call("acl.add", {"subject": bob_id, "object": mine["id"], "action": "operator"})
            await bob.call("vm.stop", {"id": mine["id"], "force": True})
            for _ in range(100):
                notes = await drain(bob)
                if any(
                    n["params"]["items"].get(mine["id"], {}).get("power_state") == "Halted"
                    for n in notes
                    if n["params"]["type"] == "enter"
                ):
                    break
            else:
                raise AssertionError("bob never saw his VM stop")
            await admin.call(
                "vm.stop", {"id": other["id"], "force": True}
            )  # not bob's: he hears nothing of it
            assert other["id"] not in ids(await drain(bob), "enter")

            # Rights taken away: everything leaves bob's view at once.
            await admin.call("acl.remove", {"subject": bob_id, "object": mine["id"], "action": "operator"})
            await admin.call("acl.remove", {"subject": group, "object": mine["id"], "action": "viewer"})
            assert mine["id"] in ids(await drain(bob), "exit")
            assert await bob.call("xo.getAllObjects") == {}

            # A right on the pool covers everything in it.
            pool = next(iter((await admin.call("xo.getAllObjects", {"filter": {"type": "pool"}})).values()))
            await admin.call("acl.add", {"subject": bob_id, "object": pool["id"], "action": "viewer"})
            await drain(bob)
            seen = await bob.call("xo.getAllObjects")
            assert mine["id"] in seen and other["id"] in seen and pool["id"] in seen
            assert await bob.call("acl.getCurrentPermissions") == {pool["id"]: {"view": True}}
    finally:
        srv.stop()


async def test_tokens_sign_in_reuse_and_revoke(tmp_path):
    srv = start_server(tmp_path / "data")
    try:
        async with Api(srv.url) as api:
            await api.sign_in()
            token = await api.call("token.create", {"description": "cli", "client": {"id": "laptop"}})
            again = await api.call("token.create", {"client": {"id": "laptop"}, "expiresIn": "1 year"})
            assert again == token
            other = await api.call("token.create", {"expiresIn": "2h", "description": "script"})
            assert other != token
            listed = await api.call("user.getAuthenticationTokens")
            assert len(listed) == 2 and token not in str(listed) and other not in str(listed)
            with pytest.raises(ApiError) as e:
                await api.call("token.create", {"expiresIn": "soon"})
            assert e.value.code == 10
        async with Api(srv.url) as api:
            user = await api.call("session.signIn", {"token": token})
            assert user["permission"] == "admin"
            assert await api.call("token.deleteOwn", {"pattern": "scr*"}) == 1
        async with Api(srv.url) as api:
            with pytest.raises(ApiError) as e:
                await api.call("session.signIn", {"token": other})
            assert e.value.code == 3
    finally:
        srv.stop()
    assert token not in srv.log() and other not in srv.log()
