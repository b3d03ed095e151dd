"""A reader of ISO 9660 images written from ECMA-119, Joliet and Rock Ridge (SUSP ``NM``), apart from pycdlib.

Tests check the cloud-init config drives Podium builds with pycdlib through this reader (and through
util-linux's ``blkid`` where it is installed), so that the library is not its own judge.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SECTOR = 2048
_JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")


@dataclass
class Iso:
    """What an image holds: its volume labels, its files by Joliet path (``openstack/latest/user_data``),
    and the same by Rock Ridge path (the names Linux shows)."""

    label: str  # the primary volume descriptor's
    joliet_label: str
    files: dict[str, bytes] = field(default_factory=dict)
    rock_ridge: dict[str, bytes] = field(default_factory=dict)


def read_iso(image: bytes) -> Iso:
    """Read the volume descriptors, then walk the Joliet directory tree."""
    label = joliet_label = ""
    root = primary_root = b""
    sector = 16
    while True:
        vd = image[sector * SECTOR : (sector + 1) * SECTOR]
        if len(vd) < SECTOR or vd[1:6] != b"CD001":
            raise ValueError(f"no volume descriptor in sector {sector}")
        kind = vd[0]
        if kind == 255:
            break
        if kind == 1:
            label = vd[40:72].decode("ascii").rstrip(" ")
            primary_root = vd[156:190]
        elif kind == 2 and vd[88:91] in _JOLIET_ESCAPES:
            joliet_label = vd[40:72].decode("utf-16-be").rstrip(" ")
            root = vd[156:190]
        sector += 1
    if not root or not primary_root:
        raise ValueError("no primary or no Joliet volume descriptor")
    iso = Iso(label, joliet_label)
    _walk(image, root, "", iso.files, _joliet_name)
    _walk(image, primary_root, "", iso.rock_ridge, _rock_ridge_name)
    return iso


def _joliet_name(entry: bytes, raw_name: bytes) -> str:
    return raw_name.decode("utf-16-be").split(";")[0]


def _rock_ridge_name(entry: bytes, raw_name: bytes) -> str:
    """The name in the record's NM entries (SUSP: signature, length, version, then the entry's data)."""
    pos = 33 + len(raw_name) + (1 - len(raw_name) % 2)  # the system use area, after the padded name
    name = b""
    while pos + 4 <= len(entry):
        signature, size = entry[pos : pos + 2], entry[pos + 2]
        if size < 4:
            break
        if signature == b"NM":
            name += entry[pos + 5 : pos + size]  # after the flags byte
        pos += size
    if not name:
        raise ValueError(f"no Rock Ridge name for {raw_name!r}")
    return name.decode()


def _walk(
    image: bytes, record: bytes, prefix: str, files: dict[str, bytes], naming: Callable[[bytes, bytes], str]
) -> None:
    extent, length = struct.unpack_from("<I", record, 2)[0], struct.unpack_from("<I", record, 10)[0]
    data = image[extent * SECTOR : extent * SECTOR + length]
    pos = 0
    while pos < len(data):
        size = data[pos]
        if size == 0:  # records never cross a sector: the rest of this one is padding
            pos = (pos // SECTOR + 1) * SECTOR
            continue
        entry = data[pos : pos + size]
        pos += size
        name_len = entry[32]
        raw_name = entry[33 : 33 + name_len]
        if raw_name in (b"\x00", b"\x01"):  # the directory itself, its parent
            continue
        name = naming(entry, raw_name)
        if entry[25] & 0x02:
            _walk(image, entry, f"{prefix}{name}/", files, naming)
        else:
            start, size_ = struct.unpack_from("<I", entry, 2)[0], struct.unpack_from("<I", entry, 10)[0]
            files[prefix + name] = image[start * SECTOR : start * SECTOR + size_]


def blkid(path: Path) -> dict[str, str] | None:
    """What util-linux's blkid probes in an image file (TYPE, LABEL …), or None when blkid is missing."""
    exe = shutil.which("blkid") or next(
        (p for p in ("/usr/sbin/blkid", "/sbin/blkid") if Path(p).exists()), None
    )
    if exe is None:
        return None
    out = subprocess.run([exe, "-p", "-o", "export", str(path)], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
