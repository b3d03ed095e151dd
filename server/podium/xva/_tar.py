"""The tar layer of XVA: 512-byte headers, padding, PAX and GNU long-name records.

XAPI writes plain headers through ocaml-tar (the 5.6 export in tests/data has pre-POSIX v7 headers, mode
0, mtime 0); names are ``ova.xml`` and ``Ref:N/00000000[.checksum|.xxhash]``, never near 100 bytes, so
XAPI emits neither PAX nor GNU long names. Other tools re-packing an XVA may (GNU tar, Python's tarfile),
so the reader understands them; the writer never needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import XvaError

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
REGULAR = (b"0", b"\0", b"7")  # 7: contiguous file, a regular file to every reader
META = (b"x", b"g", b"L", b"K")  # PAX local, PAX global, GNU long name, GNU long link name
KINDS = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"5": "a directory",
    b"6": "a FIFO",
}


@dataclass(frozen=True, slots=True)
class TarHeader:
    """One header: the member's name, size and type flag."""

    name: str
    size: int
    kind: bytes


def _number(field: bytes | memoryview) -> int:
    raw = bytes(field)
    if raw and raw[0] & 0x80:  # GNU base-256: sizes over 8 GiB, or a forged 1 TB chunk
        value = int.from_bytes(raw[1:], "big") | ((raw[0] & 0x3F) << (8 * (len(raw) - 1)))
        return -value if raw[0] & 0x40 else value
    text = raw.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text else 0


def parse_header(block: bytes | memoryview, where: str) -> TarHeader | None:
    """The header in ``block``, None for a zero block (end of archive); XvaError if it is not one.

    ``where`` says where the block sits, for the message ("at byte N, after member X").
    """
    raw = bytes(block)
    if raw == ZERO_BLOCK:
        return None
    try:
        stored = _number(raw[148:156])
        size = _number(raw[124:136])
    except ValueError:
        raise XvaError(None, f"not a tar header {where}: its numbers are not octal") from None
    unsigned = sum(raw[:148]) + 256 + sum(raw[156:])  # the checksum field counts as 8 spaces
    if stored != unsigned:
        # Some old tars summed signed chars: bytes over 127 count 256 less.
        high = sum(1 for b in raw[:148] + raw[156:] if b > 127)
        if stored != unsigned - 256 * high:
            raise XvaError(None, f"not a tar header {where}: bad header checksum")
    name = raw[:100].split(b"\0", 1)[0]
    if raw[257:263] == b"ustar\0":  # POSIX ustar: a prefix field completes long names
        prefix = raw[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    if size < 0:
        raise XvaError(decode_name(name), f"negative size {size} in its tar header")
    return TarHeader(decode_name(name), size, raw[156:157])


def decode_name(raw: bytes) -> str:
    """A member name as text; undecodable bytes kept visible for messages."""
    return raw.decode("utf-8", "backslashreplace")


def pax_records(data: bytes, member: str) -> dict[str, str]:
    """The ``length key=value\\n`` records of a PAX extended header."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # some writers pad the record block with NULs
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise XvaError(member, "bad PAX extended header record") from None
        record = data[space + 1 : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise XvaError(member, "bad PAX extended header record")
        key, _, value = record[:-1].partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "backslashreplace")
        pos += length
    return out


def check_safe(name: str) -> None:
    """Refuse names that could escape an extraction folder: absolute, ``..``, backslashes, NULs."""
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "\\" in name or "\0" in name or not name:
        raise XvaError(name, "unsafe member name (absolute, or with '..'): no XVA has one")


def padding(size: int) -> int:
    """Bytes of zeros after a member of ``size`` bytes, to the next 512-byte boundary."""
    return -size % BLOCK


def make_header(name: str, size: int) -> bytes:
    """A POSIX ustar header for a regular file (mode 0644, owner 0, mtime 0: reproducible output)."""
    raw_name = name.encode()
    if len(raw_name) > 100:
        raise ValueError(f"member name {name!r} is longer than a tar header holds (100 bytes)")
    if not 0 <= size < 8**11:
        raise ValueError(f"member size {size} does not fit a ustar header")
    head = bytearray(BLOCK)
    head[0 : len(raw_name)] = raw_name
    head[100:108] = b"0000644\0"
    head[108:116] = b"0000000\0"
    head[116:124] = b"0000000\0"
    head[124:136] = b"%011o\0" % size
    head[136:148] = b"00000000000\0"
    head[148:156] = b" " * 8
    head[156:157] = b"0"
    head[257:265] = b"ustar\x0000"
    head[148:156] = b"%06o\0 " % sum(head)
    return bytes(head)
