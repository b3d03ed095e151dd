"""xcp-rrdd's ``/rrd_updates`` answers read, and shaped as Xen Orchestra's ``vm.stats`` / ``host.stats``.

Pure functions, no I/O. An answer is rrdtool's *xport* document: a legend of ``CF:kind:uuid:name`` columns
(``AVERAGE:vm:<uuid>:cpu0``) and rows of a time and one value per column, newest first. xcp-rrdd writes
it as XML, or (``json``) as the JSON its old versions printed by hand with bare keys
(``{meta: {start: …}}``), which newer ones quote; both are read, values ``NaN``, ``Infinity`` and
``-Infinity`` included. :func:`parse_xport` tells the two apart; a document that is neither raises
:class:`MalformedXport`.

:func:`object_stats` keeps the AVERAGE columns of one object and names them as xo-server's
``xapi-stats`` does: for a VM ``cpus`` (per cent, by vCPU number), ``memory``, ``memoryFree`` (bytes),
``vifs.rx``/``vifs.tx`` (by interface number), ``xvds.r``/``xvds.w`` (by the disk letter after ``xvd``)
and ``iops``; for a host ``cpus``, ``load``, ``memory``, ``memoryFree``, ``pifs.rx``/``pifs.tx`` (by the
number after ``eth``), and ``iops``, ``ioThroughput``, ``latency``, ``iowait`` (by SR) when the host
reports them. Series run oldest first; a point that is missing, NaN or infinite is ``None``. A group
appears only when the host has at least one of its series.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError

# XO's granularities: the step of xcp-rrdd's archive each one reads (seconds) and how many rows it keeps.
GRANULARITIES: dict[str, tuple[int, int]] = {
    "seconds": (5, 120),  # the last 10 minutes
    "minutes": (60, 120),  # the last 2 hours
    "hours": (3600, 168),  # the last week
    "days": (86400, 366),  # the last year
}
DEFAULT_GRANULARITY = "seconds"


class MalformedXport(ProtocolError):
    """The host's answer is not an xport document (or not one that can be read)."""


Value = float | None


@dataclass(frozen=True)
class Xport:
    """An xport document: its step and last row's time, its legend, its rows oldest first."""

    start: int
    step: int
    end: int
    legend: list[str]
    rows: list[tuple[int, list[Value]]]


def parse_xport(body: bytes | str) -> Xport:
    """An xport document in XML or in xcp-rrdd's JSON, whichever ``body`` is."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedXport(f"the statistics are not UTF-8 text: {e}") from e
    else:
        text = body
    text = text.lstrip("\ufeff \t\r\n")
    if text.startswith("<"):
        return parse_xml(text)
    if text.startswith("{"):
        return parse_json(text)
    raise MalformedXport(f"the statistics are neither XML nor JSON: {_excerpt(text)!r}")


# --- XML ---------------------------------------------------------------------------------------------
def parse_xml(text: str) -> Xport:
    """``<xport><meta>…<legend><entry>…</legend></meta><data><row><t>…</t><v>…</v>…</row>…</data></xport>``."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:  # an xport has none; entities are a way to blow memory up
        raise MalformedXport("the statistics document declares a DOCTYPE or entities")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise MalformedXport(f"the statistics are not well-formed XML: {e}") from e
    if root.tag != "xport":
        raise MalformedXport(f"the statistics document is <{root.tag}>, not <xport>")
    meta = root.find("meta")
    if meta is None:
        raise MalformedXport("the statistics document has no <meta>")
    legend_el = meta.find("legend")
    legend = [entry.text or "" for entry in legend_el.iter("entry")] if legend_el is not None else []
    rows: list[tuple[int, list[Value]]] = []
    data = root.find("data")
    for row in data.iter("row") if data is not None else ():
        values = [_value(v.text) for v in row.findall("v")]
        rows.append((_integer(row.findtext("t"), "a row's <t>"), values))
    return _xport(meta.findtext("start"), meta.findtext("step"), meta.findtext("end"), legend, rows, "<meta>")


# --- JSON --------------------------------------------------------------------------------------------
# A string as it stands, or a bare key (a word before a colon) to put in quotes.
_KEYS = re.compile(r'"(?:[^"\\]|\\.)*"|([A-Za-z_][A-Za-z0-9_]*)(?=\s*:)', re.DOTALL)


def _quote_keys(text: str) -> str:
    return _KEYS.sub(lambda m: m.group(0) if m.group(1) is None else f'"{m.group(1)}"', text)


