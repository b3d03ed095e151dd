"""Disks and devices: VDI, VBD and VIF create / destroy / plug, CD insert and eject, SR scan.

Each keeps the SR's accounting true (``virtual_allocation``, ``physical_utilisation``) and raises
the errors xapi raises: VBD_NOT_REMOVABLE_MEDIA, VBD_NOT_EMPTY, VBD_IS_EMPTY, DEVICE_ALREADY_ATTACHED,
DEVICE_ALREADY_DETACHED, VDI_IN_USE, DEVICE_ALREADY_EXISTS.
"""

from __future__ import annotations

import random
from typing import Any

from ..call import Call
from ..database import Database
from ..dispatch import handler
from ..errors import Failure
from ..generic import record_of
from ..values import NULL_REF, new_uuid, now

# VDI fields a copy never takes from its source.
_VDI_NOT_COPIED = frozenset(
    {"uuid", "VBDs", "crash_dumps", "snapshots", "current_operations", "allowed_operations", "location"}
)


def random_mac() -> str:
    """A locally administered unicast MAC address, as xapi generates for new VIFs."""
    octets = [0x02] + [random.randrange(256) for _ in range(5)]
    return ":".join(f"{o:02x}" for o in octets)


def account_sr(db: Database, sr: str) -> None:
    """Recompute an SR's allocation from its VDIs."""
    rec = db.get("SR", sr)
    if rec is None:
        return
    vdis = [db.records("VDI")[v] for v in rec["VDIs"] if v in db.records("VDI")]
    db.update(
        "SR",
        sr,
        virtual_allocation=sum(int(v["virtual_size"]) for v in vdis),
        physical_utilisation=sum(int(v["physical_utilisation"]) for v in vdis),
    )


def create_vdi(ctx: Call, fields: dict[str, Any]) -> str:
    """Create a VDI in its SR (HANDLE_INVALID for an unknown SR), empty and sparse."""
    sr = fields.get("SR", NULL_REF)
    record_of(ctx, "SR", sr)
    uuid = new_uuid()
    base = {"uuid": uuid, "location": uuid, "managed": True, "physical_utilisation": 0}
    base.update({k: v for k, v in fields.items() if k != "uuid"})
    ref = ctx.db.create("VDI", base)
    account_sr(ctx.db, sr)
    return ref


def copy_vdi(ctx: Call, vdi: str, mode: str, sr: str | None = None) -> str:
    """A new VDI from ``vdi``: ``clone`` (same SR), ``copy`` (into ``sr``) or ``snapshot``."""
    src = record_of(ctx, "VDI", vdi)
    fields = {k: v for k, v in src.items() if k not in _VDI_NOT_COPIED}
    fields["SR"] = sr or src["SR"]
    if mode == "snapshot":
        fields.update(is_a_snapshot=True, snapshot_of=vdi, snapshot_time=now())
    else:
        fields.update(is_a_snapshot=False, snapshot_of=NULL_REF)
    new = create_vdi(ctx, fields)
    ctx.sim.disks.copy(src["uuid"], ctx.db.records("VDI")[new]["uuid"])
    return new


def destroy_vdi(ctx: Call, vdi: str) -> None:
    """Remove a VDI record and its content."""
    rec = ctx.db.records("VDI")[vdi]
    ctx.db.destroy("VDI", vdi)
    ctx.sim.disks.remove(rec["uuid"])
    account_sr(ctx.db, rec["SR"])


@handler("VDI.create")
async def vdi_create(ctx: Call, fields: dict[str, Any]) -> str:
    """Create a disk in an SR."""
    if int(fields.get("virtual_size", 0)) < 0:
        raise Failure("INVALID_VALUE", "virtual_size", fields.get("virtual_size"))
    return create_vdi(ctx, fields)


