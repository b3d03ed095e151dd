"""Benchmark of VM transfers through the appliance's nginx (targets in brackets); prints medians.

The real nginx with the appliance's rendered configuration (ready mode, TLS) in front of the real server,
as tests/integration/test_appliance_proxy.py runs them, the simulator's pool behind. Each round imports a
VM whose 2 GiB disk is full of data (an XVA of a little more) through nginx, then exports it through nginx,
and does the same straight to the server (plain HTTP on loopback) for comparison; the VMs are deleted
after each round. Three rounds (BENCH_ROUNDS), BENCH_DISK_GIB GiB (default 2).

Printed: throughput (MB/s, median of the rounds) through nginx and straight, and the peak RSS growth of
the busiest nginx worker during each transfer (largest of the rounds)              [< 32 MB]
and what nginx's workers wrote to disk (nothing of the stream should be buffered)  [< 1 MB]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from podium_appliance.layout import Layout
from tests.harness.nginxproc import Figures, GiB, ProxiedApi, RoundTrip, start_nginx, trusting, vm_round_trip
from tests.harness.serverproc import connected, disk_sr, free_port, pool_ids, start_server
from tests.harness.simproc import start_sim

SIZE = int(os.environ.get("BENCH_DISK_GIB", "2")) * GiB
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def summary(what: str, via: list[Figures], straight: list[Figures]) -> str:
    v = statistics.median(f.mb_per_s for f in via)
    d = statistics.median(f.mb_per_s for f in straight)
    runs = ", ".join(f"{f.mb_per_s:,.0f}" for f in via)
    return (
        f"{what} of a {via[0].length / GiB:.2f} GiB XVA: through nginx {v:,.0f} MB/s median (runs: {runs}), "
        f"straight to the server {d:,.0f} MB/s = {v / d:.0%}"
    )


def memory(what: str, via: list[Figures]) -> str:
    grown = max(f.rss_growth_mb for f in via)
    wrote = max(f.written for f in via)
    return (
        f"{what}: nginx worker peak RSS growth {grown:.1f} MB at most (runs: "
        f"{', '.join(f'{f.rss_growth_mb:.1f}' for f in via)})  [< 32 MB], "
        f"written to disk by nginx {wrote:,} bytes at most  [< 1 MB]"
    )


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    sim = start_sim("--op-seconds", "0", "--disk-dir", str(work / "disks"))
    server = start_server(work / "server")
    nginx = None
    try:
        layout = Layout(work / "root")
        listen, wizard = server.url.removeprefix("http://"), f"127.0.0.1:{free_port()}"
        nginx = start_nginx(work, layout, mode="ready", server_listen=listen, wizard_listen=wizard)
        print(
            f"nginx {nginx.url} ({len(nginx.worker_pids())} workers) -> podium-server {server.url}; "
            f"{ROUNDS} rounds of a {SIZE / GiB:.0f} GiB disk",
            flush=True,
        )
        via: list[RoundTrip] = []
        straight: list[RoundTrip] = []
        async with ProxiedApi(nginx, trusting(nginx.layout)) as api:
            await api.sign_in()
            await connected(api, sim)
            sr = (await disk_sr(api, (await pool_ids(api))[0]))["id"]
            for n in range(ROUNDS):
                for target, results in ((None, via), (server.url, straight)):
                    done = await vm_round_trip(api, nginx, sr, SIZE, f"bench {n}", straight=target)
                    assert done.disk_sizes == [SIZE], done.disk_sizes
                    results.append(done)
                    print(
                        f"  round {n + 1}: {done.up.line()}\n  round {n + 1}: {done.down.line()}", flush=True
                    )
                    await api.call("vm.delete", {"id": done.vm["id"], "deleteDisks": True})
        print(summary("VM import", [r.up for r in via], [r.up for r in straight]))
        print(summary("VM export", [r.down for r in via], [r.down for r in straight]))
        print(memory("VM import", [r.up for r in via]))
        print(memory("VM export", [r.down for r in via]))
    finally:
        if nginx is not None:
            nginx.stop()
        server.stop()
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
