"""Pack the provisioned disk into the appliance's XVA, with podium.xva, and write its ``.sha256`` beside it.

    python image/pack_xva.py DISK OUT --version V [--compression gzip|zstd|none] [--size 20G]

DISK is a raw image, or a qcow2 one (Packer's output), converted first to a sparse raw file beside OUT.

The VM it describes is the appliance as a pool receives it: 2 vCPUs, 2 GiB, one disk (``--size``, sparse:
only the used blocks travel), one VIF, HVM with BIOS boot from the disk. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Never

from tqdm import tqdm

from podium.xva import RawDisk, XvaWriter, vm_ova

GiB = 1024**3


def parse_size(text: str) -> int:
    """``20G``, ``512M`` or bytes."""
    units = {"G": GiB, "M": 1024**2, "K": 1024}
    suffix = text[-1:].upper()
    return int(text[:-1]) * units[suffix] if suffix in units else int(text)


class ProgressDisk(RawDisk):
    """A RawDisk that moves a progress bar by the bytes read."""

    def __init__(self, path: Path, size: int, bar: tqdm[Never]) -> None:  # a bar without an iterable
        super().__init__(path, size)
        self.bar = bar

    def read_at(self, offset: int, length: int) -> bytes:
        data = super().read_at(offset, length)
        self.bar.update(len(data))
        return data


def pack(disk: Path, out: Path, version: str, compression: str | None, size: int) -> Path:
    """Write the XVA ``out`` from ``disk``; returns its path."""
    used = sum(stop - start for start, stop in RawDisk(disk, size).data_extents())
    with tqdm(total=used, unit="B", unit_scale=True, desc="packing the XVA", file=sys.stderr) as bar:
        source = ProgressDisk(disk, size, bar)
        try:
            other = {"podium-appliance": version, "install-methods": "", "mac_seed": ""}
            ova = vm_ova(
                f"Podium appliance {version}",
                size=size,
                name_description="Podium: management appliance for XCP-ng / XenServer pools. "
                "Boot it and open its address in a browser to set it up.",
                vcpus=2,
                memory=2 * GiB,
                boot="cd",
                other_config={k: v for k, v in other.items() if v},
                vif_networks=1,
            )
            vdi = next(o["id"] for o in ova["objects"] if o["class"] == "VDI")
            partial = out.with_name(f".{out.name}.partial")
            XvaWriter(ova, {vdi: source}, compression=compression).write(partial)
            os.replace(partial, out)
        finally:
            source.close()
    return out


def raw_disk(disk: Path, tmp: Path) -> Path:
    """``disk`` itself when raw; a qcow2 converted to a sparse raw file in ``tmp``."""
    with disk.open("rb") as f:
        if f.read(4) != b"QFI\xfb":
            return disk
    raw = tmp / "disk.raw"
    print(f"pack_xva: converting {disk.name} to a sparse raw disk (qemu-img)", file=sys.stderr, flush=True)
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)], check=True)
    return raw


def write_sha256(path: Path) -> Path:
    """``path.sha256`` in sha256sum's format."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    sums = path.with_name(path.name + ".sha256")
    sums.write_text(f"{digest.hexdigest()}  {path.name}\n")
    return sums


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("disk", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--version", required=True)
    parser.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    parser.add_argument("--size", type=parse_size, default=20 * GiB)
    args = parser.parse_args()
    started = time.monotonic()
    compression = None if args.compression == "none" else args.compression
    with tempfile.TemporaryDirectory(prefix=".pack-", dir=args.out.parent) as tmp:
        disk = raw_disk(args.disk, Path(tmp))
        out = pack(disk, args.out, args.version, compression, args.size)
    sums = write_sha256(out)
    print(
        f"pack_xva: {out} ({out.stat().st_size / 1024**2:.0f} MiB, {args.compression}) and {sums.name} "
        f"in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
