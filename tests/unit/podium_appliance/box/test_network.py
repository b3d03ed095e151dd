"""The network: what a person types checked, networkd files written, a change reverted unless confirmed."""

from __future__ import annotations

import hashlib
import json
import stat
import time
from pathlib import Path

import pytest

from podium_appliance.box import network
from podium_appliance.box.network import DHCP, Network, parse_networkd, render_networkd, static_config
from podium_appliance.errors import ApplianceError

from ..conftest import commands


def test_network_static_config_checks_each_field():
    config = static_config("192.0.2.10", "255.255.255.0", "192.0.2.1", "192.0.2.53, 2001:db8::53")
    assert str(config.address) == "192.0.2.10/24" and str(config.gateway) == "192.0.2.1"
    assert static_config("192.0.2.10/24", "", "", "").gateway is None
    cases = {
        ("", "24", "", ""): "address: required",
        ("192.0.2.300", "24", "", ""): "not an address with a netmask",
        ("192.0.2.10", "", "", ""): "netmask: required",
        ("192.0.2.0", "24", "", ""): "network's own or broadcast",
        ("127.0.0.5", "8", "", ""): "cannot be a host's address",
        ("192.0.2.10", "24", "198.51.100.1", ""): "gateway: 198.51.100.1 is not in the network 192.0.2.0/24",
        ("192.0.2.10", "24", "192.0.2.10", ""): "another host",
        ("192.0.2.10", "24", "", "dns.example"): "DNS: 'dns.example' is not an address",
    }
    for args, message in cases.items():
        with pytest.raises(ApplianceError, match=message):
            static_config(*args)


def test_network_networkd_file_round_trips():
    config = static_config("192.0.2.10", "/24", "192.0.2.1", "192.0.2.53 192.0.2.54")
    text = render_networkd(config, "eth0")
    assert "[Match]\nName=eth0" in text and "Address=192.0.2.10/24" in text and text.count("DNS=") == 2
    assert parse_networkd(text) == config
    assert parse_networkd(render_networkd(DHCP, "eth0")) == DHCP


def test_network_pending_change_reverts_unless_confirmed(appliance):
    net = Network(appliance, appliance.settings())
    net.apply(static_config("192.0.2.10", "24", "192.0.2.1", ""))
    before = appliance.network_file.read_text()
    token = net.apply_pending(static_config("198.51.100.7", "24", "198.51.100.1", ""), 0.3)
    assert "198.51.100.7" in appliance.network_file.read_text()
    assert stat.S_IMODE(appliance.network_pending.stat().st_mode) == 0o600
    assert token not in appliance.network_pending.read_text()  # only its digest is kept
    assert not net.revert_if_due()
    with pytest.raises(ApplianceError, match="waiting for confirmation"):
        net.apply_pending(DHCP, 10)
    time.sleep(0.35)
    assert not net.confirm(token)  # too late
    assert net.revert_if_due()
    assert appliance.network_file.read_text() == before and not appliance.network_pending.exists()
    assert commands(appliance).count("network_reconfigure eth0") == 3  # applied, changed, reverted


def test_network_pending_change_kept_when_confirmed_with_its_token(appliance):
    net = Network(appliance, appliance.settings())
    token = net.apply_pending(static_config("198.51.100.7", "24", "", ""), 30)
    assert not net.confirm("not-the-token")
    assert net.confirm(token)
    assert not appliance.network_pending.exists() and not net.revert_if_due()
    assert net.current().address is not None and str(net.current().address.ip) == "198.51.100.7"


