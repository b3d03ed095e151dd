"""VM export and import, raw disk content and pool-to-pool copy through Podium, over sockets."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import aiohttp.web
import pytest

from podium import xva as xva_lib

from ..harness.serverproc import Api, ApiError, admin_on, disk_sr, objects, pool_ids, wait_object
from ..harness.simdisks import MiB, get_raw, guest_with_disk, pattern
from ..harness.simproc import BUNDLED_DB, TEST_DBS, Sim, jsonrpc, start_sim
from ..harness.simproc import master_session as login

pytestmark = pytest.mark.integration


@pytest.fixture
def two_pools():
    sim = start_sim("--db", str(BUNDLED_DB), "--db", str(TEST_DBS / "xapidb_app.xml"), "--op-seconds", "0.01")
    yield sim
    sim.stop()


@pytest.fixture
async def api(tmp_path, two_pools: Sim) -> AsyncIterator[Api]:
    """An admin on a server connected to both pools."""
    async with admin_on(tmp_path / "data", two_pools, (0, 1)) as api:
        yield api


async def http(api: Api, method: str, path: str, data: Any = None) -> tuple[int, bytes]:
    if isinstance(data, bytes):
        data = io.BytesIO(data)
    async with aiohttp.ClientSession() as s, s.request(method, api.server.url + path, data=data) as r:
        return r.status, await r.read()


@pytest.fixture
async def vm_with_data(api: Api, two_pools: Sim) -> tuple[str, str, bytes]:
    """A halted VM of pool 0 with a 5 MiB disk filled through disk.importContent: (vm id, vdi id, data)."""
    url, s = login(two_pools)
    vm_ref, vdi_ref, rec = guest_with_disk(url, s)
    vm_id = jsonrpc(url, "VM.get_uuid", s, vm_ref)
    await wait_object(api, vm_id)
    await wait_object(api, rec["uuid"])
    data = pattern(int(rec["virtual_size"]))
    result = await api.call("disk.importContent", {"id": rec["uuid"]})
    status, body = await http(api, "PUT", result["$sendTo"], data)
    assert status == 200, body
    assert get_raw(url, s, vdi_ref) == data
    return vm_id, rec["uuid"], data


async def disk_content(api: Api, vdi: str) -> bytes:
    result = await api.call("disk.exportContent", {"id": vdi})
    status, body = await http(api, "GET", result["$getFrom"])
    assert status == 200
    return body


async def data_disks(api: Api, vm_id: str) -> list[str]:
    vm = await wait_object(api, vm_id)
    out = []
    for vbd_id in vm["$VBDs"]:
        vbd = await wait_object(api, vbd_id)
        if not vbd["is_cd_drive"] and vbd.get("VDI"):
            out.append(vbd["VDI"])
    return out


async def test_disk_content_round_trip(api, vm_with_data):
    _vm, vdi, data = vm_with_data
    assert await disk_content(api, vdi) == data


async def test_transfer_paths_are_one_shot(api, vm_with_data):
    _vm, vdi, _data = vm_with_data
    path = (await api.call("disk.exportContent", {"id": vdi}))["$getFrom"]
    assert (await http(api, "HEAD", path))[0] == 405  # would spend the one use on headers
    assert (await http(api, "GET", path))[0] == 200
    assert (await http(api, "GET", path))[0] == 404
    assert (await http(api, "GET", "/api/transfers/" + "x" * 43))[0] == 404


async def test_export_then_import_into_the_other_pool_keeps_the_disks(api, vm_with_data):
    vm, _vdi, data = vm_with_data
    result = await api.call("vm.export", {"vm": vm, "compress": "zstd"})
    assert result["$getFrom"].endswith(".xva")
    status, xva = await http(api, "GET", result["$getFrom"])
    assert status == 200 and xva[:4] == b"\x28\xb5\x2f\xfd"
    pools = await pool_ids(api)
    sr = await disk_sr(api, pools[1])
    sent = await api.call("vm.import", {"sr": sr["id"]})
    status, body = await http(api, "PUT", sent["$sendTo"], xva)
    assert status == 200, body
    new_vm = json.loads(body)["result"]
    assert (await wait_object(api, new_vm))["$poolId"] == pools[1]
    contents = [await disk_content(api, d) for d in await data_disks(api, new_vm)]
    assert data in contents


async def test_podium_parser_reads_the_simulators_export(api, vm_with_data, tmp_path):
    """Two implementations of the format, one written for each side, agree on the disk."""
    vm, vdi, data = vm_with_data
    status, xva = await http(api, "GET", (await api.call("vm.export", {"vm": vm}))["$getFrom"])
    assert status == 200
    header = xva_lib.read_header(io.BytesIO(xva))
    disk = next(o["id"] for o in header.objects if o["class"] == "VDI" and o["snapshot"]["uuid"] == vdi)
    disks = xva_lib.extract(io.BytesIO(xva), tmp_path / "out")
    assert disks[disk].read_bytes() == data


async def test_copy_to_another_pool_streams_through_the_server(api, vm_with_data):
    vm, _vdi, data = vm_with_data
    pools = await pool_ids(api)
    sr = await disk_sr(api, pools[1])
    new_vm = await api.call("vm.copy", {"vm": vm, "sr": sr["id"], "name": "copied"})
    obj = await wait_object(api, new_vm)
    assert obj["$poolId"] == pools[1] and obj["name_label"] == "copied"
    contents = [await disk_content(api, d) for d in await data_disks(api, new_vm)]
    assert data in contents


async def test_export_of_a_running_vm_goes_through_a_snapshot_removed_after(api, two_pools, vm_with_data):
    vm, _vdi, data = vm_with_data
    await api.call("vm.start", {"id": vm})
    before = set(await objects(api, type="VM-snapshot"))
    result = await api.call("vm.export", {"vm": vm})
    status, xva = await http(api, "GET", result["$getFrom"])
    assert status == 200 and xva[:7] == b"ova.xml"
    assert data[: MiB // 2] in xva
    for _ in range(100):
        if set(await objects(api, type="VM-snapshot")) == before:
            break
        await asyncio.sleep(0.05)
    assert set(await objects(api, type="VM-snapshot")) == before


@pytest.mark.parametrize("damage", ["flip", "truncate"])
async def test_bad_xva_upload_fails_clearly_and_leaves_nothing(api, vm_with_data, damage):
    vm, _vdi, _data = vm_with_data
    status, xva = await http(api, "GET", (await api.call("vm.export", {"vm": vm}))["$getFrom"])
    ova_size = int(xva[124:136].strip(b"\0 "), 8)
    at = 512 + -(-ova_size // 512) * 512 + 512 + 100  # a byte of the first chunk's data
    bad = xva[: len(xva) // 2] if damage == "truncate" else xva[:at] + bytes([xva[at] ^ 1]) + xva[at + 1 :]
    pools = await pool_ids(api)
    sr = await disk_sr(api, pools[1])
    before = {t: set(await objects(api, type=t, **{"$poolId": pools[1]})) for t in ("VM", "VDI")}
    sent = await api.call("vm.import", {"sr": sr["id"]})
    status, body = await http(api, "PUT", sent["$sendTo"], bad)
    assert status >= 400
    error = json.loads(body)["error"]
    assert error["data"]["code"] in ("IMPORT_ERROR", "IMPORT_ERROR_PREMATURE_EOF")
    await asyncio.sleep(0.3)
    after = {t: set(await objects(api, type=t, **{"$poolId": pools[1]})) for t in ("VM", "VDI")}
    assert after == before


async def test_an_export_failing_after_its_disks_cuts_the_download(api, two_pools, vm_with_data):
    """xapi ends a download by closing, failed or not: the relay asks the task, and its client's stream is cut
    (no final chunk) although the pool's ended as a whole one would."""
    vm, _vdi, _data = vm_with_data
    two_pools.ctl("POST", "/faults", {"method": "/export", "error": ["VDI_IO_ERROR", "Device I/O errors"]})
    path = (await api.call("vm.export", {"vm": vm}))["$getFrom"]
    with pytest.raises(aiohttp.ClientPayloadError):
        await http(api, "GET", path)


