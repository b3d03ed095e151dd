"""VM consoles: records that follow the VMs, ``CONNECT /console`` with xapi's refusals, and RFB read
with a real VNC client library (asyncvnc) over the tunnel, as Xen Orchestra's console proxy opens it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncvnc
import pytest

from xapisim.screen import BLUE, CELL_H, CELL_W, WHITE
from xapisim.terminal import NAME_COL, STATUS_ROW, TOP, banner, hostname_of

from ..harness.screens import shows, wait_for_screen
from ..harness.simproc import (
    Sim,
    call,
    login,
    start_sim,
)

pytestmark = pytest.mark.integration


def guest(sim: Sim, s: str, name: str) -> str:
    return next(iter(call(sim, "VM.get_by_name_label", s, name)))


def consoles_of(sim: Sim, s: str, vm: str) -> dict[str, dict[str, Any]]:
    return {
        c["protocol"]: c
        for c in (call(sim, "console.get_record", s, r) for r in call(sim, "VM.get_consoles", s, vm))
    }


def host_url(sim: Sim, s: str, vm: str) -> str:
    host = call(sim, "VM.get_resident_on", s, vm)
    address = call(sim, "host.get_address", s, host)
    return next(h.url for h in sim.hosts if f"//{address}:" in h.url)


def raw_connect(address: str, port: int, request: str) -> tuple[str, dict[str, str], bytes]:
    """Send one request head on a fresh connection; the status line, headers and body of the answer."""
    with socket.create_connection((address, port), timeout=10) as sock:
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}, body


@asynccontextmanager
async def vnc(
    location: str, session: str, cookie: bool = False, tls: bool = False
) -> AsyncIterator[asyncvnc.Client]:
    """A VNC client on the console at ``location``, tunnelled through CONNECT as XAPI clients do."""
    url = urlsplit(location)
    target = f"{url.path}?{url.query}" + ("" if cookie else f"&session_id={session}")
    header = f"Cookie: session_id={session}\r\n" if cookie else ""

    async def opener(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = ssl._create_unverified_context() if tls else None
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        writer.write(f"CONNECT {target} HTTP/1.0\r\nHost: {host}\r\n{header}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
        return reader, writer

    connection = asyncvnc.connect(url.hostname, url.port, opener=opener)
    client = await connection.__aenter__()
    try:
        yield client
    finally:
        with contextlib.suppress(ConnectionError):  # the server may have cut the connection first
            await connection.__aexit__(None, None, None)


def test_console_records_follow_the_vm_to_its_host(still_sim):
    s = login(still_sim)
    vm = guest(still_sim, s, "16shared")
    before = consoles_of(still_sim, s, vm)
    assert set(before) == {"rfb", "vt100"}  # a PV guest: vncterm and its text console
    base = host_url(still_sim, s, vm)
    assert (
        before["rfb"]["location"] == f"{base}/console?uuid={before['rfb']['uuid']}"
    )  # the dump's, relocated
    call(still_sim, "VM.hard_shutdown", s, vm)
    assert call(still_sim, "VM.get_consoles", s, vm) == []
    call(
        still_sim, "VM.start_on", s, vm, call(still_sim, "host.get_by_name_label", s, "dt23")[0], False, False
    )
    after = consoles_of(still_sim, s, vm)
    assert set(after) == {"rfb", "vt100"} and after["rfb"]["uuid"] != before["rfb"]["uuid"]
    dt23 = host_url(still_sim, s, vm)
    assert dt23 != base and after["rfb"]["location"] == f"{dt23}/console?uuid={after['rfb']['uuid']}"
    call(still_sim, "VM.clean_reboot", s, vm)
    assert consoles_of(still_sim, s, vm) == after  # same host after a reboot: xapi keeps the records
    call(still_sim, "VM.pool_migrate", s, vm, call(still_sim, "host.get_by_name_label", s, "dt16")[0], {})
    moved = consoles_of(still_sim, s, vm)
    assert moved["rfb"]["location"].startswith(f"{base}/console?uuid=")  # recreated on the new host
    dt23_ref = call(still_sim, "host.get_by_name_label", s, "dt23")[0]
    vms = call(still_sim, "VM.get_all_records", s)
    dom0 = next(r for r, v in vms.items() if v["is_control_domain"] and v["resident_on"] == dt23_ref)
    assert consoles_of(still_sim, s, dom0)["rfb"]["location"] == f"{dt23}/console?ref={dom0}"  # as dumped


async def test_console_draws_the_vm_and_echoes_typed_keys(still_sim):
    s = login(still_sim)
    vm = guest(still_sim, s, "23local")
    call(still_sim, "VM.hard_reboot", s, vm)  # a fresh domain, so a fresh console screen
    record = call(still_sim, "VM.get_record", s, vm)
    location = consoles_of(still_sim, s, vm)["rfb"]["location"]
    async with vnc(location, s) as client:
        assert (client.video.name, client.video.width, client.video.height) == ("23local", 720, 400)
        screen = await client.screenshot()
        assert shows(screen, STATUS_ROW, NAME_COL, "23local", WHITE, BLUE)
        lines = banner("23local", record["uuid"], "dt23")
        assert shows(screen, TOP + 2, 0, lines[2]) and lines[2] == "VM:   23local"
        assert shows(screen, TOP + 3, 0, f"UUID: {record['uuid']}")
        prompt = f"{hostname_of('23local')} login: "
        assert shows(screen, TOP + len(lines), 0, prompt)

        client.keyboard.write("rooX")
        client.keyboard.press("BackSpace")
        client.keyboard.write("t")
        await wait_for_screen(client, lambda sc: shows(sc, TOP + len(lines), 0, prompt + "root"))
        client.keyboard.press("Return")
        client.keyboard.write("pw")
        client.keyboard.press("Return")
        client.keyboard.write("echo hi")
        client.keyboard.press("Return")
        screen = await wait_for_screen(client, lambda sc: shows(sc, TOP + len(lines) + 4, 0, "hi  "))
        assert shows(screen, TOP + len(lines) + 3, 0, "[root@23local ~]# echo hi")

    # A second client sees the same screen: one tty per guest.
    async with vnc(location, s, cookie=True) as other:
        screen = await other.screenshot()
        assert shows(screen, TOP + len(lines) + 4, 0, "hi")


async def test_console_incremental_updates_carry_only_the_change(still_sim):
    s = login(still_sim)
    vm = guest(still_sim, s, "16local")
    async with vnc(consoles_of(still_sim, s, vm)["rfb"]["location"], s) as client:
        await client.screenshot()
        client.video.refresh()  # incremental: nothing changes, so nothing comes
        head = asyncio.ensure_future(client.reader.readexactly(4))
        done, _ = await asyncio.wait([head], timeout=0.5)
        assert not done
        client.keyboard.write("z")
        kind, count = struct.unpack(">BxH", await asyncio.wait_for(head, 5))
        assert (kind, count) == (0, 1)  # one rectangle
        x, y, w, h, encoding = struct.unpack(">HHHHi", await client.reader.readexactly(12))
        prompt_row = TOP + len(banner("16local", "", ""))
        assert (x, y, w, h, encoding) == (
            len("16local login: ") * CELL_W,
            prompt_row * CELL_H,
            2 * CELL_W,
            CELL_H,
            0,
        )


def test_console_refusals_are_xapis(still_sim):
    s = login(still_sim)
    vm = guest(still_sim, s, "16shared")
    rfb = consoles_of(still_sim, s, vm)["rfb"]
    url = urlsplit(rfb["location"])
    address, port = url.hostname, url.port
    path = f"{url.path}?{url.query}"

    status, headers, body = raw_connect(address, port, f"CONNECT {path} HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 401 Unauthorised"
    assert headers["www-authenticate"] == 'Basic realm="connect_console"' and b"401 unauthorised" in body
    status, _, _ = raw_connect(
        address, port, f"CONNECT {path}&session_id=OpaqueRef:forged HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == "HTTP/1.1 401 Unauthorised"

    for target in (
        "/console?uuid=00000000-0000-0000-0000-000000000000&",  # no such console
        f"/console?ref={call(still_sim, 'VM.get_resident_on', s, vm)}&",  # a host, not a console
        "/console?",  # neither ref nor uuid
    ):
        status, headers, body = raw_connect(address, port, f"CONNECT {target}session_id={s} HTTP/1.0\r\n\r\n")
        assert status == "HTTP/1.0 500 Internal Error", target
        assert headers["content-type"] == "text/html" and b"500 internal server error" in body

    other = next(h for h in still_sim.hosts if f"//{address}:" not in h.url)
    o = urlsplit(other.url)
    status, _, _ = raw_connect(o.hostname, o.port, f"CONNECT {path}&session_id={s} HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 500 Internal Error"  # the VM does not run on that host

    call(still_sim, "VM.pause", s, vm)
    status, _, _ = raw_connect(address, port, f"CONNECT {path}&session_id={s} HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 500 Internal Error"  # paused: not running
    call(still_sim, "VM.hard_shutdown", s, vm)
    status, _, _ = raw_connect(address, port, f"CONNECT /console?ref={vm}&session_id={s} HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 500 Internal Error"  # halted: no console at all

    status, _, body = raw_connect(address, port, f"CONNECT /elsewhere?session_id={s} HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 403 Forbidden"
    assert call(still_sim, "VM.get_power_state", s, vm) == "Halted"  # plain API calls still work there


async def test_console_ends_when_the_host_stops_or_the_vm_halts(still_sim):
    s = login(still_sim)
    on_member = guest(still_sim, s, "23shared")
    member = next(h for h in still_sim.hosts if not h.master)
    assert host_url(still_sim, s, on_member) == member.url
    async with vnc(consoles_of(still_sim, s, on_member)["rfb"]["location"], s) as client:
        await client.screenshot()
        await asyncio.to_thread(still_sim.ctl, "POST", f"/pools/0/hosts/{member.name}/stop")
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await asyncio.wait_for(client.reader.readexactly(1), 5)
    await asyncio.to_thread(still_sim.ctl, "POST", f"/pools/0/hosts/{member.name}/start")

    vm = guest(still_sim, s, "16local")
    for action in ("VM.hard_reboot", "VM.hard_shutdown"):  # the domain, and its console, go away
        async with vnc(consoles_of(still_sim, s, vm)["rfb"]["location"], s) as client:
            await client.screenshot()
            await asyncio.to_thread(call, still_sim, action, s, vm)
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                await asyncio.wait_for(client.reader.readexactly(1), 5)


async def test_console_vt100_carries_the_same_tty_as_text(still_sim):
    s = login(still_sim)
    vm = guest(still_sim, s, "16shared")
    text = urlsplit(consoles_of(still_sim, s, vm)["vt100"]["location"])
    reader, writer = await asyncio.open_connection(text.hostname, text.port)
    try:
        writer.write(f"CONNECT {text.path}?{text.query} HTTP/1.0\r\nCookie: session_id={s}\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
        assert await asyncio.wait_for(reader.readuntil(b"login: "), 5) == b"\r\n16shared login: "
        writer.write(b"admin\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"Password: "), 5) == b"admin\r\nPassword: "
        async with vnc(consoles_of(still_sim, s, vm)["rfb"]["location"], s) as client:
            screen = await client.screenshot()
            assert any(shows(screen, row, 0, "16shared login: admin") for row in range(TOP, 25))
    finally:
        writer.close()
        await writer.wait_closed()


async def test_console_over_tls_with_a_ticking_clock():
    sim = start_sim("--tls", env={"XAPISIM_CONSOLE_TICK": "0.2"})
    try:
        s = login(sim)
        location = consoles_of(sim, s, guest(sim, s, "16local"))["rfb"]["location"]
        assert location.startswith("https://")
        async with vnc(location, s, tls=True) as client:
            await client.screenshot()
            begin = time.monotonic()
            client.video.refresh()
            await asyncio.wait_for(client.read(), 3)  # the cursor blinks without any input
            assert time.monotonic() - begin < 1.5
    finally:
        sim.stop()
