"""build_xva: a complete, importable XVA from one raw disk and a short VM description.

The records are full, as a current XAPI exports them (every field of the data model, in the legacy
form: ints as strings), cross-linked by ``Ref:N`` ids in the order export.ml hands them out (the VM,
its VIFs each with its network, its VBD with its VDI and SR). Import (import.ml, Full_import) then maps
the SR to the SR chosen for the import, matches each network by name label or bridge (or creates it),
gives the VIF a fresh MAC, and creates the VM, VDI, VBD and VIFs from these records.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from pathlib import Path
from typing import Any
from xmlrpc.client import DateTime

from ._writer import RawDisk, XvaWriter

GiB = 1024**3
NULL = "OpaqueRef:NULL"
NEVER = "19700101T00:00:00Z"
EXPORT_VERSION = {  # the oldest xapi version: XAPI refuses exports from a newer one than itself
    "hostname": "podium",
    "product_version": "1.0",
    "product_brand": "Podium",
    "build_number": "podium",
    "xapi_major": "1",
    "xapi_minor": "3",
    "export_vsn": "2",
}
PLATFORM = {  # what XCP-ng's "Other install media" template sets for an HVM guest, Viridian off
    "acpi": "1",
    "apic": "true",
    "pae": "true",
    "nx": "true",
    "hpet": "true",
    "viridian": "false",
    "timeoffset": "0",
    "device-model": "qemu-upstream-compat",
    "secureboot": "false",
}
QOS: dict[str, Any] = {"qos_algorithm_type": "", "qos_algorithm_params": {}, "qos_supported_algorithms": []}
IDLE: dict[str, Any] = {"allowed_operations": [], "current_operations": {}}


def _vm(
    ids: dict[str, Any],
    name_label: str,
    name_description: str,
    vcpus: int,
    memory: int,
    order: str,
    other_config: dict[str, str],
) -> dict[str, Any]:
    mem = str(memory)
    never = DateTime(NEVER)
    return {
        "uuid": str(uuid.uuid4()),
        **IDLE,
        "name_label": name_label,
        "name_description": name_description,
        "power_state": "Halted",
        "user_version": "1",
        "is_a_template": False,
        "is_default_template": False,
        "suspend_VDI": NULL,
        "resident_on": NULL,
        "scheduled_to_be_resident_on": NULL,
        "affinity": NULL,
        "memory_overhead": "0",
        "memory_target": mem,
        "memory_static_max": mem,
        "memory_dynamic_max": mem,
        "memory_dynamic_min": mem,
        "memory_static_min": mem,
        "VCPUs_params": {},
        "VCPUs_max": str(vcpus),
        "VCPUs_at_startup": str(vcpus),
        "actions_after_softreboot": "soft_reboot",
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "consoles": [],
        "VIFs": ids["VIF"],
        "VBDs": [ids["VBD"]],
        "VUSBs": [],
        "crash_dumps": [],
        "VTPMs": [],
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": order, "firmware": "bios"},
        "HVM_shadow_multiplier": 1.0,
        "platform": dict(PLATFORM),
        "PCI_bus": "",
        "other_config": other_config,
        "domid": "-1",
        "domarch": "",
        "last_boot_CPU_flags": {},
        "is_control_domain": False,
        "metrics": NULL,
        "guest_metrics": NULL,
        "last_booted_record": "",
        "recommendations": "",
        "xenstore_data": {},
        "ha_always_run": False,
        "ha_restart_priority": "",
        "is_a_snapshot": False,
        "snapshot_of": NULL,
        "snapshots": [],
        "snapshot_time": never,
        "transportable_snapshot_id": "",
        "blobs": {},
        "tags": [],
        "blocked_operations": {},
        "snapshot_info": {},
        "snapshot_metadata": "",
        "parent": NULL,
        "children": [],
        "bios_strings": {},
        "protection_policy": NULL,
        "is_snapshot_from_vmpp": False,
        "snapshot_schedule": NULL,
        "is_vmss_snapshot": False,
        "appliance": NULL,
        "start_delay": "0",
        "shutdown_delay": "0",
        "order": "0",
        "VGPUs": [],
        "attached_PCIs": [],
        "suspend_SR": NULL,
        "version": "0",
        "generation_id": "0:0",
        "hardware_platform_version": "0",
        "has_vendor_device": False,
        "requires_reboot": False,
        "reference_label": "",
        "domain_type": "hvm",
        "NVRAM": {},
        "pending_guidances": [],
        "pending_guidances_recommended": [],
        "pending_guidances_full": [],
    }


def _vbd(ids: dict[str, Any]) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        **IDLE,
        "VM": ids["VM"],
        "VDI": ids["VDI"],
        "device": "xvda",
        "userdevice": "0",
        "bootable": True,
        "mode": "RW",
        "type": "Disk",
        "unpluggable": False,
        "storage_lock": False,
        "empty": False,
        "other_config": {"owner": "true"},
        "currently_attached": False,
        "status_code": "0",
        "status_detail": "",
        "runtime_properties": {},
        **QOS,
        "metrics": NULL,
    }


def _vdi(ids: dict[str, Any], name_label: str, size: int) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "name_label": name_label,
        "name_description": "",
        **IDLE,
        "SR": ids["SR"],
        "VBDs": [ids["VBD"]],
        "crash_dumps": [],
        "virtual_size": str(size),
        "physical_utilisation": str(size),
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": {},
        "storage_lock": False,
        "location": "",
        "managed": True,
        "missing": False,
        "parent": NULL,
        "xenstore_data": {},
        "sm_config": {},
        "is_a_snapshot": False,
        "snapshot_of": NULL,
        "snapshots": [],
        "snapshot_time": DateTime(NEVER),
        "tags": [],
        "allow_caching": False,
        "on_boot": "persist",
        "metadata_of_pool": NULL,
        "metadata_latest": False,
        "is_tools_iso": False,
        "cbt_enabled": False,
    }


def _sr(ids: dict[str, Any], size: int) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "name_label": "Local storage",
        "name_description": "",
        **IDLE,
        "VDIs": [ids["VDI"]],
        "PBDs": [],
        "virtual_allocation": str(size),
        "physical_utilisation": str(size),
        "physical_size": str(size),
        "type": "ext",
        "content_type": "user",
        "shared": False,
        "other_config": {},
        "tags": [],
        "sm_config": {},
        "blobs": {},
        "local_cache_enabled": False,
        "introduced_by": NULL,
        "clustered": False,
        "is_tools_sr": False,
    }


def _network(vif: str, index: int) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "name_label": f"Pool-wide network associated with eth{index}",
        "name_description": "",
        **IDLE,
        "VIFs": [vif],
        "PIFs": [],
        "MTU": "1500",
        "other_config": {},
        "bridge": f"xenbr{index}",
        "managed": True,
        "blobs": {},
        "tags": [],
        "default_locking_mode": "unlocked",
        "assigned_ips": {},
        "purpose": [],
    }


def _vif(vm: str, network: str, index: int) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        **IDLE,
        "device": str(index),
        "network": network,
        "VM": vm,
        "MAC": "",
        "MTU": "1500",
        "other_config": {},
        "currently_attached": False,
        "status_code": "0",
        "status_detail": "",
        "runtime_properties": {},
        **QOS,
        "metrics": NULL,
        "MAC_autogenerated": True,
        "locking_mode": "network_default",
        "ipv4_allowed": [],
        "ipv6_allowed": [],
        "ipv4_configuration_mode": "None",
        "ipv4_addresses": [],
        "ipv4_gateway": "",
        "ipv6_configuration_mode": "None",
        "ipv6_addresses": [],
        "ipv6_gateway": "",
    }


def vm_ova(
    name_label: str,
    *,
    size: int,
    name_description: str = "",
    vcpus: int = 2,
    memory: int = 2 * GiB,
    boot: str = "cd",
    other_config: dict[str, str] | None = None,
    vif_networks: int = 1,
) -> dict[str, Any]:
    """The ova.xml content (version and objects) of an HVM VM with one disk of ``size`` bytes."""
    order = boot.removeprefix("HVM BIOS order").strip()
    if not re.fullmatch(r"[cdn]{1,3}", order) or len(set(order)) != len(order):
        raise ValueError(f"boot must be an HVM BIOS boot order of c, d, n (like 'cd'), not {boot!r}")
    if vcpus < 1 or memory < 16 * 1024**2 or not 0 <= vif_networks <= 7 or size < 0:
        raise ValueError("need vcpus >= 1, memory >= 16 MiB, 0 to 7 vif_networks and a disk size >= 0")
    ids: dict[str, Any] = {"VM": "Ref:0", "VIF": [], "net": []}
    for i in range(vif_networks):  # export.ml numbers a VIF, then its network
        ids["VIF"].append(f"Ref:{1 + 2 * i}")
        ids["net"].append(f"Ref:{2 + 2 * i}")
    base = 1 + 2 * vif_networks
    ids.update(VBD=f"Ref:{base}", VDI=f"Ref:{base + 1}", SR=f"Ref:{base + 2}")
    vm = _vm(ids, name_label, name_description, vcpus, memory, order, dict(other_config or {}))
    objects = [
        {"class": "VM", "id": ids["VM"], "snapshot": vm},
        {"class": "VBD", "id": ids["VBD"], "snapshot": _vbd(ids)},
    ]
    for i, (vif, net) in enumerate(zip(ids["VIF"], ids["net"], strict=True)):
        objects.append({"class": "VIF", "id": vif, "snapshot": _vif(ids["VM"], net, i)})
    for i, (vif, net) in enumerate(zip(ids["VIF"], ids["net"], strict=True)):
        objects.append({"class": "network", "id": net, "snapshot": _network(vif, i)})
    objects.append({"class": "VDI", "id": ids["VDI"], "snapshot": _vdi(ids, f"{name_label} 0", size)})
    objects.append({"class": "SR", "id": ids["SR"], "snapshot": _sr(ids, size)})
    version = {**EXPORT_VERSION, "date": dt.date.today().isoformat()}
    return {"version": version, "objects": objects}


def build_xva(
    disk: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name_label: str,
    name_description: str = "",
    vcpus: int = 2,
    memory: int = 2 * GiB,
    virtual_size: int | None = None,
    boot: str = "cd",
    other_config: dict[str, str] | None = None,
    vif_networks: int = 1,
    compression: str | None = None,
    checksum: str = "xxhash",
) -> Path:
    """Write ``out``: an XVA of an HVM VM (BIOS boot order ``boot``) whose one disk is the raw image
    ``disk``, ``virtual_size`` bytes long (the file's size by default; more means zeros after it),
    with ``vif_networks`` VIFs. Returns ``out``."""
    with RawDisk(disk, virtual_size) as source:
        ova = vm_ova(
            name_label,
            size=source.size,
            name_description=name_description,
            vcpus=vcpus,
            memory=memory,
            boot=boot,
            other_config=other_config,
            vif_networks=vif_networks,
        )
        vdi = next(o["id"] for o in ova["objects"] if o["class"] == "VDI")
        return XvaWriter(ova, {vdi: source}, checksum=checksum, compression=compression).write(out)
