"""``GET /rrd_updates``: xcp-rrdd's xport in XML and in its bare-key JSON, as Xen Orchestra requests and parses it."""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import pytest

from ..harness.simproc import Sim, call, login

pytestmark = pytest.mark.integration

# What Xen Orchestra's xapi-stats.mjs matches in a legend entry and in metric names.
XO_LEGEND = re.compile(r"^AVERAGE:([^:]+):(.+):(.+)$")
XO_VM_METRICS = [
    r"^cpu(\d+)$",
    r"memory$",
    r"^memory_internal_free$",
    r"^vbd_xvd(.)_(read|write)$",
]


def fetch(url: str, headers: dict[str, str] | None = None, **query: Any) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"{url}/rrd_updates?{urlencode(query)}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def parse_xml(body: bytes) -> dict[str, Any]:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<xport><meta>')
    root = ET.fromstring(body)
    meta = root.find("meta")
    assert meta is not None
    rows = [
        {"t": int(row.findtext("t") or ""), "values": [float(v.text or "") for v in row.findall("v")]}
        for row in root.iter("row")
    ]
    return {
        **{k: int(meta.findtext(k) or "") for k in ("start", "step", "end", "rows", "columns")},
        "legend": [e.text for e in meta.iter("entry")],
        "data": rows,
    }


def parse_json5(body: bytes) -> dict[str, Any]:
    """xcp-rrdd's JSON has bare keys (Xen Orchestra reads it with JSON5): quote them, then read it."""
    text = body.decode()
    assert text.startswith("{meta: {start:")
    quoted = re.sub(r"([{,])\s*([A-Za-z_]\w*)\s*:", r'\1"\2":', text)
    doc = json.loads(quoted)
    return {**doc["meta"], "data": doc["data"]}


def series(doc: dict[str, Any], legend: str) -> list[float]:
    i = doc["legend"].index(legend)
    return [float(row["values"][i]) for row in doc["data"]]


def expected_rows(doc: dict[str, Any], start: int, row_count: int = 120) -> int:
    return len([i for i in range(row_count) if doc["end"] - i * doc["step"] >= start])


def records(sim: Sim, s: str, cls: str) -> dict[str, dict[str, Any]]:
    return call(sim, f"{cls}.get_all_records", s)


