"""The simulator's injected faults (POST /faults): calls fail on demand, after xapi's checks, changing nothing."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ..harness.simproc import XapiFailure, jsonrpc, master_session, storage, vdi_fields

pytestmark = pytest.mark.integration


def halted_vm(url: str, s: str) -> str:
    """A VM of the bundled pool (all run), shut down."""
    vm = jsonrpc(url, "VM.get_by_name_label", s, "16local")[0]
    if jsonrpc(url, "VM.get_power_state", s, vm) != "Halted":
        jsonrpc(url, "VM.hard_shutdown", s, vm)
    return str(vm)


def test_faults_fail_the_calls_they_name_then_disarm(sim):
    url, s = master_session(sim)
    vm = halted_vm(url, s)
    fault = {"method": "VM.set_name_label", "error": ["SR_FULL", "1", "2"], "skip": 1, "times": 2}
    assert sim.ctl("POST", "/faults", fault) == [{**fault, "fired": 0}]

    # Calls that fail xapi's own checks do not count: the fault waits for a call that would run.
    with pytest.raises(XapiFailure) as e:
        jsonrpc(url, "VM.set_name_label", s, vm)
    assert e.value.details[0] == "MESSAGE_PARAMETER_COUNT_MISMATCH"
    jsonrpc(url, "VM.set_name_label", s, vm, "first")  # skipped
    for label in ("second", "third"):
        with pytest.raises(XapiFailure) as e:
            jsonrpc(url, "VM.set_name_label", s, vm, label)
        assert e.value.details == ["SR_FULL", "1", "2"]
    assert jsonrpc(url, "VM.get_name_label", s, vm) == "first"  # the failed calls changed nothing
    assert sim.ctl("GET", "/faults") == []
    jsonrpc(url, "VM.set_name_label", s, vm, "fourth")
    assert jsonrpc(url, "VM.get_name_label", s, vm) == "fourth"


def test_an_async_call_fails_on_its_task_and_times_0_lasts_until_cleared(sim):
    url, s = master_session(sim)
    vm = halted_vm(url, s)
    sim.ctl("POST", "/faults", {"method": "Async.VM.start", "error": ["NO_HOSTS_AVAILABLE"], "times": 0})
    for _ in range(2):
        task = jsonrpc(url, "Async.VM.start", s, vm, False, False)
        deadline = time.monotonic() + 10
        while (rec := jsonrpc(url, "task.get_record", s, task))["status"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert rec["status"] == "failure" and rec["error_info"] == ["NO_HOSTS_AVAILABLE"]
        for plain in ("VM.start", "VM_start"):  # the plain call meets the same fault, under either name
            with pytest.raises(XapiFailure) as e:
                jsonrpc(url, plain, s, vm, False, False)
            assert e.value.details == ["NO_HOSTS_AVAILABLE"]
    assert sim.ctl("DELETE", "/faults") == {"cleared": 1}
    jsonrpc(url, "VM.start", s, vm, False, False)
    assert jsonrpc(url, "VM.get_power_state", s, vm) == "Running"


def test_a_raw_upload_fault_fails_the_task_after_the_body(sim):
    url, s = master_session(sim)
    vdi = jsonrpc(url, "VDI.create", s, vdi_fields(storage(url, s), 1 << 20))
    task = jsonrpc(url, "task.create", s, "upload", "")
    sim.ctl("POST", "/faults", {"method": "/import_raw_vdi", "error": ["VDI_IO_ERROR", "injected"]})
    query = urllib.parse.urlencode({"session_id": s, "vdi": vdi, "task_id": task, "format": "raw"})
    req = urllib.request.Request(f"{url}/import_raw_vdi?{query}", data=b"x" * 4096, method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:  # as xapi: 200 first, the task tells the rest
        assert resp.status == 200 and resp.read() == b""
    for _ in range(500):
        rec = jsonrpc(url, "task.get_record", s, task)
        if rec["status"] != "pending":
            break
        time.sleep(0.01)
    assert rec["status"] == "failure" and rec["error_info"] == ["VDI_IO_ERROR", "injected"]


def test_an_export_fault_ends_the_stream_as_a_whole_one_would_end(sim):
    """The XVA stops after its disks, before the tar's end; the connection closes normally; the task fails."""
    url, s = master_session(sim)
    vm = halted_vm(url, s)
    task = jsonrpc(url, "task.create", s, "export", "")
    sim.ctl("POST", "/faults", {"method": "/export", "error": ["VDI_IO_ERROR", "injected"]})
    query = urllib.parse.urlencode({"session_id": s, "ref": vm, "task_id": task})
    with urllib.request.urlopen(f"{url}/export?{query}", timeout=30) as resp:
        assert resp.status == 200
        body = resp.read()  # no IncompleteRead: nothing in the framing says the stream is short
    assert body[:7] == b"ova.xml" and not body.endswith(bytes(1024))
    rec = jsonrpc(url, "task.get_record", s, task)
    assert rec["status"] == "failure" and rec["error_info"] == ["VDI_IO_ERROR", "injected"]
    assert "export" not in jsonrpc(url, "VM.get_current_operations", s, vm).values()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"method": "VM.no_such_thing", "error": ["X"]}, "no method VM.no_such_thing"),
        ({"method": "/upload", "error": ["X"]}, "must be a XAPI method"),
        ({"method": "VM.start", "error": []}, "error must be a list"),
        ({"method": "VM.start", "error": ["X"], "times": -1}, "times must be"),
    ],
)
def test_bad_faults_are_refused(shared_sim, body, message):
    with pytest.raises(urllib.error.HTTPError) as e:
        shared_sim.ctl("POST", "/faults", body)
    with e.value:
        assert e.value.code == 400 and message in e.value.read().decode()


def test_allowed_vbd_devices_are_the_free_positions(shared_sim):
    url, s = master_session(shared_sim)
    vm = jsonrpc(url, "VM.get_by_name_label", s, "23shared")[0]
    used = {jsonrpc(url, "VBD.get_userdevice", s, b) for b in jsonrpc(url, "VM.get_VBDs", s, vm)}
    allowed = jsonrpc(url, "VM.get_allowed_VBD_devices", s, vm)
    assert allowed == [str(n) for n in range(255) if str(n) not in used]
