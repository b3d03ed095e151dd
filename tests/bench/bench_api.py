"""Benchmarks of Podium's API (issue targets in brackets); prints medians and percentiles.

1. Cheap calls on one connection, pipelined                                 [5,000 calls/s]
2. Server memory per idle signed-in connection                              [< 100 KB]
3. 200 clients, each with its own ACL (one VM each), 1,000 changes/s:
   the time from a change in the pool to the client's notification          [p99 < 100 ms]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.harness.procstat import status_kb
from tests.harness.serverproc import Api, connected, start_server
from tests.harness.simproc import start_sim

VMS, CLIENTS, RATE, SECONDS = 1000, 200, 1000, 5.0


async def calls_per_second(url: str) -> None:
    async with Api(url) as api:
        await api.sign_in()
        n, window = 20_000, 200
        begin = time.perf_counter()
        sem = asyncio.Semaphore(window)

        async def one() -> None:
            async with sem:
                await api.call("system.getServerVersion")

        await asyncio.gather(*(one() for _ in range(n)))
        rate = n / (time.perf_counter() - begin)
        lat = []
        for _ in range(500):
            t = time.perf_counter()
            await api.call("system.getServerVersion")
            lat.append(time.perf_counter() - t)
    median_ms = statistics.median(lat) * 1000
    print(
        f"cheap calls on one connection: {rate:,.0f} calls/s pipelined ({window} in flight); "
        f"one at a time: median {median_ms:.2f} ms  [target 5,000/s]"
    )


async def main() -> None:
    sim = start_sim("--scale", str(VMS), "--op-seconds", "0", timeout=300)
    import tempfile

    srv = start_server(Path(tempfile.mkdtemp(prefix="bench-api-")))
    try:
        async with Api(srv.url) as admin:
            await admin.sign_in()
            await connected(admin, sim)
            vms = list((await admin.call("xo.getAllObjects", {"filter": {"type": "VM"}})).values())
            print(f"pool of {len(vms)} VMs connected")
            await calls_per_second(srv.url)

            users = []
            for i in range(CLIENTS):
                uid = await admin.call(
                    "user.create", {"email": f"u{i}@bench", "password": f"password number {i}"}
                )
                await admin.call(
                    "acl.add", {"subject": uid, "object": vms[i % len(vms)]["id"], "action": "viewer"}
                )
                users.append((f"u{i}@bench", f"password number {i}", vms[i % len(vms)]["id"]))

            before = status_kb(srv.proc.pid, "VmRSS")
            clients = [Api(srv.url) for _ in users]
            for c, (email, password, _) in zip(clients, users, strict=True):
                await c.__aenter__()
                await c.sign_in(email, password)
            await asyncio.sleep(1)
            after = status_kb(srv.proc.pid, "VmRSS")
            each = (after - before) / CLIENTS
            print(
                f"idle signed-in connections: {each:.0f} KB each on the server "
                f"({CLIENTS} connections)  [target < 100 KB]"
            )

            lags: list[float] = []

            async def follow(c: Api, vm_id: str) -> None:
                last = ""
                while True:
                    note = await c.notifications.get()
                    now = time.time()
                    obj = note["params"]["items"].get(vm_id)
                    desc = obj.get("name_description", "") if isinstance(obj, dict) else ""
                    if desc.startswith("storm ") and " t=" in desc and desc != last:
                        last = desc
                        lags.append(now - float(desc.split(" t=")[1]))

            tasks = [asyncio.create_task(follow(c, vm)) for c, (_, _, vm) in zip(clients, users, strict=True)]
            await asyncio.to_thread(
                sim.ctl, "POST", "/pools/0/storm", {"rate": RATE, "seconds": SECONDS, "seed": 5}
            )
            await asyncio.sleep(SECONDS + 2)
            done = (await asyncio.to_thread(sim.ctl, "DELETE", "/pools/0/storm"))["modifications"]
            for t in tasks:
                t.cancel()
            lags.sort()
            median_ms = statistics.median(lags) * 1000
            p99_ms = lags[int(0.99 * len(lags))] * 1000 if lags else float("nan")
            print(
                f"{CLIENTS} clients with their own ACL, {done / SECONDS:.0f} changes/s: "
                f"{len(lags)} notifications measured, "
                f"latency median {median_ms:.1f} ms, p99 {p99_ms:.1f} ms  [target p99 < 100 ms]"
            )
            for c in clients:
                await c.__aexit__(None, None, None)
    finally:
        srv.stop()
        sim.stop()


if __name__ == "__main__":
    asyncio.run(main())
