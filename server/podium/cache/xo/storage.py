"""SR, PBD, VDI and VBD records as Xen Orchestra's objects."""

from __future__ import annotations

import re

from .common import NULL, Obj, Record, finish, link, links, num, put, ts
from .reader import Reader

_THIN = frozenset({"ext", "file", "nfs", "shm", "smb", "xosan", "zfs"})
_THICK = frozenset(
    {
        "hba",
        "iscsi",
        "lvhd",
        "lvhdofcoe",
        "lvhdohba",
        "lvhdoiscsi",
        "lvm",
        "lvmofcoe",
        "lvmohba",
        "lvmoiscsi",
        "ocfs",
        "ocfsohba",
        "ocfsoiscsi",
        "rawhba",
        "rawiscsi",
        "udev",
    }
)
_SECRET_KEY = re.compile("password", re.IGNORECASE)
OBFUSCATED = "* obfuscated *"


def shape_sr(ref: str, rec: Record, reader: Reader) -> Obj:
    """A storage repository; a local one lives on the host of its first PBD."""
    pbds = rec.get("PBDs") or []
    first_pbd = reader.get(pbds[0]) if pbds else None
    sr_type = rec.get("type", "")
    obj: Obj = {"type": "SR", "content_type": rec.get("content_type", "")}
    obj["physical_usage"] = num(rec.get("physical_utilisation"))
    if sr_type == "linstor":
        obj["allocationStrategy"] = ((first_pbd or {}).get("device_config") or {}).get(
            "provisioning", "unknown"
        )
    elif sr_type in _THIN:
        obj["allocationStrategy"] = "thin"
    elif sr_type in _THICK:
        obj["allocationStrategy"] = "thick"
    other = rec.get("other_config") or {}
    obj["current_operations"] = rec.get("current_operations") or {}
    obj["inMaintenanceMode"] = "xo:maintenanceState" in other
    obj["name_description"] = rec.get("name_description", "")
    obj["name_label"] = rec.get("name_label", "")
    obj["size"] = num(rec.get("physical_size"))
    obj["shared"] = bool(rec.get("shared"))
    obj["SR_type"] = sr_type
    obj["tags"] = rec.get("tags") or []
    obj["usage"] = num(rec.get("virtual_allocation"))
    obj["VDIs"] = links(reader, rec.get("VDIs"))
    obj["other_config"] = other
    obj["sm_config"] = rec.get("sm_config") or {}
    host = link(reader, first_pbd.get("host", NULL)) if first_pbd and not rec.get("shared") else None
    obj["$container"] = host or reader.pool_id
    obj["$PBDs"] = links(reader, pbds)
    return finish(obj, ref, rec, reader, "SR")


def obfuscate(config: dict[str, object]) -> dict[str, object]:
    """device_config with its secrets replaced, as Xen Orchestra shows them."""
    return {
        k: OBFUSCATED
        if isinstance(v, str) and (k in ("token", "passphrase", "encryptionKey") or _SECRET_KEY.search(k))
        else v
        for k, v in config.items()
    }


def shape_pbd(ref: str, rec: Record, reader: Reader) -> Obj:
    """A host's connection to an SR; its secrets are never shown."""
    obj: Obj = {"type": "PBD", "attached": bool(rec.get("currently_attached"))}
    put(obj, "host", link(reader, rec.get("host", NULL)))
    put(obj, "SR", link(reader, rec.get("SR", NULL)))
    obj["device_config"] = obfuscate(rec.get("device_config") or {})
    obj["otherConfig"] = rec.get("other_config") or {}
    return finish(obj, ref, rec, reader, "PBD")


def shape_vdi(ref: str, rec: Record, reader: Reader) -> Obj:
    """A disk: VDI, VDI-snapshot, or VDI-unmanaged (a base copy)."""
    obj: Obj = {"type": "VDI"}
    if "cbt_enabled" in rec:
        obj["cbt_enabled"] = rec["cbt_enabled"]
    obj["missing"] = bool(rec.get("missing"))
    obj["name_description"] = rec.get("name_description", "")
    obj["name_label"] = rec.get("name_label", "")
    put(obj, "parent", (rec.get("sm_config") or {}).get("vhd-parent"))
    obj["size"] = num(rec.get("virtual_size"))
    obj["snapshots"] = links(reader, rec.get("snapshots"))
    obj["tags"] = rec.get("tags") or []
    obj["usage"] = num(rec.get("physical_utilisation"))
    obj["VDI_type"] = rec.get("type", "")
    obj["current_operations"] = rec.get("current_operations") or {}
    obj["other_config"] = rec.get("other_config") or {}
    put(obj, "image_format", rec.get("image_format"))
    put(obj, "$SR", link(reader, rec.get("SR", NULL)))
    obj["$VBDs"] = links(reader, rec.get("VBDs"))
    if rec.get("is_a_snapshot"):
        obj["type"] = "VDI-snapshot"
        obj["snapshot_time"] = ts(rec.get("snapshot_time"))
        put(obj, "$snapshot_of", link(reader, rec.get("snapshot_of", NULL)))
    elif rec.get("managed") is False:
        obj["type"] = "VDI-unmanaged"
    return finish(obj, ref, rec, reader, "VDI")


def shape_vbd(ref: str, rec: Record, reader: Reader) -> Obj:
    """A VM's disk or CD drive."""
    obj: Obj = {
        "type": "VBD",
        "attached": bool(rec.get("currently_attached")),
        "bootable": bool(rec.get("bootable")),
        "device": rec.get("device") or None,
        "is_cd_drive": rec.get("type") == "CD",
        "position": rec.get("userdevice", ""),
        "read_only": rec.get("mode") == "RO",
    }
    put(obj, "VDI", link(reader, rec.get("VDI", NULL)))
    put(obj, "VM", link(reader, rec.get("VM", NULL)))
    return finish(obj, ref, rec, reader, "VBD")
