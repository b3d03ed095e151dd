"""Hostname, time zone and NTP servers of the appliance, each checked before it is written."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
import struct
import time
import zoneinfo

from ..errors import ApplianceError
from ..layout import Layout, Settings, write_atomic
from .system import run

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_hostname(name: str) -> str:
    """A host name as RFC 1123 allows (lower-cased), or an error saying what is wrong."""
    name = name.strip().lower().rstrip(".")
    if not name:
        raise ApplianceError("hostname: required")
    if len(name) > 253:
        raise ApplianceError("hostname: at most 253 characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise ApplianceError(
                f"hostname: {label!r} is not a valid name part (letters, digits and '-', "
                "not starting or ending with '-', at most 63 characters)"
            )
    if name.replace(".", "").isdigit():
        raise ApplianceError("hostname: must not be all digits")
    return name


def set_hostname(layout: Layout, settings: Settings, name: str) -> None:
    """Write /etc/hostname and the 127.0.1.1 line of /etc/hosts, and apply the name now."""
    name = check_hostname(name)
    write_atomic(layout.hostname, name + "\n")
    short = name.split(".")[0]
    try:
        lines = layout.hosts.read_text().splitlines()
    except FileNotFoundError:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    entry = f"127.0.1.1\t{name}" + (f"\t{short}" if short != name else "")
    lines = [line for line in lines if not line.startswith("127.0.1.1")] + [entry]
    write_atomic(layout.hosts, "\n".join(lines) + "\n")
    run(settings.command("hostname_apply", hostname=name), "setting the hostname")
    log.info("hostname: %s", name)


def check_timezone(zone: str) -> str:
    """A time zone of the tz database (``Europe/Paris``, ``UTC``)."""
    zone = zone.strip()
    if zone not in zoneinfo.available_timezones():
        raise ApplianceError(f"time zone: {zone!r} is not a zone of the tz database (e.g. Europe/Paris, UTC)")
    return zone


def split_servers(text: str) -> list[str]:
    """Servers (names or addresses) as a person lists them, separated by spaces or commas."""
    return [s for s in text.replace(",", " ").split() if s]


def check_ntp_servers(text: str) -> list[str]:
    """NTP servers (names or addresses, separated by spaces or commas); at least one."""
    servers = split_servers(text)
    if not servers:
        raise ApplianceError("NTP servers: give at least one (e.g. pool.ntp.org, or your own)")
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            try:
                check_hostname(server)
            except ApplianceError:
                raise ApplianceError(f"NTP servers: {server!r} is neither a name nor an address") from None
    return servers


def set_time(layout: Layout, settings: Settings, zone: str, servers: list[str]) -> None:
    """Write the time zone (/etc/timezone, /etc/localtime) and timesyncd's servers, then apply."""
    zone = check_timezone(zone)
    write_atomic(layout.timezone, zone + "\n")
    tmp = layout.localtime.with_name(".localtime.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(f"/usr/share/zoneinfo/{zone}", tmp)
    os.replace(tmp, layout.localtime)
    write_atomic(layout.timesyncd_conf, "[Time]\nNTP=" + " ".join(servers) + "\n")
    run(settings.command("time_apply"), "restarting time synchronisation")
    log.info("time: zone %s, NTP %s", zone, " ".join(servers))


async def sntp_offset(server: str, port: int = 123, timeout: float = 2.0) -> float:
    """Ask an NTP server the time (SNTP, RFC 4330); the clock offset in seconds, or an ApplianceError."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(server, port, type=socket.SOCK_DGRAM)
    except OSError:
        raise ApplianceError(f"NTP server {server}: the name does not resolve") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, addr)
        sent = loop.time()
        await loop.sock_sendall(sock, b"\x23" + 47 * b"\0")  # LI 0, version 4, mode 3 (client)
        data = await asyncio.wait_for(loop.sock_recv(sock, 512), timeout)
    except (OSError, TimeoutError):
        raise ApplianceError(f"NTP server {server}: no answer within {timeout:.0f} s") from None
    finally:
        sock.close()
    if len(data) < 48 or data[0] & 0x07 != 4:
        raise ApplianceError(f"NTP server {server}: the answer is not NTP")
    seconds, fraction = (int(v) for v in struct.unpack("!II", data[40:48]))
    if seconds == 0:
        raise ApplianceError(f"NTP server {server}: it is not synchronised (kiss-o'-death)")
    server_time: float = seconds - 2208988800 + fraction / 2**32
    return server_time - (time.time() - (loop.time() - sent) / 2)
