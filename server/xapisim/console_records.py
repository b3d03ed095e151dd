"""VM console records as xapi keeps them in step with the VMs, apart from the server of the consoles.

Console records follow the VMs as xenopsd makes xapi keep them: created when a VM starts (``rfb``, plus
``vt100`` for PV guests), recreated when it moves to another host, destroyed when it stops; a control
domain keeps the records it was loaded with. Each ``location`` is ``<scheme>://<host address>:<port>
/console?uuid=<console uuid>`` (control domains' use ``?ref=<VM ref>``): it names the listener that
serves the console (:mod:`.console_server`), rewritten for the listeners' port once they have one.

The VM lifecycle calls :func:`sync_consoles` after each change; the :class:`ConsoleRecords` the
listeners install on the simulator does the work once the call's synchronous work is over, and tells
the console server which VMs to look at, so that it ends the consoles of domains that went away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .values import new_uuid

if TYPE_CHECKING:
    from .simulator import Host, Pool, Simulator

PATH = "/console"

# ``<scheme>://<address>:<port>`` of a host's listener.
Base = Callable[["Host"], str]


def _xapi_base(host: Host) -> str:
    return f"https://{host.address}"  # as xapi writes locations: port 443


def sync_consoles(sim: Simulator, pool: Pool, vm_ref: str) -> None:
    """Make a VM's console records follow its state (called by the VM lifecycle after each change).

    Done once the current call's synchronous work is over, as xapi does on xenopsd's next event: a
    reboot (halted then running again on the same host) keeps its records, as in xapi.
    """
    if sim.consoles is not None:
        sim.consoles.schedule(pool, vm_ref)
    else:  # no listeners (handlers driven in-process): at once, with locations as xapi writes them
        sync_records(pool, vm_ref, _xapi_base)


def sync_records(pool: Pool, vm_ref: str, base: Base) -> bool:
    """Create or destroy console records as xapi does on xenopsd's events; True if the VM has a domain."""
    db = pool.db
    vm = db.get("VM", vm_ref)
    if vm is None or vm["is_control_domain"]:
        return vm is not None
    wanted: dict[str, str] = {}
    host = pool.hosts.get(vm["resident_on"])
    running = vm["power_state"] in ("Running", "Paused") and host is not None
    if host is not None and running:
        uri = base(host) + PATH
        wanted = {"rfb": uri} if vm["HVM_boot_policy"] else {"rfb": uri, "vt100": uri}
    kept = set()
    for ref in list(vm["consoles"]):
        record = db.get("console", ref)
        if record is None:
            continue
        uri = str(record["location"]).split("?", 1)[0]
        if wanted.get(record["protocol"]) == uri and record["protocol"] not in kept:
            kept.add(record["protocol"])
        else:  # gone, or on another host: xapi compares (protocol, location without query)
            db.destroy("console", ref)
    for protocol, uri in wanted.items():
        if protocol not in kept:
            uuid = new_uuid()
            fields = {"uuid": uuid, "protocol": protocol, "location": f"{uri}?uuid={uuid}", "VM": vm_ref}
            db.create("console", fields)
    return running


def relocate(pool: Pool, base: Base) -> int:
    """Point every console of a loaded pool at its VM's host as the simulator serves it; returns how many.

    Done once the listeners know their port, before any client reads: written in place (no events), as
    xapi rewrites console URLs at start-up (dbsync's refresh_console_urls).
    """
    db, count = pool.db, 0
    for ref, record in db.records("console").items():
        vm = db.get("VM", record["VM"]) or {}
        host = pool.hosts.get(vm.get("resident_on", ""))
        if host is None:
            continue
        parts = urlsplit(str(record["location"]))
        query = f"?{parts.query}" if parts.query else ""
        record["location"] = f"{base(host)}{parts.path or PATH}{query}"
        db.encoded.pop(ref, None)
        count += 1
    return count


class ConsoleRecords:
    """The upkeep of a simulator's console records, at the locations its listeners serve.

    ``followed`` is called with each VM whose domain may have changed: at once when the lifecycle
    reports it, and again once its records are in step (the console server ends the consoles of a
    domain that went away).
    """

    def __init__(self, sim: Simulator, base: Base, followed: Callable[[Pool, str], None]) -> None:
        self.sim = sim
        self.base = base
        self.followed = followed
        self.pending: dict[tuple[int, str], Pool] = {}
        sim.consoles = self

    def schedule(self, pool: Pool, vm_ref: str) -> None:
        """Sync a VM's records as soon as the current call yields (several changes make one sync)."""
        self.followed(pool, vm_ref)  # its domain is gone now, even if a reboot starts another
        if not self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self.pending[pool.index, vm_ref] = pool

    def _flush(self) -> None:
        pending, self.pending = self.pending, {}
        for (_, vm_ref), pool in pending.items():
            sync_records(pool, vm_ref, self.base)
            self.followed(pool, vm_ref)

    def relocate(self) -> None:
        """Rewrite every loaded console location for the listeners' scheme and port."""
        for pool in self.sim.pools:
            relocate(pool, self.base)