async def test_a_raw_disk_download_cut_by_its_master_is_cut_for_the_client(api, two_pools, vm_with_data):
    """The raw export's length is told to the client (xapi does not say it), and a master that goes away
    midway leaves the client short of it, with an error, never with a stream that looks whole. (The check of
    the pool's stream against that length is tested in tests/unit/podium/test_xapi_stream.py.)"""
    vm, vdi, _data = vm_with_data
    rec = await wait_object(api, vdi)
    big = await api.call("disk.create", {"name": "big", "size": 64 * MiB, "sr": rec["$SR"], "vm": vm})
    sent = await api.call("disk.importContent", {"id": big})
    assert (await http(api, "PUT", sent["$sendTo"], os.urandom(64 * MiB)))[0] == 200
    path = (await api.call("disk.exportContent", {"id": big}))["$getFrom"]
    master = two_pools.master(0)
    got = 0

    async def read(r: aiohttp.ClientResponse) -> None:
        nonlocal got
        async for data in r.content.iter_any():
            if got < 4 * MiB <= got + len(data):  # the stream stalls while this client does not read
                await asyncio.to_thread(two_pools.ctl, "POST", f"/pools/0/hosts/{master.name}/stop")
                await asyncio.sleep(0.5)
            got += len(data)

    async with aiohttp.ClientSession() as s, s.get(api.server.url + path) as r:
        assert r.status == 200 and r.content_length == 64 * MiB
        with pytest.raises(aiohttp.ClientPayloadError):
            await read(r)
    assert got < 64 * MiB
    await asyncio.to_thread(two_pools.ctl, "POST", f"/pools/0/hosts/{master.name}/start")


