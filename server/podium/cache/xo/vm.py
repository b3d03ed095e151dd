"""VM records as Xen Orchestra's VM, VM-template, VM-snapshot and VM-controller objects.

Reads the VM's metrics and guest metrics (so a change to either re-shapes the VM), the tasks of its
current operations, and its disks' SRs for the container of a halted VM.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from .common import NULL, Obj, Record, finish, link, links, num, put, ts
from .reader import Reader

_OLD_IP = re.compile(r"^(\d+)/ip$")
_NEW_IP = re.compile(r"^(\d+)/(ipv[46])/\d+$")


def domain_type(rec: Record) -> str:
    """pv, hvm or pvh: ``domain_type`` when set, else from the boot policy."""
    dt = rec.get("domain_type")
    if dt and dt != "unspecified":
        return str(dt)
    return "pv" if not rec.get("HVM_boot_policy") else "hvm"


def addresses(networks: dict[str, str]) -> dict[str, str]:
    """Guest addresses normalised as ``<dev>/<ipv4|ipv6>/<n>``, first seen first, without duplicates."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for key in sorted(networks):
        value = str(networks[key]).strip()
        if not value:
            continue
        old, new = _OLD_IP.match(key), _NEW_IP.match(key)
        if old:
            dev, proto, values = old.group(1), "ipv4", value.split()
        elif new:
            dev, proto, values = new.group(1), new.group(2), [value]
        else:
            continue
        bucket = grouped.setdefault(dev, {}).setdefault(proto, [])
        for v in values:
            if v not in bucket:
                bucket.append(v)
    out = {}
    for dev, protos in grouped.items():
        for proto, values in protos.items():
            for i, v in enumerate(values):
                out[f"{dev}/{proto}/{i}"] = v
    return out


def main_ip(networks: dict[str, str]) -> str | None:
    """The first IPv4 address of the lowest device (sorted as text), else the first IPv6 one."""
    keys = sorted(networks)
    for key in keys:
        if re.match(r"^\d+/ip$", key) or re.match(r"^\d+/ipv4/\d+$", key):
            return str(networks[key])
    for key in keys:
        if re.match(r"^\d+/ipv6/\d+$", key):
            return str(networks[key])
    return None


def _tools(rec: Record, running: bool, metrics: Record | None, gm: Record | None) -> Any:
    if not running or metrics is None:
        return None
    if gm is None:
        return False
    pv = gm.get("PV_drivers_version") or {}
    if "major" not in pv or "minor" not in pv:
        return False
    return {
        "major": num(pv["major"]),
        "minor": num(pv["minor"]),
        "version": num(f"{pv['major']}.{pv['minor']}"),
    }


def _memory(rec: Record, running: bool, metrics: Record | None, gm: Record | None) -> dict[str, Any]:
    mem: dict[str, Any] = {
        "dynamic": [num(rec.get("memory_dynamic_min")), num(rec.get("memory_dynamic_max"))],
        "static": [num(rec.get("memory_static_min")), num(rec.get("memory_static_max"))],
    }
    used = (gm or {}).get("memory", {}).get("used") if running else None
    if not running:
        mem["size"] = mem["dynamic"][1]
    elif used:
        mem["usage"] = num(used)
        mem["size"] = num((gm or {}).get("memory", {}).get("total"))
    elif metrics is not None:
        mem["size"] = num(metrics.get("memory_actual"))
    else:
        mem["size"] = mem["dynamic"][1]
    return mem


def _firmware_supported(rec: Record) -> bool:
    text = rec.get("recommendations") or ""
    if not text:
        return True
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return True
    firmware = (rec.get("HVM_boot_params") or {}).get("firmware")
    for r in root.iter("restriction"):
        if r.get("field") == f"supports-{firmware}":
            return r.get("value") != "no"
    return True


def _json_other(other: dict[str, str], key: str) -> Any:
    if key not in other:
        return None
    try:
        return json.loads(other[key])
    except ValueError:
        return None


