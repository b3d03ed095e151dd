"""``GET /rrd_updates``: a host's performance data in rrdtool's xport format, as xcp-rrdd serves it.

Query: ``session_id`` (or the cookie), ``start`` (unix seconds; negative: relative to the last
update), ``interval`` (seconds per row wanted), ``cf`` (AVERAGE, MIN or MAX; all of them when left
out), ``host=true`` for the host's own series, ``vm_uuid`` (one VM, ``none``, or every VM with a
domain on that host when left out), ``json`` (present: JSON instead of XML).

The answer follows xcp-rrdd's ``Rrd_updates.export`` of the XenServer 6 era the bundled pools come
from: one RRD per host and per running VM, updated every 5 s, with archives of 120 rows at 5 s,
120 at 1 min, 168 at 1 h and 366 at 1 day (MIN and MAX beside AVERAGE for all but the 5-second one);
the archive is the first one with at least ``interval`` seconds per row that still holds ``start``;
rows run from the newest back to ``start``; values are printed ``%0.4f``; the JSON form is the one
xcp-rrdd wrote by hand, with bare keys (Xen Orchestra reads it with JSON5). Values are smooth waves,
a function of the object's uuid, the series and the time only, within each series' bounds (a VM's
free memory never exceeds its memory). Refusals are xapi's: 401 without a valid session, 400
without ``start``, 500 when no archive matches.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .simulator import Host, Pool, Simulator
from .values import NULL_REF

STEP = 5
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "X-Requested-With"}
_UNAUTHORISED = (
    "<html><body><h1>HTTP 401 unauthorised</h1>Please check your credentials and retry.</body></html>"
)
_SERVER_ERROR = (
    "<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a "
    "while and try again. If the problem persists, please contact your support representative."
    "<h1> Additional information </h1>{}</body></html>"
)


@dataclass(frozen=True)
class Rra:
    """One round-robin archive: its consolidation function, primary points per row and row count."""

    cf: str
    pdp: int
    rows: int


# xcp-rrdd's create_rras with use_min_max, in its order.
RRAS = (
    Rra("AVERAGE", 1, 120),
    *(
        Rra(cf, pdp, rows)
        for pdp, rows in ((12, 120), (720, 168), (17280, 366))
        for cf in ("AVERAGE", "MIN", "MAX")
    ),
)


class NoRra(Exception):
    """No archive answers the request (rrd's No_RRA_Available)."""


def best_rras(pdp_interval: int, cf: str | None, start: int, last_updated: int) -> list[Rra]:
    """The archives an export reads (rrd's find_best_rras)."""
    rras = [r for r in RRAS if cf is None or r.cf == cf]
    if not rras:
        raise NoRra
    last_pdp = last_updated - last_updated % STEP

    def holds(t: int, rra: Rra) -> bool:
        return rra.pdp >= pdp_interval and t > last_pdp - STEP * rra.rows * rra.pdp

    first = next((r for r in rras if holds(start, r)), None)
    if first is None:  # start is older than every archive: the most ancient one, from its oldest row
        oldest = rras[-1]
        start = last_pdp - STEP * oldest.rows * oldest.pdp + 1
        first = next((r for r in rras if holds(start, r)), None)
        if first is None:
            raise NoRra
    return [r for r in rras if r.pdp == first.pdp and r.rows == first.rows]


# --- the series --------------------------------------------------------------------------------------
Wave = Callable[[float], float]


def wave(key: str, lo: float, hi: float, level: tuple[float, float] = (0.1, 0.6)) -> Wave:
    """A smooth value in [lo, hi] over time, different for every key: a base level and three periods."""
    h = hashlib.sha256(key.encode()).digest()
    base = level[0] + (level[1] - level[0]) * h[0] / 255
    phases = [2 * math.pi * b / 256 for b in h[1:4]]
    amp = 0.05 + 0.2 * h[4] / 255

    def value(t: float) -> float:
        frac = base + amp * (
            0.5 * math.sin(2 * math.pi * t / 300 + phases[0])
            + 0.3 * math.sin(2 * math.pi * t / 3600 + phases[1])
            + 0.2 * math.sin(2 * math.pi * t / 86400 + phases[2])
        )
        return lo + (hi - lo) * min(1.0, max(0.0, frac))

    return value


def constant(v: float) -> Wave:
    """A series that does not move."""
    return lambda t: v


def _vm_memory(pool: Pool, vm: dict[str, Any]) -> int:
    metrics = pool.db.get("VM_metrics", vm.get("metrics", NULL_REF)) or {}
    return int(metrics.get("memory_actual") or vm["memory_dynamic_max"] or vm["memory_static_max"])


def host_series(pool: Pool, host: Host) -> list[tuple[str, Wave]]:
    """The data sources of a host's RRD."""
    db, rec, uuid = pool.db, host.record, host.record["uuid"]
    cpus = len(rec["host_CPUs"]) or int(rec.get("cpu_info", {}).get("cpu_count", "1"))
    cpu = [wave(f"{uuid}:cpu{i}", 0.0, 1.0, (0.02, 0.35)) for i in range(cpus)]
    metrics = db.get("host_metrics", rec["metrics"]) or {}
    total = int(metrics.get("memory_total") or 0)
    used = sum(_vm_memory(pool, db.records("VM")[v]) for v in rec["resident_VMs"] if v in db.records("VM"))
    out: list[tuple[str, Wave]] = [(f"cpu{i}", w) for i, w in enumerate(cpu)]
    out.append(("cpu_avg", lambda t: sum(w(t) for w in cpu) / len(cpu)))
    out.append(("loadavg", lambda t: 1.2 * sum(w(t) for w in cpu)))
    out.append(("memory_total_kib", constant(total / 1024)))
    out.append(("memory_free_kib", constant(max(0, total - used) / 1024)))
    pifs = sorted(str(db.records("PIF")[p]["device"]) for p in rec["PIFs"] if p in db.records("PIF"))
    for dev in pifs:
        for way in ("rx", "tx"):
            out.append((f"pif_{dev}_{way}", wave(f"{uuid}:pif_{dev}_{way}", 0.0, 12.5e6, (0.0, 0.2))))
    return out


def vm_series(pool: Pool, vm: dict[str, Any]) -> list[tuple[str, Wave]]:
    """The data sources of a running VM's RRD."""
    db, uuid = pool.db, vm["uuid"]
    metrics = db.get("VM_metrics", vm.get("metrics", NULL_REF)) or {}
    vcpus = int(metrics.get("VCPUs_number") or vm["VCPUs_at_startup"] or 1)
    memory = _vm_memory(pool, vm)
    out: list[tuple[str, Wave]] = [
        (f"cpu{i}", wave(f"{uuid}:cpu{i}", 0.0, 1.0, (0.01, 0.5))) for i in range(vcpus)
    ]
    out.append(("memory", constant(float(memory))))
    out.append(("memory_target", constant(float(vm["memory_dynamic_max"] or memory))))
    if not vm["is_control_domain"]:  # reported by the guest agent
        out.append(("memory_internal_free", wave(f"{uuid}:free", 0.0, memory / 1024, (0.2, 0.7))))
    for ref in vm["VIFs"]:
        vif = db.get("VIF", ref)
        if vif is not None and vif["currently_attached"]:
            for way in ("rx", "tx"):
                name = f"vif_{vif['device']}_{way}"
                out.append((name, wave(f"{uuid}:{name}", 0.0, 1.25e6, (0.0, 0.3))))
    for ref in vm["VBDs"]:
        vbd = db.get("VBD", ref)
        if vbd is not None and vbd["currently_attached"] and vbd["device"]:
            for way in ("read", "write"):
                name = f"vbd_{vbd['device']}_{way}"
                out.append((name, wave(f"{uuid}:{name}", 0.0, 50e6, (0.0, 0.2))))
    return out


def sources(
    pool: Pool, host: Host, with_host: bool, vm_uuid: str
) -> list[tuple[str, list[tuple[str, Wave]]]]:
    """Prefix and series of every RRD the request reads, host first, in xcp-rrdd's order."""
    out = [(f"host:{host.record['uuid']}:", host_series(pool, host))] if with_host else []
    for vm in pool.db.records("VM").values():
        if vm["resident_on"] != host.ref or vm["power_state"] not in ("Running", "Paused"):
            continue  # only domains on this host have an RRD here
        if vm_uuid in ("all", vm["uuid"]):
            out.append((f"vm:{vm['uuid']}:", vm_series(pool, vm)))
    return out


# --- export ------------------------------------------------------------------------------------------
@dataclass
class Xport:
    """What an export holds: times, legend and rows (newest first)."""

    start: int
    step: int
    end: int
    legend: list[str]
    rows: list[tuple[int, list[float]]]


def export(
    rrds: list[tuple[str, list[tuple[str, Wave]]]], start: int, interval: int, cf: str | None, now: float
) -> Xport:
    """The rows of every series from ``start`` to the last update, at the best archive's step."""
    if not rrds:
        raise NoRra
    last_updated = int(now) - int(now) % STEP
    if start < 0:
        start += last_updated
    rras = best_rras(interval // STEP, cf, start, last_updated)
    step = STEP * rras[0].pdp
    end = last_updated - last_updated % step
    first = start - start % step + step
    legend = [f"{rra.cf}:{prefix}{name}" for prefix, series in rrds for rra in rras for name, _ in series]
    columns = [(rra.cf, fn) for _, series in rrds for rra in rras for _, fn in series]
    rows = []
    for i in range(rras[0].rows):
        t = end - i * step
        if t < start:
            break
        rows.append((t, [_consolidate(cf_, fn, t, step) for cf_, fn in columns]))
    return Xport(first, step, end, legend, rows)


def _consolidate(cf: str, fn: Wave, t: int, step: int) -> float:
    if step == STEP:
        return fn(t)
    points = [fn(t - step + step * k / 4) for k in range(1, 5)]  # a few samples of the row's interval
    return min(points) if cf == "MIN" else max(points) if cf == "MAX" else sum(points) / len(points)


def f_to_s(v: float) -> str:
    """A value as xcp-rrdd prints it."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return "0.0" if v == 0 else f"{v:.4f}"


def to_xml(x: Xport) -> str:
    """The xport XML document."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<xport><meta>',
        f"<start>{x.start}</start><step>{x.step}</step><end>{x.end}</end>",
        f"<rows>{len(x.rows)}</rows><columns>{len(x.legend)}</columns><legend>",
        *(f"<entry>{e}</entry>" for e in x.legend),
        "</legend></meta><data>",
        *(f"<row><t>{t}</t>{''.join(f'<v>{f_to_s(v)}</v>' for v in vs)}</row>" for t, vs in x.rows),
        "</data></xport>",
    ]
    return "".join(parts)


def to_json(x: Xport) -> str:
    """The JSON form, keys bare as xcp-rrdd wrote them."""
    legend = ",".join(f'"{e}"' for e in x.legend)
    data = ",".join(f"{{t:{t},values:[{','.join(f_to_s(v) for v in vs)}]}}" for t, vs in x.rows)
    return (
        f"{{meta: {{start:{x.start},step:{x.step},end:{x.end},rows:{len(x.rows)},columns:{len(x.legend)},"
        f"legend:[{legend}]}},data:[{data}]}}"
    )


# --- HTTP --------------------------------------------------------------------------------------------
def handler(sim: Simulator) -> Callable[[web.Request], Any]:
    """The aiohttp handler of ``GET /rrd_updates`` for a simulator's listeners."""

    async def rrd_updates(request: web.Request) -> web.Response:
        host = sim.host_reached(request.transport)
        if host is None or not host.up:
            raise web.HTTPServiceUnavailable()
        query = request.query
        session = request.cookies.get("session_id", query.get("session_id"))
        if session is None or host.pool.db.get("session", session) is None:
            return web.Response(
                status=401,
                reason="Unauthorised",
                text=_UNAUTHORISED,
                content_type="text/html",
                headers={
                    "WWW-Authenticate": 'Basic realm="get_rrd_updates"',
                    "Cache-Control": "no-cache, no-store",
                },
            )
        if "start" not in query:
            return web.Response(
                status=400, reason="Bad Request", headers={"Cache-Control": "no-cache, no-store"}
            )
        cf = query.get("cf")
        try:
            start = int(query["start"])
            interval = int(query.get("interval", "0") or "0")
            rrds = sources(host.pool, host, query.get("host") == "true", query.get("vm_uuid", "all"))
            x = export(
                rrds, start, interval, cf if cf in ("AVERAGE", "MIN", "MAX", "LAST") else None, time.time()
            )
        except ValueError:  # xcp-rrdd's Int64.of_string fails
            return _server_error('Failure("Int64.of_string")')
        except NoRra:
            return _server_error("Rrd.No_RRA_Available")
        if "json" in query:
            return web.Response(body=to_json(x).encode(), headers=_CORS)
        return web.Response(text=to_xml(x), content_type="text/xml", headers=_CORS)

    return rrd_updates


def _server_error(detail: str) -> web.Response:
    text = _SERVER_ERROR.format(detail.replace("&", "&amp;").replace('"', "&quot;"))
    return web.Response(status=500, reason="Internal Error", text=text, content_type="text/html")
