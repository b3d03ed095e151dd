"""Moving a VM to another pool with its disks (storage XenMotion), as xapi does it (xapi_vm_migrate.ml):

1. the destination pool's ``host.migrate_receive`` hands out a token naming the receiving host and a session
   of the destination (the client logged in there);
2. the source pool's ``VM.assert_can_migrate`` / ``VM.migrate_send`` take the token, a map of every disk of
   the VM to an SR of the destination and of every interface to a network there. ``migrate_send`` copies each
   disk (the VM's snapshots' disks go with them, to their disk's SR), recreates the VM, its snapshots, VBDs and
   VIFs (MACs kept) in the destination's database, starts it on the receiving host if it ran, removes it from
   the source, and answers the VM's reference in the destination.

The VM and its snapshots keep their uuids; the disks get new ones (they are mirrors). CD drives arrive empty.
A failure or task.cancel before the move leaves both pools as they were. Both pools live in this one process,
so the token is checked against the simulator's pools instead of opening a connection to the destination.
"""

from __future__ import annotations

from dataclasses import replace

from ..call import Call
from ..dispatch import handler
from ..errors import Failure
from ..generic import record_of
from ..simulator import Host, Pool
from ..values import NULL_REF
from .storage import create_vdi, destroy_vdi
from .vm import (
    add_message,
    host_free_memory,
    memory_needed,
    operation,
    set_running,
    update_allowed_operations,
)
from .vm_clone import VM_NOT_COPIED, copy_row, destroy_vm_and_disks, destroy_vm_record

# VM fields that name objects of the source pool (or runtime state): not carried to the destination as they are.
_VM_LOCAL = VM_NOT_COPIED | frozenset(
    {
        "affinity",
        "suspend_SR",
        "appliance",
        "protection_policy",
        "snapshot_schedule",
        "snapshot_of",
        "parent",
        "groups",
        "pending_guidances",
        "recommended_guidances",
    }
)
_VDI_LOCAL = frozenset(
    {
        "uuid",
        "VBDs",
        "crash_dumps",
        "snapshots",
        "current_operations",
        "allowed_operations",
        "location",
        "SR",
        "snapshot_of",
        "parent",
        "metadata_of_pool",
        "pool",
    }
)


@handler("host.migrate_receive")
async def migrate_receive(ctx: Call, host: str, network: str, options: dict[str, str]) -> dict[str, str]:
    """Prepare ``host`` to receive a VM over ``network``: the token to give ``VM.migrate_send``."""
    rec = record_of(ctx, "host", host)
    record_of(ctx, "network", network)
    if not rec["enabled"]:
        raise Failure("HOST_DISABLED", host)
    master = f"http://{ctx.pool.master.address}/"
    services = {"SM": f"{master}services/SM", "xenops": f"{master}services/xenops"}
    return {"host": host, "session_id": ctx.session or "", "master": master, **services, "network": network}


