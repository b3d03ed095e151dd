"""VM power operations as xapi performs them: checks, current_operations, and the state they leave.

Checks run in xapi's order: blocked_operations (OPERATION_BLOCKED), power state (VM_BAD_POWER_STATE,
states lowercase), another operation in progress, template, snapshot, control domain, guest features.
``allowed_operations`` is recomputed whenever an operation starts or ends. Starting a VM gives it a
domain id, a host, running VBDs and VIFs, fresh VM_metrics and guest metrics with addresses (the
simulated guest has its PV tools); halting takes them away again.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..call import Call
from ..console_records import sync_consoles
from ..database import Database
from ..dispatch import handler
from ..errors import Failure
from ..generic import record_of
from ..operations import holding
from ..values import NULL_REF, now

ANY = ("halted", "paused", "suspended", "running")

# Power states each operation accepts (xapi_vm_lifecycle.ml).
_STATES: dict[str, tuple[str, ...]] = {
    "start": ("halted",),
    "start_on": ("halted",),
    "provision": ("halted",),
    "make_into_template": ("halted",),
    "changing_shadow_memory": ("halted",),
    "changing_static_range": ("halted",),
    "changing_memory_limits": ("halted",),
    "changing_VCPUs": ("halted",),
    "unpause": ("paused",),
    "resume": ("suspended",),
    "resume_on": ("suspended",),
    "clean_shutdown": ("running",),
    "clean_reboot": ("running",),
    "pause": ("running",),
    "suspend": ("running",),
    "pool_migrate": ("running",),
    "changing_VCPUs_live": ("running",),
    "snapshot_with_quiesce": ("running",),
    "changing_dynamic_range": ("halted", "running"),
    "hard_reboot": ("paused", "running"),
    "hard_shutdown": ("paused", "suspended", "running"),
    "checkpoint": ("paused", "suspended", "running"),
    "shutdown": ("paused", "suspended", "running"),
    "clone": ("halted",),
    "copy": ("halted",),
    "destroy": ("halted", "suspended"),
    "export": ("halted", "suspended"),
    "migrate_send": ("halted", "suspended", "running"),
    "snapshot": ANY,
    "revert": ANY,
    "metadata_export": ANY,
    "power_state_reset": ANY,
}

# Candidate operations in xapi's order; the stored list is the reverse (xapi prepends).
_CANDIDATES = (
    "snapshot",
    "copy",
    "clone",
    "revert",
    "checkpoint",
    "snapshot_with_quiesce",
    "start",
    "start_on",
    "pause",
    "unpause",
    "clean_shutdown",
    "clean_reboot",
    "hard_shutdown",
    "hard_reboot",
    "suspend",
    "resume",
    "resume_on",
    "export",
    "destroy",
    "provision",
    "changing_VCPUs_live",
    "pool_migrate",
    "migrate_send",
    "make_into_template",
    "changing_static_range",
    "changing_shadow_memory",
    "changing_dynamic_range",
)

_TEMPLATE_OPS = frozenset(
    {
        "changing_dynamic_range",
        "changing_static_range",
        "changing_memory_limits",
        "changing_shadow_memory",
        "changing_VCPUs",
        "clone",
        "copy",
        "export",
        "metadata_export",
        "provision",
        "destroy",
        "migrate_send",
    }
)
_SNAPSHOT_OPS = frozenset(
    {"revert", "clone", "copy", "export", "destroy", "hard_shutdown", "metadata_export"}
)
_NEEDS_GUEST_FEATURES = frozenset(
    {"clean_shutdown", "clean_reboot", "suspend", "checkpoint", "pool_migrate", "changing_VCPUs_live"}
)
# Operations that may run alongside each other.
_COMPATIBLE = (frozenset({"clone", "copy", "export"}), frozenset({"snapshot", "checkpoint"}))


def _is_default_template(vm: dict[str, Any]) -> bool:
    return bool(vm.get("is_default_template")) or vm["other_config"].get("default_template") == "true"


def has_guest_features(db: Database, vm: dict[str, Any]) -> bool:
    """Whether the guest can shut down cleanly, suspend … (PV guest, or HVM with PV drivers)."""
    if not vm.get("HVM_boot_policy"):
        return True
    gm = db.get("VM_guest_metrics", vm.get("guest_metrics", NULL_REF))
    return bool(gm and (gm.get("PV_drivers_version") or gm.get("other", {}).get("feature-shutdown")))


def check_operation(db: Database, ref: str, vm: dict[str, Any], op: str) -> Failure | None:
    """The failure xapi raises for ``op`` on this VM now, or None when it is allowed."""
    if op in vm["blocked_operations"]:
        return Failure("OPERATION_BLOCKED", ref, vm["blocked_operations"][op])
    state = str(vm["power_state"]).lower()
    allowed = _STATES.get(op, ANY)
    if op in ("clone", "copy") and vm.get("is_a_snapshot"):
        allowed = ("halted", "suspended")
    if state not in allowed:
        return Failure("VM_BAD_POWER_STATE", ref, ", ".join(allowed), state)
    current = set(vm["current_operations"].values())
    if current and not _concurrent_ok(op, current):
        names = ",".join(sorted(current))
        return Failure(
            "OTHER_OPERATION_IN_PROGRESS", f"VM.{names}" if len(current) == 1 else f"VM.{{{names}}}", ref
        )
    is_plain_template = vm["is_a_template"] and not vm.get("is_a_snapshot")
    if is_plain_template and (
        op not in _TEMPLATE_OPS or (op in ("destroy", "migrate_send") and _is_default_template(vm))
    ):
        return Failure("VM_IS_TEMPLATE", ref, op)
    if vm.get("is_a_snapshot") and op not in _SNAPSHOT_OPS:
        return Failure("VM_IS_SNAPSHOT", ref, op)
    if op == "provision" and not vm["is_a_template"]:
        return Failure("ONLY_PROVISION_TEMPLATE")
    if op == "revert" and not vm.get("is_a_snapshot"):
        return Failure("ONLY_REVERT_SNAPSHOT")
    if vm["is_control_domain"] and op not in (
        "changing_VCPUs",
        "changing_static_range",
        "changing_memory_limits",
    ):
        return Failure("OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain")
    if op in _NEEDS_GUEST_FEATURES and state == "running" and not has_guest_features(db, vm):
        return Failure("VM_LACKS_FEATURE", ref)
    return None


def _concurrent_ok(op: str, current: set[str]) -> bool:
    if op == "hard_shutdown":
        return "hard_shutdown" not in current
    if op == "hard_reboot":
        return not current & {"hard_shutdown", "hard_reboot"}
    return any(op in group and current <= group for group in _COMPATIBLE)


def update_allowed_operations(db: Database, ref: str) -> None:
    """Recompute ``allowed_operations`` of a VM, as xapi does after every operation."""
    vm = db.get("VM", ref)
    if vm is None:
        return
    ops = [op for op in _CANDIDATES if check_operation(db, ref, vm, op) is None]
    if "snapshot_with_quiesce" in ops:
        gm = db.get("VM_guest_metrics", vm.get("guest_metrics", NULL_REF)) or {}
        other = gm.get("other", {})
        if not (other.get("feature-quiesce") or other.get("feature-snapshot")):
            ops.remove("snapshot_with_quiesce")
    db.update("VM", ref, allowed_operations=list(reversed(ops)))


def vm_of(ctx: Call, ref: str) -> dict[str, Any]:
    """The VM record or HANDLE_INVALID."""
    return record_of(ctx, "VM", ref)


def operation(ctx: Call, ref: str, op: str) -> AbstractAsyncContextManager[dict[str, Any]]:
    """Check ``op``, hold it in current_operations while it runs, and recompute allowed operations."""
    return holding(ctx, "VM", ref, op, check_operation, update_allowed_operations)


# --- state changes -------------------------------------------------------------------------------
def choose_host(ctx: Call, vm: dict[str, Any], wanted: str | None = None) -> str:
    """The host a VM starts on: the one asked for, its affinity, or the least loaded live host."""

    def usable(h: str) -> bool:
        host = ctx.pool.hosts.get(h)
        rec = ctx.db.get("host", h)
        return host is not None and host.up and rec is not None and bool(rec["enabled"])

    if wanted is not None:
        record_of(ctx, "host", wanted)
        if not usable(wanted):
            raise Failure("HOST_OFFLINE" if not ctx.pool.hosts[wanted].up else "HOST_DISABLED", wanted)
        return wanted
    if vm.get("affinity", NULL_REF) != NULL_REF and usable(vm["affinity"]):
        return str(vm["affinity"])
    candidates = [h for h in ctx.pool.hosts if usable(h)]
    if not candidates:
        raise Failure("NO_HOSTS_AVAILABLE")
    return min(candidates, key=lambda h: len(ctx.db.records("host")[h]["resident_VMs"]))


def memory_needed(vm: dict[str, Any]) -> int:
    """The host memory a running VM takes: what its domain is given (dynamic max) and its overhead."""
    return int(vm["memory_overhead"]) + int(vm["memory_dynamic_max"] or vm["memory_static_max"])


def host_free_memory(db: Database, host: str) -> int:
    """A host's memory left for more domains (``host.compute_free_memory``): its total, less the host's
    own overhead and what each VM running or about to run there takes, the control domain included."""
    record = db.records("host")[host]
    metrics = db.get("host_metrics", record["metrics"]) or {}
    used = int(record["memory_overhead"]) + sum(
        memory_needed(vm)
        for vm in db.records("VM").values()
        if host in (vm["resident_on"], vm["scheduled_to_be_resident_on"])
    )
    return int(metrics.get("memory_total") or 0) - used


def boot_failure(ctx: Call, ref: str, vm: dict[str, Any], host: str, memory: bool = True) -> Failure | None:
    """Why the VM cannot run on ``host`` (xapi's ``assert_can_boot_here``), or None.

    In xapi's order: the host disabled or offline, an SR of the VM's disks not plugged there
    (VM_REQUIRES_SR), a network of its interfaces with no PIF there (VM_REQUIRES_NET; a host-internal
    network, with no PIF anywhere, is everywhere), then with ``memory`` too little free memory
    (HOST_NOT_ENOUGH_FREE_MEMORY, needed then available).
    """
    db = ctx.db
    target, record = ctx.pool.hosts.get(host), db.get("host", host)
    if target is None or record is None:
        return Failure("HANDLE_INVALID", "host", host)
    if not record["enabled"]:
        return Failure("HOST_DISABLED", host)
    if not target.up:
        return Failure("HOST_OFFLINE", host)
    pbds = (db.get("PBD", p) for p in record["PBDs"])
    plugged = {pbd["SR"] for pbd in pbds if pbd is not None and pbd["currently_attached"]}
    for vbd_ref in vm["VBDs"]:
        vbd = db.get("VBD", vbd_ref)
        vdi = db.get("VDI", vbd["VDI"]) if vbd is not None and not vbd["empty"] else None
        if vdi is not None and vdi["SR"] not in plugged:
            return Failure("VM_REQUIRES_SR", ref, vdi["SR"])
    here = {pif["network"] for pif in (db.get("PIF", p) for p in record["PIFs"]) if pif is not None}
    for vif_ref in vm["VIFs"]:
        vif = db.get("VIF", vif_ref)
        network = db.get("network", vif["network"]) if vif is not None else None
        if vif is not None and network is not None and network["PIFs"] and vif["network"] not in here:
            return Failure("VM_REQUIRES_NET", ref, vif["network"])
    if memory and vm["resident_on"] != host:
        needed, free = memory_needed(vm), host_free_memory(db, host)
        if needed > free:
            return Failure("HOST_NOT_ENOUGH_FREE_MEMORY", needed, free)
    return None


def _next_domid(ctx: Call, host: str) -> int:
    # Xen hands out increasing domain ids per host; a rebooted VM gets a new one. The first count starts
    # above every domid of the pool: a VM rebooting now has already left its host's resident_VMs.
    if host not in ctx.pool.last_domid:
        ctx.pool.last_domid[host] = max([0, *(int(v["domid"]) for v in ctx.db.records("VM").values())])
    ctx.pool.last_domid[host] += 1
    return ctx.pool.last_domid[host]


def guest_address(vif_ref: str) -> str:
    """A stable address for a simulated guest's interface, in 198.18.0.0/15 (reserved for benchmarks)."""
    h = hashlib.sha1(vif_ref.encode()).digest()
    return f"198.{18 + (h[0] & 1)}.{h[1]}.{1 + h[2] % 254}"


def set_running(ctx: Call, ref: str, host: str, paused: bool = False) -> None:
    """Give a VM a fresh domain on ``host``: domid, metrics, attached devices, guest metrics."""
    db = ctx.db
    vm = db.records("VM")[ref]
    db.update(
        "VM",
        ref,
        power_state="Paused" if paused else "Running",
        resident_on=host,
        scheduled_to_be_resident_on=NULL_REF,
        domid=_next_domid(ctx, host),
    )
    fields = {
        "start_time": now(),
        "last_updated": now(),
        "VCPUs_number": vm["VCPUs_at_startup"],
        "memory_actual": vm["memory_dynamic_max"] or vm["memory_static_max"],
        "state": [],
    }
    if db.get("VM_metrics", vm["metrics"]) is not None:
        db.update("VM_metrics", vm["metrics"], **fields)
    else:
        db.update("VM", ref, metrics=db.create("VM_metrics", fields))
    for vbd in vm["VBDs"]:
        if db.get("VBD", vbd) is not None and not db.records("VBD")[vbd]["empty"]:
            db.update("VBD", vbd, currently_attached=True)
    networks = {}
    for vif in vm["VIFs"]:
        rec = db.get("VIF", vif)
        if rec is not None:
            db.update("VIF", vif, currently_attached=True)
            networks[f"{rec['device']}/ip"] = guest_address(vif)
    _set_guest_metrics(ctx, ref, networks)
    sync_consoles(ctx.sim, ctx.pool, ref)


def _set_guest_metrics(ctx: Call, ref: str, networks: dict[str, str]) -> None:
    db = ctx.db
    vm = db.records("VM")[ref]
    label = vm["name_label"]
    fields = {
        "os_version": {"name": label, "distro": "simulated"},
        "PV_drivers_version": {"major": "7", "minor": "0", "micro": "0", "build": "0"},
        "PV_drivers_up_to_date": True,
        "PV_drivers_detected": True,
        "networks": networks,
        "other": {
            "feature-shutdown": "1",
            "feature-suspend": "1",
            "feature-poweroff": "1",
            "feature-reboot": "1",
        },
        "live": True,
        "last_updated": now(),
    }
    if db.get("VM_guest_metrics", vm["guest_metrics"]) is not None:
        db.update("VM_guest_metrics", vm["guest_metrics"], **fields)
    else:
        db.update("VM", ref, guest_metrics=db.create("VM_guest_metrics", fields))


def set_halted(ctx: Call, ref: str, suspended: bool = False) -> None:
    """Take a VM's domain away: no host, no domid, devices detached, guest metrics gone."""
    db = ctx.db
    vm = db.records("VM")[ref]
    db.update(
        "VM",
        ref,
        power_state="Suspended" if suspended else "Halted",
        resident_on=NULL_REF,
        scheduled_to_be_resident_on=NULL_REF,
        domid=-1,
    )
    if db.get("VM_metrics", vm["metrics"]) is not None:
        db.update("VM_metrics", vm["metrics"], VCPUs_number=0, memory_actual=0, last_updated=now())
    if not suspended:
        db.update("VM", ref, requires_reboot=False)
        for cls, key in (("VBD", "VBDs"), ("VIF", "VIFs")):
            for dev in vm[key]:
                if db.get(cls, dev) is not None:
                    db.update(cls, dev, currently_attached=False)
    gm = vm["guest_metrics"]
    if db.get("VM_guest_metrics", gm) is not None:
        db.update("VM", ref, guest_metrics=NULL_REF)
        db.destroy("VM_guest_metrics", gm)
    sync_consoles(ctx.sim, ctx.pool, ref)


def add_message(ctx: Call, name: str, vm_ref: str, priority: int = 5, body: str = "") -> None:
    """Record a pool message about a VM, as xapi does for lifecycle events (VM_STARTED …)."""
    vm = ctx.db.get("VM", vm_ref)
    if vm is None:
        return
    ctx.db.create(
        "message",
        {
            "name": name,
            "priority": priority,
            "cls": "VM",
            "obj_uuid": vm["uuid"],
            "timestamp": now(),
            "body": body,
        },
    )


# --- handlers ------------------------------------------------------------------------------------
@handler("VM.start")
async def start(ctx: Call, ref: str, start_paused: bool, force: bool) -> str:
    """Boot a halted VM on a host of the pool's choosing."""
    return await _start(ctx, ref, start_paused, None, "start")


@handler("VM.start_on")
async def start_on(ctx: Call, ref: str, host: str, start_paused: bool, force: bool) -> str:
    """Boot a halted VM on a given host."""
    return await _start(ctx, ref, start_paused, host, "start_on")


async def _start(ctx: Call, ref: str, paused: bool, host: str | None, op: str) -> str:
    async with operation(ctx, ref, op) as vm:
        target = choose_host(ctx, vm, host)
        ctx.db.update("VM", ref, scheduled_to_be_resident_on=target)
        await ctx.work()
        set_running(ctx, ref, target, paused)
    add_message(ctx, "VM_STARTED", ref)
    return ""


@handler("VM.clean_shutdown", "VM.hard_shutdown", "VM.shutdown")
async def shutdown(ctx: Call, ref: str) -> str:
    """Stop a VM (cleanly through its guest, or at once)."""
    op = ctx.method.rsplit(".", 1)[1]
    async with operation(ctx, ref, op):
        await ctx.work()
        set_halted(ctx, ref)
        _drop_suspend_vdi(ctx, ref)
    add_message(ctx, "VM_SHUTDOWN", ref)
    return ""


@handler("VM.clean_reboot", "VM.hard_reboot")
async def reboot(ctx: Call, ref: str) -> str:
    """Restart a VM's domain on the same host."""
    op = ctx.method.rsplit(".", 1)[1]
    async with operation(ctx, ref, op) as vm:
        host = vm["resident_on"]
        await ctx.work()
        set_halted(ctx, ref)
        set_running(ctx, ref, host)
    add_message(ctx, "VM_REBOOTED", ref)
    return ""


@handler("VM.pause", "VM.unpause")
async def pause(ctx: Call, ref: str) -> str:
    """Pause a running VM, or let a paused one run again."""
    op = ctx.method.rsplit(".", 1)[1]
    async with operation(ctx, ref, op):
        await ctx.work(steps=1)
        ctx.db.update("VM", ref, power_state="Paused" if op == "pause" else "Running")
    return ""


@handler("VM.suspend")
async def suspend(ctx: Call, ref: str) -> str:
    """Save a running VM's memory to a suspend VDI and stop its domain."""
    async with operation(ctx, ref, "suspend") as vm:
        await ctx.work()
        sr = _suspend_sr(ctx, vm)
        if sr != NULL_REF:
            vdi = ctx.db.create(
                "VDI",
                {
                    "name_label": "Suspend image",
                    "name_description": f"Suspend image of {vm['name_label']}",
                    "SR": sr,
                    "type": "suspend",
                    "virtual_size": vm["memory_static_max"],
                    "physical_utilisation": vm["memory_static_max"],
                    "managed": True,
                },
            )
            ctx.db.update("VM", ref, suspend_VDI=vdi, suspend_SR=sr)
        set_halted(ctx, ref, suspended=True)
    add_message(ctx, "VM_SUSPENDED", ref)
    return ""


@handler("VM.resume", "VM.resume_on")
async def resume(ctx: Call, ref: str, *args: Any) -> str:
    """Restore a suspended VM (``resume_on`` names the host)."""
    host = args[0] if ctx.method.endswith("resume_on") else None
    op = "resume_on" if host else "resume"
    start_paused = bool(args[-2])
    async with operation(ctx, ref, op) as vm:
        target = choose_host(ctx, vm, host)
        await ctx.work()
        _drop_suspend_vdi(ctx, ref)
        set_running(ctx, ref, target, start_paused)
    add_message(ctx, "VM_RESUMED", ref)
    return ""


@handler("VM.power_state_reset")
async def power_state_reset(ctx: Call, ref: str) -> str:
    """Force a VM's record to Halted (after its host died)."""
    vm_of(ctx, ref)
    set_halted(ctx, ref)
    update_allowed_operations(ctx.db, ref)
    return ""


def _suspend_sr(ctx: Call, vm: dict[str, Any]) -> str:
    for candidate in (
        vm.get("suspend_SR"),
        ctx.pool.record.get("suspend_image_SR"),
        ctx.pool.record.get("default_SR"),
    ):
        if candidate and ctx.db.get("SR", candidate) is not None:
            return str(candidate)
    return NULL_REF


def _drop_suspend_vdi(ctx: Call, ref: str) -> None:
    vm = ctx.db.records("VM")[ref]
    vdi = vm["suspend_VDI"]
    if vdi != NULL_REF:
        ctx.db.update("VM", ref, suspend_VDI=NULL_REF)
        if ctx.db.get("VDI", vdi) is not None:
            ctx.db.destroy("VDI", vdi)


@handler("VM.pool_migrate")
async def pool_migrate(ctx: Call, ref: str, host: str, options: dict[str, str]) -> str:
    """Move a running VM to another host of the pool, live: it keeps running, with a new domain there.

    The target must see the VM's disks and networks and have the memory for it (:func:`boot_failure`).
    """
    async with operation(ctx, ref, "pool_migrate") as vm:
        target = choose_host(ctx, vm, host)
        failure = boot_failure(ctx, ref, vm, target)
        if failure is not None:
            raise failure
        ctx.db.update("VM", ref, scheduled_to_be_resident_on=target)
        await ctx.work()
        ctx.db.update(
            "VM",
            ref,
            resident_on=target,
            scheduled_to_be_resident_on=NULL_REF,
            domid=_next_domid(ctx, target),
        )
        sync_consoles(ctx.sim, ctx.pool, ref)
    add_message(ctx, "VM_MIGRATED", ref)
    return ""
