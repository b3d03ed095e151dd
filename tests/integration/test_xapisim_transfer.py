"""The simulator's HTTP transfers as XAPI serves them: /export, /import, /export_raw_vdi, /import_raw_vdi."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import tarfile
import time
import urllib.parse
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest
import xxhash
import zstandard

from ..harness.simdisks import MiB, get_raw, guest_with_disk, pattern, put_raw, request, wait_task
from ..harness.simproc import (
    BUNDLED_DB,
    TEST_DBS,
    jsonrpc,
    master_session,
    start_sim,
    storage,
)

pytestmark = pytest.mark.integration

REAL_XVA = Path(__file__).resolve().parents[1] / "data" / "xva" / "vmexport.xva"


@pytest.fixture(scope="module")
def two_pools():
    sim = start_sim("--db", str(BUNDLED_DB), "--db", str(TEST_DBS / "xapidb_app.xml"), "--op-seconds", "0")
    yield sim
    sim.stop()


def put_xva(url: str, s: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """PUT /import into the pool's first disk SR under a task of ours: the HTTP status and the ended task."""
    task = jsonrpc(url, "task.create", s, "import", "")
    status, _ = request(
        url, "PUT", "/import", {"session_id": s, "task_id": task, "sr_id": storage(url, s)}, body
    )
    return status, wait_task(url, s, task)


def members(xva: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(xva), mode="r|") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]


def xml_value(text: str | bytes) -> Any:
    """The value of one XML-RPC ``<value>`` element, as ova.xml and task results hold it."""
    data = text.encode() if isinstance(text, str) else text
    response = b"<methodResponse><params><param>%s</param></params></methodResponse>" % data
    return xmlrpc.client.loads(response)[0][0]


def ova_of(xva: bytes) -> dict[str, Any]:
    name, data = members(xva)[0]
    assert name == "ova.xml"
    return xml_value(data)


@pytest.fixture(scope="module")
def written(two_pools):
    """A halted VM of pool 0 whose disk holds known data: (url, session, vm, vdi, data)."""
    url, s = master_session(two_pools)
    vm, vdi, rec = guest_with_disk(url, s)
    data = pattern(int(rec["virtual_size"]))
    assert put_raw(url, s, vdi, data)["status"] == "success"
    return url, s, vm, vdi, data


def test_raw_vdi_round_trip_keeps_every_byte(written):
    url, s, _vm, vdi, data = written
    assert get_raw(url, s, vdi) == data


def raw_exchange(url: str, head: str, body: bytes = b"") -> tuple[str, dict[str, str], bytes]:
    """Send ``head`` (and ``body``) on a socket, read until the simulator closes: status line, headers
    (lower-case names), body as it came on the wire."""
    u = urllib.parse.urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=60) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        received = bytearray()
        while chunk := sock.recv(1 << 20):
            received += chunk
    top, _, rest = bytes(received).partition(b"\r\n\r\n")
    status, *lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, rest


def test_answers_are_framed_as_xapis_http_server_writes_them(written):
    """xapi ends downloads by closing the connection (no length, no chunks), with HTTP/1.0 for /export,
    and answers uploads before reading them: a client that trusted the framing would take a cut stream for
    a whole one, so Podium must be tested against this framing, not aiohttp's."""
    url, s, vm, vdi, data = written
    host = urllib.parse.urlsplit(url).netloc

    def get(path: str, query: dict[str, str]) -> tuple[str, dict[str, str], bytes]:
        task = jsonrpc(url, "task.create", s, "framing", "")
        target = f"{path}?{urllib.parse.urlencode({**query, 'session_id': s, 'task_id': task})}"
        answer = raw_exchange(url, f"GET {target} HTTP/1.1\r\nHost: {host}\r\n")
        assert answer[1]["task-id"] == task
        assert wait_task(url, s, task)["status"] == "success"
        return answer

    status, headers, body = get("/export", {"ref": vm})
    assert status == "HTTP/1.0 200 OK"
    assert headers["connection"] == "close" and headers["server"].startswith("xapi/")
    assert headers["content-disposition"] == 'attachment; filename="export.xva"'
    assert "content-length" not in headers and "transfer-encoding" not in headers
    assert members(body)[0][0] == "ova.xml"  # the tar itself, not chunk-framed

    status, headers, body = get("/export_raw_vdi", {"vdi": vdi, "format": "raw"})
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
    assert "content-length" not in headers and "transfer-encoding" not in headers
    assert body == data

    task = jsonrpc(url, "task.create", s, "framing", "")
    query = urllib.parse.urlencode({"session_id": s, "task_id": task, "vdi": vdi})
    head = f"PUT /import_raw_vdi?{query} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(data)}\r\n"
    status, headers, body = raw_exchange(url, head, data)
    assert (status, headers["task-id"], body) == ("HTTP/1.1 200 OK", task, b"")
    assert "content-length" not in headers and "transfer-encoding" not in headers
    assert wait_task(url, s, task)["status"] == "success"


