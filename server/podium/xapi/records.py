"""The records Podium hands XAPI's constructors (``VBD.create``, ``VDI.create``, ``VIF.create``).

Each constructor takes every field of its class's record that can be set at creation; these functions
fill in the ones Podium always sets alike (no QoS, no other_config, a user disk neither sharable nor
read-only), and take as arguments what differs between callers. References are XAPI's (``OpaqueRef:…``).
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


def vbd(
    vm: str,
    vdi: str,
    *,
    type: str = "Disk",
    mode: str = "RW",
    bootable: bool = False,
    userdevice: str = "autodetect",
    unpluggable: bool = True,
) -> Record:
    """A drive of ``vm`` holding ``vdi``: a disk (``Disk``) or a CD drive (``CD``, read-only ``RO``)."""
    return {
        "VM": vm,
        "VDI": vdi,
        "userdevice": userdevice,
        "bootable": bootable,
        "mode": mode,
        "type": type,
        "unpluggable": unpluggable,
        "empty": False,
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }


def vdi(sr: str, name: str, size: int, *, description: str = "") -> Record:
    """A user disk of ``size`` bytes in ``sr``."""
    return {
        "name_label": name,
        "name_description": description,
        "SR": sr,
        "virtual_size": size,
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": {},
        "xenstore_data": {},
        "sm_config": {},
        "tags": [],
    }


def vif(vm: str, network: str, *, device: str, mtu: int, mac: str = "") -> Record:
    """An interface of ``vm`` on ``network`` at position ``device`` (the pool picks a MAC for ``""``)."""
    return {
        "device": device,
        "network": network,
        "VM": vm,
        "MAC": mac,
        "MTU": mtu,
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }
