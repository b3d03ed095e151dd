"""VM.clone / copy / snapshot / checkpoint / provision / revert / destroy / create, as xapi does them.

clone, copy, snapshot and checkpoint share one routine (as in xapi_vm_clone.ml): a new VM record,
each disk cloned, copied or snapshotted (CD drives keep their ISO, empty drives stay empty), VIFs
copied with a new MAC except for snapshots. Templates provision their disks from the ``disks`` spec
in other_config.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from ..call import Call
from ..dispatch import handler
from ..errors import Failure
from ..generic import generic_handler, record_of
from ..values import NULL_REF, XDateTime, new_uuid, now
from .storage import copy_vdi, create_vdi, destroy_vdi, random_mac
from .vm import add_message, operation, set_halted, update_allowed_operations, vm_of

# VM fields a copy never takes from its source: identity, runtime state, and one-to-many sets.
VM_NOT_COPIED = frozenset(
    {
        "uuid",
        "allowed_operations",
        "current_operations",
        "resident_on",
        "scheduled_to_be_resident_on",
        "domid",
        "metrics",
        "guest_metrics",
        "consoles",
        "VIFs",
        "VBDs",
        "VUSBs",
        "VGPUs",
        "VTPMs",
        "crash_dumps",
        "attached_PCIs",
        "snapshots",
        "children",
        "suspend_VDI",
        "blobs",
    }
)
# VM fields a revert keeps from the VM rather than take from its snapshot.
_KEPT_BY_REVERT = frozenset(
    {
        "uuid",
        "name_label",
        "name_description",
        "tags",
        "is_a_snapshot",
        "is_a_template",
        "snapshot_of",
        "snapshot_time",
        "snapshot_info",
        "snapshot_metadata",
        "parent",
        "other_config",
    }
)


async def clone_vm(ctx: Call, ref: str, new_name: str, mode: str, sr: str | None = None) -> str:
    """Create a VM from ``ref`` by clone, copy, snapshot or checkpoint; returns the new VM."""
    db = ctx.db
    async with operation(ctx, ref, mode) as src:
        fields = {k: v for k, v in src.items() if k not in VM_NOT_COPIED}
        other = {
            k: v
            for k, v in src["other_config"].items()
            if k not in ("default_template", "xensource_internal")
        }
        if src["is_a_template"] and not src.get("is_a_snapshot") and mode in ("clone", "copy"):
            other["base_template_name"] = src["name_label"]
        if mode in ("clone", "copy"):
            other.pop("mac_seed", None)
            other["mac_seed"] = new_uuid()
        fields.update(
            name_label=new_name,
            other_config=other,
            is_default_template=False,
            ha_always_run=False,
            appliance=NULL_REF,
            protection_policy=NULL_REF,
            snapshot_schedule=NULL_REF,
            start_delay=0,
            shutdown_delay=0,
            order=0,
            power_state="Halted",
            domid=-1,
        )
        snapshot = mode in ("snapshot", "checkpoint")
        if snapshot:
            fields.update(
                is_a_snapshot=True,
                is_a_template=True,
                snapshot_of=ref,
                snapshot_time=now(),
                snapshot_info={
                    "power-state-at-snapshot": src["power_state"],
                    "disk-snapshot-type": "crash_consistent",
                },
                parent=src["parent"],
            )
        else:
            fields.update(
                is_a_snapshot=False,
                snapshot_of=NULL_REF,
                snapshot_time=XDateTime("19700101T00:00:00Z"),
                snapshot_info={},
                parent=NULL_REF,
            )
        new = db.create("VM", fields)
        db.update("VM", new, current_operations={ctx.op_key: mode}, metrics=db.create("VM_metrics", {}))
        try:
            await ctx.work()
            vdi_mode = "snapshot" if snapshot else mode
            for vbd in src["VBDs"]:
                _copy_vbd(ctx, vbd, new, vdi_mode, sr)
            for vif in src["VIFs"]:
                rec = db.get("VIF", vif)
                if rec is not None:
                    copy_row(ctx, "VIF", rec, VM=new, MAC=rec["MAC"] if snapshot else random_mac())
            suspended = (mode == "checkpoint" and src["power_state"] != "Halted") or (
                mode in ("clone", "copy") and src["power_state"] == "Suspended"
            )
            if suspended:
                set_halted(ctx, new, suspended=True)
            if snapshot:
                db.update("VM", ref, parent=new)
        except BaseException:
            destroy_vm_and_disks(ctx, new)
            raise
        db.update("VM", new, current_operations={})
        update_allowed_operations(db, new)
    return new


def copy_row(ctx: Call, cls: str, rec: dict[str, Any], **changes: Any) -> str:
    """A new ``cls`` row in ``ctx``'s pool like ``rec`` (a new uuid, nothing runtime, not attached), changed."""
    model = ctx.db.cls(cls)
    fields = {k: v for k, v in rec.items() if k != "uuid" and model.fields[k].qualifier != "RO/runtime"}
    fields.update(currently_attached=False, **changes)
    return ctx.db.create(cls, fields)


