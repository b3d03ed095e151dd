"""VIF, network, PIF and Bond records as Xen Orchestra's objects."""

from __future__ import annotations

from .common import NULL, Obj, Record, finish, link, links, num, put
from .reader import Reader


def shape_vif(ref: str, rec: Record, reader: Reader) -> Obj:
    """A VM's network interface."""
    other = rec.get("other_config") or {}
    obj: Obj = {
        "type": "VIF",
        "allowedIpv4Addresses": rec.get("ipv4_allowed") or [],
        "allowedIpv6Addresses": rec.get("ipv6_allowed") or [],
        "attached": bool(rec.get("currently_attached")),
        "device": rec.get("device", ""),
        "lockingMode": rec.get("locking_mode", ""),
        "MAC": rec.get("MAC", ""),
        "MTU": num(rec.get("MTU")),
        "other_config": other,
        "txChecksumming": other.get("ethtool-tx") not in ("false", "off"),
    }
    params = rec.get("qos_algorithm_params") or {}
    if rec.get("qos_algorithm_type") == "ratelimit" and "kbps" in params:
        obj["rateLimit"] = num(params["kbps"])
    put(obj, "$network", link(reader, rec.get("network", NULL)))
    put(obj, "$VM", link(reader, rec.get("VM", NULL)))
    return finish(obj, ref, rec, reader, "VIF")


def shape_network(ref: str, rec: Record, reader: Reader) -> Obj:
    """A network of the pool."""
    other = rec.get("other_config") or {}
    obj: Obj = {
        "automatic": other.get("automatic") == "true",
        "bridge": rec.get("bridge", ""),
        "current_operations": rec.get("current_operations") or {},
        "defaultIsLocked": rec.get("default_locking_mode") == "disabled",
        "MTU": num(rec.get("MTU")),
        "name_description": rec.get("name_description", ""),
        "name_label": rec.get("name_label", ""),
        "other_config": other,
        "tags": rec.get("tags") or [],
        "PIFs": links(reader, rec.get("PIFs")),
        "VIFs": links(reader, rec.get("VIFs")),
    }
    if "purpose" in rec:
        purpose = rec.get("purpose") or []
        obj["nbd"] = "nbd" in purpose
        obj["insecureNbd"] = "insecure_nbd" in purpose
    return finish(obj, ref, rec, reader, "network")


def shape_pif(ref: str, rec: Record, reader: Reader) -> Obj:
    """A host's physical (or VLAN, bond) interface; carrier and speed from its metrics."""
    metrics = reader.get(rec.get("metrics", NULL))
    bond_of = rec.get("bond_master_of") or []
    obj: Obj = {
        "type": "PIF",
        "attached": bool(rec.get("currently_attached")),
        "isBondMaster": bool(bond_of),
        "isBondSlave": rec.get("bond_slave_of", NULL) != NULL,
        "device": rec.get("device", ""),
    }
    if metrics is not None:
        obj["deviceName"] = metrics.get("device_name", "")
    obj["dns"] = rec.get("DNS", "")
    obj["disallowUnplug"] = bool(rec.get("disallow_unplug"))
    obj["gateway"] = rec.get("gateway", "")
    obj["ip"] = rec.get("IP", "")
    obj["ipv6"] = rec.get("IPv6") or []
    obj["mac"] = rec.get("MAC", "")
    obj["management"] = bool(rec.get("management"))
    obj["carrier"] = bool(metrics.get("carrier")) if metrics else False
    obj["mode"] = rec.get("ip_configuration_mode", "")
    obj["ipv6Mode"] = rec.get("ipv6_configuration_mode", "")
    obj["mtu"] = num(rec.get("MTU"))
    obj["netmask"] = rec.get("netmask", "")
    obj["physical"] = bool(rec.get("physical"))
    obj["primaryAddressType"] = rec.get("primary_address_type", "")
    obj["vlan"] = num(rec.get("VLAN"))
    if metrics is not None:
        obj["speed"] = num(metrics.get("speed"))
    put(obj, "$host", link(reader, rec.get("host", NULL)))
    put(obj, "$network", link(reader, rec.get("network", NULL)))
    if bond_of:
        bond = reader.get(bond_of[0])
        if bond is not None:
            obj["bondSlaves"] = links(reader, bond.get("slaves"))
    slave_of = reader.get(rec.get("bond_slave_of", NULL))
    if slave_of is not None:
        put(obj, "bondMaster", link(reader, slave_of.get("master", NULL)))
    return finish(obj, ref, rec, reader, "PIF")


def shape_bond(ref: str, rec: Record, reader: Reader) -> Obj:
    """A bond of PIFs."""
    obj: Obj = {"type": "bond"}
    put(obj, "master", link(reader, rec.get("master", NULL)))
    obj["mode"] = rec.get("mode", "")
    return finish(obj, ref, rec, reader, "bond")
