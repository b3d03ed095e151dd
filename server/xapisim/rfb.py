"""An RFB (VNC) server for one client over an asyncio stream, as the console of a simulated VM.

Speaks what a host's qemu or vncterm speaks to clients tunnelled through ``CONNECT /console``:
protocol 3.3, 3.7 or 3.8, security type None, the client's choice of pixel format (8, 16 or 32 bits,
true colour or a colour map), Raw rectangles (the encoding every client must accept), and
FramebufferUpdateRequest answered at once when not incremental and, when incremental, as soon as
something in the requested area changes, with only the rectangles that changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import astuple, dataclass
from functools import lru_cache
from typing import Protocol

from .screen import FULL, HEIGHT, PALETTE, WIDTH, Rect, Screen

log = logging.getLogger(__name__)

RAW = 0
_MAX_DAMAGE = 16  # more separate rectangles than this are sent as their bounding box
_MAX_CUT_TEXT = 1 << 20


class RfbError(Exception):
    """The client broke the protocol; the connection is closed."""


class Display(Protocol):
    """What a session shows and where its input goes."""

    screen: Screen

    def key(self, keysym: int, down: bool) -> None:
        """A key was pressed or released."""


@dataclass(frozen=True)
class PixelFormat:
    """An RFB PIXEL_FORMAT."""

    bpp: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    _STRUCT = struct.Struct(">BBBBHHHBBB3x")

    def pack(self) -> bytes:
        """The 16 bytes of the wire form."""
        return self._STRUCT.pack(*astuple(self))  # the fields in their wire order

    @classmethod
    def unpack(cls, data: bytes) -> PixelFormat:
        """Read the wire form, refusing formats no client may ask for."""
        bpp, depth, big, true, rmax, gmax, bmax, rshift, gshift, bshift = cls._STRUCT.unpack(data)
        fmt = cls(bpp, depth, bool(big), bool(true), rmax, gmax, bmax, rshift, gshift, bshift)
        if bpp not in (8, 16, 32):
            raise RfbError(f"bits-per-pixel must be 8, 16 or 32, not {bpp}")
        if fmt.true_colour and not (rmax and gmax and bmax):
            raise RfbError("a true-colour format needs non-zero colour maxima")
        if fmt.true_colour and max(rshift, gshift, bshift) >= bpp:
            raise RfbError("a colour shift lies outside the pixel")
        return fmt

    def pixel(self, index: int) -> int:
        """The pixel value of a palette entry: its colour scaled to the maxima, or the index itself."""
        if not self.true_colour:
            return index
        r, g, b = PALETTE[index]
        return (
            (r * self.red_max + 127) // 255 << self.red_shift
            | (g * self.green_max + 127) // 255 << self.green_shift
            | (b * self.blue_max + 127) // 255 << self.blue_shift
        )


# What the server announces in ServerInit: 32-bit little-endian xRGB, as qemu does.
SERVER_FORMAT = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)


Encoder = Callable[[bytes | bytearray, bytearray, int], None]


@lru_cache(maxsize=32)
def encoder(fmt: PixelFormat) -> Encoder:
    """A function writing palette indexes as pixels of ``fmt`` into a buffer at an offset.

    One ``bytes.translate`` per byte of pixel, each result written at every ``size``-th byte: C loops
    only, so a whole 720x400 screen at 32 bits takes a couple of milliseconds.
    """
    size = fmt.bpp // 8
    values = [fmt.pixel(i).to_bytes(size, "big" if fmt.big_endian else "little") for i in range(len(PALETTE))]
    tables = [bytes(v[k] for v in values) + bytes(256 - len(values)) for k in range(size)]

    def encode(indexes: bytes | bytearray, out: bytearray, at: int) -> None:
        end = at + len(indexes) * size
        for k, table in enumerate(tables):
            out[at + k : end : size] = indexes.translate(table)

    return encode


def merge(rects: list[Rect], new: Rect) -> list[Rect]:
    """Add a damaged rectangle to a list, joining it with those it touches; many become one."""
    for i, rect in enumerate(rects):
        if rect.touches(new):
            joined = rect.union(new)
            return merge(rects[:i] + rects[i + 1 :], joined)
    rects = [*rects, new]
    if len(rects) > _MAX_DAMAGE:
        box = rects[0]
        for rect in rects[1:]:
            box = box.union(rect)
        rects = [box]
    return rects


class Session:
    """One client of one display."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, display: Display, name: str
    ) -> None:
        self.reader, self.writer = reader, writer
        self.display = display
        self.name = name
        self.format = SERVER_FORMAT
        self.encode = encoder(SERVER_FORMAT)
        self.encodings: list[int] = [RAW]
        self.damage: list[Rect] = []
        self.wanted: Rect | None = None  # area of a pending FramebufferUpdateRequest
        self.full: Rect | None = None  # area a non-incremental request asked for in full
        self.wake = asyncio.Event()
        self.updates = 0

    async def run(self) -> None:
        """Greet the client, then serve it until it leaves or breaks the protocol."""
        await self._handshake()
        self.display.screen.on_damage.append(self._damaged)
        sender = asyncio.get_running_loop().create_task(self._send_updates(), name="rfb updates")
        try:
            await self._read_messages()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            with contextlib.suppress(ValueError):
                self.display.screen.on_damage.remove(self._damaged)

    async def _handshake(self) -> None:
        self.writer.write(b"RFB 003.008\n")
        version = await self.reader.readexactly(12)
        if not (version.startswith(b"RFB 003.") and version[8:11].isdigit() and version.endswith(b"\n")):
            raise RfbError(f"not an RFB client: {version!r}")
        minor = int(version[8:11])
        if minor < 7:
            self.writer.write(struct.pack(">I", 1))  # 3.3: the server picks None
        else:
            self.writer.write(b"\x01\x01")  # one security type: None
            (choice,) = await self.reader.readexactly(1)
            if choice != 1:
                if minor >= 8:
                    reason = b"security type not offered"
                    self.writer.write(struct.pack(">II", 1, len(reason)) + reason)
                raise RfbError(f"client chose security type {choice}")
            if minor >= 8:
                self.writer.write(struct.pack(">I", 0))  # SecurityResult OK
        await self.reader.readexactly(1)  # ClientInit: shared or not, every client shares here
        name = self.name.encode()
        self.writer.write(
            struct.pack(">HH", WIDTH, HEIGHT) + SERVER_FORMAT.pack() + struct.pack(">I", len(name)) + name
        )
        await self.writer.drain()

    async def _read_messages(self) -> None:
        read = self.reader.readexactly
        while True:
            try:
                (kind,) = await read(1)
            except asyncio.IncompleteReadError:
                return  # the client left
            if kind == 0:  # SetPixelFormat
                self._set_format(PixelFormat.unpack((await read(19))[3:]))
            elif kind == 2:  # SetEncodings
                (count,) = struct.unpack(">xH", await read(3))
                self.encodings = list(struct.unpack(f">{count}i", await read(4 * count)))
            elif kind == 3:  # FramebufferUpdateRequest
                incremental, x, y, w, h = struct.unpack(">BHHHH", await read(9))
                self._request(Rect(x, y, w, h).intersect(FULL), bool(incremental))
            elif kind == 4:  # KeyEvent
                down, keysym = struct.unpack(">B2xI", await read(7))
                self.display.key(keysym, bool(down))
            elif kind == 5:  # PointerEvent: a text console has no pointer
                await read(5)
            elif kind == 6:  # ClientCutText: ignored, as vncterm does
                (length,) = struct.unpack(">3xI", await read(7))
                if length > _MAX_CUT_TEXT:
                    raise RfbError(f"cut text of {length} bytes")
                await read(length)
            else:
                raise RfbError(f"unknown client message type {kind}")

    def _set_format(self, fmt: PixelFormat) -> None:
        self.format, self.encode = fmt, encoder(fmt)
        if not fmt.true_colour:  # SetColourMapEntries: the palette, so that pixel values are its indexes
            entries = b"".join(struct.pack(">HHH", r * 257, g * 257, b * 257) for r, g, b in PALETTE)
            self.writer.write(struct.pack(">BxHH", 1, 0, len(PALETTE)) + entries)

    def _request(self, area: Rect, incremental: bool) -> None:
        if area.empty:
            return
        self.wanted = area if self.wanted is None else self.wanted.union(area)
        if not incremental:
            self.full = area if self.full is None else self.full.union(area)
        self.wake.set()

    def _damaged(self, rect: Rect) -> None:
        self.damage = merge(self.damage, rect)
        if self.wanted is not None:
            self.wake.set()

    def take(self) -> list[Rect]:
        """The rectangles to send for the pending request now (none when nothing it covers changed)."""
        wanted = self.wanted
        if wanted is None:
            return []
        rects: list[Rect] = []
        keep: list[Rect] = []
        for rect in self.damage:
            part = rect.intersect(wanted)
            if not part.empty:
                rects = merge(rects, part)
            keep += rect.minus(wanted)  # still dirty outside the requested area
        self.damage = keep
        if self.full is not None:
            rects = [r for r in rects if r.intersect(self.full) != r]
            rects.insert(0, self.full)
            self.full = None
        if rects:
            self.wanted = None
        return rects

    def update(self, rects: list[Rect]) -> bytearray:
        """A FramebufferUpdate message with these rectangles, Raw-encoded from the screen as it is now."""
        size = self.format.bpp // 8
        out = bytearray(4 + sum(12 + r.w * r.h * size for r in rects))
        struct.pack_into(">BxH", out, 0, 0, len(rects))
        at = 4
        for rect in rects:
            struct.pack_into(">HHHHi", out, at, *rect, RAW)
            self.encode(self.display.screen.region(rect), out, at + 12)
            at += 12 + rect.w * rect.h * size
        return out

    async def _send_updates(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            rects = self.take()
            if rects:
                self.writer.write(self.update(rects))
                self.updates += 1
                await self.writer.drain()


async def serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, display: Display, name: str
) -> None:
    """Serve one RFB client on an established stream until it leaves; protocol errors end it quietly."""
    try:
        await Session(reader, writer, display, name).run()
    except (RfbError, asyncio.IncompleteReadError, ConnectionError) as e:
        log.info("console client of %s went away: %s", name, e or type(e).__name__)