def test_rrd_updates_xml_as_xo_requests_it(sim):
    s = login(sim)
    hosts = records(sim, s, "host")
    vms = records(sim, s, "VM")
    master_ref = next(r for r, h in hosts.items() if f"//{h['address']}:" in sim.master().url)
    start = int(time.time()) - 600 + 5  # XO: now - 120 steps + one step
    status, headers, body = fetch(
        sim.master().url, session_id=s, cf="AVERAGE", host="true", interval=5, start=start
    )
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert headers["Access-Control-Allow-Origin"] == "*"
    doc = parse_xml(body)
    assert doc["step"] == 5 and doc["columns"] == len(doc["legend"]) and doc["rows"] == len(doc["data"])
    assert doc["rows"] == expected_rows(doc, start) and 115 <= doc["rows"] <= 120
    times = [row["t"] for row in doc["data"]]
    assert times[0] == doc["end"] and times == sorted(times, reverse=True)  # newest first
    assert all(a - b == 5 for a, b in itertools.pairwise(times)) and times[-1] >= start
    assert all(len(row["values"]) == doc["columns"] for row in doc["data"])

    host_uuid = hosts[master_ref]["uuid"]
    names = {e.split(":", 3)[3] for e in doc["legend"] if e.startswith(f"AVERAGE:host:{host_uuid}:")}
    cpus = len(hosts[master_ref]["host_CPUs"])
    assert {f"cpu{i}" for i in range(cpus)} | {
        "cpu_avg",
        "loadavg",
        "memory_total_kib",
        "memory_free_kib",
    } <= names
    assert {"pif_eth0_rx", "pif_eth0_tx", "pif_eth1_rx", "pif_eth1_tx"} <= names
    # VM series: every domain on this host and only those
    here = {
        v["uuid"] for v in vms.values() if v["resident_on"] == master_ref and v["power_state"] == "Running"
    }
    in_legend = {e.split(":")[2] for e in doc["legend"] if e.split(":")[1] == "vm"}
    assert in_legend == here and len(here) >= 3  # two guests and the control domain
    by_uuid = {v["uuid"]: v for v in vms.values()}
    for entry in doc["legend"]:
        kind, uuid, _ = XO_LEGEND.match(entry).groups()
        assert kind in ("host", "vm") and (uuid == host_uuid or uuid in here)
    for uuid in here - {u for u in here if by_uuid[u]["is_control_domain"]}:
        metrics = {e.split(":")[3] for e in doc["legend"] if e.split(":")[2] == uuid}
        for pattern in XO_VM_METRICS:  # each kind of series XO draws for a VM is there
            assert any(re.search(pattern, m) for m in metrics), (pattern, metrics)
        vifs = [m for m in metrics if re.match(r"^vif_\d+_(rx|tx)$", m)]
        assert len(vifs) == 2 * len(by_uuid[uuid]["VIFs"])  # rx and tx per interface
    # values within their bounds
    total = series(doc, f"AVERAGE:host:{host_uuid}:memory_total_kib")[0]
    assert total * 1024 == int(call(sim, "host_metrics.get_memory_total", s, hosts[master_ref]["metrics"]))
    assert all(0 <= v <= total for v in series(doc, f"AVERAGE:host:{host_uuid}:memory_free_kib"))
    for entry in doc["legend"]:
        values = series(doc, entry)
        if re.search(r":cpu(\d+|_avg)$", entry):
            assert all(0 <= v <= 1 for v in values) and len(set(values)) > 1  # they move
        elif entry.endswith(("_rx", "_tx", "_read", "_write")):
            assert all(v >= 0 for v in values)
    guest = next(v for v in vms.values() if v["uuid"] in here and not v["is_control_domain"])
    memory = series(doc, f"AVERAGE:vm:{guest['uuid']}:memory")[0]
    assert memory == guest["memory_dynamic_max"]
    free = series(doc, f"AVERAGE:vm:{guest['uuid']}:memory_internal_free")
    assert all(0 <= v * 1024 <= memory for v in free)
    assert {"vbd_xvda_read", "vbd_xvda_write"} <= {
        e.split(":")[3] for e in doc["legend"] if guest["uuid"] in e
    }


def test_rrd_updates_json_matches_the_xml(sim):
    s = login(sim)
    start = int(time.time()) - 300
    for _ in range(3):  # both answers must come within the same 5-second update
        xml_doc = parse_xml(fetch(sim.master().url, session_id=s, host="true", start=start, cf="AVERAGE")[2])
        status, headers, body = fetch(
            sim.master().url, session_id=s, host="true", start=start, cf="AVERAGE", json="true"
        )
        json_doc = parse_json5(body)
        if json_doc["end"] == xml_doc["end"]:
            break
    assert status == 200 and "xml" not in headers.get("Content-Type", "")
    assert {k: json_doc[k] for k in ("start", "step", "end", "rows", "columns", "legend")} == {
        k: xml_doc[k] for k in ("start", "step", "end", "rows", "columns", "legend")
    }
    assert [row["t"] for row in json_doc["data"]] == [row["t"] for row in xml_doc["data"]]
    assert [[float(v) for v in row["values"]] for row in json_doc["data"]] == [
        row["values"] for row in xml_doc["data"]
    ]


