"""Benchmarks of Podium's XAPI client and cache (issue targets in brackets), against xen-api (npm).

1. Initial sync of a 10,000-VM pool into the cache                     [< 5 s, < 400 MB RSS]
2. 1,000 events/s applied, event-to-cache latency                       [p99 < 50 ms]
3. The same pool and storm followed by Xen Orchestra's xen-api client: our time / its time.

Each client runs in a process of its own, so that its RSS is its own.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.harness.procstat import rss_mb  # noqa: E402

VMS = 10_000
STORM_RATE, STORM_SECONDS = 1000, 5.0


async def child(url: str, user: str, password: str, control: str) -> None:
    """Sync the pool, then follow a storm; print the figures as JSON."""
    from podium.cache import KEPT_CLASSES, ObjectCache, PoolCache
    from podium.xapi import PoolWatcher, XapiClient
    from tests.harness.simproc import Sim

    objects = ObjectCache()
    lags: list[float] = []
    last: dict[str, str] = {}

    def on_batch(batch) -> None:
        now = time.time()
        for id_, obj in batch.enter.items():
            desc = obj.get("name_description", "")
            if desc.startswith("storm ") and " t=" in desc and last.get(id_) != desc:
                last[id_] = desc
                lags.append(now - float(desc.split(" t=")[1]))

    objects.subscribe(on_batch)
    client = XapiClient(url, user, password)
    connected = asyncio.Event()
    cache = PoolCache(
        objects, list(KEPT_CLASSES), on_status=lambda st: st.state == "connected" and connected.set()
    )
    watcher = PoolWatcher(client, cache, KEPT_CLASSES)
    rss_before = rss_mb()
    begin = time.perf_counter()
    task = asyncio.create_task(watcher.run())
    await connected.wait()
    sync = time.perf_counter() - begin
    rss_synced = rss_mb()
    vms = len(objects.of_type("VM"))
    sim = Sim(proc=None, log_path=Path("/dev/null"), control=control)  # type: ignore[arg-type]
    await asyncio.to_thread(
        sim.ctl, "POST", "/pools/0/storm", {"rate": STORM_RATE, "seconds": STORM_SECONDS, "seed": 3}
    )
    await asyncio.sleep(STORM_SECONDS + 1.5)
    done = (await asyncio.to_thread(sim.ctl, "DELETE", "/pools/0/storm"))["modifications"]
    task.cancel()
    await client.close()
    figures = {
        "sync": sync,
        "vms": vms,
        "objects": len(objects),
        "rss_before": rss_before,
        "rss_synced": rss_synced,
        "rss_end": rss_mb(),
        "lags": lags,
        "storm": done,
    }
    print(json.dumps(figures))


def run_podium(sim) -> dict:
    argv = [sys.executable, __file__, "--child", sim.master().url, sim.user, sim.password, sim.control]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_xen_api(sim) -> dict | None:
    node = shutil.which("node")
    script = ROOT / "tests" / "node" / "xen_api_bench.mjs"
    if not node or not (ROOT / "tests" / "node" / "node_modules" / "xen-api").is_dir():
        print("  xen-api: not installed (make setup installs tests/node); skipped")
        return None
    storm = [str(STORM_RATE), str(STORM_SECONDS)]
    argv = [node, str(script), sim.master().url, sim.user, sim.password, sim.control, *storm]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


def report(name: str, r: dict) -> None:
    lags = r["lags"]
    print(
        f"  {name}: initial sync {r['sync']:.2f} s ({r['vms']} VMs, {r['objects']} objects), "
        f"RSS {r['rss_synced']:.0f} MB after sync, {r['rss_end']:.0f} MB after the storm"
    )
    median_ms, p99_ms = statistics.median(lags) * 1000, pct(lags, 0.99) * 1000
    print(
        f"  {name}: {len(lags)} changes seen of {r['storm']}; event-to-cache latency "
        f"median {median_ms:.1f} ms, p99 {p99_ms:.1f} ms"
    )


def main() -> None:
    from tests.harness.simproc import start_sim

    sim = start_sim("--scale", str(VMS), "--op-seconds", "0", timeout=300)
    try:
        while not sim.ctl("GET", "/pools")[0]["warmed"]:
            time.sleep(0.5)
        print(f"pool of {VMS} VMs; storm of {STORM_RATE} modifications/s for {STORM_SECONDS:.0f} s")
        print("  [targets: sync < 5 s, RSS < 400 MB, p99 latency < 50 ms]")
        ours = run_podium(sim)
        report("podium ", ours)
        theirs = run_xen_api(sim)
        if theirs is not None:
            report("xen-api", theirs)
            sync = ours["sync"] / theirs["sync"]
            rss = ours["rss_synced"] / theirs["rss_synced"]
            p99 = pct(ours["lags"], 0.99) / pct(theirs["lags"], 0.99)
            print(f"  podium / xen-api: sync time {sync:.2f}, RSS {rss:.2f}, p99 latency {p99:.2f}")
    finally:
        sim.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        asyncio.run(child(*sys.argv[2:6]))
    else:
        main()