@handler("VDI.destroy")
async def vdi_destroy(ctx: Call, vdi: str) -> str:
    """Delete a disk that no running VM uses; its unplugged VBDs go with it."""
    rec = record_of(ctx, "VDI", vdi)
    for vbd in rec["VBDs"]:
        vbd_rec = ctx.db.get("VBD", vbd)
        if vbd_rec is not None and vbd_rec["currently_attached"]:
            raise Failure("VDI_IN_USE", vdi, "destroy")
    await ctx.work(steps=1)
    for vbd in list(rec["VBDs"]):
        if ctx.db.get("VBD", vbd) is not None:
            ctx.db.destroy("VBD", vbd)
    destroy_vdi(ctx, vdi)
    return ""


@handler("VDI.clone")
async def vdi_clone(ctx: Call, vdi: str, driver_params: dict[str, str]) -> str:
    """A clone of a disk in the same SR."""
    await ctx.work(steps=1)
    return copy_vdi(ctx, vdi, "clone")


@handler("VDI.snapshot")
async def vdi_snapshot(ctx: Call, vdi: str, driver_params: dict[str, str]) -> str:
    """A snapshot of a disk."""
    await ctx.work(steps=1)
    return copy_vdi(ctx, vdi, "snapshot")


@handler("VDI.copy")
async def vdi_copy(ctx: Call, vdi: str, sr: str, *rest: Any) -> str:
    """A full copy of a disk into an SR."""
    record_of(ctx, "SR", sr)
    await ctx.work()
    return copy_vdi(ctx, vdi, "copy", sr)


@handler("VDI.resize", "VDI.resize_online")
async def vdi_resize(ctx: Call, vdi: str, size: int) -> str:
    """Grow a disk (shrinking is refused)."""
    rec = record_of(ctx, "VDI", vdi)
    if size < int(rec["virtual_size"]):
        raise Failure("VDI_TOO_SMALL", vdi, size)
    ctx.db.update("VDI", vdi, virtual_size=size)
    ctx.sim.disks.resize(rec["uuid"], size)
    account_sr(ctx.db, rec["SR"])
    return ""


@handler("SR.scan")
async def sr_scan(ctx: Call, sr: str) -> str:
    """Refresh an SR's view of its disks and its allocation."""
    record_of(ctx, "SR", sr)
    await ctx.work(steps=1)
    account_sr(ctx.db, sr)
    return ""


# --- VBD ---------------------------------------------------------------------------------------
def _vm_running(ctx: Call, vm: str) -> bool:
    return str(record_of(ctx, "VM", vm)["power_state"]) == "Running"


def _free_device(ctx: Call, vm: str, cls: str, key: str, field: str) -> str:
    used = {ctx.db.records(cls)[d][field] for d in record_of(ctx, "VM", vm)[key] if d in ctx.db.records(cls)}
    n = 0
    while str(n) in used:
        n += 1
    return str(n)


@handler("VM.get_allowed_VBD_devices")
async def allowed_vbd_devices(ctx: Call, vm: str) -> list[str]:
    """The positions a new VBD of the VM may take: 0 to 254 less those its VBDs hold, as current xapi."""
    vbds = ctx.db.records("VBD")
    used = {vbds[d]["userdevice"] for d in record_of(ctx, "VM", vm)["VBDs"] if d in vbds}
    return [str(n) for n in range(255) if str(n) not in used]


@handler("VBD.create")
async def vbd_create(ctx: Call, fields: dict[str, Any]) -> str:
    """Attach a disk or CD drive to a VM (plugged later by VBD.plug or the VM's start)."""
    vm = fields.get("VM", NULL_REF)
    record_of(ctx, "VM", vm)
    empty = bool(fields.get("empty", False))
    if empty and fields.get("type") != "CD":
        raise Failure("VBD_NOT_REMOVABLE_MEDIA", "in constructor")
    if not empty:
        record_of(ctx, "VDI", fields.get("VDI", NULL_REF))
    else:
        fields["VDI"] = NULL_REF
    if fields.get("userdevice", "autodetect") in ("autodetect", ""):
        fields["userdevice"] = _free_device(ctx, vm, "VBD", "VBDs", "userdevice")
    fields["currently_attached"] = False
    return ctx.db.create("VBD", fields)


