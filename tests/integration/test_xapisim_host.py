"""Hosts in the simulator as xapi runs them: disable and enable, evacuation and its refusals, reboot and
shutdown (the VMs shut down or moved, the host away, then back), agent restarts, over JSON-RPC."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..harness.simproc import Sim, XapiFailure, call, fails, jsonrpc, login, start_sim

pytestmark = pytest.mark.integration


@pytest.fixture
def hsim() -> Iterator[Sim]:
    """A fresh simulator whose hosts reboot in a fraction of a second."""
    sim = start_sim("--op-seconds", "0.01", "--boot-seconds", "0.6")
    yield sim
    sim.stop()


def by_name(sim: Sim, s: str, cls: str) -> dict[str, str]:
    return {r["name_label"]: ref for ref, r in call(sim, f"{cls}.get_all_records", s).items()}


def answers(url: str) -> bool:
    """Whether a host's listener takes calls (system.isAlive needs no session)."""
    try:
        jsonrpc(url, "system.isAlive", "ping", timeout=2)
    except OSError:
        return False
    return True


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, XapiFailure):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, "the expected state never came"
        time.sleep(0.02)


def host_events(sim: Sim, s: str, token: str) -> list[dict[str, Any]]:
    return [e for e in call(sim, "event.from", s, ["host"], token, 0.1)["events"] if e["class"] == "host"]


def test_disable_enable_and_allowed_operations(hsim):
    s = login(hsim)
    dt23 = by_name(hsim, s, "host")["dt23"]
    pool = call(hsim, "pool.get_all", s)[0]
    token = call(hsim, "event.inject", s, "pool", pool)
    assert fails(call, hsim, "host.reboot", s, dt23) == ["HOST_NOT_DISABLED"]
    assert fails(call, hsim, "host.shutdown", s, dt23) == ["HOST_NOT_DISABLED"]
    call(hsim, "host.disable", s, dt23)
    record = call(hsim, "host.get_record", s, dt23)
    assert record["enabled"] is False
    assert {"reboot", "shutdown", "evacuate", "vm_start"} <= set(record["allowed_operations"])
    assert "power_on" not in record["allowed_operations"]  # the host is live, and has no power-on plugin
    (event,) = [e for e in host_events(hsim, s, token) if e["ref"] == dt23]  # coalesced, as event.from does
    assert event["snapshot"]["enabled"] is False and "reboot" in event["snapshot"]["allowed_operations"]
    call(hsim, "host.enable", s, dt23)
    record = call(hsim, "host.get_record", s, dt23)
    assert record["enabled"] is True and "reboot" not in record["allowed_operations"]
    assert fails(call, hsim, "host.disable", s, "OpaqueRef:nope") == [
        "HANDLE_INVALID",
        "host",
        "OpaqueRef:nope",
    ]


def test_evacuate_moves_what_can_move_and_refuses_before_moving_anything(hsim):
    s = login(hsim)
    hosts, vms = by_name(hsim, s, "host"), by_name(hsim, s, "VM")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]
    vbds = call(hsim, "VM.get_VBDs", s, vms["23local"])
    disk = next(v for v in vbds if not call(hsim, "VBD.get_empty", s, v))
    local_sr = call(hsim, "VDI.get_SR", s, call(hsim, "VBD.get_VDI", s, disk))
    # 23local's disk is on dt23's local storage: it cannot leave, and says why
    assert call(hsim, "host.get_vms_which_prevent_evacuation", s, dt23) == {
        vms["23local"]: ["VM_REQUIRES_SR", vms["23local"], local_sr]
    }
    assert fails(call, hsim, "host.evacuate", s, dt23) == ["VM_REQUIRES_SR", vms["23local"], local_sr]
    assert fails(call, hsim, "host.assert_can_evacuate", s, dt23)[0] == "CANNOT_EVACUATE_HOST"
    assert call(hsim, "VM.get_resident_on", s, vms["23shared"]) == dt23  # nothing moved
    assert call(hsim, "host.get_current_operations", s, dt23) == {}

    call(hsim, "VM.hard_shutdown", s, vms["23local"])
    assert call(hsim, "host.get_vms_which_prevent_evacuation", s, dt23) == {}
    domid = call(hsim, "VM.get_domid", s, vms["23shared"])
    hsim.ctl("POST", "/settings", {"op_seconds": 0.5})
    task = call(hsim, "Async.host.evacuate", s, dt23)
    # while it runs the host holds it, and takes no VM in
    until(lambda: call(hsim, "host.get_current_operations", s, dt23) == {task: "evacuate"})
    allowed = call(hsim, "host.get_allowed_operations", s, dt23)
    assert "vm_migrate" not in allowed and "vm_resume" not in allowed and "vm_start" in allowed
    assert fails(call, hsim, "host.evacuate", s, dt16)[:2] == ["VM_REQUIRES_SR", vms["16local"]]
    until(lambda: call(hsim, "task.get_status", s, task) == "success")
    assert call(hsim, "task.get_progress", s, task) == 1.0
    hsim.ctl("POST", "/settings", {"op_seconds": 0.01})
    vm = call(hsim, "VM.get_record", s, vms["23shared"])
    assert vm["resident_on"] == dt16 and vm["power_state"] == "Running" and vm["domid"] != domid
    assert call(hsim, "host.get_resident_VMs", s, dt23) == [
        r
        for r, v in call(hsim, "VM.get_all_records", s).items()
        if v["is_control_domain"] and v["resident_on"] == dt23
    ]
    assert call(hsim, "host.get_enabled", s, dt23) is True  # evacuating is not disabling
    record = call(hsim, "host.get_record", s, dt23)
    assert record["current_operations"] == {} and "vm_migrate" in record["allowed_operations"]
    messages = call(hsim, "message.get_all_records", s).values()
    assert any(m["name"] == "VM_MIGRATED" for m in messages)
    # nowhere to go: every VM says so
    call(hsim, "host.disable", s, dt23)
    assert call(hsim, "host.get_vms_which_prevent_evacuation", s, dt16) == {
        v: ["NO_HOSTS_AVAILABLE", v] for v in (vms["16local"], vms["16shared"], vms["23shared"])
    }


