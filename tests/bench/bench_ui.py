"""The web UI on a 10,000-VM pool in headless Chromium (issue targets in brackets).

1. Home page interactive: from navigation start (signed in by the token cookie) to the first frame painted
   with the VM table listing every VM, timed in the page                 [< 2 s]
2. Scrolling the VM table to its end: frame times while it scrolls        [smooth: p95 < 50 ms]
3. A storm of 1,000 modifications/s: frame times, and a filter typed meanwhile reaching the table
                                                                          [no freeze: p95 frame < 100 ms]
Medians of several runs are printed; the page is Debian's Chromium through Playwright.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

VMS = 10_000
RUNS = 3
STORM_RATE, STORM_SECONDS = 1000, 6.0

# Frame times (ms) while scrolling the table's body from top to bottom, a screenful per frame.
SCROLL = """async () => {
  const body = document.querySelector('#objects .body');
  const times = [];
  let last = performance.now();
  return await new Promise((resolve) => {
    const step = (now) => {
      times.push(now - last); last = now;
      body.scrollTop += body.clientHeight;
      if (body.scrollTop + body.clientHeight >= body.scrollHeight - 2 || times.length > 2000) resolve(times.slice(1));
      else requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
}"""

# Frame times (ms) for a while, as the page lives through whatever happens meanwhile.
FRAMES = """async (seconds) => {
  const times = [];
  let last = performance.now();
  const end = last + seconds * 1000;
  return await new Promise((resolve) => {
    const step = (now) => {
      times.push(now - last); last = now;
      if (now >= end) resolve(times.slice(1)); else requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
}"""


# In the page from its first script on: the time (ms since navigation start) of the first frame painted once
# the VM table lists every VM and shows its rows.
READY = """(() => {
  const seen = () => {
    const count = document.getElementById('count');
    return count && count.textContent === 'TOTAL of TOTAL' && document.querySelector('#objects .spacer .row');
  };
  const watch = new MutationObserver(() => {
    if (!seen()) return;
    watch.disconnect();
    // the next frame's callbacks run after this one was painted
    requestAnimationFrame(() => requestAnimationFrame(() => { window.__podiumReady = performance.now(); }));
  });
  watch.observe(document, { subtree: true, childList: true, characterData: true });
})();"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.conftest import CHROMIUM_ARGS, chromium_path
    from tests.harness.serverproc import ADMIN_EMAIL, ADMIN_PASSWORD, Api, start_server
    from tests.harness.simproc import start_sim

    sim = start_sim("--scale", str(VMS), "--op-seconds", "0", timeout=300)
    data = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    server = None
    try:
        while not sim.ctl("GET", "/pools")[0]["warmed"]:
            time.sleep(0.5)
        server = start_server(data)

        async def connect() -> int:
            # Each step on a connection of its own: a signed-in client is sent every object as the pool
            # syncs, and one that does not read them (this one waits) is dropped by the server, rightly.
            async with Api(server.url) as api:
                await api.sign_in()
                await api.call(
                    "server.add", {"host": sim.master().url, "username": sim.user, "password": sim.password}
                )
            count = 0
            for _ in range(300):
                await asyncio.sleep(1)
                async with Api(server.url) as api:
                    await api.sign_in()
                    count = len(await api.call("xo.getAllObjects", {"filter": {"type": "VM"}}))
                if count >= VMS:
                    break
            return count

        total = asyncio.run(connect())
        print(f"pool of {total} VMs (and their disks, interfaces …); Chromium {chromium_path()}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(server.url + "/")
            page.fill("#email", ADMIN_EMAIL)
            page.fill("#password", ADMIN_PASSWORD)
            page.click("#signin button[type=submit]")
            expect(page.locator("#count")).to_have_text(f"{total} of {total}", timeout=60_000)

            context.add_init_script(READY.replace("TOTAL", str(total)))
            page.goto(server.url + "/#/home/VM")
            loads, walls = [], []
            for _ in range(RUNS):
                start = time.perf_counter()
                page.reload()
                page.wait_for_function("() => window.__podiumReady !== undefined", timeout=60_000)
                walls.append(time.perf_counter() - start)
                loads.append(page.evaluate("() => window.__podiumReady") / 1000)
            runs = ", ".join(f"{x:.2f}" for x in loads)
            print(
                "  home interactive (navigation start to the first frame painted with all "
                f"{total} VMs listed): median {statistics.median(loads):.2f} s (runs {runs}); "
                f"as Playwright sees it from reload(): {statistics.median(walls):.2f} s  [target < 2 s]"
            )

            scrolls = [page.evaluate(SCROLL) for _ in range(RUNS)]
            frames = [t for run in scrolls for t in run]
            print(
                f"  scrolling {total} rows to the end: {len(frames)} frames, "
                f"median {statistics.median(frames):.1f} ms, p95 {pct(frames, 0.95):.1f} ms, "
                f"worst {max(frames):.0f} ms  [target p95 < 50 ms]"
            )

            page.fill("#search", "")
            sim.ctl("POST", "/pools/0/storm", {"rate": STORM_RATE, "seconds": STORM_SECONDS, "seed": 7})
            time.sleep(0.5)
            storm_frames = page.evaluate(FRAMES, STORM_SECONDS - 2)
            start = time.perf_counter()
            page.fill("#search", "power_state:halted")
            expect(page.locator("#count")).not_to_have_text(f"{total} of {total}", timeout=30_000)
            typed = time.perf_counter() - start
            done = sim.ctl("DELETE", "/pools/0/storm")["modifications"]
            median, p95, worst = statistics.median(storm_frames), pct(storm_frames, 0.95), max(storm_frames)
            print(
                f"  storm of {STORM_RATE}/s ({done} modifications): "
                f"frames median {median:.1f} ms, p95 {p95:.1f} ms, worst {worst:.0f} ms; "
                f"a filter typed meanwhile reached the table in {typed * 1000:.0f} ms"
                "  [target p95 frame < 100 ms]"
            )
            browser.close()
    finally:
        if server is not None:
            server.stop()
        sim.stop()


if __name__ == "__main__":
    main()
