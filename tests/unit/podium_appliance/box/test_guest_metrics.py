"""Guest metrics: the keys a guest agent writes to XenStore, published to the stand-in folder from a fake
sysfs, os-release and /proc/meminfo under the appliance's root."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from podium_appliance.__main__ import main
from podium_appliance.box.guest_metrics import (
    GuestMetrics,
    Publisher,
    collect,
    memory_keys,
    network_keys,
    os_keys,
    pv_keys,
)
from podium_appliance.box.xenstore import CommandStore, FileStore
from podium_appliance.errors import ApplianceError
from podium_appliance.layout import Layout

OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
)
MEMINFO = "MemTotal:        2030440 kB\nMemFree:          120312 kB\nMemAvailable:    1503112 kB\n"


def _addr(local: str, scope: str = "global", **flags: Any) -> dict[str, Any]:
    return {"family": "inet6" if ":" in local else "inet", "local": local, "scope": scope, **flags}


def _links(*eth0: str) -> list[dict[str, Any]]:
    """``ip -j addr`` as parsed: loopback, eth0 (VIF 0) with ``eth0``'s addresses, eth1 (VIF 3), and ens5, an
    emulated NIC that is no VIF."""
    return [
        {"ifname": "lo", "addr_info": [_addr("127.0.0.1", "host"), _addr("::1", "host")]},
        {"ifname": "eth0", "addr_info": [_addr(a) for a in eth0] + [_addr("fe80::216:3eff:fe00:1", "link")]},
        {"ifname": "eth1", "addr_info": [_addr("198.51.100.5"), _addr("2001:db8::99", tentative=True)]},
        {"ifname": "ens5", "addr_info": [_addr("203.0.113.9")]},
    ]


def _machine(layout: Layout) -> None:
    """The files the appliance reads, under its root: sysfs (eth0 is VIF 0, eth1 VIF 3, ens5 an emulated NIC
    without a nodename), os-release, /proc/meminfo."""
    for name, nodename in (("eth0", "device/vif/0"), ("eth1", "device/vif/3"), ("ens5", None)):
        device = layout.path(f"sys/class/net/{name}/device")
        device.mkdir(parents=True)
        if nodename:
            (device / "nodename").write_text(nodename + "\n")
    layout.path("etc").mkdir(parents=True, exist_ok=True)
    layout.path("etc/os-release").write_text(OS_RELEASE)
    layout.path("proc").mkdir()
    layout.path("proc/meminfo").write_text(MEMINFO)


def _stored(folder: Path) -> dict[str, str]:
    """What the stand-in XenStore holds, key by key."""
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def machine(appliance: Layout) -> Layout:
    _machine(appliance)
    appliance.xenstore_standin.mkdir(parents=True)
    return appliance


def test_guest_metrics_collect_gives_the_keys_xapi_reads(machine: Layout) -> None:
    keys = collect(machine, _links("192.0.2.10", "192.0.2.11", "2001:db8::10"), "6.1.0-25-amd64", "0.4.2")
    assert keys == {
        "attr/PVAddons/MajorVersion": "0",
        "attr/PVAddons/MinorVersion": "4",
        "attr/PVAddons/MicroVersion": "2",
        "attr/PVAddons/BuildVersion": "0",
        "attr/PVAddons/Application": "podium-appliance",
        "data/os_name": "Debian GNU/Linux 12 (bookworm)",
        "data/os_distro": "debian",
        "data/os_majorver": "12",
        "data/os_minorver": "0",
        "data/os_uname": "6.1.0-25-amd64",
        "data/meminfo_total": "2030440",
        "data/meminfo_free": "1503112",
        "attr/vif/0/ipv4/0": "192.0.2.10",
        "attr/vif/0/ipv4/1": "192.0.2.11",
        "attr/vif/0/ipv6/0": "2001:db8::10",
        "attr/vif/3/ipv4/0": "198.51.100.5",
    }


def test_guest_metrics_network_keys_skip_a_nic_without_vif_devid(machine: Layout) -> None:
    sysfs = machine.path("sys")
    emulated_only = [{"ifname": "ens5", "addr_info": [_addr("203.0.113.9")]}, {"ifname": "dummy0"}]
    assert network_keys(emulated_only, sysfs) == {}
    (sysfs / "class/net/ens5/device/nodename").write_text("device/vbd/768\n")  # a device, but not a VIF
    assert network_keys(emulated_only, sysfs) == {}
    assert network_keys([{"ifname": "../eth0"}, "junk", {"addr_info": []}], sysfs) == {}
    assert network_keys({"not": "a list"}, sysfs) == {}


def test_guest_metrics_publish_writes_the_exact_keys_then_updated(machine: Layout) -> None:
    store = FileStore(machine.xenstore_standin)
    keys = collect(machine, _links("192.0.2.10"), "6.1.0-25-amd64")
    assert Publisher(store).publish(keys)
    stored = _stored(machine.xenstore_standin)
    assert stored.pop("data/updated")
    assert stored == keys


def test_guest_metrics_publish_does_not_rewrite_unchanged_values(machine: Layout) -> None:
    folder = machine.xenstore_standin
    publisher = Publisher(FileStore(folder))
    keys = {"data/os_distro": "debian", "attr/vif/0/ipv4/0": "192.0.2.10"}
    publisher.publish(keys)
    (folder / "data/os_distro").write_text("changed behind its back")
    (folder / "data/updated").unlink()
    assert not publisher.publish(dict(keys))
    assert (folder / "data/os_distro").read_text() == "changed behind its back"
    assert not (folder / "data/updated").exists()
    assert publisher.publish(dict(keys), rewrite=True)  # the periodic rewrite puts everything back
    assert _stored(folder) == {**keys, "data/updated": (folder / "data/updated").read_text()}


def test_guest_metrics_publish_removes_a_removed_address(machine: Layout) -> None:
    folder = machine.xenstore_standin
    publisher = Publisher(FileStore(folder))
    publisher.publish(network_keys(_links("192.0.2.10", "192.0.2.11", "2001:db8::10"), machine.path("sys")))
    (folder / "data/updated").unlink()
    assert publisher.publish(network_keys(_links("192.0.2.11"), machine.path("sys")))
    stored = _stored(folder)
    assert stored.pop("data/updated")
    assert stored == {"attr/vif/0/ipv4/0": "192.0.2.11", "attr/vif/3/ipv4/0": "198.51.100.5"}


def test_guest_metrics_forget_networks_erases_an_earlier_runs_addresses(machine: Layout) -> None:
    folder = machine.xenstore_standin
    FileStore(folder).write("attr/vif/7/ipv4/0", "192.0.2.77")
    FileStore(folder).write("data/os_distro", "debian")
    Publisher(FileStore(folder)).forget_networks()
    assert _stored(folder) == {"data/os_distro": "debian"}


def test_guest_metrics_rounds_follow_addresses_and_rewrite_all_when_due(machine: Layout) -> None:
    folder = machine.xenstore_standin
    now, links = [100.0], [_links("192.0.2.10")]
    service = GuestMetrics(FileStore(folder), machine, 60, links=lambda: links[0], clock=lambda: now[0])
    assert service.round()
    assert _stored(folder)["attr/vif/0/ipv4/0"] == "192.0.2.10" and "data/os_uname" in _stored(folder)
    (folder / "data/meminfo_free").write_text("stale")
    now[0] += 5
    assert not service.round()  # the addresses are the same: nothing is written
    links[0] = _links("192.0.2.20")
    assert service.round()
    assert _stored(folder)["attr/vif/0/ipv4/0"] == "192.0.2.20"
    assert (folder / "data/meminfo_free").read_text() == "stale"  # only the addresses between rewrites
    now[0] += 60
    assert service.round()
    assert (folder / "data/meminfo_free").read_text() == "1503112"


def test_guest_metrics_pv_version_is_podiums_release_padded_to_four() -> None:
    def version(v: str) -> list[str]:
        keys = pv_keys(v)
        return [keys[f"attr/PVAddons/{part}Version"] for part in ("Major", "Minor", "Micro", "Build")]

    assert version("1.2.3") == ["1", "2", "3", "0"]
    assert version("2.0rc1") == ["2", "0", "0", "0"]
    assert version("1.2.3.4.5") == ["1", "2", "3", "4"]
    assert version("not a version") == ["0", "0", "0", "0"]


def test_guest_metrics_os_keys_take_what_os_release_has() -> None:
    text = "# comment\nNAME='Alpine Linux'\nID=alpine\nVERSION_ID=3.20.1\nBROKEN=\"unbalanced\n"
    assert os_keys(text, "6.6.1") == {
        "data/os_uname": "6.6.1",
        "data/os_name": "Alpine Linux",
        "data/os_distro": "alpine",
        "data/os_majorver": "3",
        "data/os_minorver": "20",
    }
    assert os_keys('PRETTY_NAME="Debian GNU/Linux trixie/sid"\nID=debian\n', "6.1") == {
        "data/os_uname": "6.1",
        "data/os_name": "Debian GNU/Linux trixie/sid",
        "data/os_distro": "debian",
    }
    assert os_keys("", "6.1") == {"data/os_uname": "6.1"}


def test_guest_metrics_memory_keys_prefer_available_memory() -> None:
    assert memory_keys(MEMINFO) == {"data/meminfo_total": "2030440", "data/meminfo_free": "1503112"}
    assert memory_keys("MemTotal: 1000 kB\nMemFree: 200 kB\n") == {
        "data/meminfo_total": "1000",
        "data/meminfo_free": "200",
    }
    assert memory_keys("garbage\n") == {}


def _xenstore_setting(layout: Layout, value: str) -> None:
    layout.appliance_toml.write_text(f'xenstore = "{value}"\n' + layout.appliance_toml.read_text())


def test_guest_metrics_command_without_xenstore_says_so_and_exits_0(
    appliance: Layout, caplog: pytest.LogCaptureFixture
) -> None:
    _xenstore_setting(appliance, "none")
    with caplog.at_level(logging.INFO, logger="podium_appliance.box.guest_metrics"):
        assert main(["--root", str(appliance.root), "guest-metrics"]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "no XenStore here (not a Xen guest): no guest metrics to report"
    ]


def test_guest_metrics_command_once_publishes_to_the_standin(machine: Layout) -> None:
    _xenstore_setting(machine, "file")
    assert main(["--root", str(machine.root), "guest-metrics", "--once"]) == 0
    stored = _stored(machine.xenstore_standin)
    assert {"data/updated", "attr/PVAddons/MajorVersion", "data/os_distro", "data/meminfo_free"} <= set(
        stored
    )
    assert stored["data/os_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert main(["--root", str(machine.root), "guest-metrics", "--once", "--interval", "0"]) == 1


def test_guest_metrics_command_store_writes_through_xenstore_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "argv.log"
    tool = tmp_path / "bin/xenstore-write"
    tool.parent.mkdir()
    tool.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> "{log}"\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:/usr/bin:/bin")
    CommandStore().write("attr/PVAddons/MicroVersion", "-1")
    assert log.read_text() == "--|attr/PVAddons/MicroVersion|-1|"
    tool.write_text("#!/bin/sh\necho 'xenstore-write: could not write path' >&2\nexit 1\n")
    with pytest.raises(ApplianceError, match=r"writing data/updated to XenStore: .*could not write path"):
        CommandStore().write("data/updated", "now")
