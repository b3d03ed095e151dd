"""Property: whatever storms and faults hit a pool, the cache ends equal to a fresh read of it.

Faults come through the simulator's control surface, as a real pool would cause them: connections
dropped, the event history overflowed (EVENTS_LOST), sessions expired (a toolstack restart), the
master stopped and a member promoted. VM operations run meanwhile through another client.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.xapi import XapiClient, XapiError

from ..harness.cachehelp import master_url, watched
from ..harness.simproc import start_sim

pytestmark = [pytest.mark.integration, pytest.mark.slow]

vm_ops = st.tuples(st.just("vm"), st.sampled_from(["cycle", "clone", "snapshot", "destroy"]))
actions = st.one_of(
    vm_ops,
    st.tuples(st.just("storm"), st.integers(100, 600), st.floats(0.2, 1.0)),
    vm_ops,
    st.tuples(st.just("drop")),
    st.tuples(st.just("overflow")),
    vm_ops,
    st.tuples(st.just("expire")),
    st.tuples(st.just("failover")),
)


@pytest.fixture(scope="module")
def fault_sim():
    sim = start_sim("--op-seconds", "0", "--history", "2000")
    yield sim
    sim.stop()


async def vm_action(sim, what: str, rng: random.Random) -> None:
    c = XapiClient(master_url(sim), sim.user, sim.password)
    try:
        vms = {
            r: v
            for r, v in (await c.call("VM.get_all_records")).items()
            if not v["is_a_template"] and not v["is_control_domain"]
        }
        ref = rng.choice(sorted(vms))
        if what == "cycle":
            if vms[ref]["power_state"] == "Running":
                await c.call("VM.hard_shutdown", ref)
            else:
                await c.call("VM.start", ref, False, False)
        elif what == "clone":
            if vms[ref]["power_state"] != "Halted":
                await c.call("VM.hard_shutdown", ref)
            await c.call("VM.clone", ref, f"clone {rng.randrange(1000)}")
        elif what == "snapshot":
            await c.call("VM.snapshot", ref, "snap")
        elif what == "destroy":  # a clone or snapshot if there is one, else a clone made for the purpose
            every = await c.call("VM.get_all_records")
            doomed = [
                r for r, v in every.items() if v["name_label"].startswith("clone ") or v["is_a_snapshot"]
            ]
            if not doomed:
                if vms[ref]["power_state"] != "Halted":
                    await c.call("VM.hard_shutdown", ref)
                doomed = [await c.call("VM.clone", ref, "clone to destroy")]
            await c.call("VM.destroy", rng.choice(doomed))
    except XapiError:
        pass  # an operation refused by the pool (wrong power state …) is part of the game
    finally:
        await c.close()


async def failover(sim) -> None:
    (pool,) = sim.ctl("GET", "/pools")
    master = next(h for h in pool["hosts"] if h["master"])
    member = next(h for h in pool["hosts"] if not h["master"])
    sim.ctl("POST", f"/pools/0/hosts/{master['uuid']}/stop")
    await asyncio.sleep(0.3)
    sim.ctl("POST", "/pools/0/promote", {"host": member["uuid"]})
    await asyncio.sleep(0.5)
    sim.ctl("POST", f"/pools/0/hosts/{master['uuid']}/start")


async def scenario(sim, steps, seed: int) -> dict:
    rng = random.Random(seed)
    async with watched(sim, master_url(sim)) as w:
        for step in steps:
            kind = step[0]
            if kind == "storm":
                sim.ctl("POST", "/pools/0/storm", {"rate": step[1], "seconds": step[2], "seed": seed})
                await asyncio.sleep(step[2] / 2)
            elif kind == "drop":
                sim.ctl("POST", "/drop-connections")
            elif kind == "overflow":
                sim.ctl("POST", "/pools/0/overflow-events")
            elif kind == "expire":
                sim.ctl("POST", "/expire-sessions")
            elif kind == "failover":
                await failover(sim)
            else:
                await vm_action(sim, step[1], rng)
            if kind == "storm":
                await asyncio.sleep(step[2] / 2 + 0.2)  # let it end
            # After every step, not only the last: a fault's full resync would hide an event-path bug.
            diff = await w.converge(timeout=30)
            if diff:
                return {"after": step, **diff}
        sim.ctl("DELETE", "/pools/0/storm")
        await w.wait(lambda: w.watcher.status.state == "connected", timeout=30)
        return {}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(actions, min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_cache_equals_the_pool_after_any_storm_of_faults(fault_sim, steps, seed):
    assert asyncio.run(scenario(fault_sim, steps, seed)) == {}
