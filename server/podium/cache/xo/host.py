"""pool, host and patch records as Xen Orchestra's objects."""

from __future__ import annotations

import math
from typing import Any

from .common import NULL, Obj, Record, finish, link, links, num, put, truthy, ts
from .reader import Reader

GIB = 1 << 30


def _cpus(info: Any) -> dict[str, Any]:
    if not info:
        return {"cores": info, "sockets": info}
    return {"cores": num(info.get("cpu_count")), "sockets": num(info.get("socket_count"))}


def shape_pool(ref: str, rec: Record, reader: Reader) -> Obj:
    """The pool object (its name falls back to the master's)."""
    other = rec.get("other_config") or {}
    restrictions = rec.get("restrictions") or {}
    ha_srs = []
    for vdi_ref in rec.get("ha_statefiles") or []:
        vdi = reader.get(vdi_ref)
        if vdi is not None:
            ha_srs.append(link(reader, vdi.get("SR", NULL)))
    name = rec.get("name_label") or ""
    if not name:
        master = reader.get(rec.get("master", NULL))
        name = master.get("name_label", "") if master else ""
    obj: Obj = {"auto_poweron": other.get("auto_poweron") == "true"}
    put(obj, "crashDumpSr", link(reader, rec.get("crash_dump_SR", NULL)))
    obj["current_operations"] = rec.get("current_operations") or {}
    put(obj, "default_SR", link(reader, rec.get("default_SR", NULL)))
    obj["HA_enabled"] = bool(rec.get("ha_enabled"))
    obj["haSrs"] = ha_srs
    put(obj, "master", link(reader, rec.get("master", NULL)))
    obj["tags"] = rec.get("tags") or []
    obj["name_description"] = rec.get("name_description", "")
    obj["name_label"] = name
    if "migration_compression" in rec:
        obj["migrationCompression"] = bool(rec["migration_compression"])
    obj["otherConfig"] = other
    obj["cpus"] = _cpus(rec.get("cpu_info"))
    put(obj, "suspendSr", link(reader, rec.get("suspend_image_SR", NULL)))
    obj["zstdSupported"] = restrictions.get("restrict_zstd_export") == "false"
    obj["vtpmSupported"] = restrictions.get("restrict_vtpm") == "false"
    software = (reader.get(rec.get("master", NULL)) or {}).get("software_version")
    put(obj, "platform_version", software.get("platform_version") if isinstance(software, dict) else None)
    return finish(obj, ref, rec, reader, "pool")


def _supplemental_packs(rec: Record, reader: Reader, use_updates: bool) -> list[dict[str, Any]]:
    packs = []
    if use_updates:
        for upd_ref in rec.get("updates") or []:
            upd = reader.get(upd_ref)
            if upd is None or str(upd.get("name_label", "")).startswith("XS"):
                continue
            key_parts = str(upd.get("key", "")).split("-")
            packs.append(
                {
                    "name": upd.get("name_label"),
                    "description": upd.get("name_description"),
                    "author": key_parts[3] if len(key_parts) > 3 else None,
                    "version": upd.get("version"),
                    "guidance": upd.get("after_apply_guidance"),
                    "hosts": links(reader, upd.get("hosts")),
                    "vdi": link(reader, upd.get("vdi", NULL)),
                    "size": upd.get("installation_size"),
                }
            )
        return packs
    for key, value in (rec.get("software_version") or {}).items():
        parts = key.split(":")
        if len(parts) != 2 or ", " not in str(value):
            continue
        description, rest = str(value).split(", ", 1)
        words = rest.split()
        version = words[1] if len(words) > 1 else ""
        packs.append({"name": parts[1], "description": description, "author": parts[0], "version": version})
    return packs


def _version_at_least(text: str, wanted: tuple[int, ...]) -> bool:
    try:
        return tuple(int(x) for x in text.split(".")[:3]) >= wanted
    except ValueError:
        return False


