"""disk.*: new disks, attached to a VM when one is named."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import Resolve, api
from .common import created


async def attach(
    ctx: Context, vm: dict[str, Any], vdi_ref: str, bootable: bool, mode: str, position: str | None
) -> None:
    """Plug a disk into a VM (at once when it runs)."""
    client = ctx.services.servers.client_of(vm["$poolId"])
    vbd = await client.call("VBD.create", {
        "VM": vm["_xapiRef"], "VDI": vdi_ref, "userdevice": position or "autodetect", "bootable": bootable,
        "mode": mode, "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
        "qos_algorithm_type": "", "qos_algorithm_params": {}})  # fmt: skip
    if vm["power_state"] == "Running":
        await client.call("VBD.plug", vbd)


@api("disk.create",
     params={"name": {"type": "string"}, "size": {"type": "integer", "minimum": 1}, "sr": {"type": "string"},
             "vm": {"type": "string", "optional": True}, "bootable": {"type": "boolean", "default": False},
             "mode": {"type": "string", "enum": ["RW", "RO"], "default": "RW"},
             "position": {"type": "string", "optional": True}},
     resolve=(Resolve("sr", ("SR",), "administrate"), Resolve("vm", ("VM", "VM-template"), "administrate")))  # fmt: skip
async def create(ctx: Context, name: str, size: int, sr: dict[str, Any], vm: dict[str, Any] | None = None,
                 bootable: bool = False, mode: str = "RW", position: str | None = None) -> str:  # fmt: skip
    """Create a disk in an SR (and attach it to a VM); returns the disk's id."""
    client = ctx.services.servers.client_of(sr["$poolId"])
    ref = await client.call("VDI.create", {
        "name_label": name, "name_description": "", "SR": sr["_xapiRef"], "virtual_size": size, "type": "user",
        "sharable": False, "read_only": False, "other_config": {}, "xenstore_data": {}, "sm_config": {}, "tags": []})  # fmt: skip
    if vm is not None:
        await attach(ctx, vm, ref, bootable, mode, position)
    return await created(ctx, sr, "VDI", ref)
