"""vm.*: power, copies and snapshots, settings and CD drives, with Xen Orchestra's parameters.

Object methods need only a signed-in user: the ACL action on the VM decides (operate for power,
administrate for what changes or destroys it). A method that creates a VM answers its id once the VM is
in the cache, so that a client can use it at once.
"""

from __future__ import annotations

from typing import Any

from ...xapi import records
from ..context import Context
from ..errors import invalid
from ..params import array, boolean, either, integer, object_, string
from ..registry import Resolve, api
from .common import ID, NAMES, VMS, created, set_names, xapi
from .disk import MODE, attach
from .vm_transfer import copy_between_pools, migrate_between_pools

_VM = ("VM",)
_OPERATE = (Resolve("id", _VM, "operate"),)
_ADMINISTRATE = (Resolve("id", _VM, "administrate"),)
_ADMINISTRATE_ANY = (Resolve("id", VMS, "administrate"),)  # a VM, a snapshot or a template
_VM_OR_TEMPLATE = Resolve("vm", ("VM", "VM-template"), "administrate")  # what gets a disk or an interface
_FORCE = {"force": boolean(default=False)}
GIB = 1 << 30


# --- power -----------------------------------------------------------------------------------------
@api(
    "vm.start",
    params={**ID, "force": boolean(optional=True), "host": string(optional=True)},
    resolve=(*_OPERATE, Resolve("host", ("host",), "operate")),
)
async def start(
    ctx: Context, id: dict[str, Any], force: bool = False, host: dict[str, Any] | None = None
) -> None:
    """Start a halted VM (on a given host, optionally)."""
    if host is not None:
        await xapi(ctx, id, "VM.start_on", host["_xapiRef"], False, force)
    else:
        await xapi(ctx, id, "VM.start", False, force)


@api("vm.stop", params={**ID, **_FORCE}, resolve=_OPERATE)
async def stop(ctx: Context, id: dict[str, Any], force: bool = False) -> None:
    """Shut a VM down: cleanly through its guest, or at once with force."""
    await xapi(ctx, id, "VM.hard_shutdown" if force else "VM.clean_shutdown")


@api("vm.restart", params={**ID, **_FORCE}, resolve=_OPERATE)
async def restart(ctx: Context, id: dict[str, Any], force: bool = False) -> None:
    """Reboot a VM: cleanly, or at once with force."""
    await xapi(ctx, id, "VM.hard_reboot" if force else "VM.clean_reboot")


@api("vm.suspend", params=ID, resolve=_OPERATE)
async def suspend(ctx: Context, id: dict[str, Any]) -> None:
    """Suspend a running VM to disk."""
    await xapi(ctx, id, "VM.suspend")


@api("vm.resume", params=ID, resolve=_OPERATE)
async def resume(ctx: Context, id: dict[str, Any]) -> None:
    """Resume a suspended VM (or unpause a paused one)."""
    if id["power_state"] == "Paused":
        await xapi(ctx, id, "VM.unpause")
    else:
        await xapi(ctx, id, "VM.resume", False, False)


@api("vm.pause", params=ID, resolve=_OPERATE)
async def pause(ctx: Context, id: dict[str, Any]) -> None:
    """Pause a running VM."""
    await xapi(ctx, id, "VM.pause")


@api("vm.unpause", params=ID, resolve=_OPERATE)
async def unpause(ctx: Context, id: dict[str, Any]) -> None:
    """Let a paused VM run again."""
    await xapi(ctx, id, "VM.unpause")


# --- copies and snapshots --------------------------------------------------------------------------
@api(
    "vm.clone",
    params={**ID, "name": string(), "full_copy": boolean(default=False)},
    resolve=_ADMINISTRATE_ANY,
)
async def clone(ctx: Context, id: dict[str, Any], name: str, full_copy: bool = False) -> str:
    """Clone a VM (a full copy when asked); returns the new VM's id."""
    ref = await xapi(
        ctx, id, "VM.copy" if full_copy else "VM.clone", name, *(["OpaqueRef:NULL"] if full_copy else [])
    )
    return await created(ctx, id, "VM", ref)


@api(
    "vm.copy",
    params={
        "vm": string(),
        "sr": string(),
        "name": string(optional=True),
        "compress": either("boolean", "string", optional=True),
    },
    resolve=(Resolve("vm", VMS, "administrate"), Resolve("sr", ("SR",), "operate")),
)
async def copy(
    ctx: Context,
    vm: dict[str, Any],
    sr: dict[str, Any],
    name: str | None = None,
    compress: bool | str | None = None,
) -> str:
    """Copy a VM with its disks into an SR, of its own pool or another one; returns the new VM's id.

    Between pools the source's export streams into the target's import through the server, with nothing
    written on the server's disk (``compress`` compresses that stream: true or gzip, or zstd).
    """
    name = name or f"{vm['name_label']} (copy)"
    if sr["$poolId"] != vm["$poolId"]:
        return await copy_between_pools(ctx, vm, sr, name, compress)
    ref = await xapi(ctx, vm, "VM.copy", name, sr["_xapiRef"])
    return await created(ctx, vm, "VM", ref)