def _container(rec: Record, reader: Reader) -> str:
    host = link(reader, rec.get("resident_on", NULL))
    if host is not None:
        return host
    for vbd_ref in rec.get("VBDs", []):
        vbd = reader.get(vbd_ref)
        vdi = reader.get(vbd.get("VDI", NULL)) if vbd else None
        sr = reader.get(vdi.get("SR", NULL)) if vdi else None
        if sr is not None and not sr.get("shared"):
            pbds = sr.get("PBDs") or []
            pbd = reader.get(pbds[0]) if pbds else None
            owner = link(reader, pbd.get("host", NULL)) if pbd else None
            if owner is not None:
                return owner
    return reader.pool_id


def _template_info(other: dict[str, str]) -> dict[str, Any]:
    disks = []
    try:
        root = ET.fromstring(other["disks"]) if other.get("disks") else None
    except ET.ParseError:
        root = None
    if root is not None and root.tag == "provision":
        for el in root:
            disk: dict[str, Any] = {k: v for k, v in el.attrib.items() if k != "sr"}
            if "bootable" in disk:
                disk["bootable"] = disk["bootable"] == "true"
            if "size" in disk:
                disk["size"] = num(disk["size"])
            if "sr" in el.attrib:
                disk["SR"] = el.attrib["sr"]
            disks.append(disk)
    info: dict[str, Any] = {}
    put(info, "arch", other.get("install-arch"))
    info["disks"] = disks
    info["install_methods"] = other["install-methods"].split(",") if other.get("install-methods") else []
    put(info, "install_repository", other.get("install-repository"))
    return info


