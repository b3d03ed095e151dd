"""Cloud-init config drives: the small disk vm.create attaches so that a new VM configures itself at first boot.

The drive follows cloud-init's NoCloud datasource: a file system labelled ``cidata`` holding ``user-data``
(the cloud config), ``meta-data`` (the instance id and host name) and, when given, ``network-config``.
Like Xen Orchestra's, it also holds the OpenStack config drive v2 copies ``openstack/latest/user_data``
and ``openstack/latest/meta_data.json``.

Xen Orchestra writes a 10 MiB FAT16 volume by hand. NoCloud reads ISO 9660 just as well, and cloud-init's
own ``cloud-localds`` writes ISO 9660 by default, so Podium builds the drive with pycdlib (pinned in
pyproject.toml): a pure-Python ISO 9660 library, typed, released regularly, also behind Ansible's
``iso_create``. The image carries Rock Ridge names (what Linux mounts) and Joliet names (what Windows
and cloudbase-init read). The pure-Python FAT writer, pyfatfs, was last released in early 2024 and
stands on PyFilesystem2, unmaintained since 2022.
"""

from __future__ import annotations

import io
import json
import re

import pycdlib

LABEL = "cidata"
"""The volume label NoCloud looks for (it accepts ``cidata`` and ``CIDATA``)."""

VDI_NAME = "XO CloudConfigDrive"
"""The drive's disk name, Xen Orchestra's (its tools know the drive by it)."""

MIN_DISK_SIZE = 10 << 20
"""The smallest disk made for a drive: Xen Orchestra's drives are 10 MiB."""

_TEMPLATE_VARS = re.compile(r"\{name\}|\{index\}")


def render(cloud_config: str, name: str, index: int = 0) -> str:
    """A cloud config with Xen Orchestra's variables replaced: ``{name}`` by the VM's name, ``{index}`` by its index.

    Xen Orchestra's VM creation form replaces them before it calls vm.create (``{index}`` is 0 for one
    VM, the VM's number in a bulk creation); Podium replaces them on the server too, so that any client
    gets them. ``%`` stands for the index only in a bulk creation's form and is left as it is, as Xen
    Orchestra leaves it for one VM. One pass: a name that holds ``{index}`` stays as it is.
    """
    values = {"{name}": name, "{index}": str(index)}
    return _TEMPLATE_VARS.sub(lambda m: values[m.group(0)], cloud_config)


def hostname(name: str) -> str | None:
    """A host name (RFC 1123 label) made from a VM's name, or None when nothing of it fits."""
    label = re.sub(r"[^A-Za-z0-9-]+", "-", name.strip()).strip("-")[:63].rstrip("-")
    return label or None


def meta_data(instance_id: str, host_name: str | None = None) -> str:
    """NoCloud's ``meta-data``: the instance id (a new one makes cloud-init run again) and the host name."""
    lines = [f"instance-id: {json.dumps(instance_id)}"]
    if host_name:
        lines.append(f"local-hostname: {json.dumps(host_name)}")
    return "\n".join(lines) + "\n"


def config_drive(
    user_data: str, instance_id: str, host_name: str | None = None, network_config: str | None = None
) -> bytes:
    """The drive's image: ISO 9660 labelled ``cidata`` with NoCloud's files (and the OpenStack copies)."""
    iso = pycdlib.PyCdlib()
    iso.new(
        interchange_level=3,
        vol_ident=LABEL,
        app_ident_str="Podium cloud-init config drive",
        joliet=3,
        rock_ridge="1.09",
    )
    user = user_data.encode()
    files = [("user-data", user), ("meta-data", meta_data(instance_id, host_name).encode())]
    if network_config is not None:
        files.append(("network-config", network_config.encode()))
    for name, data in files:
        _add(iso, "", name, data)
    iso.add_directory("/OPENSTACK", rr_name="openstack", joliet_path="/openstack")
    iso.add_directory("/OPENSTACK/LATEST", rr_name="latest", joliet_path="/openstack/latest")
    _add(iso, "/openstack/latest", "meta_data.json", json.dumps({"uuid": instance_id}).encode())
    _add(iso, "/openstack/latest", "user_data", user)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def _add(iso: pycdlib.PyCdlib, folder: str, name: str, data: bytes) -> None:
    # ISO 9660's own name (level 3: A-Z, 0-9 and _), with the real one in Rock Ridge and Joliet.
    stem, dot, ext = name.upper().replace("-", "_").partition(".")
    iso_name = f"{folder.upper()}/{stem}.{ext if dot else ''};1"
    iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path=f"{folder}/{name}")


def disk_size(image: bytes) -> int:
    """The size of the disk that holds a drive's image: 10 MiB, or the image's size in whole MiB if larger."""
    return max(MIN_DISK_SIZE, -(-len(image) // (1 << 20)) << 20)
