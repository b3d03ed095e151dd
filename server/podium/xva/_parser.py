"""XvaParser: a sans-IO push parser of XVA streams, following XAPI's own import rules.

How disk chunks map to disk offsets: the rule of XAPI's import, ``recv_all_vdi`` in
xapi-project/xen-api ``ocaml/xapi/stream_vdi.ml``, not "offset = chunk number * 1 MiB":

* Disks come one after the other, in the order XAPI sorts them (by their ``Ref:N`` id as a string), each
  exactly its VDI's ``virtual_size`` long; a disk ends when that many bytes are accounted for (XAPI reads
  members "while remaining > 0"), so the member that follows must start the next disk.
* Within a disk, chunk names (decimal, 8 digits as XAPI writes them) must increase: XAPI compares them as
  strings; we also require the numbers to increase, which is the same for names of equal width.
* The bytes of a chunk go at the current offset; the offset then grows by the chunk's length.
* A gap between names N and M (M > N + 1) stands for M - N - 1 left-out chunks of zeros, each as long as
  the disk's *first* chunk (XAPI's ``firstchunklength``): gaps advance the offset by that much.
* A zero-length chunk is valid: XAPI's export sends one (name N, no data) as a keep-alive when the disk
  is slow to read, and then sends the data that was due under name N under name N + 1. Names and offsets
  therefore part ways after a keep-alive, which is why offset = N * 1 MiB would be wrong.
* Every chunk is followed by its checksum member, ``<chunk>.checksum`` (SHA-1, lower-case hex, as
  ``Sha1.to_hex``) or ``<chunk>.xxhash`` (XXH64, ``%016LX``: upper-case hex); the text is compared
  exactly, as XAPI compares it, and only when ``export_vsn > 0`` (``has_inline_checksums``).

One deliberate difference: XAPI keeps the first chunk's length in a reference shared by every disk of
the import, so a disk under 1 MiB placed first would shrink the gaps of the disks after it; we take the
first chunk of each disk. Both agree on every stream XAPI or Xen Orchestra writes (their first chunks
are 1 MiB unless the disk is smaller, in which case it has a single chunk).

Memory: the parser holds at most one chunk (``max_chunk_size``, 1 MiB by default) until its checksum
arrives, plus ova.xml (``max_ova_size``). The events of one ``feed`` hold the data of that feed.
"""

from __future__ import annotations

import hashlib

import xxhash

from ._decompress import Decompressor
from ._errors import XvaError
from ._events import CHUNK_SIZE, DiskData, DiskEnd, DiskGap, End, Event, Header
from ._ovaxml import OVA_XML, export_vsn, parse_ova
from ._tar import BLOCK, KINDS, META, REGULAR, check_safe, padding, parse_header, pax_records

DEFAULT_MAX_DISK_SIZE = 64 * 1024**4  # 64 TiB: above any SR's VDI limit (VHD 2 TiB, qcow2 16 TiB)
MAX_OVA_SIZE = 64 * 1024**2  # ova.xml of a VM with many snapshots is a few MB
MAX_META_SIZE = 64 * 1024  # PAX / GNU long-name records
MAX_CHECKSUM_SIZE = 128  # a hex digest is 16 or 40 bytes
SUFFIXES = (".checksum", ".xxhash")

_HEADER, _DATA, _PAD, _END = range(4)
_OVA, _CHUNK, _SUM, _META, _SKIP = range(5)


def digest(kind: str, data: bytes | bytearray | memoryview) -> str:
    """The checksum text XAPI writes for ``data``: ``.xxhash`` or ``.checksum`` (SHA-1)."""
    if kind == ".xxhash":
        return format(xxhash.xxh64_intdigest(data), "016X")
    return hashlib.sha1(data).hexdigest()


