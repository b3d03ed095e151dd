"""Benchmarks of VM transfers through Podium (issue targets in brackets); prints medians.

A VM with a 4 GiB disk full of data (so the XVA is 4 GiB), in one run:
1. export: the simulator's /export read straight, and the same through Podium's $getFrom  [>= 90 %]
2. import: an XVA file put straight into /import, and the same through $sendTo           [>= 90 %]
   with the server's peak RSS growth over the run                                           [< 50 MB]
3. pool-to-pool copy of a VM with a 4 GiB sparse disk: bytes the server wrote to disk       [nothing]
Three rounds each, alternating direct and through the server; medians of MB/s.

The simulator's disks and the XVA file live in memory (/dev/shm) when three disks fit there, and each round's
imported VM is removed: writing to this machine's disk costs ~4 s of CPU per GiB (the simulator's writes, and
the kernel flushing the XVA file), which the import figures measured instead of the transfer (the simulator's
CPU per GB doubled after the first GiB).
"""

from __future__ import annotations

import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.harness.procstat import status_kb
from tests.harness.serverproc import Api, connected, start_server, wait_object
from tests.harness.simdisks import guest_with_disk, wait_task
from tests.harness.simproc import BUNDLED_DB, TEST_DBS, jsonrpc, start_sim, storage
from tests.harness.simproc import master_session as login

GIB = 1 << 30
SIZE = int(os.environ.get("BENCH_DISK_GIB", "4")) * GIB
ROUNDS = 3
PARTS = set(os.environ.get("BENCH_PARTS", "export,import,copy").split(","))


def reset_peak(pid: int) -> None:
    """Start the process's peak RSS (VmHWM) afresh."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def written_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def fill(url: str, s: str, vdi: str, size: int) -> None:
    """Write data over the whole disk straight into the simulator (a repeated random MiB)."""
    block = os.urandom(1 << 20)
    task = jsonrpc(url, "task.create", s, "fill", "")
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    q = urllib.parse.urlencode({"session_id": s, "vdi": vdi, "task_id": task})
    conn.putrequest("PUT", f"/import_raw_vdi?{q}")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    for _ in range(size // len(block)):
        conn.send(block)
    assert conn.getresponse().status == 200
    conn.close()
    assert wait_task(url, s, task)["status"] == "success"


async def read_all(http: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    begin = time.perf_counter()
    total = 0
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
        assert resp.status == 200, resp.status
        async for data, _ in resp.content.iter_chunks():  # as they come: joining them would cost a copy
            total += len(data)
    return total, time.perf_counter() - begin


async def put_file(http: aiohttp.ClientSession, url: str, path: Path) -> float:
    """Upload a file as a client does: read in 1 MiB blocks, Content-Length given."""

    async def blocks() -> AsyncIterator[bytes]:
        with path.open("rb") as f:
            while data := f.read(1 << 20):
                yield data

    begin = time.perf_counter()
    headers = {"Content-Length": str(os.stat(path).st_size)}
    async with http.put(
        url, data=blocks(), headers=headers, timeout=aiohttp.ClientTimeout(total=None)
    ) as resp:
        await resp.read()
        assert resp.status == 200, resp.status
    return time.perf_counter() - begin


def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


async def bench_export(http: aiohttp.ClientSession, api: Api, server: str, url: str, s: str, vm: str) -> int:
    """Straight and through Podium, alternating; returns the XVA's size."""
    vm_id = jsonrpc(url, "VM.get_uuid", s, vm)
    direct, via = [], []
    for _ in range(ROUNDS):
        n, t = await read_all(http, f"{url}/export?{urllib.parse.urlencode({'session_id': s, 'ref': vm})}")
        direct.append(mbps(n, t))
        path = (await api.call("vm.export", {"vm": vm_id}))["$getFrom"]
        n2, t2 = await read_all(http, server + path)
        assert n2 == n, (n, n2)
        via.append(mbps(n2, t2))
    d, v = statistics.median(direct), statistics.median(via)
    print(
        f"export of a {n / GIB:.2f} GiB XVA: straight {d:,.0f} MB/s, through Podium {v:,.0f} MB/s "
        f"= {v / d:.0%}  [target >= 90%]",
        flush=True,
    )
    return n


def remove_new_vms(url: str, s: str, before: set[str]) -> None:
    """Destroy the VMs made since ``before`` (imports) with their disks: the next round starts as this one."""
    for ref, vm in jsonrpc(url, "VM.get_all_records", s).items():
        if ref in before:
            continue
        vdis = [jsonrpc(url, "VBD.get_VDI", s, vbd) for vbd in vm["VBDs"]]
        jsonrpc(url, "VM.destroy", s, ref)
        for vdi in vdis:
            if vdi != "OpaqueRef:NULL":
                jsonrpc(url, "VDI.destroy", s, vdi)