@api(
    "vm.snapshot",
    params={**ID, "name": string(optional=True), "description": string(optional=True, minLength=0)},
    resolve=_ADMINISTRATE,
)
async def snapshot(
    ctx: Context, id: dict[str, Any], name: str | None = None, description: str | None = None
) -> str:
    """Snapshot a VM; returns the snapshot's id."""
    ref = await xapi(ctx, id, "VM.snapshot", name or f"{id['name_label']}_snapshot")
    snap = await created(ctx, id, "VM", ref)
    if description is not None:
        await ctx.services.servers.client_of(id["$poolId"]).call("VM.set_name_description", ref, description)
    return snap


@api(
    "vm.revert",
    params={"snapshot": string()},
    resolve=(Resolve("snapshot", ("VM-snapshot",), "administrate"),),
)
async def revert(ctx: Context, snapshot: dict[str, Any]) -> None:
    """Put a VM back to one of its snapshots."""
    await xapi(ctx, snapshot, "VM.revert")


@api("vm.delete", params={**ID, "deleteDisks": boolean(default=False), **_FORCE}, resolve=_ADMINISTRATE_ANY)
async def delete(ctx: Context, id: dict[str, Any], deleteDisks: bool = False, force: bool = False) -> None:
    """Delete a VM (stopping it first with force), and its own disks when asked."""
    client = ctx.services.servers.client_of(id["$poolId"])
    if id["power_state"] != "Halted" and force and id["type"] == "VM":
        await client.call("VM.hard_shutdown", id["_xapiRef"])
    vdis = []
    if deleteDisks:
        for vbd_id in id.get("$VBDs", []):
            vbd = ctx.services.objects.get(vbd_id)
            if vbd is not None and not vbd["is_cd_drive"] and vbd.get("VDI"):
                vdi = ctx.services.objects.get(vbd["VDI"])
                if vdi is not None and len(vdi.get("$VBDs", [])) == 1:  # not shared with another VM
                    vdis.append(vdi["_xapiRef"])
    await client.call("VM.destroy", id["_xapiRef"])
    for vdi_ref in vdis:
        await client.call("VDI.destroy", vdi_ref)


@api("vm.convertToTemplate", params=ID, resolve=_ADMINISTRATE)
async def convert_to_template(ctx: Context, id: dict[str, Any]) -> None:
    """Turn a halted VM into a template."""
    await xapi(ctx, id, "VM.set_is_a_template", True)


# --- settings --------------------------------------------------------------------------------------
@api(
    "vm.set",
    params={
        **ID,
        **NAMES,
        "CPUs": integer(optional=True, minimum=1),
        "cpusMax": integer(optional=True, minimum=1),
        "memory": integer(optional=True, minimum=16 << 20),
        "memoryMax": integer(optional=True, minimum=16 << 20),
        "tags": array(string(), optional=True),
        "auto_poweron": boolean(optional=True),
        "high_availability": string(enum=["", "restart", "best-effort"], optional=True),
    },
    resolve=_ADMINISTRATE,
)
async def set_(ctx: Context, id: dict[str, Any], **changes: Any) -> None:
    """Change a VM's name, description, CPUs, memory, tags, auto power on, HA priority."""
    client = ctx.services.servers.client_of(id["$poolId"])
    ref = id["_xapiRef"]
    await set_names(ctx, id, changes.get("name_label"), changes.get("name_description"))
    if "cpusMax" in changes:
        await client.call("VM.set_VCPUs_max", ref, changes["cpusMax"])
    if "CPUs" in changes:
        if id["power_state"] == "Running":
            await client.call("VM.set_VCPUs_number_live", ref, changes["CPUs"])
        else:
            if changes["CPUs"] > id["CPUs"]["max"]:
                await client.call("VM.set_VCPUs_max", ref, changes["CPUs"])
            await client.call("VM.set_VCPUs_at_startup", ref, changes["CPUs"])
    if "memoryMax" in changes:
        await client.call("VM.set_memory_static_max", ref, changes["memoryMax"])
    if "memory" in changes:
        await client.call("VM.set_memory", ref, changes["memory"])
    if "tags" in changes:
        await client.call("VM.set_tags", ref, changes["tags"])
    if "auto_poweron" in changes:  # one key changed in place: concurrent changes to other keys are kept
        await client.call("VM.remove_from_other_config", ref, "auto_poweron")
        await client.call(
            "VM.add_to_other_config", ref, "auto_poweron", "true" if changes["auto_poweron"] else "false"
        )
    if "high_availability" in changes:
        await client.call("VM.set_ha_restart_priority", ref, changes["high_availability"])


# --- CD drives ---------------------------------------------------------------------------------
def _cd_drive(ctx: Context, vm: dict[str, Any]) -> dict[str, Any] | None:
    for vbd_id in vm.get("$VBDs", []):
        vbd = ctx.services.objects.get(vbd_id)
        if vbd is not None and vbd["is_cd_drive"]:
            return vbd
    return None


