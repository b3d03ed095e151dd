"""The RFB server over in-memory streams: handshake, pixel formats, incremental updates, input."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from xapisim.rfb import SERVER_FORMAT, PixelFormat, RfbError, Session, encoder, merge, serve
from xapisim.screen import (
    BLACK,
    BLUE,
    CELL_H,
    CELL_W,
    FULL,
    GREY,
    HEIGHT,
    PALETTE,
    WHITE,
    WIDTH,
    Rect,
    Screen,
)

RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
BGR233 = PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6)
BIG_RGB32 = PixelFormat(32, 24, True, True, 255, 255, 255, 0, 8, 16)
COLOUR_MAP = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)


def encode(fmt: PixelFormat, indexes: bytes) -> bytes:
    out = bytearray(len(indexes) * fmt.bpp // 8)
    encoder(fmt)(indexes, out, 0)
    return bytes(out)


def test_pixel_formats_convert_the_palette():
    indexes = bytes([BLACK, WHITE, BLUE, GREY])
    assert (
        encode(SERVER_FORMAT, indexes) == b"\0\0\0\0" + b"\xff\xff\xff\0" + b"\xaa\0\0\0" + b"\xaa\xaa\xaa\0"
    )
    assert encode(BIG_RGB32, indexes) == b"\0\0\0\0" + b"\0\xff\xff\xff" + b"\0\xaa\0\0" + b"\0\xaa\xaa\xaa"
    # RGB565 little-endian: white is 0xffff, blue (0,0,170) is 21, grey (170,170,170) is 0xad55
    assert encode(RGB565, indexes) == struct.pack("<4H", 0, 0xFFFF, 21, (21 << 11) | (42 << 5) | 21)
    # BGR233: red in bits 0-2, green 3-5, blue 6-7
    assert encode(BGR233, indexes) == bytes([0, 0xFF, 2 << 6, 5 | 5 << 3 | 2 << 6])
    assert encode(COLOUR_MAP, indexes) == indexes  # a colour map holds the palette itself


@pytest.mark.parametrize("fmt", [SERVER_FORMAT, RGB565, BGR233, BIG_RGB32])
def test_pixel_format_roundtrips_and_every_colour_is_exact_at_full_depth(fmt):
    assert PixelFormat.unpack(fmt.pack()) == fmt
    size = fmt.bpp // 8
    pixels = encode(fmt, bytes(range(len(PALETTE))))
    values = [
        int.from_bytes(pixels[i * size : (i + 1) * size], "big" if fmt.big_endian else "little")
        for i in range(16)
    ]
    for index, value in enumerate(values):
        r = (value >> fmt.red_shift) & fmt.red_max
        g = (value >> fmt.green_shift) & fmt.green_max
        b = (value >> fmt.blue_shift) & fmt.blue_max
        expected = PALETTE[index]
        got = (r * 255 // fmt.red_max, g * 255 // fmt.green_max, b * 255 // fmt.blue_max)
        assert all(
            abs(x - y) <= 255 // m
            for x, y, m in zip(got, expected, (fmt.red_max, fmt.green_max, fmt.blue_max), strict=True)
        )


@pytest.mark.parametrize(
    "fmt",
    [
        PixelFormat(24, 24, False, True, 255, 255, 255, 16, 8, 0),
        PixelFormat(16, 16, False, True, 0, 63, 31, 11, 5, 0),
        PixelFormat(16, 16, False, True, 31, 63, 31, 17, 5, 0),
    ],
)
def test_pixel_format_refuses_what_no_client_may_ask(fmt):
    with pytest.raises(RfbError):
        PixelFormat.unpack(fmt.pack())


def test_merge_joins_touching_damage_and_caps_the_count():
    rects = merge([], Rect(0, 0, 10, 10))
    rects = merge(rects, Rect(10, 0, 10, 10))  # shares an edge
    assert rects == [Rect(0, 0, 20, 10)]
    rects = merge(rects, Rect(100, 100, 5, 5))
    assert len(rects) == 2
    many: list[Rect] = []
    for i in range(40):
        many = merge(many, Rect(i * 20, i * 9, 5, 5))
    assert len(many) <= 16


class FakeDisplay:
    def __init__(self) -> None:
        self.screen = Screen()
        self.keys: list[tuple[int, bool]] = []

    def key(self, keysym: int, down: bool) -> None:
        self.keys.append((keysym, down))


class Client:
    """The client side of an in-memory connection to one Session."""

    def __init__(self, display: FakeDisplay) -> None:
        self.display = display
        self.to_server = asyncio.StreamReader()
        self.from_server = asyncio.StreamReader()
        self.writer = _writer(_Pipe(self.from_server))
        self.session = Session(self.to_server, self.writer, display, "vm name")
        self.task = asyncio.get_running_loop().create_task(self.session.run())

    def send(self, data: bytes) -> None:
        self.to_server.feed_data(data)

    async def read(self, n: int) -> bytes:
        return await asyncio.wait_for(self.from_server.readexactly(n), 2)

    async def handshake(self, version: bytes = b"RFB 003.008\n") -> tuple[int, int, bytes, str]:
        assert await self.read(12) == b"RFB 003.008\n"
        self.send(version)
        if version == b"RFB 003.003\n":
            assert await self.read(4) == b"\0\0\0\1"
        else:
            assert await self.read(2) == b"\x01\x01"
            self.send(b"\x01")
            if version == b"RFB 003.008\n":
                assert await self.read(4) == b"\0\0\0\0"
        self.send(b"\x01")
        width, height = struct.unpack(">HH", await self.read(4))
        fmt = await self.read(16)
        (length,) = struct.unpack(">I", await self.read(4))
        return width, height, fmt, (await self.read(length)).decode()

    def request(self, rect: Rect, incremental: bool) -> None:
        self.send(struct.pack(">BBHHHH", 3, incremental, *rect))

    async def update(self, size: int = 4) -> list[tuple[Rect, bytes]]:
        kind, count = struct.unpack(">BxH", await self.read(4))
        assert kind == 0
        out = []
        for _ in range(count):
            x, y, w, h, enc = struct.unpack(">HHHHi", await self.read(12))
            assert enc == 0
            out.append((Rect(x, y, w, h), await self.read(w * h * size)))
        return out

    async def close(self) -> None:
        self.to_server.feed_eof()
        try:
            await asyncio.wait_for(self.task, 2)
        finally:
            self.writer.close()


class _Pipe(asyncio.Transport):
    def __init__(self, into: asyncio.StreamReader) -> None:
        super().__init__()
        self.into = into
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.into.feed_data(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def _writer(transport: _Pipe) -> asyncio.StreamWriter:
    protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())
    protocol.connection_made(transport)
    return asyncio.StreamWriter(transport, protocol, None, asyncio.get_running_loop())


@pytest.mark.parametrize("version", [b"RFB 003.008\n", b"RFB 003.007\n", b"RFB 003.003\n"])
async def test_rfb_handshake_announces_size_format_and_name(version):
    client = Client(FakeDisplay())
    width, height, fmt, name = await client.handshake(version)
    assert (width, height, PixelFormat.unpack(fmt), name) == (WIDTH, HEIGHT, SERVER_FORMAT, "vm name")
    await client.close()


async def test_rfb_full_then_incremental_updates_send_only_changes():
    display = FakeDisplay()
    display.screen.put(0, 0, "A")
    client = Client(display)
    await client.handshake()
    client.request(FULL, incremental=False)
    ((rect, pixels),) = await client.update()
    assert rect == FULL and pixels == encode(SERVER_FORMAT, bytes(display.screen.pixels))

    client.request(FULL, incremental=True)
    await asyncio.sleep(0.05)
    assert client.from_server._buffer == b""  # nothing changed: the request waits
    display.screen.put(2, 3, "xy")
    ((rect, pixels),) = await client.update()
    assert rect == Rect(3 * CELL_W, 2 * CELL_H, 2 * CELL_W, CELL_H)
    assert pixels == encode(SERVER_FORMAT, display.screen.region(rect))
    await client.close()


async def test_rfb_incremental_request_covers_only_its_area():
    display = FakeDisplay()
    client = Client(display)
    await client.handshake()
    display.screen.put(0, 0, "top")
    display.screen.put(20, 0, "bottom")
    top_half = Rect(0, 0, WIDTH, HEIGHT // 2)
    client.request(top_half, incremental=True)
    ((rect, _),) = await client.update()
    assert rect == Rect(0, 0, 3 * CELL_W, CELL_H)
    client.request(FULL, incremental=True)  # what changed outside the first request is still owed
    ((rect, _),) = await client.update()
    assert rect == Rect(0, 20 * CELL_H, 6 * CELL_W, CELL_H)
    await client.close()


async def test_rfb_set_pixel_format_and_colour_map():
    display = FakeDisplay()
    display.screen.line(0, "x", WHITE, BLUE)
    client = Client(display)
    await client.handshake()
    client.send(b"\0\0\0\0" + RGB565.pack())
    client.request(Rect(0, 0, 4, 1), incremental=False)
    ((_, pixels),) = await client.update(size=2)
    assert pixels == struct.pack("<4H", 21, 21, 21, 21)  # blue background of the status line
    client.send(b"\0\0\0\0" + COLOUR_MAP.pack())
    kind, first, count = struct.unpack(">BxHH", await client.read(6))
    assert (kind, first, count) == (1, 0, 16)
    entries = [struct.unpack(">HHH", await client.read(6)) for _ in range(count)]
    assert entries[BLUE] == (0, 0, 170 * 257)
    client.request(Rect(0, 0, 4, 1), incremental=False)
    ((_, pixels),) = await client.update(size=1)
    assert pixels == bytes([BLUE] * 4)
    await client.close()


async def test_rfb_passes_keys_and_ignores_pointer_and_cut_text():
    display = FakeDisplay()
    client = Client(display)
    await client.handshake()
    client.send(b"\x02\0\0\x02" + struct.pack(">ii", 1, 0))  # SetEncodings: CopyRect, Raw
    client.send(b"\x05\x01\0\x10\0\x10")  # PointerEvent
    client.send(b"\x06\0\0\0" + struct.pack(">I", 5) + b"hello")  # ClientCutText
    client.send(struct.pack(">BBxxI", 4, 1, 0x61) + struct.pack(">BBxxI", 4, 0, 0x61))
    await client.close()
    assert display.keys == [(0x61, True), (0x61, False)]
    assert client.session.encodings == [1, 0]


async def test_rfb_unknown_message_ends_the_session_quietly():
    display = FakeDisplay()
    client = Client(display)
    await client.handshake()
    client.send(b"\x63")
    with pytest.raises(RfbError):
        await client.close()
    assert display.screen.on_damage == []  # the session let go of the screen


async def test_serve_logs_and_returns_on_a_non_rfb_peer(caplog):
    reader = asyncio.StreamReader()
    reader.feed_data(b"GET / HTTP/1.1\r\n")
    reader.feed_eof()
    sent = asyncio.StreamReader()
    writer = _writer(_Pipe(sent))
    display = FakeDisplay()
    with caplog.at_level(logging.INFO, logger="xapisim.rfb"):
        await asyncio.wait_for(serve(reader, writer, display, "vm"), 2)  # returns, and raises nothing
    writer.close()
    sent.feed_eof()
    assert await sent.read() == b"RFB 003.008\n"  # its greeting, then nothing: no security types
    assert display.screen.on_damage == [] and display.keys == []  # never attached to the screen
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "xapisim.rfb"] == [
        (logging.INFO, "console client of vm went away: not an RFB client: b'GET / HTTP/1'")
    ]