class Clocks:
    """The wall clock, CLOCK_BOOTTIME and the boot id as network.py reads them, set by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.wall, self.boot = 1_800_000_000.0, 40.0
        self.boot_id_file = tmp_path / "boot_id"
        self.boot_id_file.write_text("8c1f5d1e-0000-4000-8000-000000000001\n")
        monkeypatch.setattr(network.time, "time", lambda: self.wall)
        monkeypatch.setattr(network, "boottime", lambda: self.boot)
        monkeypatch.setattr(network, "BOOT_ID", self.boot_id_file)

    def reboot(self) -> None:
        self.boot = 12.0
        self.boot_id_file.write_text("8c1f5d1e-0000-4000-8000-000000000002\n")


def test_network_the_deadline_ignores_the_wall_clock_stepping(appliance, monkeypatch, tmp_path):
    clocks = Clocks(monkeypatch, tmp_path)
    net = Network(appliance, appliance.settings())
    token = net.apply_pending(static_config("198.51.100.7", "24", "", ""), 120)
    clocks.wall += 86400  # NTP steps a clock that was a day behind: no revert
    assert not net.revert_if_due() and net.seconds_left() == 120
    clocks.wall -= 2 * 86400  # or a day ahead: the change does not wait a day longer either
    clocks.boot += 119
    assert not net.revert_if_due() and net.seconds_left() == 1
    clocks.boot += 1
    assert not net.confirm(token) and net.seconds_left() == 0
    assert Network(appliance, appliance.settings()).revert_if_due()  # a restarted wizard: the same
    assert not appliance.network_file.exists() and net.current() == DHCP


def test_network_a_reboot_before_confirming_reverts_at_once(appliance, monkeypatch, tmp_path):
    clocks = Clocks(monkeypatch, tmp_path)
    net = Network(appliance, appliance.settings())
    net.apply(static_config("192.0.2.10", "24", "192.0.2.1", ""))
    before = appliance.network_file.read_text()
    token = net.apply_pending(static_config("198.51.100.7", "24", "", ""), 120)
    pending = json.loads(appliance.network_pending.read_text())
    assert pending["boot_id"] == "8c1f5d1e-0000-4000-8000-000000000001"
    assert pending["deadline_boottime"] == 160.0 and "deadline" not in pending
    clocks.reboot()  # 12 s into the next boot: CLOCK_BOOTTIME alone would wait 148 s more
    assert net.seconds_left() == 0 and not net.confirm(token)
    assert Network(appliance, appliance.settings()).revert_if_due()
    assert appliance.network_file.read_text() == before and not appliance.network_pending.exists()


def test_network_a_pending_file_of_the_first_format_is_still_honoured(appliance, monkeypatch, tmp_path):
    clocks = Clocks(monkeypatch, tmp_path)
    net = Network(appliance, appliance.settings())
    token = "t0ken"
    appliance.state.mkdir(parents=True)
    first = {
        "previous": None,
        "deadline": clocks.wall + 30,
        "token_sha256": hashlib.sha256(b"t0ken").hexdigest(),
    }
    appliance.network_pending.write_text(json.dumps(first))
    assert not net.revert_if_due() and net.seconds_left() == 30
    assert net.confirm(token) and not appliance.network_pending.exists()
    appliance.network_pending.write_text(json.dumps(first))
    clocks.wall += 31
    assert net.revert_if_due() and not appliance.network_pending.exists()


def test_network_revert_survives_a_restart_and_restores_dhcp(appliance, monkeypatch, tmp_path):
    clocks = Clocks(monkeypatch, tmp_path)
    net = Network(appliance, appliance.settings())
    net.apply_pending(static_config("198.51.100.7", "24", "", ""), 30)
    clocks.boot += 31  # the wizard was down while the deadline passed
    assert Network(appliance, appliance.settings()).revert_if_due()
    assert not appliance.network_file.exists() and net.current() == DHCP


def test_network_an_unreadable_pending_file_reverts_to_dhcp(appliance):
    net = Network(appliance, appliance.settings())
    net.apply(static_config("192.0.2.10", "24", "", ""))
    appliance.state.mkdir(parents=True)
    appliance.network_pending.write_text("{not json")
    assert net.seconds_left() == 0 and net.revert_if_due()
    assert not appliance.network_file.exists() and not appliance.network_pending.exists()


def test_network_a_change_that_cannot_be_applied_is_reverted_at_once(appliance):
    lines = appliance.appliance_toml.read_text().splitlines()
    lines = [line if not line.startswith("network_apply") else 'network_apply = ["false"]' for line in lines]
    appliance.appliance_toml.write_text("\n".join(lines) + "\n")
    net = Network(appliance, appliance.settings())
    with pytest.raises(ApplianceError, match="applying the network configuration"):
        net.apply_pending(static_config("198.51.100.7", "24", "", ""), 30)
    assert not appliance.network_pending.exists()