@api(
    "vm.insertCd",
    params={**ID, "cd_id": string(), **_FORCE},
    resolve=(*_OPERATE, Resolve("cd_id", ("VDI",), "view")),
)
async def insert_cd(ctx: Context, id: dict[str, Any], cd_id: dict[str, Any], force: bool = False) -> None:
    """Put an ISO into the VM's CD drive (creating the drive when it has none; force replaces a disc)."""
    client = ctx.services.servers.client_of(id["$poolId"])
    drive = _cd_drive(ctx, id)
    if drive is None:
        await client.call("VBD.create", records.vbd(id["_xapiRef"], cd_id["_xapiRef"], type="CD", mode="RO"))
        return
    if drive.get("VDI") and force:
        await client.call("VBD.eject", drive["_xapiRef"])
    await client.call("VBD.insert", drive["_xapiRef"], cd_id["_xapiRef"])


@api("vm.ejectCd", params=ID, resolve=_OPERATE)
async def eject_cd(ctx: Context, id: dict[str, Any]) -> None:
    """Take the disc out of the VM's CD drive."""
    drive = _cd_drive(ctx, id)
    if drive is None:
        raise invalid("id", "this VM has no CD drive", "cd")
    await xapi(ctx, drive, "VBD.eject")


# --- disks and interfaces ----------------------------------------------------------------------
@api(
    "vm.attachDisk",
    params={
        "vm": string(),
        "vdi": string(),
        "bootable": boolean(default=False),
        "mode": MODE,
        "position": string(optional=True),
    },
    resolve=(_VM_OR_TEMPLATE, Resolve("vdi", ("VDI",), "administrate")),
)
async def attach_disk(
    ctx: Context,
    vm: dict[str, Any],
    vdi: dict[str, Any],
    bootable: bool = False,
    mode: str = "RW",
    position: str | None = None,
) -> None:
    """Attach an existing disk to a VM (plugged at once when it runs)."""
    await attach(ctx, vm, vdi["_xapiRef"], bootable, mode, position)


@api(
    "vm.createInterface",
    params={
        "vm": string(),
        "network": string(),
        "position": string(optional=True),
        "mac": string(optional=True),
        "mtu": integer(optional=True, minimum=68),
    },
    resolve=(_VM_OR_TEMPLATE, Resolve("network", ("network",), "operate")),
)
async def create_interface(
    ctx: Context,
    vm: dict[str, Any],
    network: dict[str, Any],
    position: str | None = None,
    mac: str | None = None,
    mtu: int | None = None,
) -> str:
    """Give a VM a network interface (plugged at once when it runs); returns the interface's id."""
    client = ctx.services.servers.client_of(vm["$poolId"])
    mtu = mtu or network.get("MTU") or 1500
    record = records.vif(vm["_xapiRef"], network["_xapiRef"], device=position or "", mac=mac or "", mtu=mtu)
    ref = await client.call("VIF.create", record)
    if vm["power_state"] == "Running":
        await client.call("VIF.plug", ref)
    return await created(ctx, vm, "VIF", ref)


@api(
    "vm.migrate",
    params={
        "vm": string(),
        "targetHost": string(),
        "sr": string(
            optional=True,
            description="to another pool: the SR for the disks not in mapVdisSrs (default: its default SR)",
        ),
        "mapVdisSrs": object_(optional=True, description="to another pool: disk id → SR id"),
        "mapVifsNetworks": object_(
            optional=True,
            description="to another pool: interface id → network id (default: migrationNetwork)",
        ),
        "migrationNetwork": string(
            optional=True,
            description="to another pool: the network the VM crosses by"
            " (default: the target host's management network)",
        ),
    },
    resolve=(
        Resolve("vm", ("VM",), "administrate"),
        Resolve("targetHost", ("host",), "administrate"),
        Resolve("sr", ("SR",), "administrate"),
        Resolve("migrationNetwork", ("network",), "administrate"),
    ),
)
async def migrate(
    ctx: Context,
    vm: dict[str, Any],
    targetHost: dict[str, Any],
    sr: dict[str, Any] | None = None,
    mapVdisSrs: dict[str, str] | None = None,
    mapVifsNetworks: dict[str, str] | None = None,
    migrationNetwork: dict[str, Any] | None = None,
) -> None:
    """Move a VM to another host: within its pool, live; to another pool, with its disks and snapshots
    (storage XenMotion: running or halted, disks onto the SRs chosen there, interfaces onto its networks)."""
    if targetHost["$poolId"] == vm["$poolId"]:
        await xapi(ctx, vm, "VM.pool_migrate", targetHost["_xapiRef"], {"live": "true"})
        return
    await migrate_between_pools(
        ctx, vm, targetHost, sr, mapVdisSrs or {}, mapVifsNetworks or {}, migrationNetwork
    )
