"""XAPI's side of the XVA format: the stream ``/export`` writes and the stream ``/import`` reads.

This is the simulator's own, deliberately separate from Podium's XVA library: it plays the pool, so a
round trip through Podium checks one implementation against another (and Debian's ``xva-img`` checks
both). What xapi writes (ocaml/xapi/export.ml, stream_vdi.ml): a tar stream of ``ova.xml`` (an XML-RPC
struct of the version header and the exported objects with ``Ref:N`` ids, every other reference
mapped to a ``Ref:N`` of its own or NULL), then per disk 1 MiB chunks ``Ref:N/00000000`` each followed by
its checksum member (``.xxhash``: XXH64 as 16 upper-case hex digits on current xapi, ``.checksum`` SHA-1 hex before), all-zero
chunks left out except the first and the last, and two zero blocks at the end. Members are ustar with
mode 0, owner 0 and time 0.

Reading follows xapi's import (stream_vdi.ml ``recv_all_vdi``): the first member is ``ova.xml``; a
chunk's name must be larger than the one before; a gap between names is that many chunks of the first
chunk's length (zeros, not written); a chunk lands where the previous one ended plus the gap. xapi's
exporter sends an empty chunk as keep-alive after 5 s of silence and gives the next chunk the following
number at the same offset, which this rule reads back correctly (offset = number x 1 MiB would not).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tarfile
import xmlrpc.client
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import xxhash
import zstandard

from .errors import Failure
from .values import NULL_REF
from .wire import xml_value

CHUNK = 1 << 20
BLOCK = 512
_CHUNK_NAME = re.compile(r"^(Ref:[0-9]+)/([0-9]{8})(\.checksum|\.xxhash)?$")
_EXPORT_VERSION = {
    "hostname": "xapisim",
    "date": "2026-01-01",
    "product_version": "8.3.0",
    "product_brand": "XCP-ng",
    "build_number": "release/yangtze/master/8",
    "xapi_major": "25",
    "xapi_minor": "0",
    "export_vsn": "2",
}
# Classes whose objects go into the export when the VM refers to them, and the fields that follow.
_EXPORTED = {"VM": ("VBDs", "VIFs"), "VBD": ("VDI",), "VDI": ("SR",), "VIF": ("network",)}


# --- export ------------------------------------------------------------------------------------
def tar_header(name: str, size: int) -> bytes:
    """A ustar header as xapi's tar writer makes it (mode 0, owner 0, time 0)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0
    info.mtime = 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def tar_member(name: str, data: bytes) -> bytes:
    """A whole member: header, data, padding to the block size."""
    return tar_header(name, len(data)) + data + bytes(-len(data) % BLOCK)


@dataclass
class ExportPlan:
    """What an export of one VM writes: the ova.xml objects and the disks, by their ``Ref:N`` id."""

    objects: list[dict[str, Any]]
    disks: list[tuple[str, str, int]]  # (Ref:N, VDI uuid, virtual_size)

    def ova_xml(self, hostname: str) -> bytes:
        """The ``ova.xml`` member's content."""
        version = dict(_EXPORT_VERSION, hostname=hostname)
        return xml_value({"version": version, "objects": self.objects}).encode()


def plan_export(records: Callable[[str], dict[str, dict[str, Any]]], vm: str) -> ExportPlan:
    """The objects of a VM export: the VM, its VBDs, VIFs, their VDIs (not CDs'), SRs and networks."""
    ids: dict[str, str] = {}

    def ref_id(ref: str) -> str:
        if ref == NULL_REF or not ref.startswith("OpaqueRef:"):
            return ref
        return ids.setdefault(ref, f"Ref:{len(ids)}")

    order: list[tuple[str, str]] = []
    queue = [("VM", vm)]
    while queue:
        cls, ref = queue.pop(0)
        if (cls, ref) in order or ref not in records(cls):
            continue
        rec = records(cls)[ref]
        if cls == "VBD" and rec["type"] == "CD":
            order.append((cls, ref))  # the drive travels, the ISO does not
            continue
        order.append((cls, ref))
        for field in _EXPORTED.get(cls, ()):
            value = rec[field]
            nexts = value if isinstance(value, list) else [value]
            target = {"VBDs": "VBD", "VIFs": "VIF", "VDI": "VDI", "SR": "SR", "network": "network"}[field]
            queue.extend((target, r) for r in nexts if r != NULL_REF)
    exported = {ref for _, ref in order}
    objects = []
    disks = []
    for cls, ref in order:
        rec = records(cls)[ref]
        snapshot = {k: _map_refs(v, ref_id, exported) for k, v in rec.items()}
        if cls == "VBD" and rec["type"] == "CD":
            snapshot["VDI"] = NULL_REF
            snapshot["empty"] = True
        objects.append({"class": cls, "id": ref_id(ref), "snapshot": snapshot})
        if cls == "VDI" and records("SR").get(rec["SR"], {}).get("content_type") != "iso":
            disks.append((ref_id(ref), str(rec["uuid"]), int(rec["virtual_size"])))
    return ExportPlan(objects, sorted(disks))  # xapi streams disks in the order of their names


