"""The contents of the simulated disks: one sparse file per VDI, made on first write.

A VDI with no file reads as zeros over its whole ``virtual_size``, so a pool of ten thousand VMs costs
nothing on disk; a disk written through ``/import`` or ``/import_raw_vdi`` gets a sparse file whose holes
are found again with ``SEEK_DATA``/``SEEK_HOLE``, so exporting a 4 GiB disk with 10 MiB of data reads
10 MiB. Clones, copies and snapshots copy the data extents, as a full-copy SR would.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)


def is_zero(data: bytes) -> bool:
    """Whether a block is all zeros (a memcmp, not a loop over bytes)."""
    if len(data) <= CHUNK:
        return data == _ZEROS[: len(data)]
    return all(is_zero(data[i : i + CHUNK]) for i in range(0, len(data), CHUNK))


class Disks:
    """VDI contents, by VDI uuid, under one directory (a temporary one unless given)."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="xapisim-disks-"))
            weakref.finalize(self, shutil.rmtree, root, True)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root

    def path(self, uuid: str) -> Path:
        """The file that holds a VDI's content (it may not exist: then the disk is all zeros)."""
        if not uuid or "/" in uuid or uuid.startswith("."):
            raise ValueError(f"not a VDI uuid: {uuid!r}")
        return self.root / f"{uuid}.raw"

    def exists(self, uuid: str) -> bool:
        """Whether anything was ever written to the VDI."""
        return self.path(uuid).exists()

    def extents(self, uuid: str, size: int) -> Iterator[tuple[int, int]]:
        """The (offset, length) ranges of the first ``size`` bytes that may hold data, in order."""
        path = self.path(uuid)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            end = min(size, os.fstat(fd).st_size)
            pos = 0
            while pos < end:
                try:
                    start = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError:  # ENXIO: no data after pos
                    return
                if start >= end:
                    return
                stop = min(os.lseek(fd, start, os.SEEK_HOLE), end)
                yield start, stop - start
                pos = stop
        finally:
            os.close(fd)

    def read(self, uuid: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; zeros where nothing was written."""
        try:
            with open(self.path(uuid), "rb") as f:
                data = os.pread(f.fileno(), length, offset)
        except FileNotFoundError:
            data = b""
        return data + bytes(length - len(data)) if len(data) < length else data

    def open_write(self, uuid: str, size: int) -> int:
        """A file descriptor to write the VDI's content with ``os.pwrite``; the file is ``size`` long."""
        fd = os.open(self.path(uuid), os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        return fd

    @staticmethod
    def write(fd: int, offset: int, data: bytes) -> None:
        """Write at ``offset``, leaving a hole a hole when the data is zeros (the disk stays sparse)."""
        if is_zero(data):
            try:
                if os.lseek(fd, offset, os.SEEK_DATA) >= offset + len(data):
                    return
            except OSError:  # ENXIO: nothing but holes from offset on
                return
        os.pwrite(fd, data, offset)

    def copy(self, src: str, dst: str) -> None:
        """Give ``dst`` the content of ``src``, holes kept."""
        source = self.path(src)
        if not source.exists():
            self.remove(dst)
            return
        size = source.stat().st_size
        fd = self.open_write(dst, size)
        try:
            with open(source, "rb") as f:
                for offset, length in self.extents(src, size):
                    done = 0
                    while done < length:
                        n = min(CHUNK, length - done)
                        os.pwrite(fd, os.pread(f.fileno(), n, offset + done), offset + done)
                        done += n
        finally:
            os.close(fd)

    def resize(self, uuid: str, size: int) -> None:
        """Grow a written disk's file to its new virtual size."""
        path = self.path(uuid)
        if path.exists() and path.stat().st_size < size:
            os.truncate(path, size)

    def allocated(self, uuid: str) -> int:
        """Bytes the VDI really occupies (for physical_utilisation)."""
        try:
            return self.path(uuid).stat().st_blocks * 512
        except FileNotFoundError:
            return 0

    def remove(self, uuid: str) -> None:
        """Forget a VDI's content."""
        self.path(uuid).unlink(missing_ok=True)
