"""vm.stats and host.stats over the real server and the simulator: the numbers are the host's own series
(read here straight from its ``/rrd_updates``), under Xen Orchestra's names, at each granularity; a VM that
does not run, a user without rights, a host that does not answer, a master that vanishes, a host that
answers nonsense: each a clear error, and the server goes on."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web

from podium.api.errors import ApiError as ServerApiError
from podium.api.methods import stats as stats_module
from podium.xapi import CallTimeout, ProtocolError, TlsError, Unreachable, XapiClient, XapiError
from xapisim import rrd as sim_rrd
from xapisim.tls import self_signed_context

from ..harness.serverproc import Api, ApiError, until
from ..harness.simproc import login

pytestmark = pytest.mark.integration

SPANS = {"seconds": (5, 120), "minutes": (60, 120), "hours": (3600, 168), "days": (86400, 366)}


# --- the host's own series, read without Podium -----------------------------------------------------
def raw_series(url: str, session: str, **query: Any) -> dict[str, dict[int, float]]:
    """``GET /rrd_updates`` on one host, read with ElementTree: legend entry -> {time: value}."""
    with urllib.request.urlopen(f"{url}/rrd_updates?{urlencode({'session_id': session, **query})}") as resp:
        root = ET.fromstring(resp.read())
    legend = [e.text or "" for e in root.iter("entry")]
    out: dict[str, dict[int, float]] = {e: {} for e in legend}
    for row in root.iter("row"):
        t = int(row.findtext("t") or "")
        for entry, v in zip(legend, row.findall("v"), strict=True):
            out[entry][t] = float(v.text or "")
    return out


def times(answer: dict[str, Any], n: int) -> list[int]:
    """The time of each point of an answer's series (oldest first, the last at endTimestamp)."""
    return [answer["endTimestamp"] - (n - 1 - i) * answer["interval"] for i in range(n)]


def leaves(stats: dict[str, Any], path: str = "") -> dict[str, list[Any]]:
    """Every series of an answer by its path (``cpus.0``, ``vifs.rx.0`` …)."""
    out: dict[str, list[Any]] = {}
    for key, value in stats.items():
        name = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            out |= leaves(value, name)
        else:
            out[name] = value
    return out


def same_points(
    answer: dict[str, Any], series: list[Any], raw: dict[int, float], scale: float, at_least: int
) -> None:
    """The answer's series equals the host's on every time both have (their values are functions of time)."""
    common = 0
    for t, value in zip(times(answer, len(series)), series, strict=True):
        if t in raw:
            assert value == pytest.approx(raw[t] * scale, rel=1e-9), (t, value, raw[t])
            common += 1
    assert common >= at_least, (common, sorted(raw)[:3], times(answer, len(series))[-3:])


async def everything(api: Api) -> dict[str, dict[str, Any]]:
    return await api.call("xo.getAllObjects")  # type: ignore[no-any-return]


def host_at(objects: dict[str, dict[str, Any]], url: str) -> dict[str, Any]:
    address = urlsplit(url).hostname
    return next(o for o in objects.values() if o["type"] == "host" and o["address"] == address)


def running_vm_on(
    objects: dict[str, dict[str, Any]], host: dict[str, Any], vifs: bool = True
) -> dict[str, Any]:
    running = [o for o in objects.values() if o["type"] == "VM" and o["power_state"] == "Running"]
    here = sorted((o for o in running if o["$container"] == host["id"]), key=lambda o: o["id"])
    return next(o for o in here if bool(o.get("VIFs")) == vifs)