def test_upload_is_answered_before_its_body(written):
    url, s, _vm, vdi, data = written
    u = urllib.parse.urlsplit(url)
    task = jsonrpc(url, "task.create", s, "early answer", "")
    query = urllib.parse.urlencode({"session_id": s, "task_id": task, "vdi": vdi})
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        head = f"PUT /import_raw_vdi?{query} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(data)}\r\n"
        sock.sendall(head.encode() + b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")  # not a byte of the body sent yet
        sock.sendall(data)
        assert wait_task(url, s, task)["status"] == "success"
    assert get_raw(url, s, vdi) == data


def test_export_writes_ova_xml_then_sparse_checksummed_chunks(written):
    url, s, vm, vdi, data = written
    task = jsonrpc(url, "task.create", s, "export", "")
    status, xva = request(url, "GET", "/export", {"session_id": s, "ref": vm, "task_id": task})
    assert status == 200
    assert wait_task(url, s, task)["status"] == "success"
    items = members(xva)
    ova = ova_of(xva)
    assert ova["version"]["export_vsn"] == "2"
    classes = [o["class"] for o in ova["objects"]]
    assert classes[0] == "VM" and "VDI" in classes and "VBD" in classes
    uuid = jsonrpc(url, "VDI.get_uuid", s, vdi)
    disk = next(o for o in ova["objects"] if o["class"] == "VDI" and o["snapshot"]["uuid"] == uuid)
    chunks = [(n, d) for n, d in items[1:] if n.startswith(disk["id"] + "/")]
    names = [n for n, _ in chunks if not n.endswith(".xxhash")]
    last = (len(data) - 1) // MiB
    with_data = [i for i in range(last + 1) if data[i * MiB : (i + 1) * MiB].strip(b"\0") or i in (0, last)]
    assert with_data == [0, 1, 4, 5]
    assert names == [f"{disk['id']}/{i:08d}" for i in with_data]  # only data, first and last
    for (name, chunk), (sum_name, digest) in zip(chunks[::2], chunks[1::2], strict=True):
        assert sum_name == name + ".xxhash"
        assert digest.decode() == xxhash.xxh64(chunk).hexdigest().upper()  # xapi writes %016LX
        number = int(name.rsplit("/", 1)[1])
        assert chunk == data[number * MiB : number * MiB + len(chunk)]


@pytest.mark.parametrize(("value", "decompress"), [("true", gzip.decompress), ("zstd", None)])
def test_export_compressed_is_the_same_stream(written, value, decompress):
    url, s, vm, _vdi, _data = written
    _, plain = request(url, "GET", "/export", {"session_id": s, "ref": vm})
    status, packed = request(url, "GET", "/export", {"session_id": s, "ref": vm, "use_compression": value})
    assert status == 200
    if decompress is None:
        out = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(packed)).read()
    else:
        out = decompress(packed)
    assert len(packed) < len(plain)
    # the same members; ova.xml differs only by the export's own entry in current_operations
    assert [n for n, _ in members(out)] == [n for n, _ in members(plain)]
    assert members(out)[1:] == members(plain)[1:]


def test_import_into_another_pool_keeps_disks_byte_for_byte(two_pools, written):
    url, s, vm, _vdi, data = written
    _, xva = request(url, "GET", "/export", {"session_id": s, "ref": vm, "use_compression": "zstd"})
    url2, s2 = master_session(two_pools, 1)
    status, rec = put_xva(url2, s2, xva)
    assert status == 200
    assert rec["status"] == "success", rec["error_info"]
    (new_vm,) = xml_value(rec["result"])
    vm_rec = jsonrpc(url2, "VM.get_record", s2, new_vm)
    assert vm_rec["name_label"] == jsonrpc(url, "VM.get_name_label", s, vm)
    assert vm_rec["power_state"] == "Halted"
    disks = [jsonrpc(url2, "VBD.get_record", s2, v) for v in vm_rec["VBDs"]]
    vdis = [d["VDI"] for d in disks if d["type"] == "Disk" and d["VDI"] != "OpaqueRef:NULL"]
    contents = [get_raw(url2, s2, v) for v in vdis]
    assert data in contents


def test_import_of_the_real_xenserver_xva(two_pools):
    url, s = master_session(two_pools, 1)
    xva = REAL_XVA.read_bytes()
    status, rec = put_xva(url, s, xva)
    assert status == 200
    assert rec["status"] == "success", rec["error_info"]
    vm = xml_value(rec["result"])[0]
    assert jsonrpc(url, "VM.get_name_label", s, vm) == "VM export"
    vbds = [jsonrpc(url, "VBD.get_record", s, b) for b in jsonrpc(url, "VM.get_VBDs", s, vm)]
    vdi = next(v["VDI"] for v in vbds if v["VDI"] != "OpaqueRef:NULL")
    expected = b"".join(d for n, d in members(xva) if n.startswith("Ref:20/") and not n.endswith(".checksum"))
    assert get_raw(url, s, vdi) == expected


def count(url: str, s: str, cls: str) -> int:
    return len(jsonrpc(url, f"{cls}.get_all", s))


