"""The machine's addresses as ``ip -j addr`` lists them: loopback, link-local and junk left out, and the
first boot's wait for a first address."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from podium_appliance.box import addresses

IP_JSON = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "scope": "host"}]},
    {
        "ifname": "eth0",
        "addr_info": [
            {"family": "inet", "local": "192.0.2.2", "scope": "global"},
            {"family": "inet", "local": "169.254.1.1", "scope": "global"},
            {"family": "inet6", "local": "fd00::2", "scope": "global"},
            {"family": "inet6", "local": "fe80::1", "scope": "link"},
        ],
    },
    {"ifname": "eth1", "addr_info": [{"family": "inet", "local": "192.0.2.2", "scope": "global"}]},
    {"ifname": "dummy0"},
]


def test_local_addresses_skips_loopback_and_link_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "podium_appliance.box.system.run", lambda argv, what, timeout=60.0: json.dumps(IP_JSON)
    )
    assert addresses.local_addresses() == ["192.0.2.2", "fd00::2"]


@pytest.mark.parametrize("output", ["not json", "{}", "[1, 2]"])
def test_local_addresses_odd_output(monkeypatch: pytest.MonkeyPatch, output: str) -> None:
    monkeypatch.setattr("podium_appliance.box.system.run", lambda argv, what, timeout=60.0: output)
    assert addresses.local_addresses() == []


def test_local_addresses_without_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert addresses.local_addresses() == []


def test_the_first_boot_waits_only_so_long_for_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[float] = []
    monkeypatch.setattr(addresses, "local_addresses", lambda: looks.append(time.monotonic()) or [])
    started = time.monotonic()
    assert addresses.wait_for_addresses(0.5, poll=0.05) == []
    assert 0.5 <= looks[-1] - started < 1.5 and len(looks) >= 5


def test_local_addresses_of_this_machine() -> None:
    for address in addresses.local_addresses():
        parsed = ipaddress.ip_address(address)
        assert not parsed.is_loopback and not parsed.is_link_local
