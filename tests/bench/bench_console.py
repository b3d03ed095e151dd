"""Benchmark of VM consoles, straight to the simulator and through Podium's console proxy; prints medians.

One minimal RFB client (3.8, security None, shared ClientInit, SetEncodings Raw) written here, so that the
paths differ only by what carries its bytes:

(a) direct: TCP to the VM's host in the simulator, ``CONNECT /console?uuid=…`` with the session cookie (as
    Podium itself opens it), then RFB on that socket;
(b) proxy: Podium's WebSocket ``/api/consoles/<vm id>`` (subprotocol ``binary``, ``authenticationToken``
    cookie), RFB carried in binary frames by this process directly (aiohttp's client, no TCP bridge, no
    permessage-deflate);
(c) as (b) with permessage-deflate offered, as browsers (noVNC) do, and accepted by the server.

So (b) - (a) is Podium's proxy (its process, its second socket hop, WebSocket framing on the server) plus
the client's own WebSocket framing (masking, frame parsing: tens of µs). Each path has its own running VM
(a VM's display sends damage to every session on it, which would answer the other path's requests), all
three held open for the whole run. Rounds are interleaved, the order rotating, to share machine noise.

1. Key round trip, per round: one write of FramebufferUpdateRequest (incremental, whole screen) + KeyEvent
   down + KeyEvent up, timed until the last byte of the FramebufferUpdate showing the key has been read.
   The key alternates 'x' and BackSpace, so the screen stays as it was; the update is two 12x16 cells (the
   character and the cursor, 1.5 KB Raw); XAPISIM_CONSOLE_TICK=0, so nothing else changes on the screen.
   Medians, p99, and the proxy's cost as the difference of medians  [target: the proxy adds under 2 ms]
2. Whole screen (720x400, 32 bpp, 1.1 MB), a non-incremental request until the last byte; in (c) the
   client's inflating counts too                                                            [a few ms]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.harness.serverproc import Api, connected, start_server
from tests.harness.simproc import jsonrpc, start_sim

ROUNDS, WARMUP, SCREENS = 500, 30, 100
KEY_X, BACKSPACE = ord("x"), 0xFF08


class TcpStream:
    """RFB bytes over a socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def close(self) -> None:
        self.writer.close()


class WsStream:
    """RFB bytes in binary WebSocket frames, read as a stream."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.buffer = bytearray()

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def readexactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            msg = await self.ws.receive()
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise ConnectionError(f"the console WebSocket sent {msg.type.name} {msg.data!r}")
            self.buffer += msg.data
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def close(self) -> None:
        await self.ws.close()


Stream = TcpStream | WsStream


class Rfb:
    """Just enough of an RFB client for the round trips measured here."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.width = self.height = self.bytes_per_pixel = 0
        self.name = ""

    async def handshake(self) -> None:
        read = self.stream.readexactly
        version = await read(12)
        if not version.startswith(b"RFB 003."):
            raise ConnectionError(f"not an RFB server: {version!r}")
        await self.stream.send(b"RFB 003.008\n")
        types = await read((await read(1))[0])
        if 1 not in types:
            raise ConnectionError(f"security None not offered: {list(types)}")
        await self.stream.send(b"\x01")
        if await read(4) != b"\0\0\0\0":
            raise ConnectionError("security handshake failed")
        await self.stream.send(b"\x01")  # ClientInit: shared
        self.width, self.height = struct.unpack(">HH", await read(4))
        self.bytes_per_pixel = (await read(16))[0] // 8
        self.name = (await read(struct.unpack(">I", await read(4))[0])).decode()
        await self.stream.send(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw only

    def request(self, incremental: bool) -> bytes:
        """A FramebufferUpdateRequest for the whole screen."""
        return struct.pack(">BBHHHH", 3, incremental, 0, 0, self.width, self.height)

    @staticmethod
    def key(keysym: int, down: bool) -> bytes:
        return struct.pack(">BBxxI", 4, down, keysym)

    async def update(self) -> int:
        """Read up to and including one FramebufferUpdate; the number of pixels it carried."""
        read = self.stream.readexactly
        while (kind := (await read(1))[0]) != 0:
            if kind == 3:  # ServerCutText
                await read(struct.unpack(">3xI", await read(7))[0])
            elif kind != 2:  # Bell has no body; nothing else is expected with a true-colour format
                raise ConnectionError(f"unexpected server message {kind}")
        (count,) = struct.unpack(">xH", await read(3))
        pixels = 0
        for _ in range(count):
            _, _, w, h, encoding = struct.unpack(">HHHHi", await read(12))
            if encoding != 0:
                raise ConnectionError(f"unexpected encoding {encoding}")
            await read(w * h * self.bytes_per_pixel)
            pixels += w * h
        return pixels


async def direct(location: str, session: str) -> Rfb:
    url = urlsplit(location)
    assert url.hostname and url.port
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        f"CONNECT {url.path}?{url.query} HTTP/1.0\r\nHost: {url.hostname}\r\n"
        f"Cookie: session_id={session}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"the console refused: {head!r}")
    rfb = Rfb(TcpStream(reader, writer))
    await rfb.handshake()
    return rfb


async def proxied(http: aiohttp.ClientSession, url: str, compress: bool) -> Rfb:
    ws = await http.ws_connect(url, protocols=("binary",), compress=15 if compress else 0)
    if compress and not ws.compress:
        raise RuntimeError("the proxy did not accept permessage-deflate")
    rfb = Rfb(WsStream(ws))
    await rfb.handshake()
    return rfb


async def key_round(rfb: Rfb, n: int) -> float:
    keysym = KEY_X if n % 2 == 0 else BACKSPACE
    message = rfb.request(True) + rfb.key(keysym, True) + rfb.key(keysym, False)
    begin = time.perf_counter()
    await rfb.stream.send(message)
    if not await rfb.update():
        raise RuntimeError("an empty update")
    return time.perf_counter() - begin


async def screen_round(rfb: Rfb, n: int) -> float:
    begin = time.perf_counter()
    await rfb.stream.send(rfb.request(False))
    if await rfb.update() != rfb.width * rfb.height:
        raise RuntimeError("a partial screen")
    return time.perf_counter() - begin


async def interleaved(
    paths: dict[str, Rfb], one: Callable[[Rfb, int], Awaitable[float]], rounds: int
) -> dict[str, list[float]]:
    """``rounds`` timings per path, taken in turn, the order rotating every round; after a warm-up."""
    names = list(paths)
    times: dict[str, list[float]] = {name: [] for name in names}
    for n in range(-WARMUP, rounds):
        for k in range(len(names)):
            name = names[(n + k) % len(names)]
            took = await one(paths[name], n)
            if n >= 0:
                times[name].append(took)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * len(values))]