@pytest.mark.parametrize("compress", [False, "zstd"])
async def test_a_copy_whose_export_fails_leaves_nothing_on_the_target(api, two_pools, vm_with_data, compress):
    """The export fails after its last disk. Uncompressed, the target's import has every byte it needs and
    succeeds, and only the export's task says the copy is bad: the server removes what the import made.
    Compressed, the stream stops before the compressor's last block: the import fails for want of bytes,
    and the error the caller gets is the export's, not the import's."""
    vm, _vdi, _data = vm_with_data
    pools = await pool_ids(api)
    sr = await disk_sr(api, pools[1])
    url1, s1 = login(two_pools, 1)
    before = {c: set(jsonrpc(url1, f"{c}.get_all_records", s1)) for c in ("VM", "VDI")}
    two_pools.ctl("POST", "/faults", {"method": "/export", "error": ["VDI_IO_ERROR", "Device I/O errors"]})
    with pytest.raises(ApiError) as e:
        await api.call("vm.copy", {"vm": vm, "sr": sr["id"], "name": "bad copy", "compress": compress})
    assert "VDI_IO_ERROR" in json.dumps([str(e.value), e.value.data]), (str(e.value), e.value.data)
    after = {c: set(jsonrpc(url1, f"{c}.get_all_records", s1)) for c in ("VM", "VDI")}
    assert after == before


async def test_copy_fails_cleanly_when_the_target_master_dies_midway(api, two_pools, vm_with_data):
    vm, vdi, _data = vm_with_data
    # a disk long enough that the copy is still running when the target goes away
    rec = await wait_object(api, vdi)
    big = await api.call("disk.create", {"name": "big", "size": 256 * MiB, "sr": rec["$SR"], "vm": vm})
    sent = await api.call("disk.importContent", {"id": big})
    assert (await http(api, "PUT", sent["$sendTo"], os.urandom(256 * MiB)))[0] == 200
    pools = await pool_ids(api)
    sr = await disk_sr(api, pools[1])
    url1, s1 = login(two_pools, 1)
    before = {
        c: {r["uuid"] for r in jsonrpc(url1, f"{c}.get_all_records", s1).values()} for c in ("VM", "VDI")
    }
    target = two_pools.master(1)
    copy = asyncio.create_task(api.call("vm.copy", {"vm": vm, "sr": sr["id"]}))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(two_pools.ctl, "POST", f"/pools/1/hosts/{target.name}/stop")
    with pytest.raises(ApiError) as e:
        await copy
    assert str(e.value)
    await asyncio.to_thread(two_pools.ctl, "POST", f"/pools/1/hosts/{target.name}/start")
    url1, s1 = login(two_pools, 1)  # the restarted master forgot its sessions
    for _ in range(100):
        vms = {r["uuid"] for r in jsonrpc(url1, "VM.get_all_records", s1).values()}
        vdis = {r["uuid"] for r in jsonrpc(url1, "VDI.get_all_records", s1).values()}
        if vms >= before["VM"] and not (vms - before["VM"]) and not (vdis - before["VDI"]):
            break
        await asyncio.sleep(0.05)
    assert vms == before["VM"] and vdis == before["VDI"]