def shape_host(ref: str, rec: Record, reader: Reader) -> Obj:
    """A host object; its memory and power state come from its host_metrics."""
    metrics = reader.get(rec.get("metrics", NULL))
    other = rec.get("other_config") or {}
    software = rec.get("software_version") or {}
    license_params = rec.get("license_params") or {}
    obj: Obj = {"CPUs": rec.get("cpu_info") or {}, "address": rec.get("address", "")}
    obj["bios_strings"] = rec.get("bios_strings") or {}
    obj["build"] = software.get("build_number")
    chipset = rec.get("chipset_info") or {}
    obj["chipset_info"] = {"iommu": chipset["iommu"] == "true"} if "iommu" in chipset else {}
    obj["enabled"] = bool(rec.get("enabled"))
    put(obj, "controlDomain", link(reader, rec.get("control_domain", NULL)))
    obj["cpus"] = _cpus(rec.get("cpu_info"))
    obj["current_operations"] = rec.get("current_operations") or {}
    obj["hostname"] = rec.get("hostname", "")
    obj["iscsiIqn"] = rec.get("iscsi_iqn") or other.get("iscsi_iqn") or ""
    obj["zstdSupported"] = license_params.get("restrict_zstd_export") == "false"
    obj["license_params"] = license_params
    obj["license_server"] = rec.get("license_server") or {}
    obj["license_expiry"] = ts(license_params.get("expiry"))
    obj["logging"] = rec.get("logging") or {}
    obj["name_description"] = rec.get("name_description", "")
    obj["name_label"] = rec.get("name_label", "")
    if metrics is not None:
        total = math.ceil(num(metrics.get("memory_total")) / GIB) * GIB
        obj["memory"] = {"usage": total - num(metrics.get("memory_free")), "size": total, "total": total}
    else:
        obj["memory"] = {"usage": 0, "size": 0, "total": 0}
    obj["multipathing"] = other.get("multipathing") == "true"
    obj["otherConfig"] = other
    obj["patches"] = links(reader, rec.get("patches"))
    obj["powerOnMode"] = rec.get("power_on_mode", "")
    obj["power_state"] = (
        "Unknown" if metrics is None else ("Running" if truthy(metrics.get("live")) else "Halted")
    )
    obj["residentVms"] = links(reader, rec.get("resident_VMs"))
    obj["startTime"] = ts(other.get("boot_time"))
    use_updates = _version_at_least(str(software.get("platform_version", "")), (2, 1, 1))
    obj["supplementalPacks"] = _supplemental_packs(rec, reader, use_updates)
    obj["agentStartTime"] = ts(other.get("agent_start_time"))
    if software.get("product_brand") == "XCP-ng":
        boot, patched = ts(other.get("boot_time")), other.get("rpm_patch_installation_time")
        obj["rebootRequired"] = bool(boot is not None and patched and boot < num(patched))
    else:
        obj["rebootRequired"] = bool(rec.get("updates_requiring_reboot"))
    obj["tags"] = rec.get("tags") or []
    obj["version"] = software.get("product_version")
    obj["productBrand"] = software.get("product_brand")
    obj["hvmCapable"] = any(str(c).startswith("hvm") for c in rec.get("capabilities") or [])
    if "certificates" in rec:
        certs = []
        for cref in rec["certificates"]:
            cert = reader.get(cref)
            if cert is not None:
                certs.append({"fingerprint": cert.get("fingerprint"), "notAfter": ts(cert.get("not_after"))})
        obj["certificates"] = certs
    for key, field in (("PIFs", "PIFs"), ("PCIs", "PCIs"), ("PGPUs", "PGPUs")):
        obj[key] = links(reader, rec.get(field))
        obj["$" + key] = list(obj[key])
    obj["$PBDs"] = links(reader, rec.get("PBDs"))
    return finish(obj, ref, rec, reader, "host")


def shape_host_patch(ref: str, rec: Record, reader: Reader) -> Obj | None:
    """A patch applied to a host (needs its pool_patch)."""
    pool_patch = reader.get(rec.get("pool_patch", NULL))
    if pool_patch is None:
        return None  # shaped again when the pool_patch arrives
    obj: Obj = {
        "type": "patch",
        "applied": bool(rec.get("applied")),
        "enforceHomogeneity": pool_patch.get("pool_applied"),
        "description": pool_patch.get("name_description"),
        "name": pool_patch.get("name_label"),
        "pool_patch": rec.get("pool_patch"),
        "size": num(pool_patch.get("size")),
        "guidance": pool_patch.get("after_apply_guidance"),
        "time": ts(rec.get("timestamp_applied")),
    }
    put(obj, "$host", link(reader, rec.get("host", NULL)))
    return finish(obj, ref, rec, reader, "patch")


def shape_pool_patch(ref: str, rec: Record, reader: Reader) -> Obj:
    """A patch uploaded to the pool (Xen Orchestra identifies it by its reference)."""
    obj: Obj = {
        "id": ref,
        "dataUuid": rec.get("uuid"),
        "description": rec.get("name_description"),
        "guidance": rec.get("after_apply_guidance"),
        "name": rec.get("name_label"),
        "size": num(rec.get("size")),
        "uuid": ref,
        "$host_patches": links(reader, rec.get("host_patches")),
    }
    return finish(obj, ref, rec, reader, "pool_patch")
