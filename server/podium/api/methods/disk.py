"""disk.*: new disks (attached to a VM when one is named), and their content downloaded or uploaded raw."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...xapi import XapiError
from ...xapi.stream import download, upload
from ..context import Context
from ..errors import ApiError, invalid
from ..registry import Resolve, api
from ..transfer import error_response, relay_download, request_body, upload_answer
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


_DISKS = ("VDI", "VDI-snapshot")
_FORMAT = {"type": "string", "enum": ["raw"], "default": "raw"}


@api("disk.exportContent", params={"id": {"type": "string"}, "format": _FORMAT},
     resolve=(Resolve("id", _DISKS, "administrate"),))  # fmt: skip
async def export_content(ctx: Context, id: dict[str, Any], format: str = "raw") -> dict[str, str]:
    """Download a disk's content as a raw image; answers ``$getFrom``."""
    client = ctx.services.servers.client_of(id["$poolId"])
    name = f"{id.get('name_label') or id['id']}.raw".replace("/", "_")

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            query = {"vdi": id["_xapiRef"], "format": "raw"}
            # xapi does not say the length; the client wants it (progress), and a cut stream shows by it
            size = int(await client.call("VDI.get_virtual_size", id["_xapiRef"]))
            dl = await download(client, "/export_raw_vdi", query, f"Export {name}", size)
        except XapiError as e:
            return error_response(e)
        return await relay_download(request, dl, name)

    path = ctx.services.transfers.register(
        handler,
        upload=False,
        what=f"disk.exportContent {id['id']}",
        user=ctx.who,
        name=name,
    )
    return {"$getFrom": path}


@api("disk.importContent", params={"id": {"type": "string"}, "format": _FORMAT},
     resolve=(Resolve("id", ("VDI",), "administrate"),))  # fmt: skip
async def import_content(ctx: Context, id: dict[str, Any], format: str = "raw") -> dict[str, str]:
    """Overwrite a disk from its start with a raw image (no larger than the disk); answers ``$sendTo``."""
    client = ctx.services.servers.client_of(id["$poolId"])
    size = int(id["size"])

    async def handler(request: web.Request) -> web.StreamResponse:
        length = request.content_length
        if length is None:
            return error_response(ApiError("send the image with a Content-Length: the pool needs its size"))
        if length > size:
            return error_response(
                invalid("body", f"the image is {length} bytes, the disk only {size}", "size")
            )
        try:
            body = request_body(request)
            await upload(
                client,
                "/import_raw_vdi",
                {"vdi": id["_xapiRef"], "format": "raw"},
                body,
                length,
                "Import disk",
            )
        except XapiError as e:
            return error_response(e)
        return upload_answer(True)

    path = ctx.services.transfers.register(
        handler, upload=True, what=f"disk.importContent {id['id']}", user=ctx.who
    )
    return {"$sendTo": path}
