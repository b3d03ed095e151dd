"""The appliance's network: DHCP or a static address, written for systemd-networkd, applied with a way back.

A change made from a browser can cut that browser off. So the wizard applies it as *pending*: the previous
file is kept in ``network-pending.json`` with a deadline, and unless the change is confirmed from the
browser (which can then only reach the appliance at its new address) before the deadline, the previous
configuration is put back by itself, even if the wizard was restarted meanwhile.

The deadline is not wall-clock time, which NTP may step at first boot (the very moment the network
changes): it is the kernel's CLOCK_BOOTTIME (seconds since boot, suspend included, never stepped) with the
boot's id. A pending change found after a reboot (another boot id) was not confirmed in time by
definition, and reverts at once. A pending file of the first format (``deadline`` in epoch seconds, written
before this one existed) is still read, with the wall clock as then.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ApplianceError
from ..layout import Layout, Settings, write_atomic
from .system import run

log = logging.getLogger(__name__)

#: This boot's id, a new random UUID at every boot (the real one even under a test root: tests replace it).
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PENDING_FORMAT = 2


def boot_id() -> str:
    """The id of the running boot ("" when the kernel does not say)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def boottime() -> float:
    """Seconds since this boot began, suspend included; never stepped by NTP or by hand."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class NetworkConfig:
    """DHCP, or a static address with its prefix, gateway and DNS servers."""

    dhcp: bool = True
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None = None
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dns: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = field(default=())

    def describe(self) -> str:
        """One line for a person."""
        if self.dhcp:
            return "DHCP"
        dns = ", ".join(map(str, self.dns)) or "none"
        return f"static {self.address}, gateway {self.gateway or 'none'}, DNS {dns}"


DHCP = NetworkConfig()


def static_config(address: str, netmask: str, gateway: str, dns: str) -> NetworkConfig:
    """A static configuration from what a person typed, checked: each error names its field."""
    address, netmask = address.strip(), netmask.strip()
    if not address:
        raise ApplianceError("address: required for a static configuration")
    spec = address if "/" in address or not netmask else f"{address}/{netmask.lstrip('/')}"
    try:
        iface = ipaddress.ip_interface(spec)
    except ValueError:
        raise ApplianceError(f"address/netmask: {spec!r} is not an address with a netmask") from None
    if "/" not in spec:
        raise ApplianceError("netmask: required (e.g. 255.255.255.0 or /24)")
    net = iface.network
    if iface.ip in (net.network_address, getattr(net, "broadcast_address", None)) and net.num_addresses > 2:
        raise ApplianceError(f"address: {iface.ip} is the network's own or broadcast address")
    if iface.ip.is_loopback or iface.ip.is_multicast or iface.ip.is_unspecified:
        raise ApplianceError(f"address: {iface.ip} cannot be a host's address")
    gw = None
    if gateway.strip():
        try:
            gw = ipaddress.ip_address(gateway.strip())
        except ValueError:
            raise ApplianceError(f"gateway: {gateway.strip()!r} is not an address") from None
        if gw not in net:
            raise ApplianceError(f"gateway: {gw} is not in the network {net}")
        if gw == iface.ip:
            raise ApplianceError("gateway: must be another host than the appliance itself")
    servers = []
    for item in dns.replace(",", " ").split():
        try:
            servers.append(ipaddress.ip_address(item))
        except ValueError:
            raise ApplianceError(f"DNS: {item!r} is not an address") from None
    return NetworkConfig(False, iface, gw, tuple(servers))


def render_networkd(config: NetworkConfig, interface: str) -> str:
    """The systemd-networkd file for the configuration."""
    lines = ["# Written by podium-appliance; change it with `podium-appliance network`.", "[Match]"]
    lines += [f"Name={interface}", "", "[Network]"]
    if config.dhcp:
        lines.append("DHCP=yes")
    else:
        lines.append(f"Address={config.address}")
        if config.gateway is not None:
            lines.append(f"Gateway={config.gateway}")
        lines += [f"DNS={server}" for server in config.dns]
    return "\n".join(lines) + "\n"


def parse_networkd(text: str) -> NetworkConfig:
    """The configuration a networkd file (as this module writes it) holds."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", ";")):
            values.setdefault(key.strip(), []).append(value.strip())
    if values.get("DHCP", ["no"])[0] in ("yes", "ipv4", "ipv6", "true") or "Address" not in values:
        return DHCP
    return NetworkConfig(
        False,
        ipaddress.ip_interface(values["Address"][0]),
        ipaddress.ip_address(values["Gateway"][0]) if "Gateway" in values else None,
        tuple(ipaddress.ip_address(v) for v in values.get("DNS", [])),
    )


