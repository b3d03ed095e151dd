"""Reading xcp-rrdd's xport (XML and its bare-key JSON) and naming the series as Xen Orchestra's stats do."""

from __future__ import annotations

import math

import pytest

from podium.xapi import ProtocolError
from podium.xapi.rrd import GRANULARITIES, MalformedXport, object_stats, parse_json, parse_xml, parse_xport
from xapisim import rrd as sim_rrd

VM = "0b1d7c4e-5f43-4a6a-9b0e-2d1c0c6b8a11"
OTHER_VM = "7e5b6a0d-1c2f-4e3d-8a9b-5c4d3e2f1a00"
HOST = "c0ffee00-1234-4abc-8def-0123456789ab"

LEGEND = [
    f"AVERAGE:host:{HOST}:cpu0",
    f"AVERAGE:host:{HOST}:cpu1",
    f"AVERAGE:host:{HOST}:loadavg",
    f"AVERAGE:host:{HOST}:memory_total_kib",
    f"AVERAGE:host:{HOST}:memory_free_kib",
    f"AVERAGE:host:{HOST}:pif_eth0_rx",
    f"AVERAGE:host:{HOST}:pif_eth0_tx",
    f"AVERAGE:host:{HOST}:pif_bond0_rx",  # not eth<N>: Xen Orchestra leaves it out
    f"AVERAGE:vm:{VM}:cpu0",
    f"AVERAGE:vm:{VM}:memory",
    f"AVERAGE:vm:{VM}:memory_target",
    f"AVERAGE:vm:{VM}:memory_internal_free",
    f"AVERAGE:vm:{VM}:vif_0_rx",
    f"AVERAGE:vm:{VM}:vif_0_tx",
    f"AVERAGE:vm:{VM}:vbd_xvda_read",
    f"AVERAGE:vm:{VM}:vbd_xvda_write",
    f"AVERAGE:vm:{OTHER_VM}:cpu0",
    f"MAX:vm:{VM}:cpu0",
]
# Three rows, newest first as xcp-rrdd writes them; the middle one has NaN, ±Infinity, and the newest
# lacks its last two values.
T0 = 1_700_000_100
ROWS = [
    (T0, [0.25, 0.5, 1.5, 4096, 1024, 100, 200, 7, 0.1, 2**30, 2**30, 512, 10, 20, 30, 40]),
    (
        T0 - 5,
        [
            "NaN",
            0.5,
            1.5,
            4096,
            1024,
            "Infinity",
            200,
            7,
            0.2,
            2**30,
            2**30,
            "-Infinity",
            11,
            21,
            31,
            41,
            0.9,
            0.8,
        ],
    ),
    (T0 - 10, [0.75, 0.5, 1.5, 4096, 1024, 100, 200, 7, 0.3, 2**30, 2**30, 256, 12, 22, 32, 42, 0.9, 0.8]),
]


def xml_doc(legend=LEGEND, rows=ROWS, step=5) -> str:
    entries = "".join(f"<entry>{e}</entry>" for e in legend)
    data = "".join(f"<row><t>{t}</t>{''.join(f'<v>{v}</v>' for v in vs)}</row>" for t, vs in rows)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<xport><meta>'
        f"<start>{rows[-1][0]}</start><step>{step}</step><end>{rows[0][0]}</end>"
        f"<rows>{len(rows)}</rows><columns>{len(legend)}</columns><legend>{entries}</legend></meta>"
        f"<data>{data}</data></xport>"
    )


def json_doc(legend=LEGEND, rows=ROWS, step=5, quoted=False) -> str:
    """xcp-rrdd's hand-written JSON: bare keys (or quoted ones, as newer versions write)."""
    k = (lambda key: f'"{key}"') if quoted else (lambda key: key)
    entries = ",".join(f'"{e}"' for e in legend)
    data = ",".join(f"{{{k('t')}:{t},{k('values')}:[{','.join(str(v) for v in vs)}]}}" for t, vs in rows)
    return (
        f"{{{k('meta')}: {{{k('start')}:{rows[-1][0]},{k('step')}:{step},{k('end')}:{rows[0][0]},"
        f"{k('rows')}:{len(rows)},{k('columns')}:{len(legend)},{k('legend')}:[{entries}]}},"
        f"{k('data')}:[{data}]}}"
    )


@pytest.mark.parametrize(
    "text",
    [xml_doc(), json_doc(), json_doc(quoted=True), xml_doc().encode(), b"\xef\xbb\xbf" + json_doc().encode()],
    ids=["xml", "json-bare-keys", "json-quoted-keys", "xml-bytes", "json-bytes-bom"],
)
def test_both_forms_read_the_same_rows_oldest_first(text):
    x = parse_xport(text)
    assert (x.start, x.step, x.end) == (T0 - 10, 5, T0)
    assert x.legend == LEGEND
    assert [t for t, _ in x.rows] == [T0 - 10, T0 - 5, T0]
    oldest, middle, newest = (values for _, values in x.rows)
    assert oldest[0] == 0.75 and oldest[-1] == 0.8 and len(oldest) == len(LEGEND)
    assert middle[0] is None and middle[5] is None and middle[11] is None  # NaN, Infinity, -Infinity
    assert middle[1] == 0.5 and middle[3] == 4096.0
    assert len(newest) == len(LEGEND) - 2  # the row as it came; object_stats fills the gap


