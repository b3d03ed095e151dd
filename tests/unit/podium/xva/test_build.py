"""XvaWriter and build_xva: sparse sources, atomic writes, asyncio, and importable VM records."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from podium.xva import (
    DiskData,
    Header,
    RawDisk,
    XvaWriter,
    aiter_events,
    build_xva,
    extract,
    read_header,
    vm_ova,
)
from podium.xva._ovaxml import dump_ova, parse_ova

from .xvahelp import (
    REAL_XVA,
    MiB,
    needs_real_xva,
    needs_xva_img,
    ova_for,
    parse,
    sparse_file,
    tar_names,
    xva_img_disk,
)

XENAPI_JSON = Path(__file__).resolve().parents[4] / "server" / "xapisim" / "data" / "xenapi.json"


def _disk(tmp_path: Path, size: int = 10 * MiB + 512) -> Path:
    writes = [(0, os.urandom(512)), (4 * MiB, os.urandom(2 * MiB)), (size - 512, os.urandom(512))]
    return sparse_file(tmp_path / "disk.raw", size, writes)


def _objects(header: Header) -> dict[str, dict]:
    return {o["id"]: o for o in header.objects}


def test_build_xva_makes_a_vm_whose_records_link_up(tmp_path):
    disk = _disk(tmp_path)
    xva = build_xva(
        disk,
        tmp_path / "vm.xva",
        name_label="appliance <1>",
        name_description="d & e",
        vcpus=4,
        memory=3 * 1024**3,
        other_config={"podium": "1"},
        vif_networks=2,
    )
    header = read_header(xva)
    objs = _objects(header)
    by_class: dict[str, list[str]] = {}
    for ref, obj in objs.items():
        by_class.setdefault(obj["class"], []).append(ref)
    assert {k: len(v) for k, v in by_class.items()} == {
        "VM": 1,
        "VBD": 1,
        "VIF": 2,
        "network": 2,
        "VDI": 1,
        "SR": 1,
    }
    vm_id, vbd_id, vdi_id, sr_id = (
        by_class["VM"][0],
        by_class["VBD"][0],
        by_class["VDI"][0],
        by_class["SR"][0],
    )
    vm, vbd, vdi, sr = (objs[i]["snapshot"] for i in (vm_id, vbd_id, vdi_id, sr_id))
    assert vm["name_label"] == "appliance <1>" and vm["name_description"] == "d & e"
    assert (vm["VCPUs_max"], vm["VCPUs_at_startup"]) == ("4", "4")
    assert {vm[k] for k in vm if k.startswith("memory_") and k != "memory_overhead"} == {str(3 * 1024**3)}
    assert vm["HVM_boot_policy"] == "BIOS order" and vm["HVM_boot_params"]["order"] == "cd"
    assert vm["platform"]["device-model"] == "qemu-upstream-compat" and vm["platform"]["viridian"] == "false"
    assert vm["other_config"] == {"podium": "1"} and vm["is_a_template"] is False
    assert vm["VBDs"] == [vbd_id] and vbd["VM"] == vm_id and vbd["VDI"] == vdi_id and vdi["VBDs"] == [vbd_id]
    assert (vbd["userdevice"], vbd["bootable"], vbd["type"], vbd["mode"]) == ("0", True, "Disk", "RW")
    assert vdi["SR"] == sr_id and sr["VDIs"] == [vdi_id] and sr["content_type"] != "iso"
    assert vdi["virtual_size"] == str(disk.stat().st_size) and vdi["type"] == "user" and not vdi["sharable"]
    for i, vif_id in enumerate(vm["VIFs"]):
        vif = objs[vif_id]["snapshot"]
        net = objs[vif["network"]]["snapshot"]
        assert (vif["device"], vif["MTU"], vif["MAC"], vif["VM"]) == (str(i), "1500", "", vm_id)
        assert net["VIFs"] == [vif_id] and net["bridge"] == f"xenbr{i}"
    refs = json.dumps(header.objects, default=str)  # every Ref:N named anywhere is in the export
    assert all(f'"{ref}"' in refs for ref in objs)
    assert header.disks == {vdi_id: disk.stat().st_size}
    assert extract(xva, tmp_path / "out")[vdi_id].read_bytes() == disk.read_bytes()


@pytest.mark.skipif(not XENAPI_JSON.exists(), reason=f"the XenAPI data model is not at {XENAPI_JSON}")
def test_build_xva_records_have_every_field_of_the_data_model(tmp_path):
    model = {c["name"]: {f["name"] for f in c["fields"]} for c in json.loads(XENAPI_JSON.read_text())}
    ova = vm_ova("x", size=MiB)
    for obj in ova["objects"]:
        assert set(obj["snapshot"]) == model[obj["class"]], obj["class"]


@needs_xva_img
@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_build_xva_output_unpacks_with_xva_img(tmp_path, compression):
    disk = _disk(tmp_path, 9 * MiB)
    xva = build_xva(disk, tmp_path / "vm.xva", name_label="x", checksum="sha1", compression=compression)
    vdi = next(iter(read_header(xva).disks))
    assert xva_img_disk(xva, vdi, tmp_path) == disk.read_bytes()


def test_build_xva_virtual_size_pads_with_zeros(tmp_path):
    disk = _disk(tmp_path, 7 * MiB + 512)
    xva = build_xva(disk, tmp_path / "vm.xva", name_label="x", virtual_size=64 * MiB, compression="zstd")
    header, disks, _ = parse(xva.read_bytes())
    assert list(header.disks.values()) == [64 * MiB]
    assert next(iter(disks.values())) == disk.read_bytes() + bytes(57 * MiB - 512)
    with pytest.raises(ValueError, match="smaller than the file"):
        build_xva(disk, tmp_path / "small.xva", name_label="x", virtual_size=MiB)
    with pytest.raises(ValueError, match="boot order"):
        build_xva(disk, tmp_path / "b.xva", name_label="x", boot="zz")
    assert not (tmp_path / "small.xva").exists() and not (tmp_path / "b.xva").exists()


@needs_real_xva
def test_ova_xml_round_trips_the_real_export():
    import tarfile

    with tarfile.open(REAL_XVA) as tar:
        xml = tar.extractfile("ova.xml").read()
    first = parse_ova(xml, 2**40)
    again = parse_ova(dump_ova({"version": first.version, "objects": first.objects}), 2**40)
    assert again == first
    vm = next(o["snapshot"] for o in again.objects if o["class"] == "VM")
    assert vm["snapshot_time"].value == "19700101T00:00:00Z" and vm["HVM_shadow_multiplier"] == 1.0


def test_writer_skips_holes_without_reading_them(tmp_path):
    size = 4 * 1024**3  # 4 GiB, data in chunk 2048 only: the holes are never read
    disk = sparse_file(tmp_path / "big.raw", size, [(2048 * MiB + 5, b"data")])
    reads: list[int] = []

    class Counting(RawDisk):
        def read_at(self, offset: int, length: int) -> bytes:
            reads.append(offset // MiB)
            return super().read_at(offset, length)

    began = time.perf_counter()
    with Counting(disk) as source:
        xva = XvaWriter(ova_for({"Ref:1": size}), {"Ref:1": source}).write(tmp_path / "big.xva")
    assert time.perf_counter() - began < 10
    assert reads == [0, 2048, 4095]
    assert [n for n in tar_names(xva) if not n.endswith(".xxhash")] == [
        "ova.xml",
        "Ref:1/00000000",
        "Ref:1/00002048",
        "Ref:1/00004095",
    ]
    out = extract(xva, tmp_path / "out")["Ref:1"]
    assert out.stat().st_size == size and out.stat().st_blocks * 512 < 16 * MiB  # written sparse


def test_writer_refuses_disks_that_do_not_match_the_records(tmp_path):
    disk = _disk(tmp_path, 2 * MiB)
    ova = ova_for({"Ref:1": 2 * MiB})
    with pytest.raises(ValueError, match="not those the VM's VBDs need"):
        XvaWriter(ova, {"Ref:2": disk})
    with pytest.raises(ValueError, match="virtual_size is 1048576"):
        XvaWriter(ova_for({"Ref:1": MiB}), {"Ref:1": disk})
    for bad in ({"checksum": "md5"}, {"compression": "xz"}, {"chunk_size": 0}, {"chunk_size": 2 * MiB}):
        with pytest.raises(ValueError):
            XvaWriter(ova, {"Ref:1": disk}, **bad)


def test_writer_leaves_no_partial_file(tmp_path):
    class Failing:
        size = 8 * MiB

        def read_at(self, offset: int, length: int) -> bytes:
            if offset >= 4 * MiB:
                raise OSError("disk gone")
            return os.urandom(length)

    with pytest.raises(OSError, match="disk gone"):
        XvaWriter(ova_for({"Ref:1": 8 * MiB}), {"Ref:1": Failing()}).write(tmp_path / "vm.xva")
    assert os.listdir(tmp_path) == []


async def test_writer_aiter_gives_the_same_stream_without_blocking_the_loop(tmp_path):
    disk = sparse_file(tmp_path / "d.raw", 48 * MiB, [(0, os.urandom(48 * MiB))])
    writer = XvaWriter(ova_for({"Ref:1": 48 * MiB}), {"Ref:1": disk}, "sha1", "gzip")
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    streamed = b"".join([bytes(b) async for b in writer.aiter()])
    stop.set()
    await tick
    assert streamed == b"".join(bytes(b) for b in writer)
    assert len(gaps) > 20 and max(gaps) < 0.5, f"the loop stalled {max(gaps):.3f} s"


async def test_aiter_events_parses_an_async_stream(tmp_path):
    disk = _disk(tmp_path, 6 * MiB)
    data = b"".join(XvaWriter(ova_for({"Ref:1": 6 * MiB}), {"Ref:1": disk}, compression="zstd"))

    async def blocks():
        for i in range(0, len(data), 10_000):
            yield data[i : i + 10_000]
            await asyncio.sleep(0)

    events = [e async for e in aiter_events(blocks())]
    assert isinstance(events[0], Header)
    rebuilt = bytearray(6 * MiB)
    for e in events:
        if isinstance(e, DiskData):
            rebuilt[e.offset : e.offset + len(e.data)] = e.data
    assert bytes(rebuilt) == disk.read_bytes()


def test_read_header_reads_only_as_far_as_ova_xml(tmp_path):
    disk = sparse_file(tmp_path / "d.raw", 32 * MiB, [(0, os.urandom(32 * MiB))])
    for compression in (None, "gzip", "zstd"):
        xva = XvaWriter(ova_for({"Ref:1": 32 * MiB}), {"Ref:1": disk}, compression=compression).write(
            tmp_path / f"{compression}.xva"
        )
        with open(xva, "rb") as f:
            assert read_header(f).disks == {"Ref:1": 32 * MiB}
            assert f.tell() <= 128 * 1024 < xva.stat().st_size