class Network:
    """The network file, applied through networkd, and a pending change's deadline."""

    def __init__(self, layout: Layout, settings: Settings) -> None:
        self.layout, self.settings = layout, settings

    def current(self) -> NetworkConfig:
        """The configuration in force (DHCP when no file was written)."""
        try:
            return parse_networkd(self.layout.network_file.read_text())
        except FileNotFoundError:
            return DHCP
        except ValueError as e:
            raise ApplianceError(f"{self.layout.network_file}: {e}") from e

    def apply(self, config: NetworkConfig) -> None:
        """Write the configuration and have networkd apply it now."""
        self._write(render_networkd(config, self.settings.interface))
        log.info("network: %s on %s", config.describe(), self.settings.interface)

    def _write(self, text: str | None) -> None:
        self._store(text)
        self._activate()

    def _store(self, text: str | None) -> None:
        if text is None:
            self.layout.network_file.unlink(missing_ok=True)
        else:
            write_atomic(self.layout.network_file, text, mode=0o644)

    def _activate(self) -> None:
        run(self.settings.command("network_apply"), "applying the network configuration")
        run(
            self.settings.command("network_reconfigure", interface=self.settings.interface),
            f"reconfiguring {self.settings.interface}",
        )

    def apply_pending(self, config: NetworkConfig, seconds: float) -> str:
        """Apply a change that reverts by itself unless :meth:`confirm` is called within ``seconds``;
        returns the confirmation token."""
        if self.layout.network_pending.exists():
            raise ApplianceError("another network change is waiting for confirmation")
        try:
            previous: str | None = self.layout.network_file.read_text()
        except FileNotFoundError:
            previous = None
        token = secrets.token_urlsafe(24)
        pending: dict[str, object] = {
            "format": PENDING_FORMAT,
            "previous": previous,
            "boot_id": boot_id(),
            "deadline_boottime": boottime() + seconds,
            "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        }
        # The way back is on disk before the change: a crash or reboot in between still reverts.
        write_atomic(self.layout.network_pending, json.dumps(pending), mode=0o600)
        try:
            self.apply(config)
        except ApplianceError:
            self._revert(pending, "it could not be applied")
            raise
        return token

    def _pending(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.layout.network_pending.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("token_sha256", ""), str):
            log.error("network: %s is unreadable; reverting to DHCP", self.layout.network_pending)
            return {"previous": None, "deadline": 0.0, "token_sha256": ""}
        return data

    @staticmethod
    def _seconds_left(pending: dict[str, object]) -> float:
        """Seconds until the pending change reverts; 0 or less: now."""
        try:
            if "deadline_boottime" in pending:
                if str(pending.get("boot_id", "")) != boot_id():
                    return 0.0  # written before a reboot: it cannot have been confirmed since
                return float(pending["deadline_boottime"]) - boottime()  # type: ignore[arg-type]
            return float(pending["deadline"]) - time.time()  # type: ignore[arg-type]  # the first format
        except (KeyError, TypeError, ValueError):
            return 0.0

    def seconds_left(self) -> float | None:
        """How long the pending change has before it reverts (0 when due), or None without one."""
        pending = self._pending()
        return None if pending is None else max(0.0, self._seconds_left(pending))

    def pending_deadline(self) -> float | None:
        """When the pending change reverts, in epoch seconds as the wall clock reads now; or None."""
        left = self.seconds_left()
        return None if left is None else time.time() + left

    def confirm(self, token: str) -> bool:
        """Keep the pending change, if the token is its own and its deadline has not passed."""
        pending = self._pending()
        if pending is None or self._seconds_left(pending) <= 0:
            return False
        digest = hashlib.sha256(token.encode()).hexdigest()
        if not secrets.compare_digest(digest, str(pending["token_sha256"])):
            return False
        self.layout.network_pending.unlink()
        log.info("network: the change was confirmed")
        return True

    def revert_if_due(self) -> bool:
        """Put the previous configuration back if a pending change's deadline has passed (or the machine
        rebooted since it was made)."""
        pending = self._pending()
        if pending is None or self._seconds_left(pending) > 0:
            return False
        self._revert(pending, "it was not confirmed in time")
        return True

    def _revert(self, pending: dict[str, object], why: str) -> None:
        previous = pending.get("previous")
        self._store(previous if isinstance(previous, str) else None)
        self.layout.network_pending.unlink(missing_ok=True)  # the file is back: the next boot uses it
        log.warning("network: the previous configuration is back (%s)", why)
        try:
            self._activate()
        except ApplianceError as e:
            log.error("network: the previous configuration is written but not applied: %s", e.message)