def report(times: dict[str, list[float]]) -> None:
    for name, values in times.items():
        print(f"  {name:<34} median {ms(statistics.median(values))}, p99 {ms(p99(values))}")


async def main() -> None:
    os.environ["XAPISIM_CONSOLE_TICK"] = "0"  # no clock or blink: every update answers a key
    sim = start_sim("--op-seconds", "0")
    srv = start_server(Path(tempfile.mkdtemp(prefix="bench-console-")))
    paths: dict[str, Rfb] = {}
    try:
        url = sim.master().url
        session = jsonrpc(url, "session.login_with_password", sim.user, sim.password)
        async with Api(srv.url) as admin, aiohttp.ClientSession() as http:
            await admin.sign_in()
            await connected(admin, sim)
            running = await admin.call(
                "xo.getAllObjects", {"filter": {"type": "VM", "power_state": "Running"}}
            )
            if len(running) < 3:
                raise RuntimeError(f"the pool has {len(running)} running VMs, 3 are needed")
            a, b, c = sorted(running, key=lambda i: running[i]["name_label"])[:3]
            vm = jsonrpc(url, "VM.get_by_uuid", session, a)
            records = [
                jsonrpc(url, "console.get_record", session, r)
                for r in jsonrpc(url, "VM.get_consoles", session, vm)
            ]
            location = next(r["location"] for r in records if r["protocol"] == "rfb")
            http.cookie_jar.update_cookies({"authenticationToken": await admin.call("token.create", {})})
            base = srv.url.replace("http", "ws", 1) + "/api/consoles/"
            paths["(a) direct to the simulator"] = await direct(location, session)
            paths["(b) through Podium's proxy"] = await proxied(http, base + b, compress=False)
            paths["(c) proxy, permessage-deflate"] = await proxied(http, base + c, compress=True)
            names = ", ".join(f"{running[i]['name_label']}" for i in (a, b, c))
            print(f"console: VMs {names}; {ROUNDS} rounds per path, interleaved, after {WARMUP} of warm-up")

            keys = await interleaved(paths, key_round, ROUNDS)
            print("console: key event -> framebuffer update showing it (the key and the cursor, 1.5 KB)")
            report(keys)
            (da, db, dc) = (statistics.median(v) for v in keys.values())
            print(
                f"  proxy adds (difference of medians): {ms(db - da)} ((b) - (a)), "
                f"{ms(dc - da)} with deflate ((c) - (a))  [target: under 2 ms]"
            )

            screens = await interleaved(paths, screen_round, SCREENS)
            print(
                "console: whole screen (720x400, 32 bpp, 1.1 MB) requested and received, "
                f"{SCREENS} rounds per path  [target: a few ms]"
            )
            report(screens)
            for rfb in paths.values():
                await rfb.stream.close()
    finally:
        srv.stop()
        sim.stop()


if __name__ == "__main__":
    asyncio.run(main())