@handler("VBD.destroy", "VIF.destroy")
async def device_destroy(ctx: Call, dev: str) -> str:
    """Remove a VBD or VIF that is not plugged into a running VM."""
    cls = ctx.method.split(".")[-2]
    rec = record_of(ctx, cls, dev)
    if rec["currently_attached"] and _vm_running(ctx, rec["VM"]):
        raise Failure("OPERATION_NOT_ALLOWED", f"{cls} is currently attached; unplug it first")
    ctx.db.destroy(cls, dev)
    return ""


@handler("VBD.plug", "VIF.plug")
async def plug(ctx: Call, dev: str) -> str:
    """Hot-plug a device into a running VM."""
    cls = ctx.method.split(".")[-2]
    rec = record_of(ctx, cls, dev)
    vm = record_of(ctx, "VM", rec["VM"])
    if vm["power_state"] != "Running":
        raise Failure("VM_BAD_POWER_STATE", rec["VM"], "running", str(vm["power_state"]).lower())
    if rec["currently_attached"]:
        raise Failure("DEVICE_ALREADY_ATTACHED", dev)
    await ctx.work(steps=1)
    ctx.db.update(cls, dev, currently_attached=True)
    return ""


@handler("VBD.unplug", "VBD.unplug_force", "VIF.unplug", "VIF.unplug_force")
async def unplug(ctx: Call, dev: str) -> str:
    """Hot-unplug a device from a running VM."""
    cls = ctx.method.split(".")[-2]
    rec = record_of(ctx, cls, dev)
    vm = record_of(ctx, "VM", rec["VM"])
    if vm["power_state"] != "Running":
        raise Failure("VM_BAD_POWER_STATE", rec["VM"], "running", str(vm["power_state"]).lower())
    if not rec["currently_attached"]:
        raise Failure("DEVICE_ALREADY_DETACHED", dev)
    await ctx.work(steps=1)
    ctx.db.update(cls, dev, currently_attached=False)
    return ""


@handler("VBD.insert")
async def insert(ctx: Call, vbd: str, vdi: str) -> str:
    """Put a disc (an ISO VDI) into an empty CD drive."""
    rec = record_of(ctx, "VBD", vbd)
    record_of(ctx, "VDI", vdi)
    if rec["type"] != "CD":
        raise Failure("VBD_NOT_REMOVABLE_MEDIA", vbd)
    if not rec["empty"]:
        raise Failure("VBD_NOT_EMPTY", vbd)
    ctx.db.update("VBD", vbd, VDI=vdi, empty=False)
    return ""


@handler("VBD.eject")
async def eject(ctx: Call, vbd: str) -> str:
    """Take the disc out of a CD drive."""
    rec = record_of(ctx, "VBD", vbd)
    if rec["type"] != "CD":
        raise Failure("VBD_NOT_REMOVABLE_MEDIA", vbd)
    if rec["empty"]:
        raise Failure("VBD_IS_EMPTY", vbd)
    ctx.db.update("VBD", vbd, VDI=NULL_REF, empty=True)
    return ""


# --- VIF ---------------------------------------------------------------------------------------
@handler("VIF.create")
async def vif_create(ctx: Call, fields: dict[str, Any]) -> str:
    """Give a VM a network interface (a MAC is generated when none is given)."""
    vm = fields.get("VM", NULL_REF)
    record_of(ctx, "VM", vm)
    network = record_of(ctx, "network", fields.get("network", NULL_REF))
    device = str(fields.get("device", "")) or _free_device(ctx, vm, "VIF", "VIFs", "device")
    for other in record_of(ctx, "VM", vm)["VIFs"]:
        if ctx.db.records("VIF").get(other, {}).get("device") == device:
            raise Failure("DEVICE_ALREADY_EXISTS", device)
    if not fields.get("MAC"):
        fields["MAC"] = random_mac()
        fields["MAC_autogenerated"] = True
    fields.update(device=device, currently_attached=False)
    if not fields.get("MTU"):
        fields["MTU"] = network.get("MTU", 1500)
    return ctx.db.create("VIF", fields)