async def test_import_from_a_url_and_a_missing_one(api, vm_with_data, tmp_path):
    vm, _vdi, data = vm_with_data
    status, xva = await http(api, "GET", (await api.call("vm.export", {"vm": vm}))["$getFrom"])
    assert status == 200

    async def serve(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(body=xva, content_type="application/octet-stream")

    app = aiohttp.web.Application()
    app.router.add_get("/vm.xva", serve)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        pools = await pool_ids(api)
        sr = await disk_sr(api, pools[1])
        new_vm = await api.call("vm.import", {"sr": sr["id"], "url": f"http://127.0.0.1:{port}/vm.xva"})
        contents = [await disk_content(api, d) for d in await data_disks(api, new_vm)]
        assert data in contents
        with pytest.raises(ApiError) as e:
            await api.call("vm.import", {"sr": sr["id"], "url": f"http://127.0.0.1:{port}/missing.xva"})
        assert "404" in str(e.value)
    finally:
        await runner.cleanup()


async def test_migrate_a_running_vm_and_its_snapshot_to_another_pool(api, two_pools, vm_with_data):
    vm, vdi, data = vm_with_data
    pools = await pool_ids(api)
    snapshot = await api.call("vm.snapshot", {"id": vm, "name": "before the move"})
    await api.call("vm.start", {"id": vm})
    before = await wait_object(api, vm)
    hosts = await objects(api, type="host", **{"$poolId": pools[1]})
    host = next(iter(sorted(hosts)))
    sr = await disk_sr(api, pools[1])
    mac = {(await wait_object(api, v))["MAC"] for v in before["VIFs"]}

    # Refused before anything moves: an SR of the VM's own pool as the target SR.
    wrong = await disk_sr(api, pools[0])
    with pytest.raises(ApiError) as e:
        await api.call("vm.migrate", {"vm": vm, "targetHost": host, "sr": wrong["id"]})
    assert e.value.code == 10 and "sr" in str(e.value)
    with pytest.raises(ApiError) as e:
        await api.call(
            "vm.migrate", {"vm": vm, "targetHost": host, "sr": sr["id"], "mapVdisSrs": {vdi: wrong["id"]}}
        )
    assert e.value.code == 10 and "mapVdisSrs" in str(e.value)
    assert (await wait_object(api, vm))["$poolId"] == pools[0]
    # The source pool fails the move: the error says so, and the VM is where it was, running.
    two_pools.ctl(
        "POST", "/faults", {"method": "VM.migrate_send", "error": ["VM_MIGRATE_FAILED", "x", "y", "z", "cut"]}
    )
    with pytest.raises(ApiError, match="VM_MIGRATE_FAILED"):
        await api.call("vm.migrate", {"vm": vm, "targetHost": host, "sr": sr["id"]})
    url, s = login(two_pools)
    assert jsonrpc(url, "VM.get_power_state", s, jsonrpc(url, "VM.get_by_uuid", s, vm)) == "Running"
    assert not [v for v in await objects(api, type="VM", **{"$poolId": pools[1]}) if v == vm]

    await api.call("vm.migrate", {"vm": vm, "targetHost": host, "sr": sr["id"]})
    for _ in range(200):
        moved = await wait_object(api, vm)
        if moved["$poolId"] == pools[1] and moved["power_state"] == "Running":
            break
        await asyncio.sleep(0.05)
    assert moved["$container"] == host and moved["name_label"] == before["name_label"]  # same uuid, new pool
    disks = await data_disks(api, vm)
    assert [(await wait_object(api, d))["$SR"] for d in disks] == [sr["id"]] * len(disks)
    assert data in [await disk_content(api, d) for d in disks]  # the disk's content came along
    assert {(await wait_object(api, v))["MAC"] for v in moved["VIFs"]} == mac
    assert (await wait_object(api, snapshot))["$poolId"] == pools[1]  # snapshots go with their VM
    with pytest.raises(Exception, match="UUID_INVALID"):
        jsonrpc(url, "VM.get_by_uuid", s, vm)  # gone from the first pool
    assert vdi not in await objects(api, type="VDI")  # the source disk went (the copy has its own uuid)
