"""A strict reader of POSIX ustar archives, for bundles and their payloads.

Python's tarfile reads whatever it is given (pax and GNU extensions, links, devices, absolute names); a
bundle comes from the network, so this reads only what make bundle writes — ustar headers with checked
checksums, octal numbers, regular files and folders with relative names — and refuses the rest, naming the
member, before anything lands outside its destination.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from .signing import UpdateRefused

BLOCK = 512
CHUNK = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)


@dataclass(frozen=True)
class Header:
    """One member's header: its name, type flag, size and mode."""

    name: str
    type: bytes
    size: int
    mode: int

    @property
    def kind(self) -> str:
        return {
            b"1": "hard link",
            b"2": "symbolic link",
            b"3": "character device",
            b"4": "block device",
            b"5": "folder",
            b"6": "FIFO",
            b"7": "contiguous file",
            b"x": "tar extension header (pax)",
            b"g": "tar extension header (pax global)",
            b"L": "tar extension header (GNU long name)",
            b"K": "tar extension header (GNU long link)",
        }.get(self.type, f"member of type {self.type!r}")

    @property
    def is_file(self) -> bool:
        return self.type in (b"0", b"\0")


def _field(block: bytes, start: int, length: int) -> bytes:
    return block[start : start + length].split(b"\0", 1)[0]


def _number(block: bytes, start: int, length: int, what: str) -> int:
    raw = block[start : start + length]
    if raw[:1] and raw[0] & 0x80:
        raise UpdateRefused(f"{what} uses a base-256 number, which bundles never do (an absurd size?)")
    digits = raw.replace(b"\0", b" ").strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise UpdateRefused(f"{what} has a malformed number field") from None


def parse_header(block: bytes, what: str) -> Header | None:
    """A ustar header, or None for a zero block (the end of the archive)."""
    if block == _ZERO_BLOCK:
        return None
    if block[257:265] != b"ustar\x0000":
        raise UpdateRefused(f"{what} is not a POSIX ustar tar header")
    stored = _number(block, 148, 8, what)
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = unsigned - 2 * sum(b for b in block[:148] + block[156:] if b > 127)
    if stored not in (unsigned, signed):
        raise UpdateRefused(f"{what} is damaged (its header checksum is wrong)")
    try:
        name, prefix = _field(block, 0, 100).decode(), _field(block, 345, 155).decode()
    except UnicodeDecodeError:
        raise UpdateRefused(f"{what} has a name that is not UTF-8") from None
    return Header(
        name=f"{prefix}/{name}" if prefix else name,
        type=block[156:157],
        size=_number(block, 124, 12, what),
        mode=_number(block, 100, 8, what) & 0o7777,
    )


def padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


class Reader:
    """A tar's bytes from an open file, hashed (SHA-256) as they go by, never past its end."""

    def __init__(self, f: IO[bytes], size: int, name: str = "payload.tar") -> None:
        self.f, self.remaining, self.digest, self.name = f, size, hashlib.sha256(), name

    def read(self, n: int) -> bytes:
        data = self.f.read(min(n, self.remaining))
        self.remaining -= len(data)
        self.digest.update(data)
        return data

    def exactly(self, n: int, what: str) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.read(min(CHUNK, n - len(data)))
            if not chunk:
                raise UpdateRefused(f"{self.name} is truncated: it ends inside {what}")
            data += chunk
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def unpack(reader: Reader, dest: Path) -> None:
    """Unpack a ustar tar into ``dest`` (an absolute, resolved folder): only folders and regular files with
    relative names inside it, each once; modes kept but for setuid, setgid, sticky and group/other write."""
    seen: set[str] = set()
    number = 0
    while True:
        number += 1
        where = f"{reader.name}'s member {number}"
        header = parse_header(reader.exactly(BLOCK, f"the header of member {number}"), where)
        if header is None:
            return
        relative = safe_name(header.name, where)
        target = dest / relative
        if not os.path.realpath(target).startswith(str(dest) + os.sep):
            raise UpdateRefused(f"{where}: {header.name!r} would be written outside {dest}")
        if header.type == b"5":
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o755)
            if header.size:
                raise UpdateRefused(f"{where}, the folder {header.name!r}, claims to hold data")
            continue
        if not header.is_file:
            raise UpdateRefused(
                f"{where}, {header.name!r}, is a {header.kind}: a payload holds only files and folders"
            )
        if relative in seen:
            raise UpdateRefused(f"{where}: {header.name!r} appears twice in {reader.name}")
        seen.add(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = header.mode & 0o755 or 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            left = header.size
            while left:
                chunk = reader.read(min(CHUNK, left))
                if not chunk:
                    raise UpdateRefused(f"{reader.name} is truncated: it ends inside {header.name!r}")
                out.write(chunk)
                left -= len(chunk)
        os.chmod(target, mode)  # as asked, whatever the umask
        reader.exactly(padded(header.size) - header.size, f"the padding of {header.name!r}")


def safe_name(name: str, where: str) -> str:
    """A member's name as a relative path inside the destination, or a refusal."""
    if not name or name.startswith("/"):
        raise UpdateRefused(f"{where}: the absolute name {name!r} is refused; a payload holds relative names")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise UpdateRefused(f"{where}: the name {name!r} climbs out of the payload with '..'")
    if not parts or "\\" in name:
        raise UpdateRefused(f"{where}: the name {name!r} is not a usable file name")
    return "/".join(parts)
