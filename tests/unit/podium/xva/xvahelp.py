"""Helpers of the XVA tests: an independent tar writer (tarfile), records, assembly, xva-img."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from podium.xva import DiskData, DiskEnd, DiskGap, End, Header, XvaParser

MiB = 1024 * 1024
REAL_XVA = (
    Path(__file__).resolve().parents[3] / "data" / "xva" / "vmexport.xva"
)  # see tests/data/xva/README.md
XVA_IMG = shutil.which("xva-img")
needs_xva_img = pytest.mark.skipif(
    XVA_IMG is None, reason="xva-img is not installed (Debian package xva-img; `make test` installs it)"
)
needs_real_xva = pytest.mark.skipif(
    not REAL_XVA.exists(), reason=f"the real XenServer export is not at {REAL_XVA}"
)


def ova_for(sizes: dict[str, int]) -> dict[str, Any]:
    """Minimal records of a VM with one disk VBD per entry of ``sizes`` (VDI id → virtual size)."""
    objects: list[dict[str, Any]] = [{"class": "VM", "id": "Ref:vm", "snapshot": {"name_label": "t"}}]
    objects.append({"class": "SR", "id": "Ref:sr", "snapshot": {"content_type": "user"}})
    for i, (vdi, size) in enumerate(sizes.items()):
        objects.append({"class": "VBD", "id": f"Ref:vbd{i}", "snapshot": {"type": "Disk", "VDI": vdi}})
        objects.append({"class": "VDI", "id": vdi, "snapshot": {"SR": "Ref:sr", "virtual_size": str(size)}})
    return {"version": {"export_vsn": "2"}, "objects": objects}


def member(name: str, data: bytes, fmt: int = tarfile.USTAR_FORMAT, **info: Any) -> bytes:
    """One tar member as Python's tarfile writes it (header, data, padding)."""
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    for key, value in info.items():
        setattr(ti, key, value)
    return ti.tobuf(format=fmt) + data + bytes(-len(data) % 512)


END = bytes(1024)


def sha1_text(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


def chunk(vdi: str, number: int | str, data: bytes) -> bytes:
    """A chunk and its SHA-1 ``.checksum`` member."""
    name = f"{vdi}/{number:08d}" if isinstance(number, int) else f"{vdi}/{number}"
    return member(name, data) + member(name + ".checksum", sha1_text(data))


def ova_member(ova: dict[str, Any]) -> bytes:
    from podium.xva._ovaxml import dump_ova

    return member("ova.xml", dump_ova(ova))


def parse(stream: bytes, block: int = 65536, **options: Any) -> tuple[Header, dict[str, bytes], list[Any]]:
    """Feed ``stream`` in ``block``-byte pieces; the header, each disk assembled, and the events."""
    parser = XvaParser(**options)
    events: list[Any] = []
    for i in range(0, len(stream), block):
        events += parser.feed(stream[i : i + block])
    events += parser.close()
    return events[0], assemble(events), events


def assemble(events: list[Any]) -> dict[str, bytes]:
    """Disks from events, checking their order: gaps and data contiguous, DiskEnd at the size, End last."""
    disks: dict[str, bytearray] = {}
    assert isinstance(events[0], Header) and isinstance(events[-1], End)
    for ev in events[1:-1]:
        disk = disks.setdefault(ev.vdi, bytearray())
        if isinstance(ev, DiskGap):
            assert ev.offset == len(disk) and ev.length > 0
            disk += bytes(ev.length)
        elif isinstance(ev, DiskData):
            assert ev.offset == len(disk) and len(ev.data) > 0
            disk += ev.data
        else:
            assert isinstance(ev, DiskEnd) and ev.size == len(disk)
    assert list(disks) == list(events[0].disks)
    return {k: bytes(v) for k, v in disks.items()}


def sparse_file(path: Path, size: int, writes: list[tuple[int, bytes]]) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in writes:
            f.seek(offset)
            f.write(data)
    return path


def _decompress_flag(xva: Path) -> list[str]:
    head = xva.read_bytes()[:4]
    return ["-z"] if head[:2] == b"\x1f\x8b" else ["--zstd"] if head == b"\x28\xb5\x2f\xfd" else []


def untar(xva: Path, dest: Path) -> Path:
    """Unpack an XVA with the system's tar (and gzip/zstd), readable whatever the members' modes."""
    dest.mkdir()
    subprocess.run(["tar", *_decompress_flag(xva), "-xf", str(xva), "-C", str(dest)], check=True)
    subprocess.run(["chmod", "-R", "u+rwX", str(dest)], check=True)
    return dest


def tar_names(xva: Path) -> list[str]:
    """The member names, as the system's tar lists them."""
    out = subprocess.run(["tar", *_decompress_flag(xva), "-tf", str(xva)], check=True, capture_output=True)
    return out.stdout.decode().split()


def xva_img_disk(xva: Path, vdi: str, work: Path) -> bytes:
    """The disk ``vdi`` of ``xva`` as xva-img assembles it (it reads an unpacked tar, SHA-1 only)."""
    assert XVA_IMG is not None
    folder = untar(xva, work / "unpacked")
    out = work / "xva-img.raw"
    subprocess.run([XVA_IMG, "disk-export", str(folder / vdi), str(out)], check=True, capture_output=True)
    return out.read_bytes()


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