class _Plan:
    """What a migration moves and where: checked in full before anything is done."""

    def __init__(
        self, ctx: Call, ref: str, dest: dict[str, str], vdi_map: dict[str, str], vif_map: dict[str, str]
    ) -> None:
        self.vm = record_of(ctx, "VM", ref)
        self.pool, self.host = _destination(ctx, ref, dest)
        db, there = ctx.db, self.pool.db
        if self.vm["power_state"] not in ("Running", "Halted"):
            raise Failure("VM_BAD_POWER_STATE", ref, "running", self.vm["power_state"].lower())
        if self.pool is ctx.pool:
            reason = "the destination is this pool: move the VM with VM.pool_migrate"
            raise Failure("VM_MIGRATE_FAILED", ref, ctx.host.ref, self.host.ref, reason)
        self.vms = [ref, *(s for s in self.vm["snapshots"] if db.get("VM", s) is not None)]
        self.sr_of: dict[str, str] = {}  # source VDI → destination SR
        for vbd in self.vm["VBDs"]:
            rec = db.get("VBD", vbd)
            if rec is None or rec["type"] != "Disk" or rec["empty"] or db.get("VDI", rec["VDI"]) is None:
                continue
            sr = vdi_map.get(rec["VDI"])
            if sr is None:
                raise Failure("VDI_NOT_IN_MAP", rec["VDI"])
            if there.get("SR", sr) is None:
                raise Failure("HANDLE_INVALID", "SR", sr)
            self.sr_of[rec["VDI"]] = sr
        for snap in self.vms[1:]:  # a snapshot's disks follow the disk they are snapshots of
            for vbd in db.records("VM")[snap]["VBDs"]:
                rec = db.get("VBD", vbd)
                if rec is None or rec["type"] != "Disk" or db.get("VDI", rec["VDI"]) is None:
                    continue
                origin = db.records("VDI")[rec["VDI"]]["snapshot_of"]
                self.sr_of.setdefault(
                    rec["VDI"], self.sr_of.get(origin) or next(iter(self.sr_of.values()), "")
                )
                if not self.sr_of[rec["VDI"]]:
                    raise Failure("VDI_NOT_IN_MAP", rec["VDI"])
        self.network_of: dict[str, str] = {}
        for vif in self.vm["VIFs"]:
            if db.get("VIF", vif) is None:
                continue
            network = vif_map.get(vif)
            if network is None:
                raise Failure("VIF_NOT_IN_MAP", vif)
            if there.get("network", network) is None:
                raise Failure("HANDLE_INVALID", "network", network)
            self.network_of[vif] = network
        by_device = {db.records("VIF")[v]["device"]: n for v, n in self.network_of.items()}
        for snap in self.vms[1:]:  # a snapshot's interfaces follow the VM's of the same device
            for vif in db.records("VM")[snap]["VIFs"]:
                rec = db.get("VIF", vif)
                if rec is not None:
                    fallback = next(iter(self.network_of.values()), NULL_REF)
                    self.network_of[vif] = by_device.get(rec["device"], fallback)
        if self.vm["power_state"] == "Running":
            need, free = memory_needed(self.vm), host_free_memory(there, self.host.ref)
            if need > free:
                raise Failure("HOST_NOT_ENOUGH_FREE_MEMORY", str(need), str(free))


def _destination(ctx: Call, ref: str, dest: dict[str, str]) -> tuple[Pool, Host]:
    """The pool and host a migrate_receive token names, with its session still valid there."""
    host, session = dest.get("host", ""), dest.get("session_id", "")
    for pool in ctx.sim.pools:
        if host in pool.hosts and pool.db.get("session", session) is not None:
            return pool, pool.hosts[host]
    reason = "the destination's token is not valid (no such host, or its session has ended)"
    raise Failure("VM_MIGRATE_FAILED", ref, ctx.host.ref, host or "(none)", reason)


@handler("VM.assert_can_migrate")
async def assert_can_migrate(
    ctx: Call,
    ref: str,
    dest: dict[str, str],
    live: bool,
    vdi_map: dict[str, str],
    vif_map: dict[str, str],
    options: dict[str, str],
    vgpu_map: dict[str, str],
) -> str:
    """Raise what ``VM.migrate_send`` would refuse with these arguments; nothing is changed."""
    _Plan(ctx, ref, dest, vdi_map, vif_map)
    return ""


