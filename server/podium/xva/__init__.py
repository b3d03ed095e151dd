"""XVA, XAPI's VM export format: a streaming reader and writer, sparse and checksummed.

An XVA is a tar stream (whole, or gzip- or zstd-compressed): ``ova.xml`` (the VM's records), then each
disk as ``Ref:N/00000000``, ``Ref:N/00000000.checksum`` (SHA-1) or ``.xxhash`` (XXH64) … in 1 MiB
chunks, all-zero chunks left out except each disk's first and last.

Reading: :class:`XvaParser` (sans-IO, push bytes, get :data:`Event` s: :class:`Header`, :class:`DiskGap`,
:class:`DiskData`, :class:`DiskEnd`, :class:`End`), and on top of it :func:`read_header`,
:func:`extract` (disks to sparse raw files) and :func:`aiter_events` (from an async byte stream).
The rule mapping chunks to offsets is XAPI's import rule, documented in ``_parser``.

Writing: :class:`XvaWriter` (records + :class:`DiskSource` s or raw files → stream, file, or async
blocks), :class:`RawDisk`, and :func:`build_xva` (one raw disk + a VM description → importable XVA).

Errors::

    PodiumError
    └── XvaError(member, problem)   the input is not a valid XVA; ``member`` names the tar member at fault

A writer given inconsistent records or disks raises ValueError before writing anything.
"""

from ._build import build_xva, vm_ova
from ._errors import XvaError
from ._events import CHUNK_SIZE, DiskData, DiskEnd, DiskGap, End, Event, Header
from ._parser import DEFAULT_MAX_DISK_SIZE, XvaParser
from ._reader import aiter_events, extract, read_header
from ._writer import DiskSource, RawDisk, XvaWriter

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_MAX_DISK_SIZE",
    "DiskData",
    "DiskEnd",
    "DiskGap",
    "DiskSource",
    "End",
    "Event",
    "Header",
    "RawDisk",
    "XvaError",
    "XvaParser",
    "XvaWriter",
    "aiter_events",
    "build_xva",
    "extract",
    "read_header",
    "vm_ova",
]
