"""A pool's disks over the simulator's wire, for the tests of transfers: a guest with a disk, raw uploads and
downloads under a task, patterned data with a hole."""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.parse
from typing import Any

from .simproc import jsonrpc, storage, vbd_fields, vdi_fields

MiB = 1 << 20


def request(
    url: str,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request(method, f"{path}?{urllib.parse.urlencode(query)}", body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def guest_with_disk(url: str, s: str, size: int = 5 * MiB + 1234) -> tuple[str, str, dict[str, Any]]:
    """A new halted guest, cloned from a real one, with an added empty disk of ``size`` bytes.

    Returns (VM ref, the new VDI's ref, its record).
    """
    vms = jsonrpc(url, "VM.get_all_records", s)
    ref, vm = next(
        (r, v)
        for r, v in sorted(vms.items(), key=lambda kv: kv[1]["name_label"])
        if not v["is_a_template"] and not v["is_control_domain"] and v["VBDs"]
    )
    if vm["power_state"] == "Running":
        jsonrpc(url, "VM.hard_shutdown", s, ref)
    clone = jsonrpc(url, "VM.clone", s, ref, f"transfer {time.monotonic()}")
    vdi = jsonrpc(url, "VDI.create", s, vdi_fields(storage(url, s), size))
    jsonrpc(url, "VBD.create", s, vbd_fields(clone, vdi, userdevice="5"))
    return clone, vdi, jsonrpc(url, "VDI.get_record", s, vdi)


def wait_task(url: str, s: str, task: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rec = jsonrpc(url, "task.get_record", s, task)
        if rec["status"] != "pending":
            return rec
        time.sleep(0.02)
    raise AssertionError("task still pending")


def pattern(size: int, seed: int = 1) -> bytes:
    """Data with a hole in the middle: random-ish first and last MiB, zeros between."""
    head = hashlib.shake_256(f"head{seed}".encode()).digest(MiB + 12345)
    tail = hashlib.shake_256(f"tail{seed}".encode()).digest(MiB // 2)
    return head + bytes(size - len(head) - len(tail)) + tail


def put_raw(url: str, s: str, vdi: str, data: bytes) -> dict[str, Any]:
    task = jsonrpc(url, "task.create", s, "upload", "")
    status, _ = request(url, "PUT", "/import_raw_vdi", {"session_id": s, "vdi": vdi, "task_id": task}, data)
    assert status == 200
    return wait_task(url, s, task)


def get_raw(url: str, s: str, vdi: str) -> bytes:
    status, data = request(url, "GET", "/export_raw_vdi", {"session_id": s, "vdi": vdi, "format": "raw"})
    assert status == 200
    return data
