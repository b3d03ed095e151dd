"""What the parser reports, in stream order: Header, then per disk DiskGap/DiskData … DiskEnd, then End."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHUNK_SIZE = 1024 * 1024  # XAPI's chunk_size (stream_vdi.ml): every XAPI and XO export uses it


@dataclass(frozen=True, slots=True)
class Header:
    """``ova.xml``: the exporting host's ``version`` and the exported ``objects`` ({class, id, snapshot}).

    ``disks`` maps each disk the stream must carry (the VDI's ``Ref:N`` id) to its virtual size, in
    stream order: the VDIs XAPI's import streams in (non-CD VBDs whose SR is not an ISO library, plus
    suspend images), sorted by id as XAPI sorts them.
    """

    version: dict[str, Any]
    objects: list[dict[str, Any]]
    disks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiskGap:
    """``length`` bytes of zeros at ``offset`` of disk ``vdi``, left out of the stream (sparse)."""

    vdi: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class DiskData:
    """Checksum-verified bytes of disk ``vdi`` at ``offset`` (one chunk, at most ``max_chunk_size``)."""

    vdi: str
    offset: int
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class DiskEnd:
    """Disk ``vdi`` is complete: ``size`` bytes, its virtual size."""

    vdi: str
    size: int


@dataclass(frozen=True, slots=True)
class End:
    """The archive ended properly: every disk complete, then the end-of-archive marker."""


Event = Header | DiskGap | DiskData | DiskEnd | End
