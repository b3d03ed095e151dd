"""The official XenAPI Python SDK (XML-RPC) against the simulator: sessions, records, lifecycle, tasks."""

from __future__ import annotations

import time

import pytest
import XenAPI

from ..harness.simproc import Sim, XapiFailure, jsonrpc, vbd_fields, vdi_fields

pytestmark = pytest.mark.integration

_open: list[XenAPI.Session] = []


@pytest.fixture(autouse=True)
def _close_sdk_sessions():
    yield
    while _open:
        s = _open.pop()
        try:
            if s._session:
                s.xenapi.session.logout()
        except (XenAPI.Failure, OSError):
            pass
        s._ServerProxy__close()


def connect(url: str) -> XenAPI.Session:
    s = XenAPI.Session(url + "/")
    _open.append(s)
    return s


def session(sim: Sim, url: str | None = None) -> XenAPI.Session:
    s = connect(url or sim.master().url)
    s.xenapi.login_with_password(sim.user, sim.password, "2.0", "podium-tests")
    return s


def failure(fn, *args) -> list[str]:
    with pytest.raises(XenAPI.Failure) as e:
        fn(*args)
    return e.value.details


def guests(x) -> dict[str, dict]:
    return {
        r: v
        for r, v in x.VM.get_all_records().items()
        if not v["is_a_template"] and not v["is_control_domain"]
    }


def test_sdk_login_on_member_names_the_master(shared_sim):
    s = connect(shared_sim.member().url)
    details = failure(s.xenapi.login_with_password, "root", "whatever", "2.0", "t")
    assert details == ["HOST_IS_SLAVE", shared_sim.master().url.split("//")[1].split(":")[0]]


def test_sdk_login_with_wrong_password_fails_after_a_delay(shared_sim):
    s = connect(shared_sim.master().url)
    begin = time.monotonic()
    assert failure(s.xenapi.login_with_password, "root", "wrong") == [
        "SESSION_AUTHENTICATION_FAILED",
        "root",
        "Authentication failure",
    ]
    assert time.monotonic() - begin >= 0.2


def test_sdk_logout_ends_the_session(shared_sim):
    s = session(shared_sim)
    ref = s._session
    s.xenapi.session.logout()
    with pytest.raises(XapiFailure) as e:
        jsonrpc(shared_sim.master().url, "VM.get_all", ref)
    assert e.value.details == ["SESSION_INVALID", ref]


def test_sdk_reads_every_record_of_every_class(shared_sim):
    s = session(shared_sim)
    x = s.xenapi
    counts = {}
    from xapisim.datamodel import load_datamodel

    for cls in load_datamodel().classes.values():
        if "get_all_records" not in cls.messages:
            continue
        records = getattr(x, cls.name).get_all_records()
        counts[cls.name] = len(records)
        for ref, rec in list(records.items())[:3]:
            assert getattr(x, cls.name).get_record(ref) == rec
            if "uuid" in rec and "get_by_uuid" in cls.messages:
                assert getattr(x, cls.name).get_by_uuid(rec["uuid"]) == ref
    assert counts["VM"] == 67 and counts["host"] == 2 and counts["SR"] == 8 and counts["pool"] == 1


