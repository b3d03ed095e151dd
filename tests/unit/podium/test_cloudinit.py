"""Cloud-init config drives: what NoCloud needs, read back by a reader other than the library that wrote it."""

from __future__ import annotations

import pytest

from podium import cloudinit

from ...harness.isoread import blkid, read_iso

UUID = "3f1c2a9e-8d4b-4c61-9a0e-5b7d2e4f6a10"
CONFIG = "#cloud-config\nhostname: web-1\npackages:\n  - htop\nruncmd:\n  - echo 'é ✓' > /root/ok\n"


def test_a_drive_is_a_nocloud_iso_labelled_cidata(tmp_path):
    network = "network:\n  version: 1\n  config:\n  - type: physical\n    name: eth0\n"
    image = cloudinit.config_drive(CONFIG, UUID, "web-1", network)
    assert len(image) % 2048 == 0 and len(image) < 1 << 20

    iso = read_iso(image)
    assert iso.label == iso.joliet_label == "cidata"
    assert iso.files == iso.rock_ridge  # the names Windows reads and the names Linux mounts agree
    assert iso.files == {
        "user-data": CONFIG.encode(),
        "meta-data": f'instance-id: "{UUID}"\nlocal-hostname: "web-1"\n'.encode(),
        "network-config": network.encode(),
        "openstack/latest/user_data": CONFIG.encode(),
        "openstack/latest/meta_data.json": f'{{"uuid": "{UUID}"}}'.encode(),
    }

    path = tmp_path / "drive.iso"
    path.write_bytes(image)
    probe = blkid(path)
    if probe is not None:  # util-linux: what cloud-init's NoCloud itself asks to find the drive
        assert probe["TYPE"] == "iso9660" and probe["LABEL"] == "cidata"


def test_network_config_and_host_name_only_when_given():
    iso = read_iso(cloudinit.config_drive("#cloud-config\n", UUID))
    assert "network-config" not in iso.files
    assert iso.files["meta-data"] == f'instance-id: "{UUID}"\n'.encode()
    assert iso.files["user-data"] == b"#cloud-config\n"


def test_an_empty_cloud_config_makes_an_empty_user_data():
    assert read_iso(cloudinit.config_drive("", UUID)).files["user-data"] == b""


@pytest.mark.parametrize(
    ("template", "name", "index", "expected"),
    [
        ("hostname: {name}\n", "web-1", 0, "hostname: web-1\n"),
        ("#hostname: {name}%\n", "db", 0, "#hostname: db%\n"),  # % is the bulk form's, left alone
        ("n{index}-{name}-{index}", "x", 3, "n3-x-3"),
        ("{name}", "a{index}b", 7, "a{index}b"),  # one pass: the name is not read as a template
        ("echo ${HOME} {nam} {NAME}", "v", 0, "echo ${HOME} {nam} {NAME}"),
    ],
)
def test_render_replaces_xen_orchestras_variables(template, name, index, expected):
    assert cloudinit.render(template, name, index) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web-1", "web-1"),
        ("  My Web  Server ", "My-Web-Server"),
        ("db_01.example", "db-01-example"),
        ("é!!", None),
        ("x" * 80, "x" * 63),
    ],
)
def test_host_names_from_vm_names(name, expected):
    assert cloudinit.hostname(name) == expected


def test_the_disk_is_ten_mib_or_the_image_in_whole_mib():
    assert cloudinit.disk_size(b"\0" * 2048) == 10 << 20
    assert cloudinit.disk_size(b"\0" * ((10 << 20) + 1)) == 11 << 20