def test_the_xml_and_the_json_of_one_export_are_equal():
    assert parse_xml(xml_doc()) == parse_json(json_doc()) == parse_json(json_doc(quoted=True))
    with pytest.raises(MalformedXport):
        parse_xml(json_doc())
    with pytest.raises(MalformedXport):
        parse_json(xml_doc())


def test_vm_series_under_xen_orchestras_names():
    stats = object_stats(parse_xport(xml_doc()), "vm", VM)
    assert set(stats) == {"cpus", "memory", "memoryFree", "vifs", "xvds"}
    assert stats["cpus"] == {"0": [pytest.approx(30.0), pytest.approx(20.0), pytest.approx(10.0)]}
    assert stats["memory"] == [2**30] * 3  # bytes already; memory_target is not drawn
    assert stats["memoryFree"] == [256 * 1024, None, 512 * 1024]  # KiB to bytes; -Infinity is no point
    assert stats["vifs"] == {"rx": {"0": [12, 11, 10]}, "tx": {"0": [22, 21, 20]}}
    assert stats["xvds"] == {"r": {"a": [32, 31, 30]}, "w": {"a": [42, 41, 40]}}  # the letter after xvd
    assert "iops" not in stats  # the host reports none: the group is left out


def test_another_objects_columns_and_other_cfs_are_left_out():
    x = parse_xport(xml_doc())
    other = object_stats(x, "vm", OTHER_VM)
    assert other == {"cpus": {"0": [0.9 * 100, 0.9 * 100, None]}}  # its newest value is missing
    assert object_stats(x, "vm", HOST) == {}  # a host's uuid asked as a VM's
    assert object_stats(x, "vm", "unknown") == {}


def test_host_series_under_xen_orchestras_names():
    stats = object_stats(parse_xport(json_doc()), "host", HOST)
    assert set(stats) == {"cpus", "load", "memory", "memoryFree", "pifs"}
    assert stats["cpus"] == {"0": [75.0, None, 25.0], "1": [50.0, 50.0, 50.0]}
    assert stats["load"] == [1.5] * 3
    assert stats["memory"] == [4096 * 1024] * 3 and stats["memoryFree"] == [1024 * 1024] * 3
    assert stats["pifs"] == {"rx": {"0": [100, None, 100]}, "tx": {"0": [200, 200, 200]}}  # no bond0


def test_host_storage_series_only_when_reported():
    sr = "4f1e2d3c"
    legend = [
        f"AVERAGE:host:{HOST}:cpu0",
        f"AVERAGE:host:{HOST}:iops_read_{sr}",
        f"AVERAGE:host:{HOST}:iops_write_{sr}",
        f"AVERAGE:host:{HOST}:io_throughput_read_{sr}",
        f"AVERAGE:host:{HOST}:io_throughput_write_{sr}",
        f"AVERAGE:host:{HOST}:read_latency_{sr}",
        f"AVERAGE:host:{HOST}:write_latency_{sr}",
        f"AVERAGE:host:{HOST}:iowait_{sr}",
        f"AVERAGE:host:{HOST}:some_future_metric",
    ]
    rows = [(T0, [0.5, 3, 4, 1.5, 2, 2000, 4000, 0.25, 1])]
    stats = object_stats(parse_xport(xml_doc(legend, rows)), "host", HOST)
    assert stats == {
        "cpus": {"0": [50.0]},
        "iops": {"r": {sr: [3]}, "w": {sr: [4]}},
        "ioThroughput": {"r": {sr: [1.5 * 2**20]}, "w": {sr: [2 * 2**20]}},  # MiB/s to B/s
        "latency": {"r": {sr: [2.0]}, "w": {sr: [4.0]}},  # µs to ms
        "iowait": {sr: [0.25]},
    }


def test_missing_columns_and_empty_documents():
    # a VM without guest agent (no memory_internal_free), without interfaces, a row with no values at all
    legend = [f"AVERAGE:vm:{VM}:cpu0", f"AVERAGE:vm:{VM}:cpu1", f"AVERAGE:vm:{VM}:memory"]
    rows = [(T0, []), (T0 - 5, [0.5, 0.25, 2048])]
    for doc in (xml_doc(legend, rows), json_doc(legend, rows)):
        stats = object_stats(parse_xport(doc), "vm", VM)
        assert stats == {"cpus": {"0": [50.0, None], "1": [25.0, None]}, "memory": [2048, None]}
    empty = parse_xport("<xport><meta><start>0</start><step>60</step><end>0</end></meta></xport>")
    assert empty.rows == [] and empty.legend == [] and object_stats(empty, "host", HOST) == {}
    no_rows = parse_json(json_doc(legend, [(T0, [1, 1, 1])]).replace(f"{{t:{T0},values:[1,1,1]}}", ""))
    assert no_rows.rows == [] and object_stats(no_rows, "vm", VM) == {
        "cpus": {"0": [], "1": []},
        "memory": [],
    }