def test_sdk_generic_messages_and_their_errors(sim):
    s = session(sim)
    x = s.xenapi
    ref = next(iter(guests(x)))
    x.VM.set_name_label(ref, "renamed")
    assert x.VM.get_name_label(ref) == "renamed"
    assert ref in x.VM.get_by_name_label("renamed")
    x.VM.add_to_other_config(ref, "k", "v")
    assert x.VM.get_other_config(ref)["k"] == "v"
    assert failure(x.VM.add_to_other_config, ref, "k", "w") == [
        "MAP_DUPLICATE_KEY",
        "VM",
        "other_config",
        ref,
        "k",
    ]
    x.VM.remove_from_other_config(ref, "k")
    assert "k" not in x.VM.get_other_config(ref)
    x.VM.add_tags(ref, "prod")
    x.VM.add_tags(ref, "prod")
    assert x.VM.get_tags(ref) == ["prod"]
    x.VM.remove_tags(ref, "prod")
    assert x.VM.get_tags(ref) == []
    assert failure(x.VM.get_record, "OpaqueRef:nope") == ["HANDLE_INVALID", "VM", "OpaqueRef:nope"]
    assert failure(x.SR.get_by_uuid, "nope") == ["UUID_INVALID", "SR", "nope"]
    assert failure(x.VM.start, ref) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.start", "3", "1"]
    assert failure(x.VM.frobnicate, ref) == ["MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"]
    assert failure(x.Gizmo.get_all) == ["MESSAGE_METHOD_UNKNOWN", "Gizmo.get_all"]
    assert failure(x.VM.start, ref, "yes", False) == ["FIELD_TYPE_ERROR", "start_paused"]
    assert failure(x.VM.set_VCPUs_at_startup, ref, "many") == ["FIELD_TYPE_ERROR", "value"]
    assert failure(x.VM.get_VBDs, ref, "extra") == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "VM.get_VBDs",
        "1",
        "2",
    ]


def test_sdk_vm_lifecycle_keeps_state_true(sim):
    s = session(sim)
    x = s.xenapi
    ref, vm = next((r, v) for r, v in guests(x).items() if v["power_state"] == "Running")
    assert failure(x.VM.start, ref, False, False) == ["VM_BAD_POWER_STATE", ref, "halted", "running"]
    x.VM.clean_shutdown(ref)
    vm = x.VM.get_record(ref)
    assert vm["power_state"] == "Halted" and vm["resident_on"] == "OpaqueRef:NULL" and vm["domid"] == "-1"
    assert vm["guest_metrics"] == "OpaqueRef:NULL" and "start" in vm["allowed_operations"]
    assert all(not x.VBD.get_currently_attached(v) for v in vm["VBDs"])
    assert failure(x.VM.hard_shutdown, ref) == [
        "VM_BAD_POWER_STATE",
        ref,
        "paused, suspended, running",
        "halted",
    ]
    x.VM.start(ref, False, False)
    vm = x.VM.get_record(ref)
    assert vm["power_state"] == "Running" and int(vm["domid"]) > 0
    assert ref in x.host.get_resident_VMs(vm["resident_on"])
    metrics = x.VM_metrics.get_record(vm["metrics"])
    assert metrics["VCPUs_number"] == vm["VCPUs_at_startup"]
    networks = x.VM_guest_metrics.get_networks(vm["guest_metrics"])
    assert networks and all(a.startswith("198.1") for a in networks.values())
    domid = vm["domid"]
    x.VM.clean_reboot(ref)
    assert x.VM.get_domid(ref) != domid
    x.VM.suspend(ref)
    vm = x.VM.get_record(ref)
    assert vm["power_state"] == "Suspended" and x.VDI.get_type(vm["suspend_VDI"]) == "suspend"
    x.VM.resume(ref, False, False)
    assert x.VM.get_suspend_VDI(ref) == "OpaqueRef:NULL"
    x.VM.pause(ref)
    assert x.VM.get_power_state(ref) == "Paused"
    assert set(x.VM.get_allowed_operations(ref)) == {
        "hard_reboot",
        "hard_shutdown",
        "unpause",
        "checkpoint",
        "snapshot",
    }
    x.VM.unpause(ref)
    x.VM.hard_shutdown(ref)
    host = next(iter(x.host.get_all()))
    x.VM.start_on(ref, host, False, False)
    assert x.VM.get_resident_on(ref) == host
    dom0 = next(r for r, v in x.VM.get_all_records().items() if v["is_control_domain"])
    assert failure(x.VM.clean_shutdown, dom0)[0] == "OPERATION_NOT_ALLOWED"
    template = next(r for r, v in x.VM.get_all_records().items() if v["is_a_template"])
    assert failure(x.VM.start, template, False, False) == ["VM_IS_TEMPLATE", template, "start"]
    assert any(m["name"] == "VM_STARTED" for m in x.message.get_all_records().values())


