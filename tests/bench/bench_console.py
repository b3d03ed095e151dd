"""Benchmark of the simulator's VM consoles, straight to the simulator (no proxy); prints medians.

1. key event -> the FramebufferUpdate showing it, received by a VNC client (asyncvnc)   [a few ms]
2. a whole-screen update (720x400, 32 bits per pixel) requested and received            [a few ms]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncvnc

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.simproc import jsonrpc, start_sim

ROUNDS = 500


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def main() -> None:
    os.environ["XAPISIM_CONSOLE_TICK"] = "0"  # no clock or blink: every update answers a key
    sim = start_sim("--op-seconds", "0")
    try:
        url = sim.master().url
        session = jsonrpc(url, "session.login_with_password", sim.user, sim.password)
        consoles = jsonrpc(url, "console.get_all_records", session).values()
        location = urlsplit(next(c["location"] for c in consoles if c["protocol"] == "rfb"))

        async def opener(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"CONNECT {location.path}?{location.query}&session_id={session} HTTP/1.0\r\n\r\n".encode()
            )
            await reader.readuntil(b"\r\n\r\n")
            return reader, writer

        async with asyncvnc.connect(location.hostname, location.port, opener=opener) as client:
            await client.screenshot()
            keys = []
            for n in range(ROUNDS):
                client.video.refresh()  # incremental: answered when the key shows
                begin = time.perf_counter()
                client.keyboard.press("x" if n % 2 == 0 else "BackSpace")
                await client.read()
                keys.append(time.perf_counter() - begin)
            frames = []
            size = 4 + 12 + client.video.width * client.video.height * 4
            request = struct.pack(">BBHHHH", 3, 0, 0, 0, client.video.width, client.video.height)
            for _ in range(100):  # on the wire, without the client library's numpy work
                begin = time.perf_counter()
                client.writer.write(request)
                await client.reader.readexactly(size)
                frames.append(time.perf_counter() - begin)
        keys.sort()
        print(f"console: key event -> framebuffer update, {ROUNDS} rounds  [target: a few ms]")
        print(f"  median {ms(statistics.median(keys))}, p99 {ms(keys[int(0.99 * len(keys))])}")
        print("console: whole screen (720x400, 32 bpp, 1.1 MB) requested and received  [target: a few ms]")
        print(f"  median {ms(statistics.median(frames))}, max {ms(max(frames))}")
    finally:
        sim.stop()


if __name__ == "__main__":
    asyncio.run(main())
