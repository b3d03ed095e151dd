"""Podium's XAPI client against the simulator: transports, master redirect, TLS, sessions, errors."""

from __future__ import annotations

import asyncio

import pytest

from podium.net import Endpoint, peer_fingerprint
from podium.xapi import (
    AuthenticationFailed,
    CallTimeout,
    ReadOnly,
    TlsError,
    Unreachable,
    XapiClient,
    XapiFailure,
)

from ..harness.simproc import Sim, start_sim

pytestmark = pytest.mark.integration


def client(sim: Sim, url: str | None = None, **kw) -> XapiClient:
    return XapiClient(url or sim.master().url, sim.user, sim.password, **kw)


async def test_client_follows_the_member_to_the_master_over_json_rpc(shared_sim):
    c = client(shared_sim, shared_sim.member().url)
    try:
        await c.connect()
        assert c.master.url == shared_sim.master().url and c.protocol == "json"
        vms = await c.call("VM.get_all_records")
        assert len(vms) == 67 and all(isinstance(v["memory_static_max"], int) for v in vms.values())
    finally:
        await c.close()


async def test_client_falls_back_to_xml_rpc_on_hosts_without_json_rpc():
    sim = start_sim("--no-jsonrpc")
    c = client(sim, sim.member().url)
    try:
        await c.connect()
        assert c.protocol == "xml" and c.master.url == sim.master().url
        vm = next(r for r, v in (await c.call("VM.get_all_records")).items() if not v["is_a_template"])
        await c.call("VM.set_VCPUs_at_startup", vm, 1)  # an int travels as a string in XML-RPC
        assert await c.call("VM.get_VCPUs_at_startup", vm) == "1"
        with pytest.raises(XapiFailure) as e:
            await c.call("VM.get_record", "OpaqueRef:nope")
        assert e.value.xapi_code == "HANDLE_INVALID" and e.value.params == ["VM", "OpaqueRef:nope"]
    finally:
        await c.close()
        sim.stop()


async def test_client_errors_say_what_went_wrong(shared_sim):
    bad = XapiClient(shared_sim.master().url, "root", "wrong")
    with pytest.raises(AuthenticationFailed) as e:
        await bad.connect()
    assert "SESSION_AUTHENTICATION_FAILED" in e.value.message and "wrong" not in e.value.message
    await bad.close()
    nowhere = XapiClient("http://127.0.0.1:1", "root", "x")
    with pytest.raises(Unreachable, match=r"cannot reach http://127.0.0.1:1"):
        await nowhere.connect()
    await nowhere.close()
    slow = client(shared_sim, call_timeout=0.3)
    try:
        token = (await slow.call("event.from", ["vm"], "", 0.0))["token"]
        with pytest.raises(CallTimeout, match="did not answer within"):
            await slow.call("event.from", ["vm"], token, 5.0)
    finally:
        await slow.close()
    assert "password" not in repr(client(shared_sim)).lower().replace("password=", "")


async def test_client_logs_in_again_once_when_the_session_expires(shared_sim):
    c = client(shared_sim)
    try:
        await c.connect()
        first = c.session
        shared_sim.ctl("POST", "/expire-sessions")
        results = await asyncio.gather(*(c.call("VM.get_all") for _ in range(5)))
        assert all(len(r) == 67 for r in results) and c.session != first
    finally:
        await c.close()


async def test_client_read_only_refuses_writes(shared_sim):
    c = client(shared_sim, read_only=True)
    try:
        vm = (await c.call("VM.get_all"))[0]
        assert await c.call("VM.get_name_label", vm)
        for method in (
            "VM.start",
            "Async.VM.clean_shutdown",
            "VM.set_name_label",
            "pool.designate_new_master",
        ):
            with pytest.raises(ReadOnly, match="read-only"):
                await c.call(method, vm)
    finally:
        await c.close()


async def test_client_tls_verifies_by_default_and_pins_fingerprints():
    sim = start_sim("--tls")
    url = sim.master().url
    try:
        strict = XapiClient(url, sim.user, sim.password)
        with pytest.raises(TlsError) as e:
            await strict.connect()
        assert e.value.fingerprint == sim.fingerprint and "allow unauthorized" in e.value.message
        await strict.close()
        fingerprint = await peer_fingerprint(Endpoint.parse(url))
        assert fingerprint == sim.fingerprint.replace(":", "")
        for kw in ({"fingerprint": sim.fingerprint}, {"allow_unauthorized": True}):
            ok = XapiClient(url, sim.user, sim.password, **kw)
            await ok.connect()
            assert len(await ok.call("host.get_all")) == 2
            await ok.close()
        wrong = XapiClient(url, sim.user, sim.password, fingerprint="AB" * 32)
        with pytest.raises(TlsError, match="not the pinned"):
            await wrong.connect()
        await wrong.close()
    finally:
        sim.stop()