def test_sdk_clone_snapshot_revert_destroy(sim):
    s = session(sim)
    x = s.xenapi
    ref, vm = next((r, v) for r, v in guests(x).items() if v["VBDs"] and v["VIFs"])
    if vm["power_state"] != "Halted":
        x.VM.hard_shutdown(ref)
    disks_before = len(x.VDI.get_all())
    clone = x.VM.clone(ref, "a clone")
    c = x.VM.get_record(clone)
    assert c["name_label"] == "a clone" and c["power_state"] == "Halted" and not c["is_a_snapshot"]
    assert len(c["VBDs"]) == len(vm["VBDs"]) and len(c["VIFs"]) == len(vm["VIFs"])
    assert {x.VIF.get_MAC(v) for v in c["VIFs"]}.isdisjoint({x.VIF.get_MAC(v) for v in vm["VIFs"]})
    snap = x.VM.snapshot(ref, "snap")
    sn = x.VM.get_record(snap)
    assert sn["is_a_snapshot"] and sn["is_a_template"] and sn["snapshot_of"] == ref
    assert snap in x.VM.get_snapshots(ref) and x.VM.get_parent(ref) == snap
    assert set(sn["allowed_operations"]) == {"destroy", "export", "revert", "clone", "copy"}
    assert failure(x.VM.start, snap, False, False) == ["VM_IS_SNAPSHOT", snap, "start"]
    x.VM.set_name_description(ref, "changed after the snapshot")
    x.VM.revert(snap)
    assert x.VM.get_power_state(ref) == "Halted"
    x.VM.destroy(clone)
    assert failure(x.VM.get_record, clone)[0] == "HANDLE_INVALID"
    assert len(x.VDI.get_all()) > disks_before  # VM.destroy keeps disks, as xapi
    running = next(r for r, v in guests(x).items() if v["power_state"] == "Running")
    assert failure(x.VM.destroy, running)[0] == "VM_BAD_POWER_STATE"


def test_sdk_provision_from_a_template(sim):
    s = session(sim)
    x = s.xenapi
    template = next(
        r for r, v in x.VM.get_all_records().items() if v["is_a_template"] and "disks" in v["other_config"]
    )
    new = x.VM.clone(template, "installed")
    assert x.VM.get_is_a_template(new)
    x.VM.provision(new)
    vm = x.VM.get_record(new)
    assert not vm["is_a_template"] and "disks" not in vm["other_config"] and vm["VBDs"]
    vdi = x.VBD.get_VDI(vm["VBDs"][0])
    assert x.VDI.get_name_description(vdi) == "Created by template provisioner"
    assert failure(x.VM.provision, new) == ["ONLY_PROVISION_TEMPLATE"]
    x.VM.start(new, False, False)


def test_sdk_devices_cd_and_interfaces(sim):
    s = session(sim)
    x = s.xenapi
    ref, vm = next((r, v) for r, v in guests(x).items() if v["power_state"] == "Running")
    iso = x.VDI.get_by_name_label("xs-tools.iso")[0]
    cd = x.VBD.create(vbd_fields(ref, "OpaqueRef:NULL", mode="RO", type="CD", empty=True))
    assert failure(x.VBD.eject, cd) == ["VBD_IS_EMPTY", cd]
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    disk_vdi = x.VDI.create(vdi_fields(sr, 1 << 30))
    x.VBD.insert(cd, iso)
    assert x.VBD.get_VDI(cd) == iso and not x.VBD.get_empty(cd)
    assert failure(x.VBD.insert, cd, iso) == ["VBD_NOT_EMPTY", cd]
    x.VBD.eject(cd)
    assert x.VBD.get_empty(cd)
    disk_vbd = x.VBD.create(vbd_fields(ref, disk_vdi))
    assert failure(x.VBD.insert, disk_vbd, disk_vdi) == ["VBD_NOT_REMOVABLE_MEDIA", disk_vbd]
    x.VBD.plug(disk_vbd)
    assert failure(x.VBD.plug, disk_vbd) == ["DEVICE_ALREADY_ATTACHED", disk_vbd]
    assert failure(x.VDI.destroy, disk_vdi) == ["VDI_IN_USE", disk_vdi, "destroy"]
    x.VBD.unplug(disk_vbd)
    x.VDI.destroy(disk_vdi)
    assert failure(x.VBD.get_record, disk_vbd)[0] == "HANDLE_INVALID"
    network = next(iter(x.network.get_all()))
    qos = {"qos_algorithm_type": "", "qos_algorithm_params": {}}
    vif = x.VIF.create(
        {"device": "", "network": network, "VM": ref, "MAC": "", "MTU": "0", "other_config": {}, **qos}
    )
    rec = x.VIF.get_record(vif)
    assert rec["MAC"] and rec["device"] not in {x.VIF.get_device(v) for v in vm["VIFs"]}
    assert vif in x.network.get_VIFs(network)
    x.SR.scan(sr)


