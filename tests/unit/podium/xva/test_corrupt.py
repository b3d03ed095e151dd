"""Broken XVAs: every kind of damage gives an XvaError naming the member, and extract leaves nothing."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from podium.xva import XvaError, XvaParser, XvaWriter, extract

from .xvahelp import END, chunk, files_under, member, ova_for, ova_member, parse, sha1_text

CS = 4096
SIZE = 3 * CS + 100  # chunks 0, 1, (2 left out: zeros), 3 (the short last one)


class _Memory:
    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def read_at(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


DISK = os.urandom(2 * CS) + bytes(CS) + os.urandom(100)
STREAM = b"".join(XvaWriter(ova_for({"Ref:1": SIZE}), {"Ref:1": _Memory(DISK)}, "sha1", None, CS))


def _offsets(stream: bytes) -> dict[str, tuple[int, int]]:
    """Where each member's data lies in ``stream`` (start, size), read by Python's tarfile."""
    import io

    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        return {ti.name: (ti.offset_data, ti.size) for ti in tar.getmembers()}


def _fails(stream: bytes, member: str | None, words: str, **options) -> XvaError:
    with pytest.raises(XvaError) as caught:
        parse(stream, 1000, **options)
    assert caught.value.member == member, str(caught.value)
    assert words in caught.value.problem, str(caught.value)
    return caught.value


def _extract_leaves_nothing(tmp_path: Path, stream: bytes, **options) -> None:
    before = files_under(tmp_path)
    xva = tmp_path / "in.xva"
    xva.write_bytes(stream)
    with pytest.raises(XvaError):
        extract(xva, tmp_path / "dest", **options)
    xva.unlink()
    assert files_under(tmp_path) == before  # the folder it made is gone too


def test_xva_base_stream_is_valid():
    assert parse(STREAM, 1000, max_chunk_size=CS)[1] == {"Ref:1": DISK}


@pytest.mark.parametrize("number", [0, 1, 3])
def test_xva_flipped_byte_names_its_chunk(tmp_path, number):
    name = f"Ref:1/{number:08d}"
    start, size = _offsets(STREAM)[name]
    bad = bytearray(STREAM)
    bad[start + size // 2] ^= 0x40
    err = _fails(bytes(bad), name, "bad checksum", max_chunk_size=CS)
    assert "the data hashes to" in str(err)
    _extract_leaves_nothing(tmp_path, bytes(bad), max_chunk_size=CS)
    # Without verification the damage goes through: the flag is what catches it.
    assert parse(bytes(bad), 1000, max_chunk_size=CS, verify=False)[1]["Ref:1"] != DISK


def test_xva_truncated_anywhere_fails(tmp_path):
    offsets = _offsets(STREAM)
    cuts = set(range(0, len(STREAM), 97)) | {len(STREAM) - 1, len(STREAM) - 512, len(STREAM) - 1024}
    cuts |= {start for start, _ in offsets.values()} | {start + size for start, size in offsets.values()}
    for cut in sorted(cuts):
        with pytest.raises(XvaError, match=r"truncated|empty|incomplete|missing"):
            parse(STREAM[:cut], 1000, max_chunk_size=CS)
    start, _ = offsets["Ref:1/00000001"]
    _fails(STREAM[: start + 10], "Ref:1/00000001", f"10 of {CS} bytes", max_chunk_size=CS)
    for cut in sorted(cuts)[::9]:
        _extract_leaves_nothing(tmp_path, STREAM[:cut], max_chunk_size=CS)


def _xva(*members: bytes, sizes: dict[str, int] | None = None) -> bytes:
    return ova_member(ova_for(sizes or {"Ref:1": 2 * CS})) + b"".join(members)


A, B = os.urandom(CS), os.urandom(CS)


@pytest.mark.parametrize(
    ("stream", "name", "words"),
    [
        (
            _xva(member("Ref:1/00000000.checksum", sha1_text(A)), member("Ref:1/00000000", A)),
            "Ref:1/00000000.checksum",
            "must follow its chunk",
        ),
        (
            _xva(chunk("Ref:1", 1, A), chunk("Ref:1", 0, B), sizes={"Ref:1": 4 * CS}),
            "Ref:1/00000000",
            "must increase",
        ),
        (_xva(chunk("Ref:1", 0, A), chunk("Ref:1", 0, B)), "Ref:1/00000000", "must increase"),
        (
            _xva(member("Ref:1/00000000", A), member("Ref:1/00000001", B)),
            "Ref:1/00000001",
            "expected the checksum member of Ref:1/00000000",
        ),
        (
            _xva(member("Ref:1/00000000", A), member("Ref:1/00000001.checksum", sha1_text(A))),
            "Ref:1/00000001.checksum",
            "must follow its chunk",
        ),
        (_xva(chunk("Ref:1", 0, A), chunk("Ref:1", 5, B)), "Ref:1/00000005", "beyond the end of disk Ref:1"),
        (_xva(chunk("Ref:1", 0, A), chunk("Ref:1", "0001x", B)), "Ref:1/0001x", "decimal number"),
        (_xva(chunk("Ref:1", 0, A), END), "Ref:1/00000000.checksum", "disk Ref:1 is incomplete"),
        (
            _xva(chunk("Ref:1", 0, A), chunk("Ref:1", 1, B), chunk("Ref:1", 2, B)),
            "Ref:1/00000002",
            "unexpected member after the last disk",
        ),
        (
            _xva(chunk("Ref:9", 0, A), chunk("Ref:10", 0, A), sizes={"Ref:9": CS, "Ref:10": CS}),
            "Ref:9/00000000",
            "expected a chunk of disk Ref:10",
        ),
        (
            _xva(chunk("Ref:1", 0, A), member("Ref:1/00000000.checksum", b"0" * 40)),
            "Ref:1/00000000.checksum",
            "must follow its chunk",
        ),
        (member("Ref:1/00000000", A) + END, "Ref:1/00000000", "first member of an XVA must be ova.xml"),
    ],
)
def test_xva_members_out_of_order_are_named(tmp_path, stream, name, words):
    _fails(stream, name, words)
    _extract_leaves_nothing(tmp_path, stream)


def test_xva_absurd_sizes_are_refused(tmp_path):
    huge = tarfile.TarInfo("Ref:1/00000000")
    huge.size = 10**12  # 1 TB: written in base-256 by tarfile's GNU format
    stream = _xva(huge.tobuf(format=tarfile.GNU_FORMAT) + A)
    _fails(stream, "Ref:1/00000000", "absurd size 1000000000000")
    _extract_leaves_nothing(tmp_path, stream)
    _fails(_xva(sizes={"Ref:1": 2**60}), "ova.xml", "absurd virtual_size")
    _fails(_xva(chunk("Ref:1", 0, A), sizes={"Ref:1": 2 * CS}), "ova.xml", "absurd", max_disk_size=CS)
    _fails(_xva(), "ova.xml", "absurd size", max_ova_size=100)
    sums = member("Ref:1/00000000", A) + member("Ref:1/00000000.checksum", b"0" * 4096)
    _fails(_xva(sums), "Ref:1/00000000.checksum", "absurd size 4096")
    _fails(
        _xva(chunk("Ref:1", 0, A + B), sizes={"Ref:1": 4 * CS}), "Ref:1/00000000", "absurd", max_chunk_size=CS
    )


@pytest.mark.parametrize("name", ["../evil", "/etc/x", "Ref:1/../../x", "a/../../b"])
def test_xva_unsafe_names_are_refused(tmp_path, name):
    for stream in (member(name, b"x") + END, _xva(member(name, A))):
        _fails(stream, name, "unsafe member name")
        _extract_leaves_nothing(tmp_path, stream)


def test_xva_not_a_tar_is_refused(tmp_path):
    garbage = b"\x00\x01" + os.urandom(8190)
    for stream, words in (
        (garbage, "not a tar header"),
        (b"hello, world\n" * 100, "not a tar header"),
        (b"", "empty"),
        (bytes(1024), "before ova.xml"),
        (b"\xfd7zXZ\0" + garbage, "xz"),
    ):
        _fails(stream, None, words)
        _extract_leaves_nothing(tmp_path, stream)


@pytest.mark.parametrize(
    ("xml", "words"),
    [
        (b"not xml at all", "is not XML"),
        (b"<value><struct></struct></value>", "lacks the struct"),
        (b"<methodCall><methodName>x</methodName></methodCall>", "expected <value>"),
        (
            b"<value><struct><member><name>version</name><value><struct/></value></member>"
            b"<member><name>objects</name><value>oops</value></member></struct></value>",
            "lacks the 'objects'",
        ),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><value>&a;</value>', "DTD"),
        (b"<value><i4>x</i4></value>", "bad <i4>"),
        (b"<value><array><data>" * 100 + b"</data></array></value>" * 100, "nest deeper"),
        (b"<value><value/></value>", "unknown XML-RPC type <value>"),
    ],
)
def test_xva_garbage_ova_xml_is_named(tmp_path, xml, words):
    stream = member("ova.xml", xml) + END
    _fails(stream, "ova.xml", words)
    _extract_leaves_nothing(tmp_path, stream)


def test_xva_ova_xml_must_reference_what_it_exports():
    ova = ova_for({"Ref:1": CS})
    ova["objects"] = [o for o in ova["objects"] if o["class"] != "SR"]
    _fails(ova_member(ova) + END, "ova.xml", "refers to SR Ref:sr, which is not in the export")
    ova = ova_for({"Ref:1": CS})
    ova["objects"] = [o for o in ova["objects"] if o["class"] != "VDI"]
    _fails(ova_member(ova) + END, "ova.xml", "refers to VDI Ref:1")


def test_xva_only_regular_files_are_members(tmp_path):
    folder = member("Ref:1/", b"", type=tarfile.DIRTYPE)
    link = member("Ref:1/00000000", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd")
    _fails(_xva(folder), "Ref:1/", "is a directory")
    _fails(_xva(link), "Ref:1/00000000", "is a symbolic link")
    _extract_leaves_nothing(tmp_path, _xva(link))


def test_xva_end_of_archive_must_be_whole_and_last(tmp_path):
    _fails(STREAM + b"\x01", None, "data after the end-of-archive marker", max_chunk_size=CS)
    assert parse(STREAM + bytes(10240), 1000, max_chunk_size=CS)[1] == {"Ref:1": DISK}  # tar's record padding
    _fails(STREAM[:-512], None, "inside the end-of-archive marker", max_chunk_size=CS)
    _extract_leaves_nothing(tmp_path, STREAM + b"\x01" + bytes(100), max_chunk_size=CS)


def test_xva_damaged_compression_is_refused(tmp_path):
    for packed, kind in (
        (gzip.compress(STREAM), "gzip"),
        (zstandard.ZstdCompressor().compress(STREAM), "zstd"),
    ):
        assert parse(packed, 333, max_chunk_size=CS)[1] == {"Ref:1": DISK}
        _fails(packed[: len(packed) - 9], None, f"the {kind} stream is truncated", max_chunk_size=CS)
        bad = bytearray(packed)
        bad[len(bad) // 2] ^= 0xFF
        with pytest.raises(XvaError):
            parse(bytes(bad), 333, max_chunk_size=CS)
        _extract_leaves_nothing(tmp_path, packed[: len(packed) // 2], max_chunk_size=CS)
    # Concatenated gzip members and zstd frames (pigz, pzstd) are one stream.
    half = len(STREAM) // 2
    two = gzip.compress(STREAM[:half]) + gzip.compress(STREAM[half:])
    assert parse(two, 777, max_chunk_size=CS)[1] == {"Ref:1": DISK}
    z = zstandard.ZstdCompressor()
    assert parse(z.compress(STREAM[:half]) + z.compress(STREAM[half:]), 777, max_chunk_size=CS)[1]


def test_xva_parser_stays_failed():
    parser = XvaParser()
    with pytest.raises(XvaError) as first:
        parser.feed(b"\x00\x01" * 512)
    with pytest.raises(XvaError) as again:
        parser.feed(b"more")
    assert again.value is first.value


def test_xva_extract_never_overwrites_and_cleans_up(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "Ref_1.raw").write_bytes(b"keep me")
    (tmp_path / "in.xva").write_bytes(STREAM)
    with pytest.raises(FileExistsError):
        extract(tmp_path / "in.xva", dest, max_chunk_size=CS)
    assert (dest / "Ref_1.raw").read_bytes() == b"keep me" and files_under(dest) == ["Ref_1.raw"]
    (dest / "Ref_1.raw").unlink()
    (tmp_path / "in.xva").write_bytes(STREAM[:-2000])
    with pytest.raises(XvaError):
        extract(tmp_path / "in.xva", dest, max_chunk_size=CS)
    assert dest.is_dir() and files_under(dest) == []  # it existed before: kept, empty


def test_xva_damaged_tar_header_is_refused(tmp_path):
    start, _ = _offsets(STREAM)["Ref:1/00000001"]
    bad = bytearray(STREAM)
    bad[start - 512 + 5] ^= 0x01  # a letter of the name, in the header before the chunk's data
    err = _fails(bytes(bad), None, "bad header checksum", max_chunk_size=CS)
    assert "after member Ref:1/00000000.checksum" in str(err)
    _extract_leaves_nothing(tmp_path, bytes(bad), max_chunk_size=CS)


def test_xva_old_export_versions_follow_xapi():
    # export_vsn < 2: XAPI reads one more member after the disks (a checksum table); with 0 it does
    # not check the inline checksums at all (has_inline_checksums = export_vsn > 0).
    def old(vsn: str, *tail: bytes) -> bytes:
        ova = ova_for({"Ref:1": CS})
        ova["version"]["export_vsn"] = vsn
        wrong = member("Ref:1/00000000", A) + member("Ref:1/00000000.checksum", b"0" * 40)
        return ova_member(ova) + (chunk("Ref:1", 0, A) if vsn != "0" else wrong) + b"".join(tail) + END

    table = member("checksum.xml", b"<value/>")
    assert parse(old("1", table))[1] == {"Ref:1": A}
    assert parse(old("0", table))[1] == {"Ref:1": A}
    _fails(old("1", table, table), "checksum.xml", "unexpected member after the last disk")
    _fails(old("2", table), "checksum.xml", "unexpected member after the last disk")