def test_json_keys_are_quoted_outside_strings_only():
    legend = [f"AVERAGE:vm:{VM}:cpu0", 'AVERAGE:vm:x:odd,name:with "quotes" and {braces}']
    text = json_doc([legend[0], legend[1].replace('"', '\\"')], [(T0, [0.5, 1])])
    x = parse_json(text)
    assert x.legend == legend and x.rows == [(T0, [0.5, 1.0])]


def test_a_read_of_the_simulators_own_export_matches_its_series():
    """The simulator's writer (xcp-rrdd's format), read back: every value where the series put it."""
    waves = [
        ("cpu0", sim_rrd.wave("a", 0, 1)),
        ("memory", sim_rrd.constant(2**31)),
        ("vif_1_rx", sim_rrd.wave("b", 0, 1e6)),
    ]
    now = 1_700_003_600.0
    export = sim_rrd.export([(f"vm:{VM}:", waves)], int(now) - 3600, 60, "AVERAGE", now)
    for text in (sim_rrd.to_xml(export), sim_rrd.to_json(export)):
        x = parse_xport(text)
        assert x.step == 60 and x.end == export.end and len(x.rows) == len(export.rows)
        stats = object_stats(x, "vm", VM)
        newest_first = list(reversed(x.rows))
        for (t, values), (t_sim, sim_values) in zip(newest_first, export.rows, strict=True):
            assert t == t_sim and values == [float(sim_rrd.f_to_s(v)) for v in sim_values]
        expected = [float(sim_rrd.f_to_s(values[0])) * 100 for _, values in reversed(export.rows)]
        assert stats["cpus"]["0"] == pytest.approx(expected) and len(expected) > 50
        assert stats["memory"] == [2.0**31] * len(x.rows)
        assert set(stats["vifs"]["rx"]) == {"1"} and "tx" not in stats["vifs"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "neither XML nor JSON"),
        (b"<html><body>HTTP 500 internal server error</body></html>", "not <xport>"),
        (b"<xport><meta><start>1</start><step>5</step>", "not well-formed XML"),
        (b"<xport><data/></xport>", "no <meta>"),
        (
            b"<xport><meta><start>1</start><step>five</step><end>1</end></meta></xport>",
            "step is not a number",
        ),
        (b"<xport><meta><start>1</start><step>0</step><end>1</end></meta></xport>", "step is 0"),
        (
            b"<xport><meta><start>1</start><step>5</step><end>1</end></meta><data><row><t>1</t><v>lots</v></row></data></xport>",
            "not a number",
        ),
        (
            b"<xport><meta><start>1</start><step>5</step><end>1</end></meta><data><row><v>1</v></row></data></xport>",
            "<t> is not a number",
        ),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xport/>', "DOCTYPE"),
        (b"{meta: {start:1,step:5,end:1,legend:[]},data:[{t:1,values:[1,}]}", "not well-formed JSON"),
        (b"{meta: 3}", "no meta object"),
        (b"{meta: {start:1,step:5,end:1,legend:[1]},data:[]}", "legend is not a list of names"),
        (b"{meta: {start:1,step:5,end:1,legend:[]},data:{}}", "data is not a list"),
        (b"{meta: {start:1,step:5,end:1,legend:[]},data:[7]}", "not {t, values}"),
        (b"{meta: {start:1,step:5.5,end:1,legend:[]},data:[]}", "not a whole number"),
        (b'{meta: {start:1,step:5,end:1,legend:["a"]},data:[{t:1,values:[true]}]}', "not a number"),
        (b"\xff\xfe<xport/>", "not UTF-8"),
    ],
)
def test_malformed_documents_raise_a_clear_protocol_error(body, why):
    with pytest.raises(MalformedXport) as e:
        parse_xport(body)
    assert why in e.value.message
    assert isinstance(e.value, ProtocolError)  # the API reports it as the pool's answer being wrong


def test_granularities_are_xcp_rrdds_archives():
    assert GRANULARITIES == {
        "seconds": (5, 120),
        "minutes": (60, 120),
        "hours": (3600, 168),
        "days": (86400, 366),
    }
    # each span is what the simulator (as xcp-rrdd) keeps at that step
    for step, rows in GRANULARITIES.values():
        assert any(r.pdp * sim_rrd.STEP == step and r.rows == rows for r in sim_rrd.RRAS)


def test_values_are_plain_floats_or_none():
    stats = object_stats(parse_xport(xml_doc()), "host", HOST)
    for series in (stats["load"], stats["cpus"]["0"], stats["pifs"]["rx"]["0"]):
        assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in series)
