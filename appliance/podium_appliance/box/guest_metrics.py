"""Guest metrics: the appliance tells its pool its addresses, OS and agent version through XenStore.

This is what a guest agent (xe-guest-utilities' xe-daemon) does, so that XCP-ng and Xen Orchestra show the
appliance's address. The keys are relative to the VM's own XenStore folder (``/local/domain/<domid>``);
xenopsd copies ``attr``, ``data``, ``control`` and ``drivers`` from there to xapi, which reads (in
``xapi_guest_agent.ml``):

- ``attr/vif/<devid>/ipv4/<n>`` and ``attr/vif/<devid>/ipv6/<n>``: VM_guest_metrics.networks
  ``<devid>/ipv4/<n>``, ``<devid>/ipv6/<n>``, and the first IPv4 address again as ``<devid>/ip``. ``<devid>``
  is the VIF's device number, which the guest learns from netfront's ``device/vif/<devid>`` nodename. The
  older form (``attr/eth<n>/ip``, ``attr/eth<n>/ipv6/<i>/addr``) is read only when ``attr/vif`` is empty,
  so it is not written: every XCP-ng reads ``attr/vif``.
- ``data/os_name``, ``os_uname``, ``os_distro``, ``os_majorver``, ``os_minorver``: os_version.
- ``attr/PVAddons/MajorVersion``, ``MinorVersion``, ``MicroVersion``, ``BuildVersion``, ``Application``:
  PV_drivers_version (see :func:`pv_keys` for why they matter).
- ``data/meminfo_total`` and ``data/meminfo_free`` (KiB): not for the guest metrics record but for xcp-rrdd,
  which watches ``data/meminfo_free`` and graphs it as ``memory_internal_free``.
- ``data/updated``, written last: xenopsd watches it (not the other ``data`` keys), so writing it makes the
  new values reach xapi; older xapi also ignores everything while it is absent.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from podium import __version__

from ..errors import ApplianceError
from ..layout import Layout, Settings
from .addresses import ip_links, usable_address
from .xenstore import Store, open_store

log = logging.getLogger(__name__)

#: Where the addresses go: ``attr/vif/<devid>/ipv4/<n>``, ``attr/vif/<devid>/ipv6/<n>``.
NETWORKS = "attr/vif"
#: Written after every change, last.
UPDATED = "data/updated"
#: ``attr/PVAddons/Application``: who reports (PV_drivers_version's "application").
APPLICATION = "podium-appliance"
#: How often the addresses are compared with what was published (one ``ip -j addr`` each time).
POLL_SECONDS = 5.0
_VIF_NODENAME = re.compile(r"device/vif/(\d+)")


# The facts


def pv_keys(version: str = __version__) -> dict[str, str]:
    """The agent's version (``attr/PVAddons/*``): podium's own release numbers, padded to four."""
    # xapi treats the guest agent as present when PV_drivers_version has integer "major" and "minor"
    # (Xapi_pv_driver_version.get_drivers_version: int_of_string, else Unknown); with Unknown,
    # check_op_for_feature (xapi_vm_lifecycle.ml) asks an HVM guest for control/feature-* flags before clean
    # shutdown, reboot, suspend or migrate, and Xen Orchestra's managementAgentDetected is false. "micro"
    # missing becomes -1, which older xapi counts as out of date, and Xen Orchestra shows
    # major.minor.micro-build, so all four are written. PV_drivers_up_to_date no longer compares versions:
    # it is PV_drivers_detected, which xenopsd sets when a PV device's backend reaches state 4 (connected),
    # i.e. from the kernel's netfront/blkfront, whatever these numbers are.
    try:
        release = Version(version).release
    except InvalidVersion:
        release = ()
    major, minor, micro, build = (*release, 0, 0, 0, 0)[:4]
    return {
        "attr/PVAddons/MajorVersion": str(major),
        "attr/PVAddons/MinorVersion": str(minor),
        "attr/PVAddons/MicroVersion": str(micro),
        "attr/PVAddons/BuildVersion": str(build),
        "attr/PVAddons/Application": APPLICATION,
    }


def parse_os_release(text: str) -> dict[str, str]:
    """The fields of an os-release file (shell-style assignments, quotes removed)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        try:
            fields[key] = " ".join(shlex.split(value))
        except ValueError:  # an unbalanced quote
            fields[key] = value.strip("\"'")
    return fields


def os_keys(os_release: str, uname: str) -> dict[str, str]:
    """``data/os_*`` from os-release's text and the kernel's release; the fields it lacks are left out."""
    fields = parse_os_release(os_release)
    keys = {"data/os_uname": uname}
    if name := fields.get("PRETTY_NAME") or fields.get("NAME"):
        keys["data/os_name"] = name
    if distro := fields.get("ID"):
        keys["data/os_distro"] = distro
    if version := re.match(r"(\d+)(?:\.(\d+))?", fields.get("VERSION_ID", "")):
        keys["data/os_majorver"] = version[1]
        keys["data/os_minorver"] = version[2] or "0"
    return keys


def memory_keys(meminfo: str) -> dict[str, str]:
    """``data/meminfo_total`` and ``data/meminfo_free`` (KiB, MemAvailable: what programs can still get)."""
    kib: dict[str, str] = {}
    for line in meminfo.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            kib[name.strip()] = fields[0]
    keys: dict[str, str] = {}
    if "MemTotal" in kib:
        keys["data/meminfo_total"] = kib["MemTotal"]
    if free := kib.get("MemAvailable") or kib.get("MemFree"):
        keys["data/meminfo_free"] = free
    return keys


