"""vm.stats and host.stats: the performance series Xen Orchestra's charts draw, read from xcp-rrdd.

As xo-server's ``xapi-stats`` gets them: the host the object lives on (a VM's resident host) is asked
for ``GET /rrd_updates`` with the pool's session, ``cf=AVERAGE``, ``interval`` = the granularity's step
and ``start`` = the host's own clock (``host.get_servertime``) minus the archive's span plus one step,
so that the answer comes from that archive and not from the next coarser one. A VM's request names it
(``vm_uuid``); a host's asks for the host's own series only (``host=true``, ``vm_uuid=none``). The
answer is ``{endTimestamp, interval, stats}`` with the names of :mod:`podium.xapi.rrd`; a host that has
no series for the object yet answers ``stats: {}``.

The request goes straight to that host (xcp-rrdd serves only its own host's data) through the pool's
client (``http_request(host=…)``), over the pool's certificate policy: verified, the pinned fingerprint, or unverified when allowed. A host that cannot
be reached, refuses, answers something that is not an xport, or answers with another step than asked
reports a clear error. A VM that does not run has no statistics: ``vmBadPowerState``, where xo-server
throws a plain error ("VM … is halted or host could not be found."). Both methods need ``view`` on the
object, as in Xen Orchestra.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from ...cache.xo.common import ts
from ...xapi import CallTimeout, ProtocolError, TlsError, Unreachable, XapiClient, XapiError, rrd
from ..context import Context
from ..errors import ApiError, VmBadPowerState
from ..params import Schema, string
from ..registry import Resolve, api
from .common import ID

_PARAMS: Schema = {
    **ID,
    "granularity": string(
        enum=list(rrd.GRANULARITIES),
        optional=True,
        description="seconds (5 s steps, 10 min), minutes (1 min, 2 h), hours (1 h, a week) or days (a year)",
    ),
}
_RUNNING = ("Running", "Paused")  # the states in which a VM has a domain, so an RRD on its host
MAX_BODY = 32 << 20  # a year of days for a host and its VMs is far below this
TIMEOUT = aiohttp.ClientTimeout(total=30)  # the whole request, answer read


@api("vm.stats", params=_PARAMS, resolve=(Resolve("id", ("VM", "VM-snapshot"), "view"),))
async def vm_stats(ctx: Context, id: dict[str, Any], granularity: str | None = None) -> dict[str, Any]:
    """Statistics of a running VM: CPUs, memory, interfaces and disks, as Xen Orchestra's charts read them."""
    vm = id
    state = vm.get("power_state")
    if vm["type"] != "VM" or state not in _RUNNING:
        raise VmBadPowerState(
            f"VM {vm['id']} is {str(state).lower()}: only a running VM has statistics",
            {"objectId": vm["id"], "expected": "Running", "actual": state},
        )
    host = ctx.services.objects.get(vm.get("$container") or "")
    if host is None or host.get("type") != "host":
        raise ApiError(f"VM {vm['id']} is running, but the host it runs on is not known")
    client = ctx.services.servers.client_of(host["$poolId"])
    return await collect(client, host, "vm", vm["uuid"], granularity, {"vm_uuid": vm["uuid"]})


@api("host.stats", params=_PARAMS, resolve=(Resolve("id", ("host",), "view"),))
async def host_stats(ctx: Context, id: dict[str, Any], granularity: str | None = None) -> dict[str, Any]:
    """Statistics of a host: CPUs, load, memory and physical interfaces (and storage I/O when reported)."""
    client = ctx.services.servers.client_of(id["$poolId"])
    return await collect(client, id, "host", id["uuid"], granularity, {"host": "true", "vm_uuid": "none"})


async def collect(
    client: XapiClient,
    host: dict[str, Any],
    kind: str,
    uuid: str,
    granularity: str | None,
    query: dict[str, str],
) -> dict[str, Any]:
    """One object's statistics (``kind`` vm or host) from the host it lives on, in Xen Orchestra's shape."""
    step, points = rrd.GRANULARITIES[granularity or rrd.DEFAULT_GRANULARITY]
    now = ts(await client.call("host.get_servertime", host["_xapiRef"]))
    now = int(now) if now is not None else int(time.time())
    start = now - points * step + step  # one step less than the archive holds: its oldest row stays in
    name = host.get("name_label") or host["id"]
    body = await fetch_rrd_updates(
        client,
        host.get("address") or "",
        {"cf": "AVERAGE", "interval": str(step), "start": str(start), **query},
        name,
    )
    try:
        xport = rrd.parse_xport(body)
    except rrd.MalformedXport as e:
        raise ApiError(f"host {name} answered statistics that cannot be read: {e.message}") from e
    stats = rrd.object_stats(xport, kind, uuid)
    if not stats:  # no series yet (a domain that just started): Xen Orchestra answers the same
        return {"endTimestamp": now, "interval": step, "stats": {}}
    if xport.step != step:
        raise ApiError(
            f"host {name} answered {xport.step}-second statistics, not the {step}-second ones asked"
        )
    return {"endTimestamp": xport.end, "interval": xport.step, "stats": stats}


async def fetch_rrd_updates(client: XapiClient, address: str, query: dict[str, str], name: str = "") -> bytes:
    """``GET /rrd_updates`` on one host of the client's pool, through the client (its session, logging in
    again once if it expired, and its certificate policy), within ``TIMEOUT`` and ``MAX_BODY``."""
    who = f"host {name or address}"
    if not address:
        raise Unreachable(f"{who} has no address to ask for its statistics")
    try:
        async with asyncio.timeout(TIMEOUT.total):
            response = await client.http_request("GET", "/rrd_updates", query, host=address)
            try:
                if response.status != 200:
                    page = (await response.content.read(600)).decode("utf-8", "replace")
                    text = " ".join(re.sub(r"<[^>]*>", " ", page).split())[:300]
                    raise XapiError(
                        f"{who} refused its statistics: HTTP {response.status} {response.reason}: {text}"
                    )
                body = bytearray()
                async for chunk in response.content.iter_any():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise ProtocolError(f"{who} answered more than {MAX_BODY >> 20} MiB of statistics")
                return bytes(body)
            finally:
                response.close()
    except TimeoutError as e:
        raise CallTimeout(
            f"{who} ({address}) did not answer within {TIMEOUT.total:.0f} s for its statistics"
        ) from e
    except TlsError as e:
        raise TlsError(f"{who}: {e.message}", e.fingerprint) from e
    except Unreachable as e:
        raise Unreachable(f"cannot reach {who} for its statistics: {e.message}") from e
    except aiohttp.ClientError as e:
        raise ProtocolError(f"{who} sent a broken HTTP reply: {e}") from e
