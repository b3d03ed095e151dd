"""Host name, time zone and NTP: checked, written under the root, applied; an SNTP server really asked."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

import pytest

from podium_appliance.box import host
from podium_appliance.errors import ApplianceError

from ..conftest import commands


def test_host_hostname_checked_and_written(appliance):
    for bad, why in [
        ("", "required"),
        ("-x", "not a valid name part"),
        ("a_b", "not a valid"),
        ("123", "digits"),
    ]:
        with pytest.raises(ApplianceError, match=why):
            host.check_hostname(bad)
    host.set_hostname(appliance, appliance.settings(), "Podium.Example.com.")
    assert appliance.hostname.read_text() == "podium.example.com\n"
    assert "127.0.1.1\tpodium.example.com\tpodium" in appliance.hosts.read_text()
    host.set_hostname(appliance, appliance.settings(), "box")
    assert appliance.hosts.read_text().count("127.0.1.1") == 1
    assert commands(appliance)[-1] == "hostname_apply box"


def test_host_time_zone_and_ntp_written(appliance):
    with pytest.raises(ApplianceError, match="not a zone"):
        host.check_timezone("Mars/Olympus")
    with pytest.raises(ApplianceError, match="at least one"):
        host.check_ntp_servers(" , ")
    with pytest.raises(ApplianceError, match="neither a name nor an address"):
        host.check_ntp_servers("ntp.example.com bad_name")
    host.set_time(appliance, appliance.settings(), "Europe/Paris", ["192.0.2.123", "ntp.example.com"])
    assert appliance.timezone.read_text() == "Europe/Paris\n"
    assert os.readlink(appliance.localtime) == "/usr/share/zoneinfo/Europe/Paris"
    assert appliance.timesyncd_conf.read_text() == "[Time]\nNTP=192.0.2.123 ntp.example.com\n"
    assert commands(appliance) == ["time_apply "]


class _Sntp(asyncio.DatagramProtocol):
    """An NTP server on loopback answering with its clock plus an offset."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        now = time.time() + self.offset + 2208988800
        seconds, fraction = int(now), int((now % 1) * 2**32)
        reply = bytes([0x24, 2]) + bytes(38) + struct.pack("!II", seconds, fraction)
        self.transport.sendto(reply, addr)


async def test_host_sntp_asks_a_real_server_and_reports_silence():
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Sntp(42.0), local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        offset = await host.sntp_offset("127.0.0.1", port)
        assert 41 < offset < 43
    finally:
        transport.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(ApplianceError, match="no answer"):
            await host.sntp_offset("127.0.0.1", silent.getsockname()[1], timeout=0.3)
    with pytest.raises(ApplianceError, match="does not resolve"):
        await host.sntp_offset("no-such-host.invalid")
