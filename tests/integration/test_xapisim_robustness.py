"""Bad input gets XAPI's error or an HTTP error, a log line, and the simulator keeps serving."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import xmlrpc.client

import pytest

from ..harness.simproc import TEST_DBS, XapiFailure, call, jsonrpc, login, raw_post, start_sim

pytestmark = pytest.mark.integration


def alive(sim) -> None:
    assert login(sim).startswith("OpaqueRef:")


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/", b"<methodCall><methodName>VM.get_all", "text/xml"),
        ("/", b"\x00\xff garbage", "text/xml"),
        ("/RPC2", b"<methodCall><params/></methodCall>", "text/xml"),
        ("/jsonrpc", b'{"jsonrpc": "2.0", "method": "VM.get_all"', "application/json"),
        ("/jsonrpc", b'{"jsonrpc": "2.0", "method": "VM.get_all", "params": []}', "application/json"),
        ("/jsonrpc", b'["not", "an", "object"]', "application/json"),
    ],
)
def test_robustness_malformed_bodies_get_http_500_and_are_logged(shared_sim, path, body, content_type):
    status, ctype, text = raw_post(shared_sim.master().url, path, body, content_type)
    assert status == 500 and ctype.startswith("text/html") and b"internal server error" in text
    assert "bad " in shared_sim.log()
    alive(shared_sim)


def test_robustness_huge_body_is_refused_with_413(shared_sim):
    body = b"<methodCall><methodName>VM.get_all</methodName><params><param><value>" + b"x" * (65 << 20)
    status, _, _ = raw_post(shared_sim.master().url, "/", body)
    assert status == 413
    alive(shared_sim)


def test_robustness_wrong_types_and_counts_get_xapi_errors(shared_sim):
    url = shared_sim.master().url
    s = login(shared_sim)
    sign_in, where = "session.login_with_password", "message.get_all_records_where"
    cases = [
        (("VM.get_all",), ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_all", "0", "0"]),
        (("VM.get_record", s, 5), ["FIELD_TYPE_ERROR", "self"]),
        (("VM.set_memory_static_max", s, "OpaqueRef:x", {"a": 1}), ["FIELD_TYPE_ERROR", "value"]),
        (("event.from", s, "vm", "", 1.0), ["FIELD_TYPE_ERROR", "classes"]),
        (("Nope.get_all", s), ["MESSAGE_METHOD_UNKNOWN", "Nope.get_all"]),
        (("Async.VM.nope", s), ["MESSAGE_METHOD_UNKNOWN", "VM.nope"]),
        (("VM.get_all", "OpaqueRef:forged"), ["SESSION_INVALID", "OpaqueRef:forged"]),
        ((sign_in, "root"), ["MESSAGE_PARAMETER_COUNT_MISMATCH", sign_in, "2", "1"]),
        ((where, s, "true"), ["NOT_IMPLEMENTED", where]),
        # underscore names, as xapi answers them: errors name the call as it was spelled, less Async.
        (("VM_get_record", s, 5), ["FIELD_TYPE_ERROR", "self"]),
        (("VM_get_all", s, "extra"), ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM_get_all", "0", "1"]),
        (("Async.VM_nope", s), ["MESSAGE_METHOD_UNKNOWN", "VM_nope"]),
        (("Async_VM_get_all", s), ["MESSAGE_METHOD_UNKNOWN", "Async_VM_get_all"]),
        (("nope", s), ["MESSAGE_METHOD_UNKNOWN", "nope"]),
        (("session_logout",), ["MESSAGE_PARAMETER_COUNT_MISMATCH", "session_logout", "0", "0"]),
    ]
    for request, expected in cases:
        with pytest.raises(XapiFailure) as e:
            jsonrpc(url, *request)
        assert e.value.details == expected, request
    # JSON-RPC v1 answers in its own envelope
    req = urllib.request.Request(
        url + "/jsonrpc", json.dumps({"method": "VM.get_all", "params": ["x"], "id": 3}).encode()
    )
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read()) == {"result": None, "error": ["SESSION_INVALID", "x"], "id": 3}
    alive(shared_sim)


def test_robustness_xmlrpc_accepts_ints_as_strings_and_enums_in_any_case(shared_sim):
    proxy = xmlrpc.client.ServerProxy(shared_sim.master().url + "/")
    s = proxy.session.login_with_password(shared_sim.user, shared_sim.password)["Value"]
    vm = next(r for r, v in proxy.VM.get_all_records(s)["Value"].items() if not v["is_a_template"])
    assert proxy.VM.set_VCPUs_at_startup(s, vm, "1")["Status"] == "Success"
    assert proxy.VM.set_actions_after_crash(s, vm, "RESTART")["Status"] == "Success"
    assert proxy.VM.get_actions_after_crash(s, vm)["Value"] == "restart"
    proxy("close")()


def test_robustness_several_pools_side_by_side_and_tls(tmp_path):
    sim = start_sim(
        "--tls",
        "--db",
        str(TEST_DBS / "xapidb_app.xml"),
        "--db",
        str(TEST_DBS / "tampa-db_inc_snapshots.xml"),
    )
    try:
        assert len(sim.hosts) == 4 and sim.fingerprint.count(":") == 31
        assert all(h.url.startswith("https://127.42.") for h in sim.hosts)
        assert len({h.url.split("//")[1].split(":")[0] for h in sim.hosts}) == 4
        with pytest.raises(urllib.error.URLError):  # self-signed: verification fails by default
            jsonrpc(sim.master(0).url, "session.login_with_password", sim.user, sim.password)
        for pool in (0, 1):  # each pool's master, its certificate taken as it is
            assert login(sim, pool).startswith("OpaqueRef:")
        pools = sim.ctl("GET", "/pools")
        assert [len(p["hosts"]) for p in pools] == [2, 2] and pools[0]["source"].endswith("xapidb_app.xml")
    finally:
        assert sim.stop() == 0


def test_robustness_scale_clones_real_vms(tmp_path):
    sim = start_sim("--scale", "500")
    try:
        s = login(sim)
        vms = call(sim, "VM.get_all_records", s)
        guests = [v for v in vms.values() if not v["is_a_template"] and not v["is_control_domain"]]
        assert len(guests) == 500
        assert sum(1 for v in guests if v["power_state"] == "Running") == 500  # the bundled guests all run
        vbds = call(sim, "VBD.get_all_records", s)
        assert all(vbds[b]["VM"] in vms for v in guests for b in v["VBDs"])
        grown = sim.ctl("POST", "/pools/0/scale", {"vms": 800})
        assert grown["added"] == 300 and grown["vms"] == 800
    finally:
        sim.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "/nonexistent.xml"], "cannot load /nonexistent.xml"),
        (["--port", "70000"], "--port must be from 0 to 65535"),
        (["--scale", "-3"], "--scale must be from 0 to 100000"),
    ],
)
def test_robustness_command_line_errors_are_clear(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "xapisim", *args], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_robustness_not_a_dump_is_refused(tmp_path):
    bad = tmp_path / "x.xml"
    bad.write_text("<html/>")
    proc = subprocess.run(
        [sys.executable, "-m", "xapisim", "--db", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and "expected <database>" in proc.stderr