def test_sdk_async_tasks_report_progress_and_can_be_cancelled(sim):
    sim.ctl("POST", "/settings", {"op_seconds": 1.0})
    s = session(sim)
    x = s.xenapi
    ref = next(r for r, v in guests(x).items() if v["power_state"] == "Running")
    task = x.Async.VM.clean_shutdown(ref)
    rec = x.task.get_record(task)
    assert rec["status"] == "pending" and rec["name_label"] == "Async.VM.clean_shutdown"
    time.sleep(0.3)
    assert x.VM.get_current_operations(ref) == {task: "clean_shutdown"}
    assert 0 < float(x.task.get_progress(task)) < 1
    x.task.cancel(task)
    while x.task.get_status(task) in ("pending", "cancelling"):
        time.sleep(0.05)
    rec = x.task.get_record(task)
    assert rec["status"] == "cancelled" and rec["error_info"] == ["TASK_CANCELLED", task]
    assert x.VM.get_power_state(ref) == "Running" and x.VM.get_current_operations(ref) == {}
    sim.ctl("POST", "/settings", {"op_seconds": 0.0})
    snap_task = x.Async.VM.snapshot(ref, "async snapshot")
    while x.task.get_status(snap_task) == "pending":
        time.sleep(0.02)
    assert x.task.get_status(snap_task) == "success"
    result = x.task.get_result(snap_task)
    assert result.startswith("<value>OpaqueRef:") and result.endswith("</value>")
    assert x.VM.get_snapshot_of(result[len("<value>") : -len("</value>")]) == ref
    failed = x.Async.VM.start(ref, False, False)
    while x.task.get_status(failed) == "pending":
        time.sleep(0.02)
    assert x.task.get_status(failed) == "failure"
    assert x.task.get_error_info(failed) == ["VM_BAD_POWER_STATE", ref, "halted", "running"]
    details = failure(x.Async.VM.get_name_label, ref)
    assert details[0] == "Fault"


def test_sdk_waits_for_events_of_a_vm_lifecycle(sim):
    s = session(sim)
    x = s.xenapi
    ref = next(r for r, v in guests(x).items() if v["power_state"] == "Running")
    event_from = getattr(x.event, "from")
    token = event_from(["vm"], "", 0.0)["token"]
    task = x.Async.VM.hard_shutdown(ref)
    states = []
    deadline = time.monotonic() + 10
    while "Halted" not in states and time.monotonic() < deadline:
        batch = event_from([f"vm/{ref}"], token, 5.0)
        token = batch["token"]
        states += [e["snapshot"]["power_state"] for e in batch["events"] if e["ref"] == ref]
    assert states[-1] == "Halted"
    assert x.task.get_status(task) == "success"


