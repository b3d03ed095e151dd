"""XAPI's HTTP transfer handlers: ``GET /export``, ``PUT /import``, ``GET /export_raw_vdi``, ``PUT /import_raw_vdi``.

Each runs under a task: the caller's (``task_id``, made with task.create) or one of its own. Progress
moves with the bytes, the task ends in success with xapi's result (the new VM refs of an import as an
XML-RPC array), or in failure when the stream is bad or the peer goes away; an import that fails leaves no
VM and no disk behind. The session comes as ``session_id`` in the query or a cookie; a bad one gets 401.
Bodies with ``Transfer-Encoding: chunked`` are refused, as xapi does not read them.

The answers are framed as xapi's own HTTP server writes them (:class:`XapiHead`): downloads carry no
length and no chunks, and end when the connection closes, an XVA's status line says HTTP/1.0; an upload is
answered with its head before its body is read. A client can therefore not tell a download cut midway
from a whole one by the framing: only the task says how it went, which is why clients must ask it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11

from .call import Call
from .disks import is_zero
from .dispatch import create_task, finish_task
from .errors import Failure
from .messages.storage import account_sr, create_vdi, destroy_vdi, random_mac
from .messages.vm import operation
from .messages.vm_clone import destroy_vm_record
from .values import NULL_REF
from .xva import (
    BLOCK,
    CHUNK,
    Decompressing,
    TarReader,
    checksum,
    chunk_numbers,
    compress,
    compressor,
    flush,
    parse_ova,
    plan_export,
    read_disks,
    tar_member,
)

if TYPE_CHECKING:
    from .simulator import Host, Pool, Simulator

log = logging.getLogger(__name__)

# Counts a connection as a host's, so that stopping the host or dropping connections ends the transfer.
Hold = Callable[["Host", asyncio.BaseTransport], None]

# VM fields an imported VM takes as numbers from ova.xml.
_VM_NUMBERS = (
    "VCPUs_max",
    "VCPUs_at_startup",
    "memory_static_max",
    "memory_static_min",
    "memory_dynamic_max",
    "memory_dynamic_min",
)


class Transfers:
    """The transfer handlers of a simulator's listeners."""

    def __init__(self, sim: Simulator, hold: Hold) -> None:
        self.sim = sim
        self.hold = hold

    def add_routes(self, app: web.Application) -> None:
        """Register the handlers."""
        app.router.add_route("GET", "/export", self.export)
        app.router.add_route("PUT", "/import", self.import_)
        app.router.add_route("GET", "/export_raw_vdi", self.export_raw_vdi)
        app.router.add_route("PUT", "/import_raw_vdi", self.import_raw_vdi)

    # -- common ------------------------------------------------------------------------------------
    def _call(self, request: web.Request, label: str) -> Call:
        """The session, pool and task of a transfer, or the HTTP error xapi answers."""
        host = self.sim.host_reached(request.transport)
        if host is None or not host.up:
            raise web.HTTPServiceUnavailable()
        pool: Pool = host.pool
        session = request.query.get("session_id") or request.cookies.get("session_id") or ""
        task = request.query.get("task_id") or request.cookies.get("task_id")
        try:
            self.sim.check_session(pool, session)
        except Failure:
            if task and pool.db.get("task", task) is not None:
                failure = Failure("SESSION_AUTHENTICATION_FAILED", "", "the session is not valid")
                finish_task(pool.db, task, failure=failure)
            raise web.HTTPUnauthorized(text="session invalid") from None
        ctx = Call(self.sim, pool, host, label, session=session)
        if task:
            if pool.db.get("task", task) is None:
                raise web.HTTPNotFound(text=f"task {task} not found")
        else:
            task = create_task(ctx, label)
        ctx.task = ctx.op_key = task
        if request.transport is not None:
            self.hold(host, request.transport)
        return ctx

    def _resolve(self, ctx: Call, cls: str, request: web.Request, *keys: str) -> str:
        for key in keys:
            value = request.query.get(key)
            if not value:
                continue
            if ctx.db.get(cls, value) is not None:
                return value
            ref = ctx.db.by_uuid(cls, value)
            if ref is not None:
                return ref
            raise _fail(ctx, Failure("HANDLE_INVALID", cls, value), web.HTTPNotFound)
        raise _fail(ctx, Failure("HANDLE_INVALID", cls, ""), web.HTTPNotFound)

    @staticmethod
    def _progress(ctx: Call, total: int) -> Callable[[int], None]:
        done = 0
        step = max(total // 100, 1)
        mark = 0

        def add(n: int) -> None:
            nonlocal done, mark
            done += n
            if done - mark >= step and ctx.task and ctx.db.get("task", ctx.task) is not None:
                mark = done
                ctx.check_cancelled()
                ctx.db.update("task", ctx.task, progress=round(min(done / max(total, 1), 0.99), 2))

        return add

    # -- export ------------------------------------------------------------------------------------
    async def export(self, request: web.Request) -> web.StreamResponse:
        """Stream a halted VM (or snapshot) as an XVA."""
        ctx = self._call(request, "VM.export")
        ref = self._resolve(ctx, "VM", request, "ref", "uuid")
        compression = request.query.get("use_compression", "false").lower()
        packer = compressor(compression)
        kind = "sha1" if request.query.get("checksum") == "sha1" else "xxhash"
        resp = XapiHead(ctx, HttpVersion10, {"Content-Disposition": 'attachment; filename="export.xva"'})
        async with _outcome(ctx, resp), operation(ctx, ref, "export"):
            plan = plan_export(ctx.db.records, ref)
            total = sum(size for _, _, size in plan.disks) or 1
            progress = self._progress(ctx, total)
            await resp.prepare(request)
            injected = self.sim.faults.take("/export")  # fails after the disks, before the end (faults.py)

            async def send(data: bytes) -> None:
                await resp.write(await compress(packer, data) if packer else data)

            await send(tar_member("ova.xml", plan.ova_xml(ctx.host.name)))
            for ref_id, uuid, size in plan.disks:
                numbers = chunk_numbers(size, list(self.sim.disks.extents(uuid, size)))
                for number in numbers:
                    offset = number * CHUNK
                    data = self.sim.disks.read(uuid, offset, min(CHUNK, size - offset))
                    progress(CHUNK)
                    if is_zero(data) and number not in (0, numbers[-1]):
                        continue
                    name = f"{ref_id}/{number:08d}"
                    suffix, digest = checksum(kind, data)
                    await send(tar_member(name, data) + tar_member(name + suffix, digest))
                # the gaps count as done too
                progress(max(0, size - len(numbers) * CHUNK))
            if injected is not None:
                log.info("export fails as injected: %s", injected)
                raise injected
            await send(bytes(2 * BLOCK))
            if packer:
                await resp.write(flush(packer))
            await resp.write_eof()
        return resp

    # -- import ------------------------------------------------------------------------------------
    async def import_(self, request: web.Request) -> web.StreamResponse:
        """Create a VM and its disks from an XVA stream."""
        ctx = self._call(request, "VM.import")
        if request.headers.get("Transfer-Encoding"):
            failure = Failure("IMPORT_ERROR_CANNOT_HANDLE_CHUNKED")
            raise _fail(ctx, failure, web.HTTPForbidden)
        sr = self._import_sr(ctx, request)
        length = request.content_length or 0
        # xapi answers 200 before it reads the body; how the import went is the task's to say
        resp = XapiHead(ctx)
        await resp.prepare(request)
        reader = TarReader(Decompressing(request.content), self._progress(ctx, length))
        made: list[tuple[str, str]] = []  # (class, ref) created so far, undone on failure
        fds: dict[str, int] = {}
        try:
            first = await reader.next()
            if first is None or first[0] != "ova.xml":
                raise Failure("IMPORT_ERROR_UNEXPECTED_FILE", first[0] if first else "", "ova.xml")
            if first[1] > 64 << 20:
                raise Failure("IMPORT_ERROR", f"ova.xml is {first[1]} bytes")
            ova = parse_ova(await reader.data(first[1]))
            vdis = self._make_vdis(ctx, ova["objects"], sr, made)
            sizes = {ref_id: int(ctx.db.records("VDI")[ref]["virtual_size"]) for ref_id, ref in vdis.items()}

            def write(ref_id: str, offset: int, data: bytes) -> None:
                ref = vdis[ref_id]
                uuid = ctx.db.records("VDI")[ref]["uuid"]
                if ref_id not in fds:
                    fds[ref_id] = self.sim.disks.open_write(uuid, sizes[ref_id])
                self.sim.disks.write(fds[ref_id], offset, data)

            await read_disks(reader, write, sizes)
            vm = self._make_vm(ctx, ova["objects"], vdis, made)
            for ref in vdis.values():
                uuid = ctx.db.records("VDI")[ref]["uuid"]
                ctx.db.update("VDI", ref, physical_utilisation=self.sim.disks.allocated(uuid))
            account_sr(ctx.db, sr)
        except (Failure, asyncio.IncompleteReadError, OSError, asyncio.CancelledError) as e:
            if isinstance(e, Failure):
                failure = e
            elif isinstance(e, OSError) and not isinstance(e, ConnectionError):  # the disk, not the peer
                failure = Failure("VDI_IO_ERROR", str(e))
            else:
                failure = Failure("IMPORT_ERROR_PREMATURE_EOF")
            self._undo(ctx, made)
            finish_task(ctx.db, ctx.task or "", failure=failure)
            log.info("import failed: %s", failure)
            if isinstance(e, asyncio.CancelledError):
                raise
            return resp
        finally:
            for fd in fds.values():
                os.close(fd)
        finish_task(ctx.db, ctx.task or "", result=[vm])
        return resp

    def _import_sr(self, ctx: Call, request: web.Request) -> str:
        if request.query.get("sr_id") or request.query.get("sr_uuid"):
            return self._resolve(ctx, "SR", request, "sr_id", "sr_uuid")
        sr = str(ctx.pool.record.get("default_SR", NULL_REF))
        if ctx.db.get("SR", sr) is None:
            raise _fail(ctx, Failure("DEFAULT_SR_NOT_FOUND", sr), web.HTTPNotFound)
        return sr

    def _make_vdis(
        self, ctx: Call, objects: list[dict[str, Any]], sr: str, made: list[tuple[str, str]]
    ) -> dict[str, str]:
        vdis = {}
        for obj in objects:
            if obj.get("class") != "VDI":
                continue
            snap = obj.get("snapshot") or {}
            try:
                size = int(snap.get("virtual_size", 0))
            except (TypeError, ValueError):
                raise Failure("IMPORT_ERROR", f"VDI {obj.get('id')} has no valid virtual_size") from None
            if size < 0 or size > 64 << 40:
                raise Failure("IMPORT_ERROR", f"VDI {obj.get('id')} has an absurd virtual_size {size}")
            fields = {
                "name_label": str(snap.get("name_label", "")),
                "name_description": str(snap.get("name_description", "")),
                "SR": sr,
                "virtual_size": size,
                "type": str(snap.get("type", "user")),
                "sharable": bool(snap.get("sharable", False)),
                "read_only": bool(snap.get("read_only", False)),
                "other_config": dict(snap.get("other_config") or {}),
                "tags": list(snap.get("tags") or []),
            }
            ref = create_vdi(ctx, fields)
            made.append(("VDI", ref))
            vdis[str(obj["id"])] = ref
        return vdis

    def _make_vm(
        self, ctx: Call, objects: list[dict[str, Any]], vdis: dict[str, str], made: list[tuple[str, str]]
    ) -> str:
        vms = [o for o in objects if o.get("class") == "VM"]
        if not vms:
            raise Failure("IMPORT_ERROR", "ova.xml holds no VM")
        model = ctx.db.cls("VM")
        snap = vms[0].get("snapshot") or {}
        fields = {
            k: v
            for k, v in snap.items()
            # what VM.create takes, as xapi's import does: the writable fields and those set only at creation
            # (HVM_boot_policy, domain_type …)
            if k in model.fields and model.fields[k].qualifier in ("RW", "RO/constructor") and not _is_ref(v)
        }
        for name in _VM_NUMBERS:
            if name in snap:
                fields[name] = int(snap[name])
        fields.update(power_state="Halted", is_a_template=bool(snap.get("is_a_template", False)))
        vm = ctx.db.create("VM", fields)
        made.append(("VM", vm))
        vm_id = vms[0].get("id")
        for obj in objects:
            rec = obj.get("snapshot") or {}
            if obj.get("class") == "VBD" and rec.get("VM") == vm_id:
                vdi = vdis.get(str(rec.get("VDI")), NULL_REF)
                ref = ctx.db.create(
                    "VBD",
                    {
                        "VM": vm,
                        "VDI": vdi,
                        "userdevice": str(rec.get("userdevice", "0")),
                        "bootable": bool(rec.get("bootable", False)),
                        "mode": str(rec.get("mode", "RW")),
                        "type": str(rec.get("type", "Disk")),
                        "empty": vdi == NULL_REF,
                        "unpluggable": bool(rec.get("unpluggable", True)),
                        "other_config": dict(rec.get("other_config") or {}),
                    },
                )
                made.append(("VBD", ref))
            elif obj.get("class") == "VIF" and rec.get("VM") == vm_id:
                network = self._network_for(ctx, objects, str(rec.get("network")))
                ref = ctx.db.create(
                    "VIF",
                    {
                        "VM": vm,
                        "network": network,
                        "device": str(rec.get("device", "0")),
                        "MAC": str(rec.get("MAC") or random_mac()),
                        "MTU": int(rec.get("MTU", 1500)),
                        "other_config": dict(rec.get("other_config") or {}),
                    },
                )
                made.append(("VIF", ref))
        return vm

    @staticmethod
    def _network_for(ctx: Call, objects: list[dict[str, Any]], net_id: str) -> str:
        """The pool network a VIF lands on: same uuid, else same name, else same bridge, else the first."""
        exported = next((o.get("snapshot") or {} for o in objects if o.get("id") == net_id), {})
        nets = ctx.db.records("network")
        for key in ("uuid", "name_label", "bridge"):
            for ref, rec in nets.items():
                if exported.get(key) and rec.get(key) == exported.get(key):
                    return ref
        return next(iter(nets), NULL_REF)

    def _undo(self, ctx: Call, made: list[tuple[str, str]]) -> None:
        for cls, ref in reversed(made):
            if ctx.db.get(cls, ref) is None:
                continue
            if cls == "VM":
                destroy_vm_record(ctx, ref)
            elif cls == "VDI":
                destroy_vdi(ctx, ref)
            else:
                ctx.db.destroy(cls, ref)

    # -- raw disks ---------------------------------------------------------------------------------
    async def export_raw_vdi(self, request: web.Request) -> web.StreamResponse:
        """Stream a disk's content as raw bytes."""
        ctx = self._call(request, "VDI.export_raw")
        ref = self._resolve(ctx, "VDI", request, "vdi")
        _raw_format(ctx, request)
        rec = ctx.db.records("VDI")[ref]
        size = int(rec["virtual_size"])
        progress = self._progress(ctx, size)
        resp = XapiHead(ctx, headers={"Content-Disposition": f'attachment; filename="{rec["uuid"]}.raw"'})
        await resp.prepare(request)
        async with _outcome(ctx, resp):
            for offset in range(0, size, CHUNK):
                data = self.sim.disks.read(rec["uuid"], offset, min(CHUNK, size - offset))
                await resp.write(data)
                progress(len(data))
            await resp.write_eof()
        return resp

    async def import_raw_vdi(self, request: web.Request) -> web.StreamResponse:
        """Write raw bytes into a disk from its start."""
        ctx = self._call(request, "VDI.import_raw")
        if request.headers.get("Transfer-Encoding"):
            failure = Failure("INTERNAL_ERROR", "Cannot handle encoding: chunked")
            raise _fail(ctx, failure, web.HTTPNotFound)
        ref = self._resolve(ctx, "VDI", request, "vdi")
        _raw_format(ctx, request)
        rec = ctx.db.records("VDI")[ref]
        size = int(rec["virtual_size"])
        length = request.content_length
        if length is None:
            raise _fail(ctx, Failure("VDI_IO_ERROR", "no Content-Length"), web.HTTPLengthRequired)
        if length > size:
            raise _fail(ctx, Failure("VDI_TOO_SMALL", ref, str(length)), web.HTTPBadRequest)
        progress = self._progress(ctx, length)
        injected = self.sim.faults.take("/import_raw_vdi")  # fails once the body is read (faults.py)
        resp = XapiHead(ctx)  # as for /import: the answer first, the task tells how it went
        await resp.prepare(request)
        fd = -1
        offset = 0
        try:
            fd = self.sim.disks.open_write(rec["uuid"], size)
            while offset < length:
                data = await request.content.read(min(CHUNK, length - offset))
                if not data:
                    raise Failure("VDI_IO_ERROR", "Device I/O errors")
                self.sim.disks.write(fd, offset, data)
                offset += len(data)
                progress(len(data))
            if injected is not None:
                log.info("import_raw_vdi fails as injected: %s", injected)
                raise injected
        except (Failure, OSError, asyncio.CancelledError) as e:  # OSError: the peer, or the disk
            failure = e if isinstance(e, Failure) else Failure("VDI_IO_ERROR", "Device I/O errors")
            finish_task(ctx.db, ctx.task or "", failure=failure)
            if isinstance(e, asyncio.CancelledError):
                raise
            return resp
        finally:
            if fd >= 0:
                os.close(fd)
        ctx.db.update("VDI", ref, physical_utilisation=self.sim.disks.allocated(rec["uuid"]))
        finish_task(ctx.db, ctx.task or "", result="")
        return resp


class XapiHead(web.StreamResponse):
    """A 200 answer framed as xapi's ``Http_svr`` writes it: ``Connection: close``, no ``Content-Length``,
    no chunked encoding (the body, if any, ends with the connection), the HTTP version xapi's handler
    chose in its status line, and the task's id in a ``task-id`` header."""

    _length_check = False  # no Content-Length, no Transfer-Encoding: what is written goes out as it is

    def __init__(
        self, ctx: Call, version: HttpVersion = HttpVersion11, headers: dict[str, str] | None = None
    ) -> None:
        host = ctx.host.record
        super().__init__(
            headers={
                "Connection": "close",
                "Cache-Control": "no-cache, no-store",
                "task-id": ctx.task or "",
                "Server": f"xapi/{host.get('API_version_major', 2)}.{host.get('API_version_minor', 0)}",
                "Content-Type": "application/octet-stream",
                **(headers or {}),
            }
        )
        self._version = version
        self.force_close()

    async def _write_headers(self) -> None:  # aiohttp writes the request's version; xapi writes its own
        writer = self._payload_writer
        assert writer is not None
        status_line = f"HTTP/{self._version.major}.{self._version.minor} {self.status} {self.reason}"
        await writer.write_headers(status_line, self.headers)
        if self._send_headers_immediately:
            writer.send_headers()


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and (value.startswith(("Ref:", "OpaqueRef:")))


@contextlib.asynccontextmanager
async def _outcome(ctx: Call, resp: web.StreamResponse) -> AsyncIterator[None]:
    """End a download's task: success, the failure met, or VDI_IO_ERROR if the peer went away.

    A failure before the answer began is answered HTTP 500; one midway ends the body where it is, and the
    connection closes as after a whole one (xapi's way: only the task tells the difference).
    """
    try:
        yield
    except Failure as f:
        finish_task(ctx.db, ctx.task or "", failure=f)
        if resp.prepared:
            log.info("%s failed midway: %s", ctx.method, f)
            return
        raise web.HTTPInternalServerError(text=str(f)) from None
    except (OSError, asyncio.CancelledError):  # the peer went away, or the disk failed
        finish_task(ctx.db, ctx.task or "", failure=Failure("VDI_IO_ERROR", "Device I/O errors"))
        raise
    finish_task(ctx.db, ctx.task or "", result="")


def _fail(ctx: Call, failure: Failure, status: type[web.HTTPException]) -> web.HTTPException:
    """End the call's task with ``failure`` and give the HTTP error to raise."""
    finish_task(ctx.db, ctx.task or "", failure=failure)
    return status(text=str(failure))


def _raw_format(ctx: Call, request: web.Request) -> None:
    fmt = request.query.get("format", "raw")
    if fmt != "raw":
        raise _fail(ctx, Failure("UNSUPPORTED_FORMAT", fmt), web.HTTPBadRequest)
