"""vm.create: a new VM from a template, with its CPUs, memory, disks, interfaces and install media.

As Xen Orchestra does it: clone (or fully copy) the template, size it, provision the disks its template
describes onto the chosen SR, add the extra disks asked for on their SRs, replace its interfaces with
the ones asked for, put the install ISO in a CD drive, attach a cloud-init config drive made from
``cloudConfig`` (and ``networkConfig``), and boot it when asked. Should any step fail, the half-made VM
and the disks made for it, the config drive included, are removed.

The config drive is Xen Orchestra's ``VM_createCloudInitConfig``: a new disk named "XO CloudConfigDrive"
on the SR of the VM's first disk (a VM without disks cannot have one), filled through the pool's raw
disk import, attached as a non-bootable read-write disk at the first free position other than 3 (the CD's).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

from ... import cloudinit
from ...xapi import XapiClient, XapiError, XapiFailure, records
from ...xapi.stream import upload
from ..context import Context
from ..errors import ApiError, from_xapi, invalid
from ..params import array, boolean, integer, object_, string
from ..registry import Resolve, api
from .common import NAMES, created

log = logging.getLogger(__name__)

_VIF = object_(properties={"network": string(), "mac": string(optional=True)})
_VDI = object_(properties={"size": integer(minimum=1), "SR": string(optional=True), **NAMES})
_INSTALLATION = {"method": string(enum=["cdrom"]), "repository": string()}


def _retarget_disks(spec: str, sr_uuid: str) -> str:
    """The template's provision spec with every disk on ``sr_uuid``."""
    root = ET.fromstring(spec)
    for disk in root:
        disk.set("sr", sr_uuid)
    return ET.tostring(root, encoding="unicode")


def _check(ctx: Context, id_: str, types: tuple[str, ...], action: str, pool: str) -> dict[str, Any]:
    obj = ctx.object(id_, types, action)
    if obj["$poolId"] != pool:
        raise invalid(id_, f"{obj['type']} {id_} is not in the template's pool", "pool")
    return obj


@api(
    "vm.create",
    params={
        "name_label": string(),
        "name_description": string(optional=True, minLength=0),
        "template": string(),
        "clone": boolean(default=True),
        "CPUs": integer(optional=True, minimum=1),
        "memory": integer(optional=True, minimum=16 << 20),
        "sr": string(optional=True, description="where the template's own disks go"),
        "VDIs": array(_VDI, optional=True),
        "VIFs": array(_VIF, optional=True),
        "installation": object_(optional=True, properties=_INSTALLATION),
        "bootAfterCreate": boolean(default=False),
        "tags": array(string(), optional=True),
        "cloudConfig": string(
            optional=True,
            minLength=0,
            description="user-data of a cloud-init config drive; {name} and {index} are replaced",
        ),
        "networkConfig": string(
            optional=True, minLength=0, description="network-config of the cloud-init config drive"
        ),
        "coreOs": boolean(optional=True, description="accepted and ignored, as Xen Orchestra does"),
    },
    resolve=(Resolve("template", ("VM-template", "VM-snapshot"), "view"),),
    secret=("password", "cloudConfig", "networkConfig"),
)
async def create(
    ctx: Context, name_label: str, template: dict[str, Any], clone: bool = True, **opts: Any
) -> str:
    """Create a VM from a template; returns the new VM's id."""
    pool = template["$poolId"]
    client = ctx.services.servers.client_of(pool)
    # Check every object before changing anything.
    sr = _check(ctx, opts["sr"], ("SR",), "operate", pool) if opts.get("sr") else None
    disk_srs = [
        _check(ctx, d["SR"], ("SR",), "operate", pool) if d.get("SR") else sr for d in opts.get("VDIs") or []
    ]
    if any(s is None for s in disk_srs) and not (ctx.services.objects.get(pool) or {}).get("default_SR"):
        raise invalid("VDIs", "a disk names no SR and the pool has no default SR: name one", "SR")
    networks = [_check(ctx, v["network"], ("network",), "operate", pool) for v in opts.get("VIFs") or []]
    iso = (
        _check(ctx, opts["installation"]["repository"], ("VDI",), "view", pool)
        if opts.get("installation")
        else None
    )

    if clone:
        ref = await client.call("VM.clone", template["_xapiRef"], name_label)
    else:
        ref = await client.call("VM.copy", template["_xapiRef"], name_label, "OpaqueRef:NULL")
    made: list[str] = []
    try:
        await _configure(client, ref, opts, sr, disk_srs, networks, iso, made)
        if opts.get("cloudConfig") is not None:
            user_data = cloudinit.render(opts["cloudConfig"], name_label)
            try:
                await _config_drive(client, ref, name_label, user_data, opts.get("networkConfig"), made)
            except XapiFailure as e:  # say which step failed; XAPI's code stays in the error's data
                err = from_xapi(e)
                raise type(err)(f"the cloud config drive could not be made: {err.message}", err.data) from e
        vm_id = await created(ctx, template, "VM", ref)
        if opts.get("bootAfterCreate"):
            await client.call("VM.start", ref, False, False)
        return vm_id
    except BaseException:
        await _undo(client, ref, made)
        raise