def test_evacuate_and_migrate_need_memory_on_the_target(hsim):
    s = login(hsim)
    hosts, vms = by_name(hsim, s, "host"), by_name(hsim, s, "VM")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]
    free16 = int(call(hsim, "host.compute_free_memory", s, dt16))
    assert 7 << 30 < free16 < 8 << 30  # 8 GiB less the host's overhead, dom0 and two small guests
    # a big guest on dt16 leaves less than 23shared needs
    call(hsim, "VM.hard_shutdown", s, vms["16shared"])
    size = free16 + 64 * 2**20 - 16 * 2**20
    call(hsim, "VM.set_memory_limits", s, vms["16shared"], 64 * 2**20, size, size, size)
    call(hsim, "VM.start_on", s, vms["16shared"], dt16, False, False)
    left = int(call(hsim, "host.compute_free_memory", s, dt16))
    needed = 64 * 2**20 + int(call(hsim, "VM.get_memory_overhead", s, vms["23shared"]))
    assert 0 < left < needed
    assert fails(call, hsim, "VM.pool_migrate", s, vms["23shared"], dt16, {}) == [
        "HOST_NOT_ENOUGH_FREE_MEMORY",
        str(needed),
        str(left),
    ]
    call(hsim, "VM.hard_shutdown", s, vms["23local"])
    assert call(hsim, "host.get_vms_which_prevent_evacuation", s, dt23) == {
        vms["23shared"]: ["HOST_NOT_ENOUGH_FREE_MEMORY", vms["23shared"]]
    }
    assert fails(call, hsim, "host.evacuate", s, dt23) == ["HOST_NOT_ENOUGH_FREE_MEMORY", vms["23shared"]]
    assert call(hsim, "VM.get_resident_on", s, vms["23shared"]) == dt23


def test_reboot_of_a_member_moves_or_stops_its_vms_and_brings_it_back(hsim):
    s = login(hsim)
    hosts, vms = by_name(hsim, s, "host"), by_name(hsim, s, "VM")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]
    member = hsim.member()
    before = call(hsim, "host.get_other_config", s, dt23)
    metrics = call(hsim, "host.get_metrics", s, dt23)
    call(hsim, "host.disable", s, dt23)
    call(hsim, "host.reboot", s, dt23)
    # answered at once: the master counts the host as dead, the reboot is under way
    assert call(hsim, "host_metrics.get_live", s, metrics) is False
    record = call(hsim, "host.get_record", s, dt23)
    assert list(record["current_operations"].values()) == ["reboot"]
    assert "shutdown" not in record["allowed_operations"]
    assert fails(call, hsim, "host.enable", s, dt23) == ["HOST_OFFLINE", dt23]
    until(lambda: not answers(member.url))  # its listener is closed: connections are refused
    assert call(hsim, "VM.get_power_state", s, vms["23local"]) == "Halted"  # local disk: shut down
    moved = call(hsim, "VM.get_record", s, vms["23shared"])
    assert moved["power_state"] == "Running" and moved["resident_on"] == dt16  # migrated away
    names = [m["name"] for m in call(hsim, "message.get_all_records", s).values()]
    assert "VM_SHUTDOWN" in names and "VM_MIGRATED" in names
    until(lambda: answers(member.url))
    until(lambda: call(hsim, "host.get_enabled", s, dt23))
    record = call(hsim, "host.get_record", s, dt23)
    assert record["current_operations"] == {} and "reboot" not in record["allowed_operations"]
    assert call(hsim, "host_metrics.get_live", s, metrics) is True
    after = record["other_config"]
    assert float(after["boot_time"]) > float(before["boot_time"])
    assert float(after["agent_start_time"]) > float(before["agent_start_time"])
    call(hsim, "session.logout", s)  # the master's sessions lived through a member's reboot


