"""XvaWriter: an XVA stream from ova.xml and disk sources, laid out as XAPI's export writes it.

Per disk (sorted by id, as stream_vdi.ml ``for_each_vdi``): ``Ref:N/%08d`` chunks of ``chunk_size`` bytes
(the last one shorter when the size is not a multiple), each followed by ``.xxhash`` (``%016LX``) or
``.checksum`` (SHA-1 hex); all-zero chunks are left out except the first and the last, which give the
reader the disk's start and size. Files are read with os.SEEK_DATA/SEEK_HOLE where the system has them,
so holes of a sparse image are skipped without being read. The writer never sends keep-alive chunks.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import zlib
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import zstandard

from ._events import CHUNK_SIZE
from ._ovaxml import OVA_XML, dump_ova, expected_disks
from ._parser import DEFAULT_MAX_DISK_SIZE, digest
from ._tar import BLOCK, check_safe, make_header, padding

_SUFFIX = {"xxhash": ".xxhash", "sha1": ".checksum"}
_LEVEL = {"gzip": 1, "zstd": 3}  # fast: an export is I/O-bound; gzip -1 is what `gzip --fast` gives
_BATCH = 1024 * 1024  # bytes handed over per thread hop in aiter()


@runtime_checkable
class DiskSource(Protocol):
    """A disk to stream: ``size`` bytes, read with ``read_at``.

    It may also have ``data_extents() -> Iterable[(start, end)]``, the ranges that may hold data
    (sorted); chunks outside them are taken as zeros without being read.
    """

    @property
    def size(self) -> int:
        """The disk's size in bytes: the VDI's virtual_size."""
        ...

    def read_at(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``."""
        ...