def _copy_vbd(ctx: Call, vbd: str, new_vm: str, mode: str, sr: str | None) -> None:
    db = ctx.db
    rec = db.get("VBD", vbd)
    if rec is None:
        return
    vdi = rec["VDI"]
    if rec["type"] != "CD" and not rec["empty"] and db.get("VDI", vdi) is not None:
        target_sr = sr if sr and sr != NULL_REF else None
        vdi = copy_vdi(ctx, vdi, mode, target_sr)
    other = dict(rec["other_config"])
    if rec["type"] == "Disk":
        other["owner"] = ""
    copy_row(ctx, "VBD", rec, VM=new_vm, VDI=vdi, other_config=other)


def destroy_vm_and_disks(ctx: Call, ref: str) -> None:
    """Remove a half-made VM with the disks made for it (a failed or cancelled copy leaves nothing)."""
    db = ctx.db
    vm = db.get("VM", ref)
    if vm is None:
        return
    for vbd in list(vm["VBDs"]):
        rec = db.get("VBD", vbd)
        if rec is None:
            continue
        if rec["type"] == "Disk" and db.get("VDI", rec["VDI"]) is not None:
            db.destroy("VBD", vbd)
            if not db.records("VDI")[rec["VDI"]]["VBDs"]:
                destroy_vdi(ctx, rec["VDI"])
        else:
            db.destroy("VBD", vbd)
    destroy_vm_record(ctx, ref)


def destroy_vm_record(ctx: Call, ref: str) -> None:
    """Remove a VM with its VBDs, VIFs, metrics and consoles; its disks stay, as in xapi."""
    db = ctx.db
    vm = db.records("VM")[ref]
    for cls, key in (("VBD", "VBDs"), ("VIF", "VIFs"), ("console", "consoles")):
        for dev in list(vm[key]):
            if db.get(cls, dev) is not None:
                db.destroy(cls, dev)
    for cls, key in (("VM_metrics", "metrics"), ("VM_guest_metrics", "guest_metrics")):
        if db.get(cls, vm[key]) is not None:
            db.destroy(cls, vm[key])
    db.destroy("VM", ref)


@handler("VM.clone")
async def clone(ctx: Call, ref: str, new_name: str) -> str:
    """A fast copy whose disks share blocks with the source's (same SRs)."""
    new = await clone_vm(ctx, ref, new_name, "clone")
    add_message(ctx, "VM_CLONED", new)
    return new


@handler("VM.copy")
async def copy(ctx: Call, ref: str, new_name: str, sr: str) -> str:
    """A full copy, its disks in ``sr`` (or beside the source's when ``sr`` is NULL)."""
    if sr != NULL_REF:
        record_of(ctx, "SR", sr)
    return await clone_vm(ctx, ref, new_name, "copy", sr)


@handler("VM.snapshot")
async def snapshot(ctx: Call, ref: str, new_name: str, *ignore_vdis: Any) -> str:
    """A snapshot: a template-like VM whose disks are snapshots of the source's."""
    new = await clone_vm(ctx, ref, new_name, "snapshot")
    add_message(ctx, "VM_SNAPSHOTTED", ref)
    return new


@handler("VM.checkpoint")
async def checkpoint(ctx: Call, ref: str, new_name: str) -> str:
    """A snapshot with the memory of the running VM (suspended state)."""
    new = await clone_vm(ctx, ref, new_name, "checkpoint")
    add_message(ctx, "VM_CHECKPOINTED", ref)
    return new


@handler("VM.provision")
async def provision(ctx: Call, ref: str) -> str:
    """Create the disks a template's ``disks`` spec asks for and turn it into a VM."""
    async with operation(ctx, ref, "provision") as vm:
        specs = parse_provision_spec(vm["other_config"].get("disks", ""))
        ctx.db.update("VM", ref, is_a_template=False)
        for spec in specs:
            sr = ctx.db.by_uuid("SR", spec["sr"]) if spec["sr"] else ctx.pool.record["default_SR"]
            if not sr or ctx.db.get("SR", sr) is None:
                raise Failure("UUID_INVALID", "sr", spec["sr"])
            await ctx.work(steps=1)
            vdi = create_vdi(
                ctx,
                {
                    "name_label": "",
                    "name_description": "Created by template provisioner",
                    "SR": sr,
                    "virtual_size": spec["size"],
                    "type": spec["type"],
                    "sm_config": {"vmhint": vm["uuid"]},
                },
            )
            ctx.db.create(
                "VBD",
                {
                    "VM": ref,
                    "VDI": vdi,
                    "userdevice": spec["device"],
                    "bootable": spec["bootable"],
                    "mode": "RW",
                    "type": "Disk",
                    "unpluggable": spec["type"] != "system",
                    "empty": False,
                    "other_config": {"owner": ""},
                },
            )
            ctx.db.update("VDI", vdi, name_label=spec["device"])
        other = {k: v for k, v in vm["other_config"].items() if k not in ("disks", "postinstall")}
        ctx.db.update("VM", ref, other_config=other)
    return ""