async def refused(api: Api, method: str, params: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as e:
        await api.call(method, params)
    return e.value


# --- the answers -------------------------------------------------------------------------------------
async def test_vm_and_host_stats_are_the_hosts_own_series(podium_api, sim):
    api, session = podium_api, login(sim)
    objects = await everything(api)
    for sim_host in (sim.member(), sim.master()):  # a VM on a member is asked of that member
        host = host_at(objects, sim_host.url)
        vm = running_vm_on(objects, host)
        answer = await api.call("vm.stats", {"id": vm["id"]})
        raw = raw_series(
            sim_host.url, session, start=int(time.time()) - 300, interval=5, cf="AVERAGE", vm_uuid=vm["uuid"]
        )
        assert set(answer) == {"endTimestamp", "interval", "stats"} and answer["interval"] == 5
        assert abs(answer["endTimestamp"] - time.time()) < 15 and answer["endTimestamp"] % 5 == 0
        stats = answer["stats"]
        assert set(stats) == {"cpus", "memory", "memoryFree", "vifs", "xvds"}, stats.keys()
        series = leaves(stats)
        n = len(stats["memory"])
        assert 119 <= n <= 120 and all(len(s) == n for s in series.values())
        assert all(v is not None and math.isfinite(v) for s in series.values() for v in s)

        prefix = f"AVERAGE:vm:{vm['uuid']}:"
        names = {e.removeprefix(prefix) for e in raw if e.startswith(prefix)}
        vcpus = sorted(m[3:] for m in names if re.fullmatch(r"cpu\d+", m))
        assert sorted(stats["cpus"]) == vcpus == [str(i) for i in range(vm["CPUs"]["number"])]
        for i in vcpus:
            same_points(answer, stats["cpus"][i], raw[f"{prefix}cpu{i}"], 100, 50)
            assert all(0 <= v <= 100 for v in stats["cpus"][i])
        same_points(answer, stats["memory"], raw[f"{prefix}memory"], 1, 50)
        same_points(answer, stats["memoryFree"], raw[f"{prefix}memory_internal_free"], 1024, 50)
        assert all(f <= m for f, m in zip(stats["memoryFree"], stats["memory"], strict=True))
        devices = sorted(m.split("_")[1] for m in names if re.fullmatch(r"vif_\d+_rx", m))
        assert devices and sorted(stats["vifs"]["rx"]) == sorted(stats["vifs"]["tx"]) == devices
        for d in devices:
            for way in ("rx", "tx"):
                same_points(answer, stats["vifs"][way][d], raw[f"{prefix}vif_{d}_{way}"], 1, 50)
        letters = sorted(m[7] for m in names if re.fullmatch(r"vbd_xvd._read", m))
        assert "a" in letters and sorted(stats["xvds"]["r"]) == sorted(stats["xvds"]["w"]) == letters
        for letter in letters:
            same_points(answer, stats["xvds"]["r"][letter], raw[f"{prefix}vbd_xvd{letter}_read"], 1, 50)
            same_points(answer, stats["xvds"]["w"][letter], raw[f"{prefix}vbd_xvd{letter}_write"], 1, 50)

        # the host, by id and by xo-web's parameter name
        answer = await api.call("host.stats", {"id": host["id"]})
        assert (await api.call("host.stats", {"host": host["id"]}))["stats"].keys() == answer["stats"].keys()
        raw = raw_series(sim_host.url, session, start=int(time.time()) - 300, interval=5, host="true")
        prefix = f"AVERAGE:host:{host['uuid']}:"
        stats = answer["stats"]
        assert set(stats) == {"cpus", "load", "memory", "memoryFree", "pifs"}, stats.keys()
        series = leaves(stats)
        n = len(stats["load"])
        assert 119 <= n <= 120 and all(len(s) == n for s in series.values())
        cpus = sorted(
            e.removeprefix(prefix)[3:] for e in raw if re.fullmatch(re.escape(prefix) + r"cpu\d+", e)
        )
        assert sorted(stats["cpus"]) == cpus and len(cpus) == 8
        for i in cpus:
            same_points(answer, stats["cpus"][i], raw[f"{prefix}cpu{i}"], 100, 50)
        same_points(answer, stats["load"], raw[f"{prefix}loadavg"], 1, 50)
        same_points(answer, stats["memory"], raw[f"{prefix}memory_total_kib"], 1024, 50)
        same_points(answer, stats["memoryFree"], raw[f"{prefix}memory_free_kib"], 1024, 50)
        assert sorted(stats["pifs"]["rx"]) == sorted(stats["pifs"]["tx"]) == ["0", "1"]  # eth0, eth1
        for d in ("0", "1"):
            same_points(answer, stats["pifs"]["rx"][d], raw[f"{prefix}pif_eth{d}_rx"], 1, 50)
    # a VM without interfaces has no vifs; nothing else is made up
    vm = running_vm_on(objects, host_at(objects, sim.master().url), vifs=False)
    stats = (await api.call("vm.stats", {"id": vm["id"]}))["stats"]
    assert "vifs" not in stats and {"cpus", "memory", "memoryFree"} <= set(stats)


async def test_every_granularity_reads_its_archive(podium_api, sim):
    api, session = podium_api, login(sim)
    objects = await everything(api)
    host = host_at(objects, sim.member().url)
    vm = running_vm_on(objects, host)
    default = await api.call("vm.stats", {"id": vm["id"]})
    assert default["interval"] == 5
    for granularity, (step, points) in SPANS.items():
        for method, obj, column, key in (
            ("vm.stats", vm, f"AVERAGE:vm:{vm['uuid']}:cpu0", "cpus"),
            ("host.stats", host, f"AVERAGE:host:{host['uuid']}:cpu3", "cpus"),
        ):
            answer = await api.call(method, {"id": obj["id"], "granularity": granularity})
            assert answer["interval"] == step, (method, granularity)
            now = time.time()
            assert answer["endTimestamp"] % step == 0 and now - 2 * step - 10 <= answer["endTimestamp"] <= now
            series = leaves(answer["stats"])
            n = len(answer["stats"]["memory"])
            assert points - 1 <= n <= points and all(len(s) == n for s in series.values()), (granularity, n)
            query = {"vm_uuid": vm["uuid"]} if method == "vm.stats" else {"host": "true", "vm_uuid": "none"}
            raw = raw_series(
                sim.member().url,
                session,
                start=int(now) - step * points // 2,
                interval=step,
                cf="AVERAGE",
                **query,
            )
            same_points(answer, answer["stats"][key][column[-1]], raw[column], 100, points // 2 - 5)
    e = await refused(api, "vm.stats", {"id": vm["id"], "granularity": "weeks"})
    assert e.code == 10 and e.data["errors"][0]["instancePath"] == "/granularity"


# --- refusals ----------------------------------------------------------------------------------------
async def test_a_vm_that_does_not_run_has_no_statistics(podium_api, sim):
    api = podium_api
    objects = await everything(api)
    vm = running_vm_on(objects, host_at(objects, sim.master().url), vifs=False)
    assert (await api.call("vm.stats", {"id": vm["id"]}))["stats"]["cpus"]
    snapshot = await api.call("vm.snapshot", {"id": vm["id"]})
    await api.call("vm.stop", {"id": vm["id"], "force": True})
    await until(api, vm["id"], lambda o: o["power_state"] == "Halted")
    e = await refused(api, "vm.stats", {"id": vm["id"]})
    assert e.code == 13 and e.data == {"objectId": vm["id"], "expected": "Running", "actual": "Halted"}
    assert "halted" in str(e)
    e = await refused(api, "vm.stats", {"id": snapshot})
    assert e.code == 13 and e.data["objectId"] == snapshot
    e = await refused(api, "vm.stats", {"id": "no-such-vm"})
    assert e.code == 1
    await api.call("vm.start", {"id": vm["id"]})
    await until(api, vm["id"], lambda o: o["power_state"] == "Running")
    assert (await api.call("vm.stats", {"id": vm["id"]}))["stats"]["cpus"]


async def test_users_see_statistics_only_of_what_they_may_view(podium_api, sim):
    admin = podium_api
    assert admin.server is not None
    objects = await everything(admin)
    host = host_at(objects, sim.master().url)
    mine = running_vm_on(objects, host)
    other = running_vm_on(objects, host, vifs=False)
    uid = await admin.call("user.create", {"email": "carol@example.org", "password": "carol's long secret"})
    async with Api(admin.server.url) as carol, Api(admin.server.url) as anonymous:
        e = await refused(anonymous, "vm.stats", {"id": mine["id"]})
        assert e.code == 2  # sign in first
        await carol.sign_in("carol@example.org", "carol's long secret")
        for method, id_ in (("vm.stats", mine["id"]), ("vm.stats", other["id"]), ("host.stats", host["id"])):
            e = await refused(carol, method, {"id": id_})
            assert e.code == 1 and e.data["id"] == id_, (method, e)  # invisible: as if it did not exist

        await admin.call("acl.add", {"subject": uid, "object": mine["id"], "action": "viewer"})
        answer = await eventually(lambda: carol.call("vm.stats", {"id": mine["id"]}))
        assert len(answer["stats"]["cpus"]["0"]) >= 119 and all(
            v is not None for v in answer["stats"]["memory"]
        )
        assert (await refused(carol, "vm.stats", {"id": other["id"]})).code == 1
        assert (await refused(carol, "host.stats", {"id": host["id"]})).code == 1  # rights go down, not up

        pool = next(o for o in objects.values() if o["type"] == "pool")
        await admin.call("acl.add", {"subject": uid, "object": pool["id"], "action": "viewer"})
        answer = await eventually(lambda: carol.call("host.stats", {"id": host["id"]}))
        assert set(answer["stats"]) >= {"cpus", "load", "memory", "memoryFree", "pifs"}
        assert (await carol.call("vm.stats", {"id": other["id"]}))["stats"]["cpus"]


async def eventually(call: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """A call's answer once rights changed elsewhere reached this connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except ApiError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# --- hosts that fail ---------------------------------------------------------------------------------
async def test_a_host_that_does_not_answer_is_a_clear_error(podium_api, sim):
    api = podium_api
    objects = await everything(api)
    member, master = host_at(objects, sim.member().url), host_at(objects, sim.master().url)
    vm = running_vm_on(objects, member)
    sim.ctl("POST", f"/pools/0/hosts/{sim.member().name}/stop")
    for method, id_ in (("vm.stats", vm["id"]), ("host.stats", member["id"])):
        e = await refused(api, method, {"id": id_})
        assert e.code == 11 and "cannot reach host" in str(e) and member["name_label"] in str(e), e
    assert (await api.call("host.stats", {"id": master["id"]}))["stats"]["cpus"]  # the others still answer
    sim.ctl("POST", f"/pools/0/hosts/{sim.member().name}/start")
    assert (await eventually(lambda: api.call("vm.stats", {"id": vm["id"]})))["stats"]["cpus"]


async def test_the_master_vanishing_midway_gives_clean_errors(podium_api, sim):
    api = podium_api
    assert api.server is not None
    objects = await everything(api)
    member, master = host_at(objects, sim.member().url), host_at(objects, sim.master().url)
    vm = running_vm_on(objects, member)
    outcomes: list[Any] = []
    stop = asyncio.Event()

    async def poll(method: str, id_: str) -> None:
        while not stop.is_set():
            try:
                outcomes.append(await api.call(method, {"id": id_}))
            except ApiError as e:
                outcomes.append(e)
            await asyncio.sleep(0.05)

    pollers = [
        asyncio.create_task(poll("host.stats", master["id"])),
        asyncio.create_task(poll("vm.stats", vm["id"])),
        asyncio.create_task(poll("host.stats", member["id"])),
    ]
    try:
        await asyncio.sleep(1.0)
        before = len(outcomes)
        await asyncio.to_thread(sim.ctl, "POST", f"/pools/0/hosts/{sim.master().name}/stop")
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await asyncio.gather(*pollers)  # none hangs: each call answers within the client's 30 s
    ok = [o for o in outcomes if isinstance(o, dict)]
    errors = [o for o in outcomes if isinstance(o, ApiError)]
    assert before >= 3 and all(isinstance(o, dict) for o in outcomes[:before])
    assert len(ok) >= 3 and ok[0]["stats"]["cpus"]
    assert errors and isinstance(outcomes[-1], ApiError), outcomes[-3:]  # the pool is gone by the end
    for e in errors:  # reported as the pool's failure, never as an internal error
        assert e.code == 11 and e.args[0], (e.code, e.args)
    assert "Traceback" not in api.server.log()
    assert await api.call("session.getUser")  # the server goes on

    sim.ctl("POST", "/pools/0/promote", {"host": member["uuid"]})  # a new master: stats come back
    answer = await eventually(lambda: api.call("vm.stats", {"id": vm["id"]}), timeout=60)
    assert answer["stats"]["cpus"]


# --- the host's answer itself, in-process against a stand-in host ------------------------------------
@contextlib.asynccontextmanager
async def stand_in(
    address: str, port: int, handler: Callable[..., Any], tls: Any = None
) -> AsyncIterator[list[Any]]:
    """A web server at address:port whose ``/rrd_updates`` is ``handler``; yields the requests it got."""
    seen: list[web.Request] = []

    async def route(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        return await handler(request, len(seen))

    app = web.Application()
    app.router.add_get("/rrd_updates", route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port, ssl_context=tls).start()
    try:
        yield seen
    finally:
        await runner.cleanup()


def xport_xml(uuid: str, step: int = 5) -> str:
    now = time.time()
    rrds = [(f"host:{uuid}:", [("cpu0", sim_rrd.constant(0.5)), ("loadavg", sim_rrd.constant(2.0))])]
    return sim_rrd.to_xml(sim_rrd.export(rrds, int(now) - 600 + step, step, "AVERAGE", now))


async def test_what_the_host_answers_is_checked(sim, monkeypatch):
    port = urlsplit(sim.master().url).port
    assert port is not None
    client = XapiClient(sim.master().url, sim.user, sim.password)
    try:
        hosts = await client.call("host.get_all_records")
        (master_ref,) = [r for r, h in hosts.items() if h["address"] == urlsplit(sim.master().url).hostname]
        uuid = "5e1f0000-0000-4000-8000-00000000abcd"
        fake = {"_xapiRef": master_ref, "address": "127.43.0.1", "name_label": "stand-in", "id": uuid}

        async def collect() -> dict[str, Any]:
            return await stats_module.collect(
                client, fake, "host", uuid, None, {"host": "true", "vm_uuid": "none"}
            )

        async def answer(request: web.Request, n: int) -> web.StreamResponse:
            mode = modes[0]
            if (mode == "expired-once" and n == 1) or mode == "expired":
                return web.Response(
                    status=401, text="<html><body><h1>HTTP 401 unauthorised</h1></body></html>"
                )
            if mode == "error":
                text = "<html><body><h1>HTTP 500 internal server error</h1>Rrd.No_RRA_Available</body></html>"
                return web.Response(status=500, content_type="text/html", text=text)
            if mode == "garbage":
                return web.Response(
                    text="<html><body>welcome to nginx</body></html>", content_type="text/html"
                )
            if mode == "truncated":
                return web.Response(text=xport_xml(uuid)[:300], content_type="text/xml")
            if mode == "minutes":
                return web.Response(text=xport_xml(uuid, 60), content_type="text/xml")
            if mode == "slow":
                await asyncio.sleep(1.5)
            return web.Response(text=xport_xml(uuid), content_type="text/xml")

        modes = ["good"]
        async with stand_in("127.43.0.1", port, answer) as seen:
            result = await collect()
            assert result["interval"] == 5 and result["stats"]["cpus"]["0"][-1] == 50.0
            assert set(result["stats"]) == {"cpus", "load"} and result["stats"]["load"][0] == 2.0
            query = seen[0].query
            servertime = time.time()
            expected = {"cf": "AVERAGE", "interval": "5", "host": "true", "vm_uuid": "none"}
            assert {k: query[k] for k in expected} == expected
            assert abs(int(query["start"]) - (servertime - 600 + 5)) <= 3
            assert query["session_id"] == client.session

            for mode, error, words in (
                ("garbage", ServerApiError, "cannot be read"),
                ("truncated", ServerApiError, "not well-formed XML"),
                ("minutes", ServerApiError, "60-second statistics, not the 5-second"),
                (
                    "error",
                    XapiError,
                    "HTTP 500 Internal Server Error: HTTP 500 internal server error Rrd.No_RRA_Available",
                ),
                ("expired", XapiError, "HTTP 401"),
            ):
                modes[0] = mode
                seen.clear()
                with pytest.raises(error) as e:
                    await collect()
                assert words in e.value.message and "stand-in" in e.value.message, e.value.message

            # an expired session: logged in again once, and the request made again with the new one
            modes[0] = "expired-once"
            seen.clear()
            old = client.session
            assert (await collect())["stats"]["cpus"]
            assert [r.query["session_id"] for r in seen] == [old, client.session] and client.session != old

            modes[0] = "slow"
            monkeypatch.setattr(stats_module, "TIMEOUT", aiohttp.ClientTimeout(total=0.5))
            with pytest.raises(CallTimeout):
                await collect()
            monkeypatch.undo()

            modes[0] = "good"
            monkeypatch.setattr(stats_module, "MAX_BODY", 1000)
            with pytest.raises(ProtocolError) as e:
                await collect()
            assert "more than" in e.value.message
            monkeypatch.undo()

        with pytest.raises(Unreachable) as e:  # nobody at that address any more
            await collect()
        assert "cannot reach host stand-in" in e.value.message
    finally:
        await client.close()


async def test_the_pools_certificate_policy_applies_to_every_host(tls_sim, tmp_path):
    port = urlsplit(tls_sim.master().url).port
    client = XapiClient(tls_sim.master().url, tls_sim.user, tls_sim.password, fingerprint=tls_sim.fingerprint)
    try:
        hosts = await client.call("host.get_all_records")
        member_ref, member = next(
            (r, h) for r, h in hosts.items() if h["address"] == urlsplit(tls_sim.member().url).hostname
        )
        target = {
            "_xapiRef": member_ref,
            "address": member["address"],
            "name_label": member["name_label"],
            "id": member["uuid"],
        }
        answer = await stats_module.collect(
            client, target, "host", member["uuid"], "minutes", {"host": "true", "vm_uuid": "none"}
        )
        assert answer["interval"] == 60 and len(answer["stats"]["cpus"]) == 8  # over HTTPS, pinned

        context, _ = self_signed_context(["127.43.0.1"], tmp_path)  # a host with another certificate
        impostor = {**target, "address": "127.43.0.1", "name_label": "impostor"}

        async def answer_anything(request: web.Request, n: int) -> web.StreamResponse:
            return web.Response(text=xport_xml(member["uuid"]), content_type="text/xml")

        async with stand_in("127.43.0.1", port, answer_anything, context) as seen:
            with pytest.raises(TlsError) as e:
                await stats_module.collect(client, impostor, "host", member["uuid"], None, {"host": "true"})
            assert "pinned" in e.value.message and not seen  # no request, so no session, went there
    finally:
        await client.close()