def corrupt(xva: bytes, at: int) -> bytes:
    return xva[:at] + bytes([xva[at] ^ 0xFF]) + xva[at + 1 :]


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_bad_import_fails_the_task_and_leaves_nothing(two_pools, written, damage):
    url, s, vm, _vdi, _data = written
    _, xva = request(url, "GET", "/export", {"session_id": s, "ref": vm})
    bad = {
        "flip": corrupt(xva, len(xva) - 3 * MiB // 2),
        "truncate": xva[: len(xva) // 2],
        "garbage": os.urandom(4096),
    }[damage]
    url2, s2 = master_session(two_pools, 1)
    before = {cls: count(url2, s2, cls) for cls in ("VM", "VDI", "VBD", "VIF")}
    status, rec = put_xva(url2, s2, bad)
    assert status == 200  # as xapi: the answer comes before the body is read; the task tells
    assert rec["status"] == "failure"
    premature = damage == "truncate"
    assert rec["error_info"][0] == ("IMPORT_ERROR_PREMATURE_EOF" if premature else "IMPORT_ERROR")
    assert {cls: count(url2, s2, cls) for cls in before} == before


def test_chunked_upload_is_refused(two_pools):
    url, s = master_session(two_pools, 1)

    def body():
        yield b"x" * 1024

    task = jsonrpc(url, "task.create", s, "import", "")
    query = {"session_id": s, "task_id": task}
    status, _ = request(url, "PUT", "/import", query, body())  # http.client sends a generator chunked
    assert status == 403
    assert wait_task(url, s, task)["error_info"] == ["IMPORT_ERROR_CANNOT_HANDLE_CHUNKED"]


def test_bad_session_gets_401(two_pools, written):
    url, _s, vm, _vdi, _data = written
    status, _ = request(url, "GET", "/export", {"session_id": "OpaqueRef:nope", "ref": vm})
    assert status == 401
    status, _ = request(url, "PUT", "/import", {"session_id": "OpaqueRef:nope"}, b"x" * 512)
    assert status == 401


def test_export_of_a_running_vm_is_refused(two_pools):
    url, s = master_session(two_pools)
    vms = jsonrpc(url, "VM.get_all_records", s)
    running = next(r for r, v in vms.items() if v["power_state"] == "Running" and not v["is_control_domain"])
    task = jsonrpc(url, "task.create", s, "export", "")
    status, _ = request(url, "GET", "/export", {"session_id": s, "ref": running, "task_id": task})
    assert status == 500
    assert wait_task(url, s, task)["error_info"][0] == "VM_BAD_POWER_STATE"


def test_export_cut_by_the_client_fails_the_task_and_frees_the_vm(two_pools):
    url, s = master_session(two_pools)
    vm, vdi, _rec = guest_with_disk(url, s, 64 * MiB)
    # fill the disk so the export is long enough to be cut
    assert put_raw(url, s, vdi, hashlib.shake_256(b"x").digest(64 * MiB))["status"] == "success"
    task = jsonrpc(url, "task.create", s, "export", "")
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    q = urllib.parse.urlencode({"session_id": s, "ref": vm, "task_id": task})
    sock.sendall(f"GET /export?{q} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert b"200" in sock.recv(4096)
    sock.close()
    rec = wait_task(url, s, task)
    assert rec["status"] == "failure"
    deadline = time.monotonic() + 10
    while jsonrpc(url, "VM.get_current_operations", s, vm) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jsonrpc(url, "VM.get_current_operations", s, vm) == {}


def tar_of(items: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_import_follows_xapis_gap_rule_with_keepalive_chunks(two_pools, written):
    """An empty keep-alive chunk takes a number and no room: the next chunk lands where it stood."""
    url, s, vm, vdi, data = written
    _, xva = request(url, "GET", "/export", {"session_id": s, "ref": vm})
    items = members(xva)
    ova = ova_of(xva)
    uuid = jsonrpc(url, "VDI.get_uuid", s, vdi)
    disk = next(o["id"] for o in ova["objects"] if o["class"] == "VDI" and o["snapshot"]["uuid"] == uuid)
    size = len(data)
    a, b, c = (hashlib.shake_256(x).digest(MiB) for x in (b"a", b"b", b"c"))
    c += b"z" * (size - 4 * MiB - MiB)
    mine = []
    for number, chunk in ((0, a), (2, b""), (3, b), (5, c)):
        name = f"{disk}/{number:08d}"
        mine += [(name, chunk), (name + ".xxhash", xxhash.xxh64(chunk).hexdigest().upper().encode())]
    others = [(n, d) for n, d in items[1:] if not n.startswith(disk + "/")]
    stream = tar_of([items[0], *mine, *others])
    url2, s2 = master_session(two_pools, 1)
    status, rec = put_xva(url2, s2, stream)
    assert status == 200
    assert rec["status"] == "success", rec["error_info"]
    new_vm = xml_value(rec["result"])[0]
    vbds = [jsonrpc(url2, "VBD.get_record", s2, v) for v in jsonrpc(url2, "VM.get_VBDs", s2, new_vm)]
    new_vdi = next(v["VDI"] for v in vbds if v["userdevice"] == "5")
    got = get_raw(url2, s2, new_vdi)
    assert got == a + bytes(MiB) + b + bytes(MiB) + c  # not b at 3 MiB, as number x 1 MiB would put it
