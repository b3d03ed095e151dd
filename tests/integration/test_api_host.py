"""host.* over the real server and the simulator: maintenance mode, reboots, agent restarts, power-off, as
Xen Orchestra does them, each seen in the objects it changes (xo.getAllObjects, ``all`` notifications)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podium.xapi import XapiClient

from ..harness.serverproc import Api, ApiError, obj, until

pytestmark = pytest.mark.integration


async def objects(api: Api, type_: str) -> dict[str, dict[str, Any]]:
    """Objects of a type by name."""
    return {
        o["name_label"]: o for o in (await api.call("xo.getAllObjects", {"filter": {"type": type_}})).values()
    }


async def refused(api: Api, method: str, params: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as e:
        await api.call(method, params)
    return e.value


def drain(api: Api) -> None:
    while not api.notifications.empty():
        api.notifications.get_nowait()


async def seen_entering(api: Api, wanted: dict[str, Any], timeout: float = 20.0) -> None:
    """Wait for ``all`` notifications that show each object id in ``wanted`` passing its check."""
    pending = dict(wanted)
    deadline = asyncio.get_running_loop().time() + timeout
    while pending:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"never notified: {sorted(pending)}"
        note = await asyncio.wait_for(api.notifications.get(), left)
        if note["method"] != "all" or note["params"]["type"] != "enter":
            continue
        for id_, item in note["params"]["items"].items():
            if id_ in pending and pending[id_](item):
                del pending[id_]


async def test_api_host_maintenance_mode(podium_api):
    api = podium_api
    hosts, vms = await objects(api, "host"), await objects(api, "VM")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]

    # 23local's disk is on dt23's own storage: it cannot move, so maintenance is refused and, as Xen
    # Orchestra does, the host enabled again
    e = await refused(api, "host.setMaintenanceMode", {"id": dt23["id"], "maintenance": True})
    assert e.code == 21 and e.data["code"] == "VM_REQUIRES_SR" and "VM_REQUIRES_SR" in str(e)
    assert (await until(api, dt23["id"], lambda o: o["enabled"]))["enabled"] is True
    assert (await obj(api, vms["23shared"]["id"]))["$container"] == dt23["id"]

    await api.call("vm.stop", {"id": vms["23local"]["id"], "force": True})
    await until(api, vms["23local"]["id"], lambda o: o["power_state"] == "Halted")
    drain(api)
    assert await api.call("host.setMaintenanceMode", {"id": dt23["id"], "maintenance": True}) is True
    await seen_entering(
        api,
        {
            dt23["id"]: lambda o: o["enabled"] is False,
            vms["23shared"]["id"]: lambda o: o["$container"] == dt16["id"] and o["power_state"] == "Running",
        },
    )
    host = await obj(api, dt23["id"])
    assert host["enabled"] is False and vms["23shared"]["id"] not in host["residentVms"]
    moved = await obj(api, vms["23shared"]["id"])
    assert moved["$container"] == dt16["id"] and moved["power_state"] == "Running"
    assert vms["23shared"]["id"] in (await obj(api, dt16["id"]))["residentVms"]

    await api.call("host.setMaintenanceMode", {"id": dt23["id"], "maintenance": False})
    await until(api, dt23["id"], lambda o: o["enabled"] is True)


async def test_api_host_maintenance_refused_for_want_of_memory(podium_api, sim):
    api = podium_api
    hosts, vms = await objects(api, "host"), await objects(api, "VM")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]
    await api.call("vm.stop", {"id": vms["23local"]["id"], "force": True})
    # a big guest takes nearly all of dt16's memory, so 23shared has nowhere to go
    client = XapiClient(sim.master().url, sim.user, sim.password)
    try:
        big = vms["16shared"]["_xapiRef"]
        await client.call("VM.hard_shutdown", big)
        size = int(await client.call("host.compute_free_memory", dt16["_xapiRef"])) + (48 << 20)
        await client.call("VM.set_memory_limits", big, 64 << 20, size, size, size)
        await client.call("VM.start_on", big, dt16["_xapiRef"], False, False)
    finally:
        await client.close()
    e = await refused(api, "host.setMaintenanceMode", {"id": dt23["id"], "maintenance": True})
    assert e.code == 21 and e.data == {
        "code": "HOST_NOT_ENOUGH_FREE_MEMORY",
        "params": [vms["23shared"]["_xapiRef"]],
    }
    await until(api, dt23["id"], lambda o: o["enabled"] is True)  # left as it was
    assert (await obj(api, vms["23shared"]["id"]))["$container"] == dt23["id"]
    # with no other host at all, xo-web's noHostsAvailable
    await api.call("host.disable", {"id": dt16["id"]})
    e = await refused(api, "host.setMaintenanceMode", {"id": dt23["id"], "maintenance": True})
    assert e.code == 7 and e.data["code"] == "NO_HOSTS_AVAILABLE"


async def test_api_host_restart(podium_api, sim):
    """Also: the server waits for its tasks and for the host through the pool's events, never by asking."""
    api = podium_api
    sim.ctl("DELETE", "/calls")
    hosts, vms = await objects(api, "host"), await objects(api, "VM")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]

    # without force, a VM that cannot move stops the restart, and the host is enabled again
    e = await refused(api, "host.restart", {"id": dt23["id"]})
    assert e.data["code"] == "VM_REQUIRES_SR"
    host = await until(api, dt23["id"], lambda o: o["enabled"])
    assert host["power_state"] == "Running"
    assert (await obj(api, vms["23local"]["id"]))["power_state"] == "Running"

    # forced: what can move moves, the host's own shutdown stops the rest, then it reboots and comes back
    started = host["startTime"]
    assert (
        await api.call("host.restart", {"id": dt23["id"], "force": True, "bypassBackupCheck": True}) is True
    )
    await until(api, dt23["id"], lambda o: o["power_state"] == "Halted")  # no longer live
    back = await until(api, dt23["id"], lambda o: o["power_state"] == "Running" and o["enabled"])
    assert back["startTime"] > started and back["agentStartTime"] >= back["startTime"]
    assert (await obj(api, vms["23local"]["id"]))["power_state"] == "Halted"
    shared = await obj(api, vms["23shared"]["id"])
    assert shared["power_state"] == "Running" and shared["$container"] == dt16["id"]

    # suspend, reboot, resume: the VMs come back where they were
    await api.call("vm.start", {"id": vms["23local"]["id"], "host": dt23["id"]})
    await until(api, vms["23local"]["id"], lambda o: o["power_state"] == "Running")
    before = (await obj(api, dt23["id"]))["agentStartTime"]
    await api.call("host.restart", {"id": dt23["id"], "suspendResidentVms": True})  # waits for the host
    host = await obj(api, dt23["id"])
    assert host["agentStartTime"] > before and host["enabled"] is True
    local = await until(api, vms["23local"]["id"], lambda o: o["power_state"] == "Running")
    assert local["$container"] == dt23["id"]
    calls = sim.ctl("GET", "/calls")
    assert (
        calls["Async.host.evacuate"] >= 1 and calls["Async.VM.suspend"] >= 1 and calls["Async.VM.resume"] >= 1
    )
    assert "task.get_record" not in calls and "task.get_status" not in calls