def parse_json(text: str) -> Xport:
    """``{meta: {start, step, end, rows, columns, legend: [...]}, data: [{t, values: [...]}, ...]}``."""
    try:
        doc = json.loads(_quote_keys(text))  # NaN, Infinity and -Infinity are read as Python's floats
    except ValueError as e:
        raise MalformedXport(f"the statistics are not well-formed JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("meta"), dict):
        raise MalformedXport("the statistics document has no meta object")
    meta = doc["meta"]
    legend = meta.get("legend", [])
    if not isinstance(legend, list) or not all(isinstance(e, str) for e in legend):
        raise MalformedXport("the statistics' legend is not a list of names")
    data = doc.get("data", [])
    if not isinstance(data, list):
        raise MalformedXport("the statistics' data is not a list of rows")
    rows: list[tuple[int, list[Value]]] = []
    for row in data:
        if not isinstance(row, dict) or not isinstance(row.get("values", []), list):
            raise MalformedXport(f"a row of the statistics is not {{t, values}}: {_excerpt(str(row))!r}")
        rows.append((_integer(row.get("t"), "a row's t"), [_value(v) for v in row.get("values", [])]))
    return _xport(meta.get("start"), meta.get("step"), meta.get("end"), legend, rows, "meta")


# --- common ------------------------------------------------------------------------------------------
def _xport(
    start: Any, step: Any, end: Any, legend: list[str], rows: list[tuple[int, list[Value]]], where: str
) -> Xport:
    step_ = _integer(step, f"{where}'s step")
    if step_ <= 0:
        raise MalformedXport(f"the statistics' step is {step_} seconds")
    rows.sort(key=lambda row: row[0])  # xcp-rrdd writes the newest first
    return Xport(_integer(start, f"{where}'s start"), step_, _integer(end, f"{where}'s end"), legend, rows)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise MalformedXport(f"{what} is not a number: {value!r}")
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise MalformedXport(f"{what} is not a number: {_excerpt(str(value))!r}") from None
    if not number.is_integer():
        raise MalformedXport(f"{what} is not a whole number of seconds: {number}")
    return int(number)


def _value(value: Any) -> Value:
    """A data point: a finite float, or None for one that is missing, NaN or infinite."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MalformedXport(f"a value of the statistics is not a number: {value!r}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise MalformedXport(f"a value of the statistics is not a number: {_excerpt(str(value))!r}") from None
    return number if math.isfinite(number) else None


def _excerpt(text: str, size: int = 60) -> str:
    return text if len(text) <= size else text[:size] + "…"


# --- Xen Orchestra's names ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """A data source name (matched whole) and where its series goes: keys, ``int`` = the match's group."""

    pattern: re.Pattern[str]
    path: tuple[str | int, ...]
    scale: Callable[[float], float] = float


def _m(pattern: str, *path: str | int, scale: Callable[[float], float] = float) -> Metric:
    return Metric(re.compile(pattern), path, scale)


def _kib(v: float) -> float:
    return v * 1024


def _percent(v: float) -> float:
    return v * 100


def _mib(v: float) -> float:
    return v * 2**20


def _milliseconds(v: float) -> float:
    return v / 1000


# The first metric whose pattern matches the whole name wins, as in xo-server's table.
METRICS: dict[str, tuple[Metric, ...]] = {
    "host": (
        _m(r"loadavg", "load"),
        _m(r"memory_free_kib", "memoryFree", scale=_kib),
        _m(r"memory_total_kib", "memory", scale=_kib),
        _m(r"cpu(\d+)", "cpus", 1, scale=_percent),
        _m(r"pif_eth(\d+)_rx", "pifs", "rx", 1),
        _m(r"pif_eth(\d+)_tx", "pifs", "tx", 1),
        _m(r"iops_read_(\w+)", "iops", "r", 1),
        _m(r"iops_write_(\w+)", "iops", "w", 1),
        _m(r"io_throughput_read_(\w+)", "ioThroughput", "r", 1, scale=_mib),
        _m(r"io_throughput_write_(\w+)", "ioThroughput", "w", 1, scale=_mib),
        _m(r"read_latency_(\w+)", "latency", "r", 1, scale=_milliseconds),
        _m(r"write_latency_(\w+)", "latency", "w", 1, scale=_milliseconds),
        _m(r"iowait_(\w+)", "iowait", 1),
    ),
    "vm": (
        _m(r"memory_internal_free", "memoryFree", scale=_kib),
        _m(r".*memory", "memory"),
        _m(r"cpu(\d+)", "cpus", 1, scale=_percent),
        _m(r"vif_(\d+)_rx", "vifs", "rx", 1),
        _m(r"vif_(\d+)_tx", "vifs", "tx", 1),
        _m(r"vbd_xvd(.)_read", "xvds", "r", 1),
        _m(r"vbd_xvd(.)_write", "xvds", "w", 1),
        _m(r"vbd_xvd(.)_iops_read", "iops", "r", 1),
        _m(r"vbd_xvd(.)_iops_write", "iops", "w", 1),
    ),
}


def object_stats(xport: Xport, kind: str, uuid: str) -> dict[str, Any]:
    """The AVERAGE series of one object (``kind`` ``vm`` or ``host``) under Xen Orchestra's names."""
    metrics = METRICS[kind]
    prefix = f"AVERAGE:{kind}:{uuid}:"
    stats: dict[str, Any] = {}
    for column, entry in enumerate(xport.legend):
        if not entry.startswith(prefix):
            continue
        name = entry[len(prefix) :]
        for metric in metrics:
            match = metric.pattern.fullmatch(name)
            if match is not None:
                break
        else:
            continue
        keys = [match.group(k) if isinstance(k, int) else k for k in metric.path]
        node = stats
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = [_scaled(values, column, metric.scale) for _, values in xport.rows]
    return stats


def _scaled(values: list[Value], column: int, scale: Callable[[float], float]) -> Value:
    value = values[column] if column < len(values) else None
    if value is None:
        return None
    scaled = scale(value)
    return scaled if math.isfinite(scaled) else None
