"""disk.*: new disks (attached to a VM when one is named), and their content downloaded or uploaded raw."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...xapi import XapiError, records
from ...xapi.stream import download, upload
from ..context import Context
from ..errors import ApiError, invalid
from ..params import boolean, integer, string
from ..registry import Resolve, api
from ..transfer import error_response, relay_download, request_body, upload_answer
from .common import ID, created


async def attach(
    ctx: Context, vm: dict[str, Any], vdi_ref: str, bootable: bool, mode: str, position: str | None
) -> None:
    """Plug a disk into a VM (at once when it runs)."""
    client = ctx.services.servers.client_of(vm["$poolId"])
    record = records.vbd(
        vm["_xapiRef"], vdi_ref, mode=mode, bootable=bootable, userdevice=position or "autodetect"
    )
    vbd = await client.call("VBD.create", record)
    if vm["power_state"] == "Running":
        await client.call("VBD.plug", vbd)


MODE = string(enum=["RW", "RO"], default="RW")  # how a disk is attached: read-write or read-only


@api(
    "disk.create",
    params={
        "name": string(),
        "size": integer(minimum=1),
        "sr": string(),
        "vm": string(optional=True),
        "bootable": boolean(default=False),
        "mode": MODE,
        "position": string(optional=True),
    },
    resolve=(Resolve("sr", ("SR",), "administrate"), Resolve("vm", ("VM", "VM-template"), "administrate")),
)
async def create(
    ctx: Context,
    name: str,
    size: int,
    sr: dict[str, Any],
    vm: dict[str, Any] | None = None,
    bootable: bool = False,
    mode: str = "RW",
    position: str | None = None,
) -> str:
    """Create a disk in an SR (and attach it to a VM); returns the disk's id."""
    client = ctx.services.servers.client_of(sr["$poolId"])
    ref = await client.call("VDI.create", records.vdi(sr["_xapiRef"], name, size))
    if vm is not None:
        await attach(ctx, vm, ref, bootable, mode, position)
    return await created(ctx, sr, "VDI", ref)


_DISKS = ("VDI", "VDI-snapshot")
_FORMAT = {"format": string(enum=["raw"], default="raw")}


@api("disk.exportContent", params={**ID, **_FORMAT}, resolve=(Resolve("id", _DISKS, "administrate"),))
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


@api("disk.importContent", params={**ID, **_FORMAT}, resolve=(Resolve("id", ("VDI",), "administrate"),))
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