def vif_devid(sysfs: Path, ifname: str) -> str | None:
    """The Xen VIF device number of a network interface (netfront's nodename ``device/vif/<n>``), None for
    an interface that is not a VIF (loopback, a bridge, a VLAN, an emulated NIC)."""
    if not ifname or "/" in ifname or ifname.startswith("."):
        return None
    try:
        nodename = (sysfs / "class/net" / ifname / "device/nodename").read_text().strip()
    except OSError:
        return None
    found = _VIF_NODENAME.fullmatch(nodename)
    return found[1] if found else None


def network_keys(links: Any, sysfs: Path) -> dict[str, str]:
    """``attr/vif/<devid>/ipv4/<n>`` and ``ipv6/<n>`` from the parsed output of ``ip -j addr``, for the
    interfaces that are VIFs (xapi could not tie any other to a VIF); no loopback or link-local address."""
    keys: dict[str, str] = {}
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict):
            continue
        devid = vif_devid(sysfs, str(link.get("ifname", "")))
        if devid is not None:
            keys.update(_vif_keys(devid, link.get("addr_info")))
    return keys


def _vif_keys(devid: str, entries: Any) -> dict[str, str]:
    found: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
    for entry in entries if isinstance(entries, list) else []:
        address = usable_address(entry)
        if address is None or entry.get("tentative") or entry.get("dadfailed"):
            continue
        family = found["ipv6" if ":" in address else "ipv4"]
        if address not in family:
            family.append(address)
    return {
        f"{NETWORKS}/{devid}/{family}/{n}": address
        for family, addresses in found.items()
        for n, address in enumerate(addresses)
    }


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def collect(layout: Layout, links: Any, uname: str, version: str = __version__) -> dict[str, str]:
    """Every key the appliance reports: from the files under ``layout`` (os-release, ``proc/meminfo``,
    ``sys``), the parsed output of ``ip -j addr`` and the kernel's release."""
    os_release = _read(layout.path("etc/os-release")) or _read(layout.path("usr/lib/os-release"))
    return {
        **pv_keys(version),
        **os_keys(os_release, uname),
        **memory_keys(_read(layout.path("proc/meminfo"))),
        **network_keys(links, layout.path("sys")),
    }


# Publishing


class Publisher:
    """Writes keys to the VM's XenStore folder: only those whose value changed, then ``data/updated``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.published: dict[str, str] = {}

    def forget_networks(self) -> None:
        """Erase ``attr/vif`` as a whole: the addresses an earlier run published may be gone since."""
        self.store.remove(NETWORKS)
        self.published = {k: v for k, v in self.published.items() if not k.startswith(f"{NETWORKS}/")}

    def publish(self, wanted: dict[str, str], rewrite: bool = False) -> bool:
        """Make the store hold ``wanted``: write what changed since the last time (everything when
        ``rewrite``), erase the keys no longer wanted, then ``data/updated``. Whether anything was done."""
        gone = [key for key in self.published if key not in wanted]
        changed = {k: v for k, v in wanted.items() if rewrite or self.published.get(k) != v}
        for key, value in changed.items():
            self.store.write(key, value)
            self.published[key] = value
        for key in gone:
            self.store.remove(key)
            del self.published[key]
        if changed or gone:
            self.store.write(UPDATED, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return bool(changed or gone)


class GuestMetrics:
    """The service's rounds: everything every ``interval`` seconds (a migration starts from an empty
    XenStore folder; ``meminfo_free`` moves), and in between only the addresses, when they changed."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        interval: float = 60.0,
        links: Callable[[], list[Any]] = ip_links,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher = Publisher(store)
        self.layout, self.interval, self.links, self.clock = layout, interval, links, clock
        self.uname = os.uname().release
        self.due = clock()  # the first round writes everything

    def round(self) -> bool:
        """One round; whether anything was written."""
        found = self.links()
        if self.clock() < self.due:
            return self.publisher.publish(self._with_networks(found))
        wrote = self.publisher.publish(collect(self.layout, found, self.uname), rewrite=True)
        self.due = self.clock() + self.interval
        return wrote

    def _with_networks(self, links: list[Any]) -> dict[str, str]:
        # ip's JSON itself is no fingerprint (it holds the addresses' remaining lifetimes): the keys are
        kept = {k: v for k, v in self.publisher.published.items() if not k.startswith(f"{NETWORKS}/")}
        return {**kept, **network_keys(links, self.layout.path("sys"))}


def serve(layout: Layout, settings: Settings, interval: float = 60.0, once: bool = False) -> None:
    """``podium-appliance guest-metrics``: publish, then keep the keys current until stopped. Without a
    XenStore (not under Xen) it says so in one line and returns."""
    if interval <= 0:
        raise ApplianceError("--interval: give a number of seconds above 0")
    store = open_store(layout, settings)
    if store is None:
        log.info("no XenStore here (not a Xen guest): no guest metrics to report")
        return
    service = GuestMetrics(store, layout, interval)
    service.publisher.forget_networks()
    log.info("reporting the guest metrics through XenStore (everything every %g s)", interval)
    while True:
        try:
            service.round()
        except (ApplianceError, OSError) as e:
            if once:
                raise ApplianceError(f"guest metrics: {getattr(e, 'message', e)}") from None
            log.warning("cannot publish the guest metrics: %s", getattr(e, "message", e))
        if once:
            return
        time.sleep(POLL_SECONDS)
