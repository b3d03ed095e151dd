"""vm.export, vm.import and the copy of a VM between pools: XVA streams that never touch the appliance's disk.

vm.export answers ``$getFrom``: the download streams the pool's ``/export`` through the server (a running
VM is snapshotted first and the snapshot deleted after). vm.import answers ``$sendTo``, or reads a URL;
the upload streams into the pool's ``/import``. A copy to an SR of another pool pipes one pool's export
into the other's import. Each runs under a pool task (visible as a task object, cancellable with
task.cancel); a failed import leaves nothing behind, as xapi cleans up after itself.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
from aiohttp import web

from ...xapi import XapiClient, XapiError
from ...xapi.stream import download, task_refs, upload
from ..context import Context
from ..errors import ApiError, invalid
from ..registry import Resolve, api
from ..transfer import error_response, relay_download, request_body
from .common import created

log = logging.getLogger(__name__)

_VMS = ("VM", "VM-snapshot", "VM-template")
_COMPRESS = {"type": ["boolean", "string"], "optional": True}


def compression(value: bool | str | None) -> str:
    """XAPI's ``use_compression`` for XO's ``compress`` (true: gzip, or "gzip", "zstd")."""
    if value in (None, False, "false"):
        return "false"
    if value in (True, "true", "gzip"):
        return "true"
    if value == "zstd":
        return "zstd"
    raise invalid("compress", "must be a boolean, gzip or zstd", "enum")


def xva_name(vm: dict[str, Any]) -> str:
    """The file name of a VM's export."""
    label = re.sub(r"[\x00-\x1f/\\]", "_", vm.get("name_label") or vm["id"]).strip() or vm["id"]
    return f"{label}.xva"


async def export_source(client: XapiClient, vm: dict[str, Any]) -> tuple[str, str | None]:
    """What to export: the VM itself when it is halted, else a fresh snapshot of it (ref, snapshot ref)."""
    if vm["type"] == "VM" and vm["power_state"] in ("Running", "Paused"):
        snap = str(await client.call("VM.snapshot", vm["_xapiRef"], f"{vm['name_label']} (export)"))
        return snap, snap
    return vm["_xapiRef"], None


async def delete_vm_and_disks(client: XapiClient, ref: str) -> None:
    """Remove a VM (a snapshot made for an export) with the disks that are only its own."""
    try:
        vdis = []
        for vbd in await client.call("VM.get_VBDs", ref):
            rec = await client.call("VBD.get_record", vbd)
            if rec["type"] == "Disk" and rec["VDI"] != "OpaqueRef:NULL":
                vdis.append(rec["VDI"])
        await client.call("VM.destroy", ref)
        for vdi in vdis:
            await client.call("VDI.destroy", vdi)
    except XapiError as e:
        log.warning("could not remove the export snapshot %s: %s", ref, e)


@api("vm.export", params={"vm": {"type": "string"}, "compress": _COMPRESS},
     resolve=(Resolve("vm", _VMS, "administrate"),))  # fmt: skip
async def export(ctx: Context, vm: dict[str, Any], compress: bool | str | None = None) -> dict[str, str]:
    """Download a VM as an XVA (a running VM through a snapshot); answers ``$getFrom``."""
    client = ctx.services.servers.client_of(vm["$poolId"])
    use_compression = compression(compress)
    name = xva_name(vm)

    async def handler(request: web.Request) -> web.StreamResponse:
        snapshot = None
        try:
            ref, snapshot = await export_source(client, vm)
            dl = await download(
                client, "/export", {"ref": ref, "use_compression": use_compression}, f"Export {name}"
            )
        except XapiError as e:
            if snapshot:
                await delete_vm_and_disks(client, snapshot)
            return error_response(e)
        try:
            return await relay_download(request, dl, name)
        finally:
            if snapshot:
                await delete_vm_and_disks(client, snapshot)

    path = ctx.services.transfers.register(
        handler, upload=False, what=f"vm.export {vm['id']}", user=ctx.who, name=name
    )
    return {"$getFrom": path}


@api("vm.import", params={"sr": {"type": "string"}, "type": {"type": "string", "enum": ["xva"], "default": "xva"},
                          "url": {"type": "string", "optional": True}},
     resolve=(Resolve("sr", ("SR",), "operate"),))  # fmt: skip
async def import_(ctx: Context, sr: dict[str, Any], type: str = "xva", url: str | None = None) -> Any:
    """Create a VM from an XVA: uploaded (answers ``$sendTo``), or read from a URL (answers its id)."""
    client = ctx.services.servers.client_of(sr["$poolId"])
    query = {"sr_id": sr["_xapiRef"]}
    if url is not None:
        if not ctx.is_admin:
            raise ApiError("only an admin may import from a URL: the server would fetch it")
        return await _import_url(ctx, client, sr, query, url)

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            result = await upload(
                client, "/import", query, request_body(request), request.content_length, "Import XVA"
            )
            uuid = await _new_vm(ctx, sr, result)
        except (XapiError, ApiError) as e:
            return error_response(e)
        return web.json_response({"jsonrpc": "2.0", "id": 0, "result": uuid})

    path = ctx.services.transfers.register(
        handler, upload=True, what=f"vm.import into {sr['id']}", user=ctx.who
    )
    return {"$sendTo": path}


async def _import_url(
    ctx: Context, client: XapiClient, sr: dict[str, Any], query: dict[str, str], url: str
) -> str:
    if not url.startswith(("http://", "https://")):
        raise invalid("url", "must be an http or https URL", "format")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=300)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
            if resp.status != 200:
                raise ApiError(f"{url} answered HTTP {resp.status}")
            body = resp.content.iter_chunked(1 << 20)
            result = await upload(client, "/import", query, body, resp.content_length, "Import XVA from URL")
    except aiohttp.ClientError as e:
        raise ApiError(f"cannot read {url}: {e}") from e
    return await _new_vm(ctx, sr, result)


async def _new_vm(ctx: Context, sr: dict[str, Any], result: str) -> str:
    refs = task_refs(result)
    if not refs:
        raise ApiError(f"the pool's import answered no VM ({result[:100]!r})")
    return await created(ctx, sr, "VM", refs[0])


async def copy_between_pools(
    ctx: Context, vm: dict[str, Any], sr: dict[str, Any], name: str, compress: bool | str | None
) -> str:
    """Copy a VM into an SR of another pool: the source's export piped into the target's import."""
    source = ctx.services.servers.client_of(vm["$poolId"])
    target = ctx.services.servers.client_of(sr["$poolId"])
    ref, snapshot = await export_source(source, vm)
    try:
        dl = await download(
            source, "/export", {"ref": ref, "use_compression": compression(compress)}, f"Copy {name}"
        )
        try:
            result = await upload(
                target, "/import", {"sr_id": sr["_xapiRef"]}, dl.chunks(), None, f"Copy {name}"
            )
            await dl.transfer.result()
        except BaseException:
            await dl.transfer.cancel()
            raise
        finally:
            await dl.close()
            await dl.transfer.destroy()
    finally:
        if snapshot:
            await delete_vm_and_disks(source, snapshot)
    uuid = await _new_vm(ctx, sr, result)
    new_ref = task_refs(result)[0]
    await target.call("VM.set_name_label", new_ref, name)
    return uuid