def test_reboot_of_the_master_ends_its_sessions(hsim):
    s = login(hsim)
    hosts, vms = by_name(hsim, s, "host"), by_name(hsim, s, "VM")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]
    master = hsim.master()
    call(hsim, "host.disable", s, dt16)
    task = call(hsim, "Async.host.reboot", s, dt16)
    until(lambda: call(hsim, "task.get_status", s, task) == "success")
    until(lambda: not answers(master.url))
    until(lambda: answers(master.url))
    assert fails(call, hsim, "VM.get_all", s) == ["SESSION_INVALID", s]  # xapi keeps no session on disk
    s = login(hsim)
    until(lambda: call(hsim, "host.get_enabled", s, dt16))
    assert call(hsim, "VM.get_power_state", s, vms["16local"]) == "Halted"
    assert call(hsim, "VM.get_resident_on", s, vms["16shared"]) == dt23
    assert call(hsim, "pool.get_master", s, call(hsim, "pool.get_all", s)[0]) == dt16


def test_shutdown_keeps_the_host_off_until_it_is_powered_on(hsim):
    s = login(hsim)
    dt23 = by_name(hsim, s, "host")["dt23"]
    member = hsim.member()
    metrics = call(hsim, "host.get_metrics", s, dt23)
    call(hsim, "host.disable", s, dt23)
    call(hsim, "host.shutdown", s, dt23)
    until(lambda: not answers(member.url))
    time.sleep(1.0)  # longer than a reboot: it stays off
    assert not answers(member.url) and call(hsim, "host_metrics.get_live", s, metrics) is False
    assert call(hsim, "host.get_resident_VMs", s, dt23) == [
        r
        for r, v in call(hsim, "VM.get_all_records", s).items()
        if v["is_control_domain"] and v["resident_on"] == dt23
    ]
    hsim.ctl("POST", f"/pools/0/hosts/{member.name}/start")  # the power button
    until(lambda: call(hsim, "host.get_enabled", s, dt23))
    assert call(hsim, "host_metrics.get_live", s, metrics) is True


def test_restart_agent_keeps_vms_running_and_ends_a_masters_sessions(hsim):
    s = login(hsim)
    hosts = by_name(hsim, s, "host")
    dt16, dt23 = hosts["dt16"], hosts["dt23"]
    running = {
        r: v["domid"] for r, v in call(hsim, "VM.get_all_records", s).items() if v["power_state"] == "Running"
    }
    started = float(call(hsim, "host.get_other_config", s, dt16)["agent_start_time"])
    boot = call(hsim, "host.get_other_config", s, dt16)["boot_time"]
    assert call(hsim, "host.restart_agent", s, dt16) == ""  # answered before it goes
    until(lambda: not answers(hsim.master().url))
    until(lambda: answers(hsim.master().url))
    assert fails(call, hsim, "host.get_enabled", s, dt16) == ["SESSION_INVALID", s]
    s = login(hsim)
    until(lambda: call(hsim, "host.get_enabled", s, dt16))
    other = call(hsim, "host.get_other_config", s, dt16)
    assert float(other["agent_start_time"]) > started and other["boot_time"] == boot
    assert {r: v["domid"] for r, v in call(hsim, "VM.get_all_records", s).items() if r in running} == running

    # a member's: the master's sessions live on; a disable is forgotten; HOST_STILL_BOOTING meanwhile
    call(hsim, "host.disable", s, dt23)
    hsim.ctl("POST", "/settings", {"op_seconds": 1.0})
    call(hsim, "host.restart_agent", s, dt23)
    until(lambda: not answers(hsim.member().url))
    until(lambda: answers(hsim.member().url))
    assert fails(call, hsim, "host.enable", s, dt23) == ["HOST_STILL_BOOTING"]
    until(lambda: call(hsim, "host.get_enabled", s, dt23))
    assert call(hsim, "host.get_allowed_operations", s, dt23).count("reboot") == 0