@handler("VM.migrate_send")
async def migrate_send(
    ctx: Call,
    ref: str,
    dest: dict[str, str],
    live: bool,
    vdi_map: dict[str, str],
    vif_map: dict[str, str],
    options: dict[str, str],
    vgpu_map: dict[str, str],
) -> str:
    """Move the VM, its snapshots and disks to the destination pool; its reference there."""
    plan = _Plan(ctx, ref, dest, vdi_map, vif_map)
    there = replace(ctx, pool=plan.pool, host=plan.host, task=None, method="VM.migrate_send")
    async with operation(ctx, ref, "migrate_send") as vm:
        await ctx.work()  # the disks' mirrors and the memory: progress, and task.cancel honoured
        running = vm["power_state"] == "Running"
        made: list[str] = []
        new_vdi: dict[str, str] = {}
        try:
            for old, sr in plan.sr_of.items():
                new_vdi[old] = _copy_vdi(ctx, there, old, sr)
            for old_vdi, new in new_vdi.items():  # snapshot links, within the destination
                origin = ctx.db.records("VDI")[old_vdi]["snapshot_of"]
                if origin in new_vdi:
                    there.db.update("VDI", new, snapshot_of=new_vdi[origin])
            new_vm = {old: _copy_vm(ctx, there, old) for old in plan.vms}
            made = list(new_vm.values())
            for old, new in new_vm.items():
                rec = ctx.db.records("VM")[old]
                links = {
                    "snapshot_of": new_vm.get(rec["snapshot_of"], NULL_REF),
                    "parent": new_vm.get(rec["parent"], NULL_REF),
                }
                there.db.update("VM", new, **links)
                for vbd in rec["VBDs"]:
                    _copy_vbd(ctx, there, vbd, new, new_vdi)
                for vif in rec["VIFs"]:
                    _copy_vif(ctx, there, vif, new, plan.network_of)
                update_allowed_operations(there.db, new)
        except BaseException:  # nothing half-made stays in the destination
            for new in made:
                destroy_vm_and_disks(there, new)
            for new in new_vdi.values():
                if there.db.get("VDI", new) is not None:
                    destroy_vdi(there, new)
            raise
    moved = new_vm[ref]
    if running:
        set_running(there, moved, plan.host.ref)
        update_allowed_operations(there.db, moved)
    for old in reversed(plan.vms):  # the source's copies go: the VM lives in the destination now
        for vbd in list(ctx.db.records("VM")[old]["VBDs"]):
            disk = ctx.db.get("VBD", vbd)
            if disk is not None and disk["VDI"] in plan.sr_of and ctx.db.get("VDI", disk["VDI"]) is not None:
                ctx.db.destroy("VBD", vbd)
                destroy_vdi(ctx, disk["VDI"])
        destroy_vm_record(ctx, old)
    add_message(there, "VM_MIGRATED", moved)
    return moved


def _copy_vdi(ctx: Call, there: Call, vdi: str, sr: str) -> str:
    rec = ctx.db.records("VDI")[vdi]
    fields = {k: v for k, v in rec.items() if k not in _VDI_LOCAL}
    new = create_vdi(there, {**fields, "SR": sr, "sm_config": {}, "xenstore_data": {}})
    ctx.sim.disks.copy(rec["uuid"], there.db.records("VDI")[new]["uuid"])
    return new


def _copy_vm(ctx: Call, there: Call, ref: str) -> str:
    rec = ctx.db.records("VM")[ref]
    fields = {k: v for k, v in rec.items() if k not in _VM_LOCAL}
    fields.update(uuid=rec["uuid"], power_state="Halted", domid=-1)
    new = there.db.create("VM", fields)
    there.db.update("VM", new, metrics=there.db.create("VM_metrics", {}))
    return new


def _copy_vbd(ctx: Call, there: Call, vbd: str, vm: str, new_vdi: dict[str, str]) -> None:
    rec = ctx.db.get("VBD", vbd)
    if rec is not None:
        vdi = new_vdi.get(rec["VDI"], NULL_REF)
        copy_row(there, "VBD", rec, VM=vm, VDI=vdi, empty=vdi == NULL_REF)


def _copy_vif(ctx: Call, there: Call, vif: str, vm: str, network_of: dict[str, str]) -> None:
    rec = ctx.db.get("VIF", vif)
    if rec is not None:
        copy_row(there, "VIF", rec, VM=vm, network=network_of.get(vif, NULL_REF))
