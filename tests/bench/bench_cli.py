"""Benchmarks of the ``podium`` command (own targets in brackets); prints medians.

1. a call from a shell: ``podium session.getUser``, process start to exit                        [< 1 s]
2. ``podium vm.export @=FILE`` of a VM with a 2 GiB disk of data, against a bare aiohttp client
   writing the same $getFrom to a file (podium also syncs the file before naming it)              [>= 90 %]
3. ``podium vm.import @=FILE`` of that XVA, against a bare aiohttp client putting it               [>= 90 %]
4. the command's peak RSS over a transfer (it streams, so it does not grow with the file)         [< 100 MB]
Three rounds each (``BENCH_DISK_GIB`` sets the disk size).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_transfer import GIB, fill, mbps, put_file
from tests.harness.cliproc import PODIUM, environ
from tests.harness.serverproc import ADMIN_EMAIL, ADMIN_PASSWORD, Api, connected, start_server, wait_object
from tests.harness.simdisks import guest_with_disk
from tests.harness.simproc import BUNDLED_DB, jsonrpc, start_sim, storage
from tests.harness.simproc import master_session as login

SIZE = int(os.environ.get("BENCH_DISK_GIB", "2")) * GIB
ROUNDS = 3


async def save(http: aiohttp.ClientSession, url: str, path: Path) -> tuple[int, float]:
    """What a bare client does: the download written to a file as it comes; (bytes, seconds)."""
    begin = time.perf_counter()
    total = 0
    with path.open("wb") as f:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            assert resp.status == 200, resp.status
            async for data in resp.content.iter_chunked(1 << 20):
                f.write(data)
                total += len(data)
    return total, time.perf_counter() - begin


def run(home: Path, *args: str) -> tuple[float, int]:
    """Run podium; (seconds, its peak RSS in KB)."""
    begin = time.perf_counter()
    proc = subprocess.Popen([str(PODIUM), *args], env=environ(home), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - begin
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, (args, proc.returncode)
    return took, usage.ru_maxrss


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    home = work / "home"
    sim = start_sim("--db", str(BUNDLED_DB), "--op-seconds", "0", "--disk-dir", str(work / "disks"))
    srv = start_server(work / "server")
    try:
        async with Api(srv.url) as api, aiohttp.ClientSession() as http:
            await api.sign_in()
            await connected(api, sim, 0)
            await asyncio.to_thread(run, home, "register", srv.url, ADMIN_EMAIL, ADMIN_PASSWORD)
            calls = [(await asyncio.to_thread(run, home, "session.getUser"))[0] for _ in range(10)]
            median_ms = statistics.median(calls) * 1000
            line = f"podium session.getUser from a shell: median {median_ms:.0f} ms  [target < 1 s]"
            print(line, flush=True)

            url, s = login(sim)
            vm, vdi, _ = guest_with_disk(url, s, SIZE)
            print(f"filling a {SIZE / GIB:.0f} GiB disk ...", flush=True)
            fill(url, s, vdi, SIZE)
            vm_id = jsonrpc(url, "VM.get_uuid", s, vm)
            await wait_object(api, vm_id)
            sr_id = jsonrpc(url, "SR.get_uuid", s, storage(url, s))
            xva = work / "vm.xva"
            bare, cli, peaks = [], [], []
            for _ in range(ROUNDS):
                path = (await api.call("vm.export", {"vm": vm_id}))["$getFrom"]
                n, t = await save(http, srv.url + path, work / "bare.xva")
                (work / "bare.xva").unlink()
                bare.append(mbps(n, t))
                t, peak = await asyncio.to_thread(run, home, "vm.export", f"vm={vm_id}", f"@={xva}")
                assert xva.stat().st_size == n
                cli.append(mbps(n, t))
                peaks.append(peak)
            b, c = statistics.median(bare), statistics.median(cli)
            print(
                f"export of a {n / GIB:.2f} GiB XVA through Podium: bare client {b:,.0f} MB/s, "
                f"podium {c:,.0f} MB/s = {c / b:.0%}  [target >= 90%]",
                flush=True,
            )
            bare, cli = [], []
            for _ in range(ROUNDS):
                path = (await api.call("vm.import", {"sr": sr_id}))["$sendTo"]
                bare.append(mbps(n, await put_file(http, srv.url + path, xva)))
                t, peak = await asyncio.to_thread(run, home, "vm.import", f"sr={sr_id}", f"@={xva}")
                cli.append(mbps(n, t))
                peaks.append(peak)
            b, c = statistics.median(bare), statistics.median(cli)
            print(
                f"import of that XVA through Podium: bare client {b:,.0f} MB/s, "
                f"podium {c:,.0f} MB/s = {c / b:.0%}  [target >= 90%]",
                flush=True,
            )
            median_mb, max_mb = statistics.median(peaks) / 1024, max(peaks) / 1024
            print(
                f"podium's peak RSS over the transfers: median {median_mb:.0f} MB, max {max_mb:.0f} MB"
                "  [target < 100 MB]",
                flush=True,
            )
    finally:
        srv.stop()
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
