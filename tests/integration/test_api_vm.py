"""vm.* over the real server and the simulator: each method's effect seen in the objects it changes."""

from __future__ import annotations

import asyncio

import pytest

from ..harness.serverproc import ApiError, obj, until

pytestmark = pytest.mark.integration


async def test_api_vm_methods_change_what_they_say(podium_api):
    api = podium_api
    vms = await api.call("xo.getAllObjects", {"filter": {"type": "VM"}})
    vm = next(v for v in vms.values() if v["name_label"] == "23shared")
    vid = vm["id"]
    await api.call("vm.restart", {"id": vid, "force": True})
    await api.call("vm.suspend", {"id": vid})
    await until(api, vid, lambda o: o["power_state"] == "Suspended")
    await api.call("vm.resume", {"id": vid})
    await api.call("vm.pause", {"id": vid})
    await until(api, vid, lambda o: o["power_state"] == "Paused")
    await api.call("vm.resume", {"id": vid})  # unpauses a paused VM, as XO does
    await until(api, vid, lambda o: o["power_state"] == "Running")

    snap = await api.call("vm.snapshot", {"id": vid, "name": "before", "description": "safe point"})
    s = await until(api, snap, lambda o: o["name_description"] == "safe point")
    assert s["type"] == "VM-snapshot" and s["$snapshot_of"] == vid

    await api.call("vm.stop", {"id": vid, "force": True})
    await until(api, vid, lambda o: o["power_state"] == "Halted")
    await api.call(
        "vm.set",
        {
            "id": vid,
            "name_label": "renamed",
            "CPUs": 2,
            "memory": 512 << 20,
            "tags": ["prod"],
            "auto_poweron": True,
        },
    )
    o = await until(api, vid, lambda o: o["name_label"] == "renamed" and o["auto_poweron"] is True)
    assert o["CPUs"]["number"] == 2 and o["memory"]["size"] == 512 << 20 and o["tags"] == ["prod"]
    await api.call("vm.revert", {"snapshot": snap})

    clone = await api.call("vm.clone", {"id": vid, "name": "twin"})
    assert (await obj(api, clone))["name_label"] == "twin"
    sr = next(
        s
        for s in (await api.call("xo.getAllObjects", {"filter": {"type": "SR"}})).values()
        if s["content_type"] != "iso" and s["size"] > 0
    )
    copy = await api.call("vm.copy", {"vm": vid, "sr": sr["id"], "name": "far twin"})
    copied = await obj(api, copy)
    disks = [await obj(api, (await obj(api, b))["VDI"]) for b in copied["$VBDs"]]
    assert disks and all(d["$SR"] == sr["id"] for d in disks)

    await api.call("vm.delete", {"id": copy, "deleteDisks": True})
    for _ in range(100):
        left = [i for i in [copy, *(d["id"] for d in disks)] if await obj(api, i) is not None]
        if not left:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the copy or its disks are still there")

    iso = next(
        v
        for v in (await api.call("xo.getAllObjects", {"filter": {"type": "VDI"}})).values()
        if v["name_label"] == "xs-tools.iso"
    )
    await api.call("vm.insertCd", {"id": clone, "cd_id": iso["id"]})
    c = await until(api, clone, lambda o: len(o["$VBDs"]) > 1)
    await api.call("vm.ejectCd", {"id": clone})
    await api.call("vm.convertToTemplate", {"id": clone})
    await until(api, clone, lambda o: o["type"] == "VM-template")
    with pytest.raises(ApiError) as e:
        await api.call("vm.start", {"id": clone})
    assert e.value.code == 1  # a template is not a VM
    assert len(c["$VBDs"]) == 2


async def test_api_vm_migrate_within_the_pool(podium_api):
    api = podium_api
    vms = await api.call("xo.getAllObjects", {"filter": {"type": "VM"}})
    vm = next(v for v in vms.values() if v["name_label"] == "23shared")
    hosts = await api.call("xo.getAllObjects", {"filter": {"type": "host"}})
    other = next(h for h in hosts if h != vm["$container"])
    await api.call("vm.migrate", {"vm": vm["id"], "targetHost": other})
    moved = await until(api, vm["id"], lambda o: o["$container"] == other)
    assert moved["power_state"] == "Running"
    assert vm["id"] in (await obj(api, other))["residentVms"]
    await api.call("vm.stop", {"id": vm["id"], "force": True})
    await until(api, vm["id"], lambda o: o["power_state"] == "Halted")
    with pytest.raises(ApiError) as e:
        await api.call("vm.migrate", {"vm": vm["id"], "targetHost": vm["$container"]})
    assert e.value.code == 13  # a halted VM is not migrated: it is started where wanted
