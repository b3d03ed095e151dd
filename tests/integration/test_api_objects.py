"""host, pool, sr, vdi, network, tag, message, task, disk and the VM's disks and interfaces over the API."""

from __future__ import annotations

import asyncio

import pytest

from podium.xapi import XapiClient

from ..harness.serverproc import Api, ApiError, obj, until

pytestmark = pytest.mark.integration


async def first(api: Api, type_: str, **match) -> dict:
    objects = await api.call("xo.getAllObjects", {"filter": {"type": type_, **match}})
    return next(iter(objects.values()))


async def test_api_objects_namespaces(podium_api, sim):
    api = podium_api
    host = await first(api, "host")
    await api.call("host.disable", {"id": host["id"]})
    await until(api, host["id"], lambda o: o["enabled"] is False)
    await api.call("host.enable", {"id": host["id"]})
    await api.call("host.set", {"id": host["id"], "name_description": "rack 4"})
    await until(api, host["id"], lambda o: o["enabled"] and o["name_description"] == "rack 4")

    pool = await first(api, "pool")
    await api.call("pool.set", {"id": pool["id"], "name_label": "production"})
    await until(api, pool["id"], lambda o: o["name_label"] == "production")
    srs = [
        s
        for s in (await api.call("xo.getAllObjects", {"filter": {"type": "SR"}})).values()
        if s["content_type"] != "iso" and s["size"] > 0
    ]
    target = next(s for s in srs if s["id"] != pool.get("default_SR"))
    await api.call("pool.setDefaultSr", {"sr": target["id"]})
    await until(api, pool["id"], lambda o: o["default_SR"] == target["id"])
    await api.call("sr.scan", {"id": target["id"]})
    await api.call("sr.set", {"id": target["id"], "name_label": "fast disks"})
    await until(api, target["id"], lambda o: o["name_label"] == "fast disks")

    vm = await first(api, "VM", name_label="23shared")
    disk = await api.call(
        "disk.create", {"name": "data", "size": 1 << 30, "sr": target["id"], "vm": vm["id"]}
    )
    d = await until(api, disk, lambda o: len(o["$VBDs"]) == 1)
    assert d["$SR"] == target["id"] and d["size"] == 1 << 30
    vbd = await obj(api, d["$VBDs"][0])
    assert vbd["VM"] == vm["id"] and vbd["attached"] is True  # the VM runs: plugged at once
    await api.call("vdi.set", {"id": disk, "name_label": "data disk", "size": 2 << 30})
    await until(api, disk, lambda o: o["name_label"] == "data disk" and o["size"] == 2 << 30)
    with pytest.raises(ApiError) as e:
        await api.call("vdi.set", {"id": disk, "size": 1})
    assert e.value.code == 10 and e.value.data["errors"][0]["instancePath"] == "/size"
    spare = await api.call("disk.create", {"name": "spare", "size": 1 << 20, "sr": target["id"]})
    await api.call("vm.attachDisk", {"vm": vm["id"], "vdi": spare})
    await until(api, spare, lambda o: len(o["$VBDs"]) == 1)

    net = await api.call("network.create", {"pool": pool["id"], "name": "backend", "mtu": 9000})
    assert (await obj(api, net))["MTU"] == 9000
    vif = await api.call("vm.createInterface", {"vm": vm["id"], "network": net})
    assert (await obj(api, vif))["$network"] == net and (await obj(api, vif))["attached"] is True
    await api.call("network.set", {"id": net, "name_description": "storage traffic"})
    await api.call("tag.add", {"id": vm["id"], "tag": "db"})
    await until(api, vm["id"], lambda o: "db" in o["tags"])
    await api.call("tag.remove", {"id": vm["id"], "tag": "db"})
    await until(api, vm["id"], lambda o: "db" not in o["tags"])

    await api.call("vm.restart", {"id": vm["id"], "force": True})  # the pool records a VM_REBOOTED message
    msgs: dict = {}
    for _ in range(200):
        msgs = await api.call("xo.getAllObjects", {"filter": {"type": "message", "name": "VM_REBOOTED"}})
        if msgs:
            break
        await asyncio.sleep(0.05)
    message = next(iter(msgs))
    await api.call("message.delete", {"id": message})

    sim.ctl("POST", "/settings", {"op_seconds": 5})
    c = XapiClient(sim.master().url, sim.user, sim.password)
    try:
        task_ref = await c.call("Async.VM.hard_shutdown", vm["_xapiRef"])
        task_id = await c.call("task.get_uuid", task_ref)
        await until(api, task_id, lambda o: o["status"] == "pending")
        await api.call("task.cancel", {"id": task_id})
        t = await until(api, task_id, lambda o: o["status"] == "cancelled")
        assert t["progress"] == 1.0
    finally:
        await c.close()
    assert (await obj(api, vm["id"]))["power_state"] == "Running"
    assert await obj(api, message) is None