def _map_refs(value: Any, ref_id: Callable[[str], str], exported: set[str]) -> Any:
    if isinstance(value, str):
        if value.startswith("OpaqueRef:") and value != NULL_REF:
            return ref_id(value) if value in exported else NULL_REF
        return value
    if isinstance(value, list):
        return [m for m in (_map_refs(v, ref_id, exported) for v in value) if m != NULL_REF]
    if isinstance(value, dict):
        return {k: _map_refs(v, ref_id, exported) for k, v in value.items()}
    return value


def checksum(kind: str, data: bytes) -> tuple[str, bytes]:
    """The checksum member's suffix and content for a chunk."""
    if kind == "sha1":
        return ".checksum", hashlib.sha1(data).hexdigest().encode()
    return ".xxhash", xxhash.xxh64(data).hexdigest().upper().encode()  # xapi writes %016LX


def chunk_numbers(size: int, extents: list[tuple[int, int]]) -> list[int]:
    """The chunks an export writes: those touching data, plus the first and the last (sparse rule)."""
    last = max(0, (size - 1) // CHUNK)
    wanted = {0, last}
    for offset, length in extents:
        first = offset // CHUNK
        end = (offset + length - 1) // CHUNK
        wanted.update(range(first, min(end, last) + 1))
    return sorted(n for n in wanted if n * CHUNK < max(size, 1))


# --- import ------------------------------------------------------------------------------------
class Source(Protocol):
    """Where an import reads from (aiohttp's request.content fits)."""

    async def readexactly(self, n: int) -> bytes: ...


class TarReader:
    """Members of a tar stream, read in order without holding more than one member's data."""

    def __init__(self, source: Source, counter: Callable[[int], None] | None = None) -> None:
        self.source = source
        self.counter = counter or (lambda n: None)
        self.ended = False

    async def _read(self, n: int) -> bytes:
        data = await self.source.readexactly(n)
        self.counter(n)
        return data

    async def next(self) -> tuple[str, int] | None:
        """The next member's (name, size), or None at the end of the archive."""
        block = await self._read(BLOCK)
        if block == bytes(BLOCK):
            self.ended = True
            return None
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as e:
            raise Failure("IMPORT_ERROR", f"not a tar stream: {e}") from e
        if not info.isreg():
            raise Failure("IMPORT_ERROR", f"unexpected tar member type in {info.name}")
        return info.name, info.size

    async def data(self, size: int) -> bytes:
        """A member's data (the padding after it is read and dropped)."""
        data = await self._read(size)
        pad = -size % BLOCK
        if pad:
            await self._read(pad)
        return data


def parse_ova(data: bytes) -> dict[str, Any]:
    """The ``ova.xml`` struct, or IMPORT_ERROR."""
    try:
        (value,), _ = xmlrpc.client.loads(
            b"<methodResponse><params><param>" + data + b"</param></params></methodResponse>"
        )
    except Exception as e:
        raise Failure("IMPORT_ERROR", f"ova.xml cannot be parsed: {e}") from e
    if not isinstance(value, dict) or not isinstance(value.get("objects"), list):
        raise Failure("IMPORT_ERROR", "ova.xml holds no objects")
    return value


async def read_disks(
    reader: TarReader,
    write: Callable[[str, int, bytes], None],
    sizes: dict[str, int],
) -> None:
    """Read every chunk member after ova.xml, writing disks as it goes, until each disk is whole.

    ``write(ref_id, offset, data)`` stores data (keeping holes for zeros is its business). As in
    xapi's ``recv_all_vdi``: names must increase; a gap between names is that many chunks of the first
    chunk's length; an empty chunk (xapi's keep-alive) takes a number and no room. Reading stops when
    every disk reached its size, or at the end of the archive; a disk left short is a premature end.
    """
    last: dict[str, int] = {}  # the last chunk number seen per disk
    ends: dict[str, int] = {}  # where the last chunk of each disk ended
    chunk_len = 0  # the first chunk's length in the whole import, as xapi counts gaps
    pending: tuple[str, int, bytes] | None = None
    while any(ends.get(d, 0) < size for d, size in sizes.items()) or pending is not None:
        try:
            member = await reader.next()
        except asyncio.IncompleteReadError:
            member = None
        if member is None:
            short = sorted(d for d, size in sizes.items() if ends.get(d, 0) < size)
            raise Failure(
                "IMPORT_ERROR_PREMATURE_EOF",
                f"the stream ended before the end of {', '.join(short) or 'a checksum'}",
            )
        name, size = member
        m = _CHUNK_NAME.match(name)
        if m is None or m.group(1) not in sizes:
            raise Failure("IMPORT_ERROR_UNEXPECTED_FILE", name, "a chunk of a disk of ova.xml")
        disk, number, suffix = m.group(1), int(m.group(2)), m.group(3)
        if suffix:
            if pending is None or pending[0] != disk or last.get(disk) != number:
                raise Failure("IMPORT_ERROR", f"Invalid XVA file: {name} does not follow its chunk")
            if size > 128:
                raise Failure("IMPORT_ERROR", f"Invalid XVA file: {name} is {size} bytes")
            text = (await reader.data(size)).strip().decode("ascii", "replace")
            kind = "sha1" if suffix == ".checksum" else "xxhash"
            if checksum(kind, pending[2])[1].decode().lower() != text.lower():
                raise Failure("IMPORT_ERROR", f"Invalid checksum in {disk}/{number:08d}")
            write(*pending)
            pending = None
            continue
        if pending is not None:
            raise Failure(
                "IMPORT_ERROR", f"Invalid XVA file: {pending[0]}/{last[pending[0]]:08d} has no checksum"
            )
        if size > 16 * CHUNK:
            raise Failure("IMPORT_ERROR", f"Invalid XVA file: {name} is {size} bytes")
        previous = last.get(disk, -1)
        if number <= previous:
            raise Failure("IMPORT_ERROR", f"Invalid XVA file: {name} comes after {disk}/{previous:08d}")
        if not chunk_len and size:
            chunk_len = size
        offset = ends.get(disk, 0) + (number - previous - 1) * (chunk_len or CHUNK)
        data = await reader.data(size)
        if offset + len(data) > sizes[disk]:
            raise Failure("IMPORT_ERROR", f"Invalid XVA file: {name} lies beyond the end of its disk")
        last[disk] = number
        ends[disk] = offset + len(data)
        pending = (disk, offset, data)


# --- compression -------------------------------------------------------------------------------------
def compressor(value: str) -> Any:
    """The compressor for ``use_compression`` (``true``/``gzip``, ``zstd``), or None."""
    if value in ("true", "gzip"):
        return zlib.compressobj(6, zlib.DEFLATED, 31)
    if value == "zstd":
        return zstandard.ZstdCompressor().compressobj()
    return None


async def compress(compressor: Any, data: bytes) -> bytes:
    """Compress a block (big ones in a thread, so the loop keeps serving)."""
    if len(data) < 64 * 1024:
        return bytes(compressor.compress(data))
    return bytes(await asyncio.to_thread(compressor.compress, data))


def flush(compressor: Any) -> bytes:
    """The compressed stream's end."""
    return bytes(compressor.flush())


class Decompressing:
    """A body that may be gzip- or zstd-compressed, read as plain bytes (detected by magic)."""

    def __init__(self, content: Any) -> None:
        self.content = content
        self.buffer = bytearray()
        self.decoder: Any = None
        self.checked = False
        self.eof = False

    async def _fill(self) -> bool:
        data = await self.content.read(CHUNK)
        if not data:
            if self.decoder is not None and hasattr(self.decoder, "flush"):
                self.buffer += self.decoder.flush()
            self.eof = True
            return False
        if not self.checked:
            self.checked = True
            if data[:2] == b"\x1f\x8b":
                self.decoder = zlib.decompressobj(47)
            elif data[:4] == b"\x28\xb5\x2f\xfd":
                self.decoder = zstandard.ZstdDecompressor().decompressobj()
        if self.decoder is None:
            self.buffer += data
        else:
            try:
                self.buffer += self.decoder.decompress(data)
            except (zlib.error, zstandard.ZstdError) as e:
                raise Failure("IMPORT_ERROR", f"the compressed stream is corrupt: {e}") from e
        return True

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` plain bytes, or IncompleteReadError at the end of the stream."""
        while len(self.buffer) < n:
            if self.eof or not await self._fill():
                partial = bytes(self.buffer)
                self.buffer.clear()
                raise asyncio.IncompleteReadError(partial, n)
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out