async def _configure(
    client: XapiClient,
    ref: str,
    opts: dict[str, Any],
    sr: dict[str, Any] | None,
    disk_srs: list[Any],
    networks: list[dict[str, Any]],
    iso: dict[str, Any] | None,
    made: list[str],
) -> None:
    if opts.get("name_description") is not None:
        await client.call("VM.set_name_description", ref, opts["name_description"])
    if opts.get("tags"):
        await client.call("VM.set_tags", ref, opts["tags"])
    if opts.get("CPUs"):
        await client.call("VM.set_VCPUs_max", ref, max(opts["CPUs"], 1))
        await client.call("VM.set_VCPUs_at_startup", ref, opts["CPUs"])
    if opts.get("memory"):
        m = opts["memory"]
        await client.call("VM.set_memory_limits", ref, min(m, 16 << 20), m, m, m)
    other = await client.call("VM.get_other_config", ref)
    if other.get("disks") and sr is not None:
        await client.call("VM.remove_from_other_config", ref, "disks")
        await client.call("VM.add_to_other_config", ref, "disks", _retarget_disks(other["disks"], sr["uuid"]))
    if await client.call("VM.get_is_a_template", ref):
        await client.call("VM.provision", ref)  # the template's own disks
    for spec, disk_sr in zip(opts.get("VDIs") or [], disk_srs, strict=True):
        sr_ref = disk_sr["_xapiRef"] if disk_sr is not None else "OpaqueRef:NULL"
        if sr_ref == "OpaqueRef:NULL":
            pool_ref = (await client.call("pool.get_all"))[0]
            sr_ref = await client.call("pool.get_default_SR", pool_ref)
        name = spec.get("name_label", "disk")
        record = records.vdi(sr_ref, name, spec["size"], description=spec.get("name_description", ""))
        vdi = await client.call("VDI.create", record)
        made.append(vdi)
        await client.call("VBD.create", records.vbd(ref, vdi))
    if opts.get("VIFs") is not None:
        for vif in await client.call("VM.get_VIFs", ref):
            await client.call("VIF.destroy", vif)
        for n, (spec, network) in enumerate(zip(opts["VIFs"], networks, strict=True)):
            mtu = network.get("MTU") or 1500
            record = records.vif(ref, network["_xapiRef"], device=str(n), mac=spec.get("mac", ""), mtu=mtu)
            await client.call("VIF.create", record)
    if iso is not None:
        cd = records.vbd(ref, iso["_xapiRef"], type="CD", mode="RO", bootable=True)
        await client.call("VBD.create", cd)


async def _config_drive(
    client: XapiClient, ref: str, name: str, user_data: str, network_config: str | None, made: list[str]
) -> None:
    """Make the VM's cloud-init config drive, fill it and attach it (the disk noted in ``made`` at once)."""
    image = cloudinit.config_drive(
        user_data, str(await client.call("VM.get_uuid", ref)), cloudinit.hostname(name), network_config
    )
    sr = await _first_disk_sr(client, ref)
    vdi = await client.call("VDI.create", records.vdi(sr, cloudinit.VDI_NAME, cloudinit.disk_size(image)))
    made.append(vdi)

    async def body() -> AsyncIterator[bytes]:
        yield image

    query = {"vdi": vdi, "format": "raw"}
    await upload(client, "/import_raw_vdi", query, body(), len(image), "Import cloud config drive")
    allowed = await client.call("VM.get_allowed_VBD_devices", ref)
    if not allowed:
        raise ApiError("the VM has no free disk position left for the cloud config drive")
    position = allowed[1] if allowed[0] == "3" and len(allowed) > 1 else allowed[0]  # 3 is the CD's
    await client.call("VBD.create", records.vbd(ref, vdi, userdevice=position, unpluggable=False))


async def _first_disk_sr(client: XapiClient, ref: str) -> str:
    """The SR of the VM's first disk (the lowest position), where its config drive goes."""
    disks = []
    for vbd in await client.call("VM.get_VBDs", ref):
        rec = await client.call("VBD.get_record", vbd)
        if rec["type"] != "CD" and rec["VDI"] != "OpaqueRef:NULL":
            position = int(rec["userdevice"]) if str(rec["userdevice"]).isdigit() else 1 << 16
            disks.append((position, rec["VDI"]))
    if not disks:
        raise ApiError("a cloud config drive needs a VM with a disk: its SR is where the drive goes")
    return str(await client.call("VDI.get_SR", min(disks)[1]))


async def _undo(client: XapiClient, ref: str, made: list[str]) -> None:
    """Remove a half-made VM, with the disks provisioned or created for it (not the ISO)."""
    try:
        for vbd in await client.call("VM.get_VBDs", ref):
            if await client.call("VBD.get_type", vbd) == "Disk":
                vdi = await client.call("VBD.get_VDI", vbd)
                if vdi not in made:
                    made.append(vdi)
        await client.call("VM.destroy", ref)
        for vdi in made:
            await client.call("VDI.destroy", vdi)
    except XapiError as e:
        log.error("could not remove the half-made VM %s: %s", ref, e.message)