def parse_provision_spec(text: str) -> list[dict[str, Any]]:
    """The disks of a template's ``<provision><disk device= size= sr= bootable= type=/>…`` spec."""
    if not text.strip():
        return []
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise Failure("INTERNAL_ERROR", f"malformed disks spec: {e}") from e
    if root.tag != "provision":
        raise Failure("INTERNAL_ERROR", "disks spec root is not <provision>")
    disks = []
    for el in root:
        try:
            disks.append(
                {
                    "device": el.attrib["device"],
                    "size": int(el.attrib["size"]),
                    "sr": el.attrib.get("sr", ""),
                    "bootable": el.attrib.get("bootable") == "true",
                    "type": el.attrib.get("type", "system"),
                }
            )
        except (KeyError, ValueError) as e:
            raise Failure("INTERNAL_ERROR", f"bad disk in disks spec: {e}") from e
    return disks


@handler("VM.revert")
async def revert(ctx: Call, snap: str) -> str:
    """Put a VM back to a snapshot: its configuration, fresh copies of the snapshot's disks, its state."""
    snap_rec = vm_of(ctx, snap)
    vm = snap_rec["snapshot_of"]
    if ctx.db.get("VM", vm) is None:
        raise Failure("VM_REVERT_FAILED", snap, vm)
    async with operation(ctx, snap, "revert"):
        target = ctx.db.records("VM")[vm]
        if target["power_state"] != "Halted":
            set_halted(ctx, vm)
        await ctx.work()
        for vbd in list(target["VBDs"]):
            rec = ctx.db.get("VBD", vbd)
            if rec is None:
                continue
            ctx.db.destroy("VBD", vbd)
            if (
                rec["type"] == "Disk"
                and ctx.db.get("VDI", rec["VDI"])
                and not ctx.db.records("VDI")[rec["VDI"]]["VBDs"]
            ):
                destroy_vdi(ctx, rec["VDI"])
        for vif in list(target["VIFs"]):
            ctx.db.destroy("VIF", vif)
        kept = VM_NOT_COPIED | _KEPT_BY_REVERT
        restored = {k: v for k, v in snap_rec.items() if k not in kept}
        restored.update(power_state="Halted", parent=snap)
        ctx.db.update("VM", vm, **restored)
        for vbd in snap_rec["VBDs"]:
            _copy_vbd(ctx, vbd, vm, "clone", None)
        for vif in snap_rec["VIFs"]:
            rec = ctx.db.get("VIF", vif)
            if rec is not None:
                copy_row(ctx, "VIF", rec, VM=vm)
        if snap_rec["snapshot_info"].get("power-state-at-snapshot") in (
            "Running",
            "Suspended",
            "Paused",
        ) and (snap_rec["suspend_VDI"] != NULL_REF):
            set_halted(ctx, vm, suspended=True)
        update_allowed_operations(ctx.db, vm)
    return ""


@handler("VM.destroy")
async def destroy(ctx: Call, ref: str) -> str:
    """Remove a halted or suspended VM with its devices; its disks stay."""
    async with operation(ctx, ref, "destroy"):
        pass
    destroy_vm_record(ctx, ref)
    return ""


@handler("VM.create")
async def create(ctx: Call, fields: dict[str, Any]) -> str:
    """Create a VM record with its metrics object; allowed operations computed at once."""
    make = generic_handler(ctx.db.cls("VM"), ctx.db.cls("VM").messages["create"])
    ref: str = await make(ctx, fields)
    ctx.db.update("VM", ref, metrics=ctx.db.create("VM_metrics", {"VCPUs_number": 0}))
    update_allowed_operations(ctx.db, ref)
    return ref


@handler("VM.set_is_a_template")
async def set_is_a_template(ctx: Call, ref: str, value: bool) -> str:
    """Turn a halted VM into a template (or back)."""
    vm = vm_of(ctx, ref)
    if value and vm["power_state"] != "Halted":
        raise Failure("VM_BAD_POWER_STATE", ref, "halted", str(vm["power_state"]).lower())
    ctx.db.update("VM", ref, is_a_template=value)
    update_allowed_operations(ctx.db, ref)
    return ""
