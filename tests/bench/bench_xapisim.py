"""Benchmarks of the simulator (issue targets in brackets); prints medians.

1. VM.get_all_records on a 10,000-VM pool, JSON-RPC and XML-RPC, cold and warm   [< 1 s]
2. event.from hands a change to a waiting caller                                 [< 20 ms]
3. 1,000 modifications/s reach 10 waiting event.from callers                     [all delivered, lag printed]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.harness.simproc import start_sim

VMS = 10_000


class Client:
    """A minimal JSON-RPC / XML-RPC caller for measurements."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url, self.session = http, url, ""

    async def call(self, method: str, *params: object) -> object:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": [self.session, *params]}
        async with self.http.post(self.url + "/jsonrpc", json=body) as resp:
            reply = json.loads(await resp.read())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["result"]

    async def login(self, user: str, password: str) -> None:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "session.login_with_password",
            "params": [user, password],
        }
        async with self.http.post(self.url + "/jsonrpc", json=body) as resp:
            self.session = (await resp.json())["result"]

    async def _drain(self, resp: aiohttp.ClientResponse) -> int:
        # Count the bytes without keeping them: the time to the last byte, not the client's buffering.
        size = 0
        async for chunk in resp.content.iter_chunked(1 << 20):
            size += len(chunk)
        return size

    async def json_get_all_records(self) -> int:
        body = {"jsonrpc": "2.0", "id": 1, "method": "VM.get_all_records", "params": [self.session]}
        async with self.http.post(self.url + "/jsonrpc", json=body) as resp:
            return await self._drain(resp)

    async def xml_get_all_records(self) -> int:
        body = (
            "<?xml version='1.0'?><methodCall><methodName>VM.get_all_records</methodName><params>"
            f"<param><value><string>{self.session}</string></value></param></params></methodCall>"
        )
        async with self.http.post(self.url + "/", data=body, headers={"Content-Type": "text/xml"}) as resp:
            return await self._drain(resp)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def bench_get_all_records(c: Client, vms: int) -> None:
    print(f"VM.get_all_records, {vms} VMs, time to the last byte  [target < 1 s]")
    for name, fetch in (("JSON-RPC", c.json_get_all_records), ("XML-RPC ", c.xml_get_all_records)):
        samples, size = [], 0
        for _ in range(5):
            t = time.perf_counter()
            size = await fetch()
            samples.append(time.perf_counter() - t)
        print(
            f"  {name}  first call {ms(samples[0])}, median {ms(statistics.median(samples))} ({size / 1e6:.0f} MB)"
        )


async def bench_event_latency(c: Client, writer: Client, vm: str) -> None:
    token = (await c.call("event.from", ["vm"], "", 0.0))["token"]  # type: ignore[index]
    samples = []
    for n in range(50):
        waiting = asyncio.ensure_future(c.call("event.from", ["vm"], token, 5.0))
        await asyncio.sleep(0.02)  # the caller is parked in event.from
        t = time.perf_counter()
        await writer.call("VM.set_name_description", vm, f"latency {n}")
        batch = await waiting
        samples.append(time.perf_counter() - t)
        token = batch["token"]  # type: ignore[index]
    samples.sort()
    print("event.from: a change reaches a waiting caller  [target < 20 ms]")
    print(
        f"  median {ms(statistics.median(samples))}, p90 {ms(samples[int(0.9 * len(samples))])}"
        f" (from the setter call to the event, over 50 changes)"
    )


async def follower(c: Client, stop: asyncio.Event, lags: list[float], counts: list[int]) -> None:
    pool = (await c.call("pool.get_all"))[0]  # type: ignore[index]
    token = await c.call("event.inject", "pool", pool)  # as xen-api starts: a token, not a full dump
    seen = 0
    last: dict[str, str] = {}  # VM -> the description it was last seen with
    while not stop.is_set():
        batch = await c.call("event.from", ["vm", "vm_metrics"], token, 1.0)
        token = batch["token"]  # type: ignore[index]
        now = time.time()
        for ev in batch["events"]:  # type: ignore[index]
            seen += 1
            desc = ev.get("snapshot", {}).get("name_description", "")
            # only a new description is a new stamp (an event for another change keeps the old one)
            if desc.startswith("storm ") and " t=" in desc and last.get(ev["ref"]) != desc:
                last[ev["ref"]] = desc
                lags.append(now - float(desc.split(" t=")[1]))
    counts.append(seen)


async def bench_storm(sim_ctl, clients: list[Client], rate: int = 1000, seconds: float = 5.0) -> None:
    stop = asyncio.Event()
    lags: list[float] = []
    counts: list[int] = []
    tasks = [asyncio.ensure_future(follower(c, stop, lags, counts)) for c in clients]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(sim_ctl, "POST", "/pools/0/storm", {"rate": rate, "seconds": seconds, "seed": 7})
    await asyncio.sleep(seconds + 1.5)
    done = (await asyncio.to_thread(sim_ctl, "DELETE", "/pools/0/storm"))["modifications"]
    stop.set()
    await asyncio.gather(*tasks)
    lags.sort()
    lags = lags or [float("nan")]
    print(
        f"storm: {done} modifications in {seconds:.0f} s ({done / seconds:.0f}/s) to {len(clients)} event.from callers"
    )
    print(
        f"  events per caller: median {statistics.median(counts):.0f} (coalesced per object and batch);"
        f" lag median {ms(statistics.median(lags))}, p99 {ms(lags[int(0.99 * len(lags))])}"
    )


async def main() -> None:
    t = time.perf_counter()
    sim = start_sim("--scale", str(VMS), "--op-seconds", "0", timeout=300)
    print(f"simulator with {VMS} VMs ready in {time.perf_counter() - t:.1f} s")
    try:
        url = sim.master().url
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            clients = [Client(http, url) for _ in range(12)]
            for c in clients:
                await c.login(sim.user, sim.password)
            vms = await clients[0].call("VM.get_all")
            vm = vms[0]  # type: ignore[index]
            while True:  # the simulator encodes its records once after start; measure after that
                (pool,) = await asyncio.to_thread(sim.ctl, "GET", "/pools")
                if pool["warmed"]:
                    break
                await asyncio.sleep(0.5)
            await bench_get_all_records(clients[0], len(vms))  # type: ignore[arg-type]
            await bench_event_latency(clients[0], clients[1], vm)
            await bench_storm(sim.ctl, clients[2:12])
    finally:
        sim.stop()


if __name__ == "__main__":
    asyncio.run(main())
