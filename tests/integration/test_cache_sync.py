"""The cache follows a pool through its event loop and always ends equal to a fresh read."""

from __future__ import annotations

import pytest

from podium.xapi import XapiClient

from ..harness.cachehelp import truth, watched

pytestmark = pytest.mark.integration


async def test_cache_initial_sync_shapes_every_object(sim):
    async with watched(sim, sim.member().url) as w:
        objs = w.objects.objects
        types = {o["type"] for o in objs.values()}
        kinds = "pool host VM VM-template VM-controller SR VDI VBD VIF network PIF PBD SM"
        assert set(kinds.split()) <= types
        assert len(w.objects.of_type("VM")) == 4 and len(w.objects.of_type("host")) == 2
        vm = next(o for o in w.objects.of_type("VM").values() if o["name_label"] == "23shared")
        assert vm["power_state"] == "Running" and vm["$poolId"] == w.cache.pool_id
        assert vm["_xapiRef"].startswith("OpaqueRef:") and vm["id"] == vm["uuid"]
        assert vm["$container"] in w.objects.objects and w.objects.objects[vm["$container"]]["type"] == "host"
        assert all(v in w.objects.objects for v in vm["$VBDs"])
        pool = next(iter(w.objects.of_type("pool").values()))
        assert pool["name_label"] == "16And23" and pool["master"] in w.objects.of_type("host")
        defaults = [t for t in w.objects.of_type("VM-template").values() if t["isDefaultTemplate"]]
        assert defaults and all(t["id"] == f"{w.cache.pool_id}-{t['uuid']}" for t in defaults)
        assert w.objects.objects == await truth(sim)


async def test_cache_follows_a_vm_lifecycle_with_metrics(sim):
    async with watched(sim) as w:
        c = XapiClient(sim.master().url, sim.user, sim.password)
        try:
            vm = next(o for o in w.objects.of_type("VM").values() if o["name_label"] == "23shared")
            ref = vm["_xapiRef"]
            await c.call("VM.hard_shutdown", ref)
            await w.wait(lambda: w.objects.get(vm["id"])["power_state"] == "Halted")
            halted = w.objects.get(vm["id"])
            assert halted["addresses"] == {} and "mainIpAddress" not in halted and "xenTools" not in halted
            await c.call("VM.start", ref, False, False)
            await w.wait(lambda: w.objects.get(vm["id"]).get("mainIpAddress"))
            running = w.objects.get(vm["id"])
            assert running["power_state"] == "Running" and running["pvDriversDetected"] is True
            assert running["addresses"]["0/ipv4/0"] == running["mainIpAddress"]
            assert running["startTime"] and running["CPUs"]["number"] >= 1
            await c.call("VM.hard_shutdown", ref)
            clone_ref = await c.call("VM.clone", ref, "copy of 23")
            clone_uuid = await c.call("VM.get_uuid", clone_ref)
            await w.wait(lambda: clone_uuid in w.objects.objects)
            clone = w.objects.get(clone_uuid)
            assert clone["name_label"] == "copy of 23" and len(clone["$VBDs"]) == len(vm["$VBDs"])
            vbd_ids = clone["$VBDs"]
            await c.call("VM.destroy", clone_ref)
            await w.wait(lambda: clone_uuid not in w.objects.objects)
            assert all(v not in w.objects.objects for v in vbd_ids)
            exits = {i for b in w.batches for i in b.exit}
            assert clone_uuid in exits and set(vbd_ids) <= exits
        finally:
            await c.close()
        assert await w.converge() == {}