def scratch() -> Path:
    """A folder for the simulator's disks and the XVA: $BENCH_SCRATCH's, else memory when three disks and
    some fit there, else the temporary folder."""
    shm = Path("/dev/shm")
    where = os.environ.get("BENCH_SCRATCH")
    if where is None and shm.is_dir() and shutil.disk_usage(shm).free > 3 * SIZE + GIB:
        where = str(shm)
    return Path(tempfile.mkdtemp(prefix="bench-transfer-", dir=where))


async def bench_import(
    http: aiohttp.ClientSession, api: Api, server: str, sim, url: str, s: str, vm: str, work: Path
) -> None:
    xva = work / "vm.xva"
    async with http.get(f"{url}/export?{urllib.parse.urlencode({'session_id': s, 'ref': vm})}") as resp:
        with xva.open("wb") as f:
            async for data in resp.content.iter_chunked(1 << 20):
                f.write(data)
    size = xva.stat().st_size
    url1, s1 = login(sim, 1)
    sr1 = storage(url1, s1)
    sr1_id = jsonrpc(url1, "SR.get_uuid", s1, sr1)
    direct, via = [], []
    before = set(jsonrpc(url1, "VM.get_all_records", s1))
    for _ in range(ROUNDS):
        q = urllib.parse.urlencode({"session_id": s1, "sr_id": sr1})
        direct.append(mbps(size, await put_file(http, f"{url1}/import?{q}", xva)))
        remove_new_vms(url1, s1, before)
        path = (await api.call("vm.import", {"sr": sr1_id}))["$sendTo"]
        via.append(mbps(size, await put_file(http, server + path, xva)))
        remove_new_vms(url1, s1, before)
    d, v = statistics.median(direct), statistics.median(via)
    line = f"import of the same XVA: straight {d:,.0f} MB/s, through Podium {v:,.0f} MB/s = {v / d:.0%}"
    print(f"{line}  [target >= 90%]", flush=True)
    xva.unlink()


async def bench_copy(api: Api, sim, url: str, s: str, pid: int) -> None:
    url1, s1 = login(sim, 1)
    sr1_id = jsonrpc(url1, "SR.get_uuid", s1, storage(url1, s1))
    sparse_vm, _vdi, _ = guest_with_disk(url, s, SIZE)
    sparse_id = jsonrpc(url, "VM.get_uuid", s, sparse_vm)
    await wait_object(api, sparse_id)
    before = written_bytes(pid)
    begin = time.perf_counter()
    await api.call("vm.copy", {"vm": sparse_id, "sr": sr1_id})
    took = time.perf_counter() - begin
    wrote = written_bytes(pid) - before
    print(
        f"pool-to-pool copy of a VM with a {SIZE / GIB:.0f} GiB sparse disk: {took:.2f} s, "
        f"server wrote {wrote:,} bytes to disk  [target: nothing of the stream]",
        flush=True,
    )


async def main() -> None:
    work = scratch()
    print(f"the simulator's disks and the XVA in {work}", flush=True)
    databases = ["--db", str(BUNDLED_DB), "--db", str(TEST_DBS / "xapidb_app.xml")]
    sim = start_sim(*databases, "--op-seconds", "0", "--disk-dir", str(work / "disks"))
    home = Path(tempfile.mkdtemp(prefix="bench-transfer-server-"))  # on disk: the copy counts what it writes
    srv = start_server(home / "server")
    try:
        async with Api(srv.url) as api, aiohttp.ClientSession() as http:
            await api.sign_in()
            await connected(api, sim, 0)
            await connected(api, sim, 1)
            url, s = login(sim)
            pid = srv.proc.pid
            if PARTS & {"export", "import"}:
                vm, vdi, _rec = guest_with_disk(url, s, SIZE)
                print(f"filling a {SIZE / GIB:.0f} GiB disk ...", flush=True)
                fill(url, s, vdi, SIZE)
                await wait_object(api, jsonrpc(url, "VM.get_uuid", s, vm))
                rss0 = status_kb(pid, "VmRSS")
                reset_peak(pid)  # the peak so far (the pool's sync) is not the transfers'
                if "export" in PARTS:
                    await bench_export(http, api, srv.url, url, s, vm)
                if "import" in PARTS:
                    await bench_import(http, api, srv.url, sim, url, s, vm, work)
                grown = (status_kb(pid, "VmHWM") - rss0) / 1024
                print(
                    f"server RSS: {rss0 / 1024:.0f} MB before, peak growth {grown:.1f} MB over the transfers"
                    "  [target < 50 MB]",
                    flush=True,
                )
            if "copy" in PARTS:
                await bench_copy(api, sim, url, s, pid)
    finally:
        srv.stop()
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    uvloop.run(main())  # the client on the same loop as the server: the comparison is of paths, not loops
