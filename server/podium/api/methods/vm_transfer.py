"""vm.export, vm.import and the copy of a VM between pools: XVA streams that never touch the appliance's disk.

vm.export answers ``$getFrom``: the download streams the pool's ``/export`` through the server (a running
VM is snapshotted first and the snapshot deleted after). vm.import answers ``$sendTo``, or reads a URL;
the upload streams into the pool's ``/import``. A copy to an SR of another pool pipes one pool's export
into the other's import. Each runs under a pool task (visible as a task object, cancellable with
task.cancel); a failed import leaves nothing behind, as xapi cleans up after itself. A migration to another
pool (vm.migrate's other half) is XAPI's own storage XenMotion between the two pools' hosts.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
from aiohttp import web

from ...xapi import XapiClient, XapiError
from ...xapi.stream import download, pieces, upload
from ...xapi.task import task_refs
from ..context import Context
from ..errors import ApiError, invalid
from ..params import either, string
from ..registry import Resolve, api
from ..transfer import error_response, relay_download, request_body, upload_answer
from .common import VMS, created, xapi, xapi_task

log = logging.getLogger(__name__)


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


@api(
    "vm.export",
    params={"vm": string(), "compress": either("boolean", "string", optional=True)},
    resolve=(Resolve("vm", VMS, "administrate"),),
)
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


@api(
    "vm.import",
    params={"sr": string(), "type": string(enum=["xva"], default="xva"), "url": string(optional=True)},
    resolve=(Resolve("sr", ("SR",), "operate"),),
)
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
        return upload_answer(uuid)

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
            body = pieces(resp.content)
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
            try:
                result = await upload(
                    target, "/import", {"sr_id": sr["_xapiRef"]}, dl.chunks(), None, f"Copy {name}"
                )
            except XapiError as e:
                # an export that fails midway ends its stream as if whole: the import then fails for want
                # of bytes, and the export's task says why
                cause = await dl.task.failure(2)
                if cause is not None:
                    raise cause from e
                raise
            try:
                await dl.task.result()
            except BaseException:
                # xapi ends an export by closing even when it failed, and the import may have had every
                # disk byte by then: only the export's task knows the copy is bad, so undo the import
                for made in task_refs(result):
                    await delete_vm_and_disks(target, made)
                raise
        except BaseException:
            await dl.task.cancel()
            raise
        finally:
            await dl.close()
            await dl.task.destroy()
    finally:
        if snapshot:
            await delete_vm_and_disks(source, snapshot)
    uuid = await _new_vm(ctx, sr, result)
    new_ref = task_refs(result)[0]
    await target.call("VM.set_name_label", new_ref, name)
    return uuid


async def migrate_between_pools(
    ctx: Context,
    vm: dict[str, Any],
    host: dict[str, Any],
    sr: dict[str, Any] | None,
    map_vdis_srs: dict[str, str],
    map_vifs_networks: dict[str, str],
    network: dict[str, Any] | None,
) -> None:
    """Move a VM to a host of another pool with its disks (XAPI's storage XenMotion): the target pool's
    ``host.migrate_receive`` gives a token, the source's ``VM.migrate_send`` moves the VM, under a task.
    Every disk goes to the SR ``map_vdis_srs`` names, else ``sr``, else the target pool's default SR; every
    interface to the network ``map_vifs_networks`` names, else the migration network (``network``, else the
    target host's management network). Each is checked first: an SR or a network of another pool, or one the
    user may not administrate, refuses the call with nothing moved."""
    objects = ctx.services.objects
    target_pool = host["$poolId"]

    def of_target(id_: str, param: str, types: tuple[str, ...]) -> dict[str, Any]:
        obj = ctx.object(id_, types, "administrate")
        if obj["$poolId"] != target_pool:
            raise invalid(param, f"{id_} is not in the target host's pool", "pool")
        return obj

    if network is None:
        managed = [p for p in (objects.get(i) for i in host.get("PIFs", [])) if p and p.get("management")]
        network = objects.get(managed[0].get("$network", "")) if managed else None
        if network is None:
            raise invalid("migrationNetwork", "the target host has no management interface: name a network")
    elif network["$poolId"] != target_pool:
        raise invalid("migrationNetwork", "must be a network of the target host's pool", "pool")
    if sr is not None and sr["$poolId"] != target_pool:
        raise invalid("sr", "must be an SR of the target host's pool", "pool")
    if sr is None:
        default = objects.get(str((objects.get(target_pool) or {}).get("default_SR", "")))
        sr = default if default is not None and default["$poolId"] == target_pool else None

    vdi_map: dict[str, str] = {}
    for vbd in (objects.get(i) for i in vm.get("$VBDs", [])):
        if vbd is None or vbd.get("is_cd_drive") or not vbd.get("VDI"):
            continue
        vdi = objects.get(vbd["VDI"])
        if vdi is None:
            continue
        if vdi["id"] in map_vdis_srs:
            target_sr = of_target(map_vdis_srs[vdi["id"]], "mapVdisSrs", ("SR",))
        elif sr is not None:
            target_sr = sr
        else:
            raise invalid("sr", f"the target pool has no default SR for disk {vdi['name_label']!r}: name one")
        vdi_map[vdi["_xapiRef"]] = target_sr["_xapiRef"]
    vif_map: dict[str, str] = {}
    for vif in (objects.get(i) for i in vm.get("VIFs", [])):
        if vif is None:
            continue
        chosen = network
        if vif["id"] in map_vifs_networks:
            chosen = of_target(map_vifs_networks[vif["id"]], "mapVifsNetworks", ("network",))
        vif_map[vif["_xapiRef"]] = chosen["_xapiRef"]

    target = ctx.services.servers.client_of(target_pool)
    token = await target.call("host.migrate_receive", host["_xapiRef"], network["_xapiRef"], {})
    args: tuple[Any, ...] = (token, True, vdi_map, vif_map, {}, {})
    await xapi(ctx, vm, "VM.assert_can_migrate", *args)
    await xapi_task(ctx, vm, "VM.migrate_send", *args, timeout=24 * 3600)
