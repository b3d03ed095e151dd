"""The machine's own IP addresses, as ``ip -j addr`` lists them: what the certificate names, what the console
and the pool's guest metrics show."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from typing import Any

from ..errors import ApplianceError
from . import system

log = logging.getLogger(__name__)


def ip_links() -> list[Any]:
    """``ip -j addr show``, parsed: one dict per interface; empty (and said) when ``ip`` fails."""
    try:
        links = json.loads(system.run(["ip", "-j", "addr", "show"], "listing the addresses", timeout=10))
    except (ApplianceError, OSError, ValueError) as e:
        log.warning("cannot list the machine's addresses: %s", getattr(e, "message", e))
        return []
    return links if isinstance(links, list) else []


def local_addresses() -> list[str]:
    """The machine's IPv4 and IPv6 addresses, without loopback and link-local; empty when ``ip`` fails."""
    found: list[str] = []
    for link in ip_links():
        for entry in link.get("addr_info", []) if isinstance(link, dict) else []:
            address = usable_address(entry)
            if address is not None and address not in found:
                found.append(address)
    return found


def wait_for_addresses(seconds: float, poll: float = 0.2) -> list[str]:
    """:func:`local_addresses`, waiting up to ``seconds`` for a first one (DHCP's answer, early in a boot)."""
    deadline = time.monotonic() + seconds
    while not (found := local_addresses()) and time.monotonic() < deadline:
        time.sleep(poll)
    return found


def usable_address(entry: Any) -> str | None:
    """The address of one ``addr_info`` entry of ``ip -j addr``, None for loopback, link-local or junk."""
    if not isinstance(entry, dict) or entry.get("scope") in ("host", "link"):
        return None
    try:
        address = ipaddress.ip_address(str(entry.get("local", "")))
    except ValueError:
        return None
    # scope alone is not enough: a link-local address can be configured with scope global by hand
    return None if address.is_loopback or address.is_link_local else str(address)