class RawDisk:
    """A raw image file as a DiskSource; with ``size`` larger than the file, zeros follow its end."""

    def __init__(self, path: str | os.PathLike[str], size: int | None = None) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._file_size = os.lseek(self._fd, 0, os.SEEK_END)  # a block device's size too (stat says 0)
        self.size = self._file_size if size is None else size
        if self.size < self._file_size:
            os.close(self._fd)
            raise ValueError(f"{path}: size {size} is smaller than the file ({self._file_size} bytes)")

    def read_at(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (zeros past the end of the file)."""
        data = os.pread(self._fd, length, offset) if offset < self._file_size else b""
        while len(data) < length and offset + len(data) < self._file_size:  # a short read: go on
            more = os.pread(self._fd, length - len(data), offset + len(data))
            if not more:
                raise OSError(f"{self.path} shrank while being read")
            data += more
        return data + bytes(length - len(data)) if len(data) < length else data

    def data_extents(self) -> Iterator[tuple[int, int]]:
        """The file's data ranges by SEEK_DATA/SEEK_HOLE (the whole file where they do not exist)."""
        end = self._file_size
        if not hasattr(os, "SEEK_DATA"):
            yield (0, end)
            return
        pos = 0
        while pos < end:
            try:
                start = os.lseek(self._fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno != errno.ENXIO:  # the file system cannot tell: take the rest as data
                    yield (pos, end)
                return  # ENXIO: only a hole is left
            stop = min(os.lseek(self._fd, start, os.SEEK_HOLE), end)
            yield (start, stop)
            pos = stop

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)

    def __enter__(self) -> RawDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunk_numbers(size: int, chunk: int, extents: Iterable[tuple[int, int]] | None) -> Iterator[int]:
    """Chunks worth reading: the first, the last, and (with extents) those overlapping data."""
    count = -(-size // chunk)
    if not count:
        return
    if extents is None:
        yield from range(count)
        return
    yield 0
    done = 0
    for start, stop in extents:
        first, last = max(start // chunk, done + 1), min((stop - 1) // chunk, count - 1)
        yield from range(first, last + 1)
        done = max(done, last)
    if count - 1 > done:
        yield count - 1


class XvaWriter:
    """The XVA stream of ``ova`` (``{"version": …, "objects": …}``) and its ``disks`` (id → source).

    Iterate it for the stream's blocks, ``write(path)`` to a file, or ``aiter()`` from asyncio.
    ``disks`` must be exactly the disks XAPI's import expects from ``ova`` (see :class:`Header`), each
    as long as its VDI's ``virtual_size``: checked here, so that a mistake fails before any output.
    """

    def __init__(
        self,
        ova: Mapping[str, Any],
        disks: Mapping[str, str | os.PathLike[str] | DiskSource],
        checksum: str = "xxhash",
        compression: str | None = None,
        chunk_size: int = CHUNK_SIZE,
        *,
        level: int | None = None,
    ) -> None:
        if checksum not in _SUFFIX:
            raise ValueError(f"checksum must be 'xxhash' or 'sha1', not {checksum!r}")
        if compression not in (None, "gzip", "zstd"):
            raise ValueError(f"compression must be None, 'gzip' or 'zstd', not {compression!r}")
        if not 0 < chunk_size <= CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {CHUNK_SIZE} (XAPI's chunk size)")
        self.ova_xml = dump_ova(ova)
        self.checksum, self.compression, self.chunk_size = checksum, compression, chunk_size
        self.level = _LEVEL.get(compression or "", 0) if level is None else level
        self.disks = dict(disks)
        wanted = expected_disks(list(ova["objects"]), DEFAULT_MAX_DISK_SIZE)
        if set(wanted) != set(self.disks):
            raise ValueError(f"disks {sorted(self.disks)} are not those the VM's VBDs need: {sorted(wanted)}")
        for vdi, size in wanted.items():
            if "/" in vdi:
                raise ValueError(f"VDI id {vdi!r} cannot name a tar folder")
            check_safe(f"{vdi}/00000000")
            make_header(f"{vdi}/00000000{_SUFFIX[checksum]}", 0)  # the names fit a header
            have = self._size_of(self.disks[vdi])
            if have != size:
                raise ValueError(f"disk {vdi} has {have} bytes, its VDI's virtual_size is {size}")
            if -(-size // chunk_size) > 10**8:
                raise ValueError(f"disk {vdi} needs more than 10^8 chunks: names would not sort")
        self._order = list(wanted)  # already sorted by id

    @staticmethod
    def _size_of(source: str | os.PathLike[str] | DiskSource) -> int:
        if isinstance(source, DiskSource):
            return source.size
        with RawDisk(source) as disk:
            return disk.size

    def _pieces(self) -> Iterator[bytes | memoryview]:
        suffix = _SUFFIX[self.checksum]
        yield make_header(OVA_XML, len(self.ova_xml))
        yield self.ova_xml + bytes(padding(len(self.ova_xml)))
        zero = bytes(self.chunk_size)
        for vdi in self._order:
            given = self.disks[vdi]
            source = given if isinstance(given, DiskSource) else RawDisk(given)
            try:
                extents = getattr(source, "data_extents", None)
                size, count = source.size, -(-source.size // self.chunk_size)
                for number in _chunk_numbers(size, self.chunk_size, extents() if extents else None):
                    offset = number * self.chunk_size
                    length = min(self.chunk_size, size - offset)
                    data = source.read_at(offset, length)
                    if len(data) != length:
                        raise OSError(f"disk {vdi}: read {len(data)} bytes at {offset}, wanted {length}")
                    if 0 < number < count - 1 and data == zero:
                        continue  # sparse: all-zero chunks are left out, but never the first or last
                    name = f"{vdi}/{number:08d}"
                    text = digest(suffix, data).encode()
                    yield make_header(name, length)
                    yield data
                    yield (
                        bytes(padding(length))
                        + make_header(name + suffix, len(text))
                        + text
                        + bytes(padding(len(text)))
                    )
            finally:
                if source is not given:
                    source.close()  # type: ignore[attr-defined]
        yield bytes(2 * BLOCK)  # the end-of-archive marker

    def __iter__(self) -> Generator[bytes | memoryview, None, None]:
        """The stream, block by block (compressed if asked)."""
        if self.compression is None:
            yield from self._pieces()
            return
        compressor: Any
        if self.compression == "gzip":
            compressor = zlib.compressobj(self.level, zlib.DEFLATED, 31)
        else:
            compressor = zstandard.ZstdCompressor(level=self.level).compressobj()
        for piece in self._pieces():
            out = compressor.compress(piece)
            if out:
                yield out
        yield compressor.flush()

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the stream to ``path`` (through a temporary file beside it, renamed when complete)."""
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        try:
            with open(partial, "wb") as out:
                for block in self:
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target

    async def aiter(self) -> AsyncIterator[bytes | memoryview]:
        """The stream from asyncio: reading, hashing and compressing run in a worker thread, about
        1 MiB per hop, so the event loop is never blocked for longer than a hand-over."""
        blocks = iter(self)
        lock = threading.Lock()  # the generator runs in one worker at a time, and is closed by one

        def batch() -> list[bytes | memoryview]:
            out: list[bytes | memoryview] = []
            total = 0
            with lock:
                for block in blocks:
                    out.append(block)
                    total += len(block)
                    if total >= _BATCH:
                        break
            return out

        def close() -> None:
            with lock:  # after a batch still running for a cancelled consumer, if any
                blocks.close()

        try:
            while chunk := await asyncio.to_thread(batch):
                for block in chunk:
                    yield block
        finally:
            await asyncio.to_thread(close)