@pytest.mark.parametrize(
    ("interval", "back", "cf", "step", "cfs"),
    [
        (5, 300, None, 5, {"AVERAGE"}),  # MIN and MAX are not kept at 5 s
        (5, 3600, "AVERAGE", 60, {"AVERAGE"}),  # older than the 10 minutes of the 5-second archive
        (60, 3600, None, 60, {"AVERAGE", "MIN", "MAX"}),
        (5, 300, "MAX", 60, {"MAX"}),
        (3600, 86400, "AVERAGE", 3600, {"AVERAGE"}),
        (86400, 30 * 86400, "MIN", 86400, {"MIN"}),
    ],
)
def test_rrd_updates_picks_xcp_rrdds_archive(shared_sim, interval, back, cf, step, cfs):
    s = login(shared_sim)
    start = int(time.time()) - back
    query = {
        "session_id": s,
        "host": "true",
        "interval": interval,
        "start": start,
        **({"cf": cf} if cf else {}),
    }
    doc = parse_xml(fetch(shared_sim.master().url, **query)[2])
    assert doc["step"] == step
    assert {e.split(":")[0] for e in doc["legend"]} == cfs
    assert doc["rows"] == expected_rows(doc, start, 366 if step == 86400 else 168 if step == 3600 else 120)
    assert doc["start"] == start - start % step + step and doc["end"] % step == 0
    if cf in ("MIN", "MAX"):
        avg = parse_xml(fetch(shared_sim.master().url, **{**query, "cf": "AVERAGE"})[2])
        if avg["end"] == doc["end"]:
            for lo, mid in zip(doc["data"][0]["values"], avg["data"][0]["values"], strict=True):
                assert (lo <= mid) if cf == "MIN" else (lo >= mid)


def test_rrd_updates_vm_series_follow_the_vms(sim):
    s = login(sim)
    vms = records(sim, s, "VM")
    member = sim.member()
    start = int(time.time()) - 30
    doc = parse_xml(fetch(member.url, session_id=s, start=start)[2])  # no host=true: VMs only
    assert doc["legend"] and all(e.split(":")[1] == "vm" for e in doc["legend"])
    uuids = {e.split(":")[2] for e in doc["legend"]}
    victim_ref, victim = next(
        (r, v) for r, v in vms.items() if v["uuid"] in uuids and not v["is_control_domain"]
    )
    only = parse_xml(fetch(member.url, session_id=s, start=start, vm_uuid=victim["uuid"])[2])
    assert {e.split(":")[2] for e in only["legend"]} == {victim["uuid"]}
    none = parse_xml(fetch(member.url, session_id=s, start=start, vm_uuid="none", host="true")[2])
    assert all(e.split(":")[1] == "host" for e in none["legend"])
    call(sim, "VM.hard_shutdown", s, victim_ref)
    after = parse_xml(fetch(member.url, session_id=s, start=start)[2])
    assert {e.split(":")[2] for e in after["legend"]} == uuids - {victim["uuid"]}
    master_doc = parse_xml(fetch(sim.master().url, session_id=s, start=start)[2])
    assert not {e.split(":")[2] for e in master_doc["legend"]} & uuids  # the other host's VMs are not here


def test_rrd_updates_values_are_deterministic(shared_sim):
    s = login(shared_sim)
    start = int(time.time()) - 120
    a = parse_xml(fetch(shared_sim.master().url, session_id=s, host="true", start=start)[2])
    b = parse_xml(fetch(shared_sim.master().url, session_id=s, host="true", start=start, cf="AVERAGE")[2])
    common = {row["t"]: row["values"] for row in a["data"]}
    assert a["legend"] == b["legend"]
    assert any(row["t"] in common for row in b["data"])
    for row in b["data"]:
        if row["t"] in common:
            assert row["values"] == common[row["t"]]


def test_rrd_updates_refusals_are_xapis(shared_sim):
    url = shared_sim.master().url
    s = login(shared_sim)
    status, headers, body = fetch(url, start=0)
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="get_rrd_updates"'
    assert b"401 unauthorised" in body
    assert fetch(url, session_id="OpaqueRef:forged", start=0)[0] == 401
    assert fetch(url, session_id=s)[0] == 400  # no start
    status, _, body = fetch(url, session_id=s, start="yesterday")
    assert status == 500 and b"internal server error" in body
    status, _, body = fetch(url, session_id=s, start=0, host="true", cf="LAST")
    assert status == 500 and b"No_RRA_Available" in body  # no LAST archive
    status, _, body = fetch(url, {"Cookie": f"session_id={s}"}, start=int(time.time()) - 10, host="true")
    assert status == 200 and parse_xml(body)["rows"] >= 1