def shape_vm(ref: str, rec: Record, reader: Reader) -> Obj:
    """A VM record as XO's VM / VM-template / VM-snapshot / VM-controller object."""
    metrics = reader.get(rec.get("metrics", NULL))
    gm = reader.get(rec.get("guest_metrics", NULL))
    other: dict[str, str] = rec.get("other_config") or {}
    platform: dict[str, str] = rec.get("platform") or {}
    running = rec.get("power_state") in ("Running", "Paused")
    dtype = domain_type(rec)
    is_hvm = dtype == "hvm"
    tools = _tools(rec, running, metrics, gm)
    networks = (gm or {}).get("networks") or {}
    obj: Obj = {"type": "VM", "addresses": addresses(networks)}
    put(obj, "affinityHost", link(reader, rec.get("affinity", NULL)))
    if "pci" in other:
        obj["attachedPcis"] = [p.split("/", 1)[-1] for p in other["pci"].split(",") if p]
    obj["auto_poweron"] = other.get("auto_poweron") == "true"
    obj["bios_strings"] = rec.get("bios_strings") or {}
    obj["blockedOperations"] = rec.get("blocked_operations") or {}
    obj["boot"] = rec.get("HVM_boot_params") or {}
    number = (
        num(metrics.get("VCPUs_number"))
        if (running and metrics and tools)
        else num(rec.get("VCPUs_at_startup"))
    )
    obj["CPUs"] = {"max": num(rec.get("VCPUs_max")), "number": number}
    xo_data = _json_other(other, "xo:" + str(rec.get("uuid", ""))[:8])
    put(obj, "creation", xo_data.get("creation") if isinstance(xo_data, dict) else None)
    ops = {}
    for task_ref, op in (rec.get("current_operations") or {}).items():
        task = reader.get(task_ref)
        if task is not None:
            ops[task.get("uuid", task_ref)] = op
    obj["current_operations"] = ops
    monitor = other.get("xscontainer-monitor")
    if monitor:
        obj["docker"] = {"enabled": monitor != "False"}
    obj["expNestedHvm"] = platform.get("exp-nested-hvm") == "true"
    obj["isNestedVirtEnabled"] = platform.get("nested-virt", platform.get("exp-nested-hvm")) == "true"
    obj["viridian"] = platform.get("viridian") == "true"
    put(obj, "mainIpAddress", main_ip(networks) if gm is not None else None)
    obj["high_availability"] = rec.get("ha_restart_priority", "")
    obj["isFirmwareSupported"] = _firmware_supported(rec)
    obj["memory"] = _memory(rec, running, metrics, gm)
    if metrics is not None:
        obj["installTime"] = ts(metrics.get("install_time"))
    obj["name_description"] = rec.get("name_description", "")
    obj["name_label"] = rec.get("name_label", "")
    obj["needsVtpm"] = platform.get("vtpm") == "true"
    put(obj, "notes", other.get("xo:notes"))
    obj["other"] = other
    obj["os_version"] = (gm.get("os_version") or None) if gm is not None else None
    put(obj, "parent", link(reader, rec.get("parent", NULL)))
    obj["power_state"] = rec.get("power_state")
    obj["hasVendorDevice"] = bool(rec.get("has_vendor_device"))
    resource_set = _json_other(other, "xo:resource_set")
    put(obj, "resourceSet", resource_set if isinstance(resource_set, str) else None)
    obj["snapshots"] = links(reader, rec.get("snapshots"))
    obj["startDelay"] = num(rec.get("start_delay"))
    if metrics is not None:
        obj["startTime"] = ts(metrics.get("start_time"))
    obj["secureBoot"] = platform.get("secureboot") == "true"
    put(obj, "suspendSr", link(reader, rec.get("suspend_SR", NULL)))
    obj["tags"] = rec.get("tags") or []
    obj["VIFs"] = links(reader, rec.get("VIFs"))
    obj["VTPMs"] = links(reader, rec.get("VTPMs"))
    obj["virtualizationMode"] = dtype
    put(obj, "xenTools", tools)
    if running and metrics is not None and gm is not None:
        pv = gm.get("PV_drivers_version") or {}
        has_pv = "major" in pv and "minor" in pv
        other_gm = gm.get("other") or {}
        obj["managementAgentDetected"] = has_pv or other_gm.get("feature-static-ip-setting") == "1"
        detected = bool(gm["PV_drivers_detected"]) if "PV_drivers_detected" in gm else has_pv
        obj["pvDriversDetected"] = detected
        if has_pv:
            obj["pvDriversVersion"] = f"{pv['major']}.{pv['minor']}.{pv.get('micro', 0)}-{pv.get('build', 0)}"
        if detected:
            obj["pvDriversUpToDate"] = bool(gm.get("PV_drivers_up_to_date"))
    obj["$container"] = _container(rec, reader)
    obj["$VBDs"] = links(reader, rec.get("VBDs"))
    obj["VGPUs"] = links(reader, rec.get("VGPUs"))
    obj["$VGPUs"] = list(obj["VGPUs"])
    put(obj, "nicType", platform.get("nic_type"))
    obj["xenStoreData"] = rec.get("xenstore_data") or {}
    if is_hvm:
        obj["vga"] = platform.get("vga", "cirrus")
        obj["videoram"] = platform.get("videoram", 4)
    if "cores-per-socket" in platform:
        obj["coresPerSocket"] = num(platform["cores-per-socket"])
    _kind(obj, rec, reader, other)
    params = rec.get("VCPUs_params") or {}
    if params.get("cap"):
        obj["cpuCap"] = num(params["cap"])
    if params.get("mask"):
        obj["cpuMask"] = [num(x) for x in params["mask"].split(",")]
    if params.get("weight"):
        obj["cpuWeight"] = num(params["weight"])
    if not is_hvm:
        obj["PV_args"] = rec.get("PV_args", "")
    return finish(obj, ref, rec, reader, "VM")


def _kind(obj: Obj, rec: Record, reader: Reader, other: dict[str, str]) -> None:
    if rec.get("is_control_domain"):
        obj["type"] = "VM-controller"
    elif rec.get("is_a_snapshot"):
        obj["type"] = "VM-snapshot"
        obj["snapshot_time"] = ts(rec.get("snapshot_time"))
        put(obj, "$snapshot_of", link(reader, rec.get("snapshot_of", NULL)))
        put(obj, "suspendVdi", link(reader, rec.get("suspend_VDI", NULL)))
    elif rec.get("is_a_template"):
        obj["type"] = "VM-template"
        is_default = bool(rec.get("is_default_template")) or other.get("default_template") == "true"
        if is_default:
            # Built-in templates have the same uuid in every pool: scope their id by pool.
            obj["id"] = f"{reader.pool_id}-{rec.get('uuid')}"
        obj["CPUs"]["number"] = num(rec.get("VCPUs_at_startup"))
        obj["isDefaultTemplate"] = is_default
        obj["template_info"] = _template_info(other)
