"""Every class of the data model answers its implicit messages, and random calls never crash the simulator."""

from __future__ import annotations

import json
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xapisim.datamodel import load_datamodel

from ..harness.simproc import XapiFailure, jsonrpc, login

pytestmark = pytest.mark.integration
DM = load_datamodel()


def test_generic_messages_of_every_class(sim):
    url = sim.master().url
    s = login(sim)
    exercised = 0
    for cls in DM.classes.values():
        msgs = cls.messages
        if "get_all_records" not in msgs or not msgs["get_all_records"].implicit:
            continue
        records = jsonrpc(url, f"{cls.name}.get_all_records", s)
        assert sorted(records) == sorted(jsonrpc(url, f"{cls.name}.get_all", s))
        if not records:
            continue
        ref, rec = next(iter(records.items()))
        assert set(rec) == set(cls.fields), cls.name  # every field, as xapi sends it
        for field, value in rec.items():
            getter = msgs.get(f"get_{field}")
            if getter is not None and getter.implicit:
                assert jsonrpc(url, f"{cls.name}.get_{field}", s, ref) == value, (cls.name, field)
                exercised += 1
            typ = cls.fields[field].type
            setter = msgs.get(f"set_{field}")
            if setter is not None and setter.implicit and typ.kind == "string":
                jsonrpc(url, f"{cls.name}.set_{field}", s, ref, value + "~")
                assert jsonrpc(url, f"{cls.name}.get_record", s, ref)[field] == value + "~"
                jsonrpc(url, f"{cls.name}.set_{field}", s, ref, value)
            string_map = typ.kind == "map" and str(typ) == "(string -> string) map"
            if string_map and f"add_to_{field}" in msgs and f"remove_from_{field}" in msgs:
                jsonrpc(url, f"{cls.name}.add_to_{field}", s, ref, "podium-test", "1")
                assert jsonrpc(url, f"{cls.name}.get_{field}", s, ref)["podium-test"] == "1"
                jsonrpc(url, f"{cls.name}.remove_from_{field}", s, ref, "podium-test")
                assert "podium-test" not in jsonrpc(url, f"{cls.name}.get_{field}", s, ref)
        if "uuid" in rec and "get_by_uuid" in msgs:
            assert jsonrpc(url, f"{cls.name}.get_by_uuid", s, rec["uuid"]) == ref
            with pytest.raises(XapiFailure) as e:
                jsonrpc(url, f"{cls.name}.get_by_uuid", s, "00000000-0000-0000-0000-000000000000")
            assert e.value.details == ["UUID_INVALID", cls.name, "00000000-0000-0000-0000-000000000000"]
        with pytest.raises(XapiFailure) as e:
            jsonrpc(url, f"{cls.name}.get_record", s, "OpaqueRef:00000000-0000-0000-0000-000000000000")
        assert e.value.details[:2] == ["HANDLE_INVALID", cls.name]
    assert exercised > 450  # every getter of the first record of the 21 classes the bundled pool holds


# --- random calls ----------------------------------------------------------------------------------
_BLOCKING = {"event.next", "event.from"}  # they wait by design
_METHODS = sorted(
    f"{c.name}.{m}" for c in DM.classes.values() for m in c.messages if f"{c.name}.{m}" not in _BLOCKING
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def fuzz_sim():
    from ..harness.simproc import start_sim

    sim = start_sim("--op-seconds", "0")
    yield sim
    sim.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(_METHODS) | st.text(max_size=30),
    is_async=st.booleans(),
    with_session=st.booleans(),
    params=st.lists(json_values, max_size=4),
)
def test_random_calls_get_xapi_errors_never_internal_ones(fuzz_sim, method, is_async, with_session, params):
    url = fuzz_sim.master().url
    if with_session:
        s = login(fuzz_sim)
        params = [s, *params]
    name = ("Async." + method) if is_async else method
    body = json.dumps({"jsonrpc": "2.0", "method": name, "params": params, "id": 1}).encode()
    req = urllib.request.Request(url + "/jsonrpc", body, headers={"Content-Type": "application/json"})
    if name == "":  # a request with no method is malformed: xapi's HTTP 500
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 500
        e.value.close()
        return
    with urllib.request.urlopen(req, timeout=30) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        assert reply["error"]["message"] not in ("INTERNAL_ERROR",), (name, params, reply)
    assert "Traceback" not in fuzz_sim.log()