class XvaParser:
    """Feed an XVA stream (plain, gzip or zstd) in blocks of any size; get events back.

    ``feed`` returns the events the block completes; ``close`` the last ones and :class:`End`, or raises
    :class:`XvaError` if the stream stops early. After an error the parser stays failed.
    """

    def __init__(
        self,
        max_disk_size: int = DEFAULT_MAX_DISK_SIZE,
        verify: bool = True,
        *,
        max_chunk_size: int = CHUNK_SIZE,
        max_ova_size: int = MAX_OVA_SIZE,
    ) -> None:
        self.max_disk_size = max_disk_size
        self.verify = verify
        self.max_chunk_size = max_chunk_size
        self.max_ova_size = max_ova_size
        self.header: Header | None = None
        self._dec = Decompressor()
        self._error: XvaError | None = None
        self._closed = False
        self._state = _HEADER
        self._pos = 0  # bytes of (decompressed) tar consumed, for messages
        self._hbuf = bytearray()  # a header split across feeds
        self._left = 0  # bytes of the current member's data, or of padding / end zeros, still due
        self._kind = _SKIP
        self._body = bytearray()
        self._filled = 0
        self._member: str | None = None  # the member being read
        self._meta_name: str | None = None  # a name from a PAX or GNU long-name record
        self._meta_size: int | None = None
        self._meta_kind = b""
        self._size = 0  # the current member's size
        self._disks: list[tuple[str, int]] = []
        self._disk_i = 0
        self._trailer_allowed = False  # export_vsn < 2: a checksum table follows the disks
        self._verify_sums = verify
        self._new_disk()

    def _new_disk(self) -> None:
        self._offset = 0
        self._unit: int | None = None  # the length of the disk's first chunk: the gap unit
        self._last: tuple[str, int] | None = None  # the last chunk name: suffix, number
        self._pending: tuple[str, int, int] | None = None  # chunk name, its gap, its length
        self._chunk = bytearray()

    # ---- the public face -------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Events completed by ``data``; XvaError when the stream is not a valid XVA."""
        events: list[Event] = []
        self._guard()
        try:
            for piece in self._dec.feed(data):
                self._consume(memoryview(piece), events)
        except XvaError as e:
            self._error = e
            raise
        return events

    def close(self) -> list[Event]:
        """The last events and :class:`End`; XvaError if the stream ended early."""
        events: list[Event] = []
        self._guard()
        self._closed = True
        try:
            for piece in self._dec.close():
                self._consume(memoryview(piece), events)
            self._check_end()
        except XvaError as e:
            self._error = e
            raise
        events.append(End())
        return events

    def _guard(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError("the parser is closed")

    # ---- the tar layer -----------------------------------------------------------------------------

    def _where(self) -> str:
        after = f", after member {self._member}" if self._member else ""
        return f"at byte {self._pos} of the tar stream{after}"

    def _consume(self, view: memoryview, events: list[Event]) -> None:
        pos, end = 0, len(view)
        while pos < end:
            state = self._state
            if state == _HEADER:
                if self._hbuf or end - pos < BLOCK:  # a header split across pieces
                    take = min(BLOCK - len(self._hbuf), end - pos)
                    self._hbuf += view[pos : pos + take]
                    pos += take
                    if len(self._hbuf) < BLOCK:
                        continue
                    block: bytes | memoryview = bytes(self._hbuf)
                    self._hbuf.clear()
                else:
                    block = view[pos : pos + BLOCK]
                    pos += BLOCK
                self._on_header(block, events)
                self._pos += BLOCK
                continue
            if state == _DATA:
                take = min(self._left, end - pos)
                if self._kind != _SKIP:
                    self._body[self._filled : self._filled + take] = view[pos : pos + take]
                    self._filled += take
                self._left -= take
                if not self._left:
                    self._finish(events)
            elif state == _PAD:
                take = min(self._left, end - pos)
                self._left -= take
                if not self._left:
                    self._state = _HEADER
            else:  # _END: the rest of the marker, then tar's record padding: zeros only
                take = end - pos
                if view[pos:end].tobytes().count(0) != take:
                    raise XvaError(None, f"data after the end-of-archive marker, {self._where()}")
                self._left = max(0, self._left - take)
            pos += take
            self._pos += take

    def _on_header(self, block: bytes | memoryview, events: list[Event]) -> None:
        try:
            hdr = parse_header(block, self._where())
        except XvaError as e:
            if self._pos == 0:  # the very first block: not a damaged XVA, not an XVA at all
                kind = self._dec.kind
                what = "the stream" if kind == "tar" else f"its {kind} content"
                raise XvaError(None, f"not an XVA: {what} is not a tar archive ({e.problem})") from None
            raise
        if hdr is None:
            self._check_complete("the end-of-archive marker")
            self._state, self._left = _END, BLOCK  # the second zero block is still due
            return
        if hdr.kind in META:
            if hdr.size > MAX_META_SIZE:
                raise XvaError(hdr.name, f"absurd size {hdr.size} for a PAX or long-name record")
            self._meta_kind = hdr.kind
            self._start(hdr.name, hdr.size, _META)
        else:
            name = self._meta_name if self._meta_name is not None else hdr.name
            size = self._meta_size if self._meta_size is not None else hdr.size
            self._meta_name = self._meta_size = None
            check_safe(name)
            if hdr.kind not in REGULAR:
                raise XvaError(name, f"is {KINDS.get(hdr.kind, 'not a regular file')}: XVA members are files")
            self._begin_member(name, size)
        if not self._left:  # an empty member (a keep-alive chunk): done at once
            self._finish(events)

    def _start(self, name: str, size: int, kind: int) -> None:
        self._member, self._kind, self._size = name, kind, size
        self._body = bytearray(size) if kind != _SKIP else bytearray()
        self._filled = 0
        self._state, self._left = _DATA, size

    def _finish(self, events: list[Event]) -> None:
        kind = self._kind
        if kind == _META:
            self._on_meta()
        elif kind == _OVA:
            self._on_ova(events)
        elif kind == _CHUNK:
            self._chunk = self._body
        elif kind == _SUM:
            self._on_checksum(events)
        self._left = padding(self._size)
        self._state = _PAD if self._left else _HEADER

    def _on_meta(self) -> None:
        data = bytes(self._body)
        if self._meta_kind == b"L":
            self._meta_name = data.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
        elif self._meta_kind == b"x":
            records = pax_records(data, self._member or "")
            if "path" in records:
                self._meta_name = records["path"]
            if "size" in records:
                try:
                    self._meta_size = int(records["size"])
                except ValueError:
                    raise XvaError(self._member, "bad size in a PAX record") from None

    # ---- the XVA layer -----------------------------------------------------------------------------

    def _begin_member(self, name: str, size: int) -> None:
        if self.header is None:
            if name != OVA_XML:
                raise XvaError(name, "the first member of an XVA must be ova.xml (a tar, but not an XVA)")
            if size > self.max_ova_size:
                raise XvaError(name, f"absurd size {size} (the limit is {self.max_ova_size} bytes)")
            self._start(name, size, _OVA)
        elif self._disk_i >= len(self._disks):
            if not self._trailer_allowed:
                raise XvaError(name, "unexpected member after the last disk")
            self._trailer_allowed = False  # XAPI reads one checksum table, unverified here
            if size > self.max_ova_size:
                raise XvaError(name, f"absurd size {size} (the limit is {self.max_ova_size} bytes)")
            self._start(name, size, _SKIP)
        elif name.endswith(SUFFIXES):
            self._begin_checksum(name, size)
        else:
            self._begin_chunk(name, size)

    def _on_ova(self, events: list[Event]) -> None:
        header = parse_ova(bytes(self._body), self.max_disk_size)
        self._body = bytearray()
        vsn = export_vsn(header.version)
        self._trailer_allowed = vsn < 2
        self._verify_sums = self.verify and vsn > 0
        self.header = header
        self._disks = list(header.disks.items())
        events.append(header)
        self._skip_empty_disks(events)

    def _skip_empty_disks(self, events: list[Event]) -> None:
        while self._disk_i < len(self._disks) and self._offset == self._disks[self._disk_i][1]:
            events.append(DiskEnd(*self._disks[self._disk_i]))
            self._disk_i += 1
            self._new_disk()

    def _begin_chunk(self, name: str, size: int) -> None:
        if self._pending is not None:
            raise XvaError(name, f"expected the checksum member of {self._pending[0]} first")
        vdi, total = self._disks[self._disk_i]
        if not name.startswith(vdi + "/"):
            raise XvaError(
                name,
                f"expected a chunk of disk {vdi} (byte {self._offset} of {total}): disks come "
                "whole, one after the other, in the order of their ids",
            )
        suffix = name[len(vdi) + 1 :]
        if not (suffix.isascii() and suffix.isdigit()) or len(suffix) > 19:
            raise XvaError(name, "a chunk name must be a decimal number (Ref:N/00000042)")
        number = int(suffix)
        if self._last is not None and (suffix <= self._last[0] or number <= self._last[1]):
            raise XvaError(name, f"chunk names must increase, but {self._last[0]} came before it")
        if size > self.max_chunk_size:
            raise XvaError(name, f"absurd size {size} for a chunk (the limit is {self.max_chunk_size})")
        if self._unit is None:
            self._unit = size
        gap = (number - (self._last[1] if self._last else -1) - 1) * self._unit
        if self._offset + gap + size > total:
            raise XvaError(
                name,
                f"goes beyond the end of disk {vdi}: it would end at byte "
                f"{self._offset + gap + size}, but the disk's virtual_size is {total}",
            )
        self._last = (suffix, number)
        self._pending = (name, gap, size)
        self._start(name, size, _CHUNK)

    def _begin_checksum(self, name: str, size: int) -> None:
        chunk = self._pending[0] if self._pending else None
        if chunk is None or name not in (chunk + SUFFIXES[0], chunk + SUFFIXES[1]):
            raise XvaError(name, "a checksum member must follow its chunk, and this one does not")
        if size > MAX_CHECKSUM_SIZE:
            raise XvaError(name, f"absurd size {size} for a checksum")
        self._start(name, size, _SUM)

    def _on_checksum(self, events: list[Event]) -> None:
        assert self._pending is not None
        name, gap, size = self._pending
        vdi = self._disks[self._disk_i][0]
        if self._verify_sums:
            kind = SUFFIXES[0] if self._member == name + SUFFIXES[0] else SUFFIXES[1]
            stated = bytes(self._body).decode("ascii", "backslashreplace")
            actual = digest(kind, self._chunk)
            if stated != actual:
                raise XvaError(
                    name, f"bad checksum: {name}{kind} says {stated!r}, the data hashes to {actual!r}"
                )
        if gap:
            events.append(DiskGap(vdi, self._offset, gap))
        if size:
            events.append(DiskData(vdi, self._offset + gap, memoryview(self._chunk)))
        self._offset += gap + size
        self._pending = None
        self._chunk = bytearray()
        self._skip_empty_disks(events)

    def _check_complete(self, what: str) -> None:
        if self.header is None:
            raise XvaError(None, f"{what} came before ova.xml: this is not an XVA")
        if self._pending is not None:
            raise XvaError(self._pending[0], f"its checksum member is missing ({what} came instead)")
        if self._disk_i < len(self._disks):
            vdi, total = self._disks[self._disk_i]
            raise XvaError(
                self._member, f"disk {vdi} is incomplete: {what} came at byte {self._offset} of {total}"
            )

    def _check_end(self) -> None:
        if self._state == _END and not self._left:
            return
        if self._state == _DATA:
            got = self._filled if self._kind != _SKIP else None
            detail = f" ({got} of {got + self._left} bytes)" if got is not None else ""
            raise XvaError(self._member, f"truncated: the stream ends inside this member{detail}")
        if self._state == _END:
            raise XvaError(None, "truncated: the stream ends inside the end-of-archive marker")
        if self._hbuf:
            raise XvaError(self._member, f"truncated: the stream ends inside a tar header, {self._where()}")
        if self._pos == 0 and self.header is None:
            raise XvaError(None, "the stream is empty: not an XVA")
        self._check_complete("the end of the stream")
        raise XvaError(self._member, "truncated: the stream ends without the end-of-archive marker")