def test_sdk_underscore_names_are_answered_as_xapi_answers_them(sim):
    """``session.xenapi.event_from``: the SDK's way round ``from`` being a Python keyword. xapi's generated
    server matches every message as ``Class_message`` too; its errors name the call as it was spelled."""
    sim.ctl("DELETE", "/calls")
    s = session(sim)
    x = s.xenapi
    records = x.VM_get_all_records()
    assert records == x.VM.get_all_records()
    ref = next(r for r, v in records.items() if v["name_label"] == "16shared")
    token = x.event_from(["vm"], "", 0.0)["token"]
    x.VM_set_name_label(ref, "renamed")  # a write
    batch = x.event_from([f"vm/{ref}"], token, 5.0)
    assert [e["snapshot"]["name_label"] for e in batch["events"]] == ["renamed"]

    task = x.Async.VM_clean_shutdown(ref)  # Async. then the underscore name: named so on its task
    assert x.task_get_name_label(task) == "Async.VM_clean_shutdown"
    while x.task.get_status(task) == "pending":
        time.sleep(0.02)
    assert x.task.get_status(task) == "success" and x.VM.get_power_state(ref) == "Halted"

    assert failure(x.VM_frobnicate, ref) == ["MESSAGE_METHOD_UNKNOWN", "VM_frobnicate"]
    assert failure(x.Async.VM_frobnicate, ref) == ["MESSAGE_METHOD_UNKNOWN", "VM_frobnicate"]
    assert failure(x.Async_VM_start, ref, False, False) == ["MESSAGE_METHOD_UNKNOWN", "Async_VM_start"]
    assert failure(x.VM_start, ref) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM_start", "3", "1"]
    assert failure(x.Async.VM_get_name_label, ref) == [
        "Fault",
        "No async mode for this operation (rpc: VM_get_name_label)",
    ]
    assert failure(x.VM_start, ref, "yes", False) == ["FIELD_TYPE_ERROR", "start_paused"]

    methods = s.system.listMethods()["Value"]  # the dotted names only, as xapi lists them
    assert "event.from" in methods and "VM.get_all_records" in methods
    assert "event_from" not in methods and "VM_get_all_records" not in methods
    calls = sim.ctl("GET", "/calls")  # counted under the name each call was made by
    assert calls["VM_get_all_records"] == 1 and calls["VM.get_all_records"] == 1
    assert calls["event_from"] == 2 and "event.from" not in calls
    assert calls["Async.VM_clean_shutdown"] == 1 and calls["VM_frobnicate"] == 1

    other = s.session_login_with_password(sim.user, sim.password)["Value"]  # a call without a session
    assert jsonrpc(sim.master().url, "session_logout", other) == ""
    with pytest.raises(XapiFailure) as e:
        jsonrpc(sim.master().url, "VM.get_all", other)
    assert e.value.details == ["SESSION_INVALID", other]


def test_sdk_cancelled_copy_leaves_nothing_behind(sim):
    s = session(sim)
    x = s.xenapi
    ref = next(r for r, v in guests(x).items() if v["VBDs"])
    x.VM.hard_shutdown(ref)
    before = {cls: len(getattr(x, cls).get_all()) for cls in ("VM", "VBD", "VDI", "VIF")}
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    copied = x.VM.copy(ref, "full copy", sr)
    assert x.VDI.get_SR(x.VBD.get_VDI(x.VM.get_VBDs(copied)[0])) == sr
    x.VM.destroy(copied)
    sim.ctl("POST", "/settings", {"op_seconds": 2.0})
    task = x.Async.VM.copy(ref, "to be cancelled", sr)
    time.sleep(0.5)
    assert len(x.VM.get_by_name_label("to be cancelled")) == 1  # the copy is under way
    x.task.cancel(task)
    while x.task.get_status(task) in ("pending", "cancelling"):
        time.sleep(0.05)
    assert x.task.get_status(task) == "cancelled"
    assert x.VM.get_by_name_label("to be cancelled") == []
    after = {cls: len(getattr(x, cls).get_all()) for cls in ("VM", "VBD", "VDI", "VIF")}
    assert after["VM"] == before["VM"] and after["VBD"] == before["VBD"] and after["VIF"] == before["VIF"]
    assert after["VDI"] == before["VDI"] + 1  # the completed copy's disk stays, as VM.destroy keeps disks


def test_sdk_reboot_gives_the_vm_a_new_domid(sim):
    x = session(sim).xenapi
    # the guest with the highest domid: its host counts domids from the ones still resident
    ref, vm = max(
        ((r, v) for r, v in guests(x).items() if v["power_state"] == "Running"),
        key=lambda rv: int(rv[1]["domid"]),
    )
    before = int(vm["domid"])
    x.VM.hard_reboot(ref)
    after = int(x.VM.get_domid(ref))
    assert after > 0 and after != before
