"""event.from / inject / register / next over JSON-RPC, and the control surface's faults."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ..harness.simproc import Sim, XapiFailure, call, fails, jsonrpc, login

pytestmark = pytest.mark.integration


def a_vm(sim: Sim, s: str) -> str:
    records = call(sim, "VM.get_all_records", s)
    return next(r for r, v in records.items() if not v["is_a_template"] and not v["is_control_domain"])


def test_events_from_waits_then_hands_over_the_change(sim):
    s = login(sim)
    vm = a_vm(sim, s)
    pool = call(sim, "pool.get_all", s)[0]
    token = call(sim, "event.inject", s, "pool", pool)
    first = call(sim, "event.from", s, ["vm"], token, 0.1)  # the injected pool event is not a vm one
    assert first["events"] == [] and first["token"] > token
    with ThreadPoolExecutor(1) as ex:
        waiting = ex.submit(call, sim, "event.from", s, ["vm"], first["token"], 10.0)
        time.sleep(0.3)
        assert not waiting.done()
        begin = time.monotonic()
        call(sim, "VM.set_name_description", s, vm, "changed")
        batch = waiting.result(timeout=5)
        assert time.monotonic() - begin < 1
    (event,) = batch["events"]
    assert event["class"] == "vm" and event["operation"] == "mod" and event["ref"] == vm
    assert event["snapshot"]["name_description"] == "changed" and isinstance(event["id"], str)
    assert batch["valid_ref_counts"]["vm"] == 67 and "task" in batch["valid_ref_counts"]


def test_events_from_empty_token_returns_everything(sim):
    s = login(sim)
    batch = call(sim, "event.from", s, ["vm", "host"], "", 1.0)
    adds = [e for e in batch["events"] if e["operation"] == "add"]
    assert len(adds) == 69 and {e["class"] for e in adds} == {"vm", "host"}


def test_events_from_reports_deletes_without_snapshot(sim):
    s = login(sim)
    vm = a_vm(sim, s)
    call(sim, "VM.hard_shutdown", s, vm)
    clone = call(sim, "VM.clone", s, vm, "short-lived")
    token = call(sim, "event.from", s, ["vm"], "", 0)["token"]
    call(sim, "VM.destroy", s, clone)
    events = call(sim, "event.from", s, ["vm"], token, 1.0)["events"]
    (gone,) = [e for e in events if e["ref"] == clone]
    assert gone["operation"] == "del" and "snapshot" not in gone


def test_events_bad_tokens_and_lost_history(sim):
    s = login(sim)
    assert fails(call, sim, "event.from", s, ["vm"], "garbage", 0.1) == [
        "EVENT_FROM_TOKEN_PARSE_FAILURE",
        "garbage",
    ]
    assert fails(call, sim, "event.from", s, ["vm/"], "", 0.1) == ["EVENT_SUBSCRIPTION_PARSE_FAILURE", "vm/"]
    token = call(sim, "event.from", s, ["vm"], "", 0)["token"]
    sim.ctl("POST", "/pools/0/overflow-events")
    assert fails(call, sim, "event.from", s, ["vm"], token, 0.1) == ["EVENTS_LOST"]
    fresh = call(sim, "event.from", s, ["vm"], "", 0)["token"]
    assert call(sim, "event.from", s, ["vm"], fresh, 0.1)["events"] == []


def test_events_waiting_call_ends_when_the_session_does(sim):
    s = login(sim)
    token = call(sim, "event.from", s, ["vm"], "", 0)["token"]
    with ThreadPoolExecutor(1) as ex:
        waiting = ex.submit(call, sim, "event.from", s, ["vm"], token, 30.0)
        time.sleep(0.3)
        assert sim.ctl("POST", "/expire-sessions")["expired"] >= 1
        with pytest.raises(XapiFailure) as e:
            waiting.result(timeout=5)
    assert e.value.details == ["SESSION_INVALID", s]


def test_events_legacy_register_and_next(sim):
    s = login(sim)
    assert fails(call, sim, "event.next", s)[0] == "SESSION_NOT_REGISTERED"
    vm = a_vm(sim, s)
    call(sim, "event.register", s, ["vm"])
    call(sim, "VM.set_name_description", s, vm, "one")
    call(sim, "VM.set_name_description", s, vm, "two")
    events = call(sim, "event.next", s)
    assert [e["snapshot"]["name_description"] for e in events] == ["one", "two"]  # not coalesced
    assert isinstance(call(sim, "event.get_current_id", s), int)
    call(sim, "event.unregister", s, ["vm"])


def test_events_storm_reaches_a_follower_in_order(sim):
    s = login(sim)
    token = call(sim, "event.from", s, ["vm", "vm_metrics"], "", 0)["token"]
    sim.ctl("POST", "/pools/0/storm", {"rate": 500, "seconds": 1, "seed": 1})
    seen = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        batch = call(sim, "event.from", s, ["vm", "vm_metrics"], token, 1.0)
        token = batch["token"]
        seen += len(batch["events"])
        if not batch["events"] and seen:
            break
    done = sim.ctl("DELETE", "/pools/0/storm")["modifications"]
    assert done >= 450 and seen > 0


def test_member_host_redirects_and_master_moves(sim):
    member, master_address = sim.member(), sim.master().url.split("//")[1].split(":")[0]
    assert fails(login, sim, url=member.url) == ["HOST_IS_SLAVE", master_address]
    s = login(sim)
    hosts = call(sim, "host.get_all_records", s)
    new_master = next(r for r, h in hosts.items() if h["address"] in member.url)
    call(sim, "pool.designate_new_master", s, new_master)
    assert fails(call, sim, "VM.get_all", s)[0] == "SESSION_INVALID"  # xapi restarted on the new master
    assert fails(login, sim) == ["HOST_IS_SLAVE", member.url.split("//")[1].split(":")[0]]
    s2 = login(sim, url=member.url)
    assert (
        call(sim, "pool.get_master", s2, call(sim, "pool.get_all", s2, url=member.url)[0], url=member.url)
        == new_master
    )


def test_stopped_master_refuses_connections_until_emergency_transition(sim):
    master, member = sim.master(), sim.member()
    sim.ctl("POST", f"/pools/0/hosts/{master.name}/stop")
    with pytest.raises(OSError):
        login(sim, url=master.url)
    assert fails(login, sim, url=member.url)[0] == "HOST_IS_SLAVE"  # still names the dead master
    local = jsonrpc(member.url, "session.slave_local_login_with_password", sim.user, sim.password)
    jsonrpc(member.url, "pool.emergency_transition_to_master", local)
    s = login(sim, url=member.url)
    assert len(call(sim, "VM.get_all", s, url=member.url)) == 67
    sim.ctl("POST", f"/pools/0/hosts/{master.name}/start")
    assert fails(login, sim, url=master.url)[0] == "HOST_IS_SLAVE"


def test_drop_connections_aborts_a_waiting_call(sim):
    s = login(sim)
    token = call(sim, "event.from", s, ["vm"], "", 0)["token"]
    with ThreadPoolExecutor(1) as ex:
        waiting = ex.submit(call, sim, "event.from", s, ["vm"], token, 30.0)
        time.sleep(0.3)
        assert sim.ctl("POST", "/drop-connections")["dropped"] >= 1
        with pytest.raises(OSError):
            waiting.result(timeout=5)
    assert call(sim, "event.from", s, ["vm"], token, 0.1)["events"] == []  # and serving goes on