async def test_api_host_restart_agent_and_the_pool_stays_usable(podium_api):
    api = podium_api
    hosts, vms = await objects(api, "host"), await objects(api, "VM")
    master = hosts["dt16"]
    before = master["agentStartTime"]
    assert await api.call("host.restartAgent", {"id": master["id"]}) is True  # returns once it is back
    host = await obj(api, master["id"])
    assert host["agentStartTime"] > before and host["enabled"] is True and host["power_state"] == "Running"
    for _ in range(200):
        (status,) = await api.call("server.getAll")
        if status["status"] == "connected":
            break
        await asyncio.sleep(0.05)
    assert status["status"] == "connected"
    vm = vms["16shared"]
    assert (await obj(api, vm["id"]))["power_state"] == "Running"  # VMs live through an agent restart
    await api.call("vm.set", {"id": vm["id"], "name_label": "after the restart"})
    await until(api, vm["id"], lambda o: o["name_label"] == "after the restart")
    member = hosts["dt23"]
    assert await api.call("host.restart_agent", {"id": member["id"]}) is True  # Xen Orchestra's old name
    assert (await obj(api, member["id"]))["agentStartTime"] > member["agentStartTime"]


async def test_api_host_stop(podium_api, sim):
    api = podium_api
    hosts, vms = await objects(api, "host"), await objects(api, "VM")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]
    e = await refused(api, "host.stop", {"id": dt23["id"]})
    assert e.data["code"] == "VM_REQUIRES_SR"
    await until(api, dt23["id"], lambda o: o["enabled"])
    await api.call("host.stop", {"id": dt23["id"], "bypassEvacuate": True})
    await until(api, dt23["id"], lambda o: o["power_state"] == "Halted")
    await until(api, vms["23local"]["id"], lambda o: o["power_state"] == "Halted")
    await until(api, vms["23shared"]["id"], lambda o: o["$container"] == dt16["id"])  # moved on its way down
    await asyncio.to_thread(sim.ctl, "POST", f"/pools/0/hosts/{dt23['name_label']}/start")  # the power button
    await until(api, dt23["id"], lambda o: o["power_state"] == "Running" and o["enabled"])


async def test_api_host_methods_need_xo_rights(podium_api):
    api = podium_api
    hosts = await objects(api, "host")
    pool = next(iter((await api.call("xo.getAllObjects", {"filter": {"type": "pool"}})).values()))
    uid = await api.call("user.create", {"email": "op@example.org", "password": "an operator's secret"})
    await api.call("acl.add", {"subject": uid, "object": pool["id"], "action": "viewer"})
    assert api.server is not None
    async with Api(api.server.url) as user:
        await user.sign_in("op@example.org", "an operator's secret")
        host = hosts["dt23"]["id"]
        for method, params, needed in (
            ("host.restart", {"id": host}, "operate"),
            ("host.stop", {"id": host}, "operate"),
            ("host.setMaintenanceMode", {"id": host, "maintenance": True}, "administrate"),
            ("host.restartAgent", {"id": host}, "administrate"),
            ("host.emergencyShutdownHost", {"host": host}, "administrate"),
        ):
            e = await refused(user, method, params)
            assert e.code == 2 and e.data["permission"] == needed, method
        # an operator may restart a host (as in Xen Orchestra), not put it in maintenance
        await api.call("acl.add", {"subject": uid, "object": pool["id"], "action": "operator"})
        await asyncio.sleep(0.2)
        e = await refused(user, "host.setMaintenanceMode", {"id": host, "maintenance": True})
        assert e.code == 2 and e.data["permission"] == "administrate"
        e = await refused(user, "host.restart", {"id": host})  # allowed: refused by the pool, not by Podium
        assert e.data["code"] == "VM_REQUIRES_SR"
    assert (await until(api, host, lambda o: o["enabled"]))["power_state"] == "Running"
