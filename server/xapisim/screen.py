"""A text screen drawn into an indexed framebuffer: a 5x8 bitmap font, the 16 VGA colours, damage rectangles.

The framebuffer holds one palette index per pixel (a ``bytearray``), so drawing is slicing and
``bytes.translate``, and converting to a client's pixel format is one translation per byte of pixel
(see :mod:`xapisim.rfb`). Characters sit in 12x16 cells: each glyph is drawn doubled (10x16) with a
column of background on either side, which gives 60 columns by 25 lines on a 720x400 screen, the size
of a VGA text console.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

WIDTH, HEIGHT = 720, 400
CELL_W, CELL_H = 12, 16
COLS, ROWS = WIDTH // CELL_W, HEIGHT // CELL_H

# The 16 colours of the VGA text palette, by index.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),  # black
    (0, 0, 170),  # blue
    (0, 170, 0),  # green
    (0, 170, 170),  # cyan
    (170, 0, 0),  # red
    (170, 0, 170),  # magenta
    (170, 85, 0),  # brown
    (170, 170, 170),  # grey
    (85, 85, 85),  # dark grey
    (85, 85, 255),  # light blue
    (85, 255, 85),  # light green
    (85, 255, 255),  # light cyan
    (255, 85, 85),  # light red
    (255, 85, 255),  # light magenta
    (255, 255, 85),  # yellow
    (255, 255, 255),  # white
)
BLACK, BLUE, GREY, WHITE, YELLOW = 0, 1, 7, 15, 14

# ASCII 32..126, eight rows of five pixels per glyph, each row one base-32 digit (bit 4 = leftmost pixel);
# the eighth row holds descenders. Drawn for this simulator.
_FONT = (
    "0000000044444040AAA00000AAVAVAA04FKE5U40OP248J30CIK8LID044800000248884208422248004LEL400044V4400"
    "0000C480000V000000000CC001248G00EHJLPHE04C4444E0EH1248V0V2421HE026AIV220VGU11HE068GUHHE0V1248880"
    "EHHEHHE0EHHF12C00CC0CC000CC0C480248G842000V0V00084212480EH124040EH1DLLE0EHHVHHH0UHHUHHU0EHGGGHE0"
    "SIHHHIS0VGGUGGV0VGGUGGG0EHGNHHF0HHHVHHH0E44444E072222IC0HIKOKIH0GGGGGGV0HRLLHHH0HHPLJHH0EHHHHHE0"
    "UHHUGGG0EHHHLID0UHHUKIH0FGGE11U0V4444440HHHHHHE0HHHHHA40HHHLLLA0HHA4AHH0HHHA4440V1248GV0E88888E0"
    "0G842100E22222E04AH00000000000V08420000000E1FHF0GGMPHHU000EGGHE011DJHHF000EHVGE0698S888000FHHF1E"
    "GGMPHHH040C444E0206222ICGGIKOKI0C44444E000QLLHH000MPHHH000EHHHE000UHHUGG00DJHF1100MPGGG000EGE1U0"
    "88S8896000HHHJD000HHHA4000HHLLA000HA4AH000HHHF1E00V248V0244844204444444084424480008L2000"
)
_FIRST, _LAST = 32, 126


def glyph(ch: str) -> list[int]:
    """The eight 5-bit rows of a character (unknown characters are drawn as ``?``)."""
    code = ord(ch)
    if not _FIRST <= code <= _LAST:
        code = ord("?")
    at = (code - _FIRST) * 8
    return [int(d, 32) for d in _FONT[at : at + 8]]


def _cell_rows(ch: str) -> list[bytes]:
    # 16 rows of 12 pixels, 0 for background and 1 for foreground: each font pixel becomes 2x2.
    rows = []
    for bits in glyph(ch):
        pixels = [0]
        for i in range(4, -1, -1):
            on = (bits >> i) & 1
            pixels += [on, on]
        pixels.append(0)
        line = bytes(pixels)
        rows += [line, line]
    return rows


_CELLS: dict[str, list[bytes]] = {chr(c): _cell_rows(chr(c)) for c in range(_FIRST, _LAST + 1)}
_COLOURS: dict[tuple[int, int], bytes] = {}


def _colour_table(fg: int, bg: int) -> bytes:
    table = _COLOURS.get((fg, bg))
    if table is None:
        table = _COLOURS[fg, bg] = bytes([bg, fg]) + bytes(254)
    return table


class Rect(NamedTuple):
    """A rectangle of pixels."""

    x: int
    y: int
    w: int
    h: int

    @property
    def empty(self) -> bool:
        """Whether it covers no pixel."""
        return self.w <= 0 or self.h <= 0

    def union(self, other: Rect) -> Rect:
        """The smallest rectangle holding both."""
        x, y = min(self.x, other.x), min(self.y, other.y)
        right = max(self.x + self.w, other.x + other.w)
        bottom = max(self.y + self.h, other.y + other.h)
        return Rect(x, y, right - x, bottom - y)

    def intersect(self, other: Rect) -> Rect:
        """The part of this rectangle inside ``other`` (possibly empty)."""
        x, y = max(self.x, other.x), max(self.y, other.y)
        right = min(self.x + self.w, other.x + other.w)
        bottom = min(self.y + self.h, other.y + other.h)
        return Rect(x, y, max(0, right - x), max(0, bottom - y))

    def minus(self, cut: Rect) -> list[Rect]:
        """What is left of this rectangle outside ``cut``: up to four rectangles."""
        inner = self.intersect(cut)
        if inner.empty:
            return [self]
        right, bottom = self.x + self.w, self.y + self.h
        pieces = [
            Rect(self.x, self.y, self.w, inner.y - self.y),  # above
            Rect(self.x, inner.y + inner.h, self.w, bottom - inner.y - inner.h),  # below
            Rect(self.x, inner.y, inner.x - self.x, inner.h),  # left
            Rect(inner.x + inner.w, inner.y, right - inner.x - inner.w, inner.h),  # right
        ]
        return [p for p in pieces if not p.empty]

    def touches(self, other: Rect) -> bool:
        """Whether the two overlap or share an edge (so their union wastes little)."""
        return (
            self.x <= other.x + other.w
            and other.x <= self.x + self.w
            and self.y <= other.y + other.h
            and other.y <= self.y + self.h
        )


FULL = Rect(0, 0, WIDTH, HEIGHT)


class Screen:
    """Lines of text with one colour pair per line, kept drawn in :attr:`pixels`; reports what it redraws."""

    def __init__(self, fg: int = GREY, bg: int = BLACK) -> None:
        self.pixels = bytearray(bytes([bg]) * (WIDTH * HEIGHT))
        self.text = [" " * COLS for _ in range(ROWS)]
        self.colours = [(fg, bg)] * ROWS
        self.cursor: tuple[int, int] | None = None  # (row, col) drawn in reverse video
        self.on_damage: list[Callable[[Rect], None]] = []

    def put(self, row: int, col: int, text: str) -> None:
        """Write ``text`` at a position (clipped to the line); only the cells that change are redrawn."""
        if not 0 <= row < ROWS or col >= COLS:
            return
        old = self.text[row]
        text = text[: COLS - col]
        new = old[:col] + text + old[col + len(text) :]
        if new == old:
            return
        first = next(i for i in range(COLS) if new[i] != old[i])
        last = next(i for i in range(COLS - 1, -1, -1) if new[i] != old[i])
        self.text[row] = new
        self._draw(row, first, last + 1)

    def line(self, row: int, text: str, fg: int | None = None, bg: int | None = None) -> None:
        """Replace a whole line, optionally with new colours."""
        colours = (
            fg if fg is not None else self.colours[row][0],
            bg if bg is not None else self.colours[row][1],
        )
        if colours != self.colours[row]:
            self.colours[row] = colours
            self.text[row] = text.ljust(COLS)[:COLS]
            self._draw(row, 0, COLS)
        else:
            self.put(row, 0, text.ljust(COLS))

    def scroll(self, top: int, bottom: int) -> None:
        """Move lines ``top+1 .. bottom`` up by one and blank line ``bottom`` (same colours kept)."""
        pos = self.cursor
        self.move_cursor(None)  # the reverse-video cell must not travel with its line
        self.text[top:bottom] = self.text[top + 1 : bottom + 1]
        self.text[bottom] = " " * COLS
        start, end = top * CELL_H * WIDTH, bottom * CELL_H * WIDTH
        self.pixels[start:end] = self.pixels[start + CELL_H * WIDTH : end + CELL_H * WIDTH]
        bg = self.colours[bottom][1]
        self.pixels[end : end + CELL_H * WIDTH] = bytes([bg]) * (CELL_H * WIDTH)
        self._damage(Rect(0, top * CELL_H, WIDTH, (bottom - top + 1) * CELL_H))
        self.move_cursor(pos)

    def move_cursor(self, pos: tuple[int, int] | None) -> None:
        """Show the cursor at ``(row, col)``, or hide it with None."""
        old, self.cursor = self.cursor, pos
        if old == pos:
            return
        if old is not None:
            self._draw(old[0], old[1], old[1] + 1)
        if pos is not None:
            self._draw(pos[0], pos[1], pos[1] + 1)

    def _draw(self, row: int, first: int, end: int) -> None:
        """Redraw cells ``first..end-1`` of a line into the framebuffer."""
        fg, bg = self.colours[row]
        chars = self.text[row][first:end]
        cells = [_CELLS.get(c) or _CELLS["?"] for c in chars]
        normal = _colour_table(fg, bg)
        reverse = _colour_table(bg, fg)
        cursor_at = self.cursor[1] - first if self.cursor is not None and self.cursor[0] == row else -1
        x, y = first * CELL_W, row * CELL_H
        width = (end - first) * CELL_W
        for py in range(CELL_H):
            strip = b"".join(cell[py] for cell in cells).translate(normal)
            if 0 <= cursor_at < len(cells):
                lo = cursor_at * CELL_W
                strip = strip[:lo] + cells[cursor_at][py].translate(reverse) + strip[lo + CELL_W :]
            at = (y + py) * WIDTH + x
            self.pixels[at : at + width] = strip
        self._damage(Rect(x, y, width, CELL_H))

    def _damage(self, rect: Rect) -> None:
        for callback in self.on_damage:
            callback(rect)

    def region(self, rect: Rect) -> bytearray:
        """The palette indexes of a rectangle, row after row."""
        if rect.x == 0 and rect.w == WIDTH:
            return self.pixels[rect.y * WIDTH : (rect.y + rect.h) * WIDTH]
        return bytearray().join(
            self.pixels[row * WIDTH + rect.x : row * WIDTH + rect.x + rect.w]
            for row in range(rect.y, rect.y + rect.h)
        )


def render_text(text: str, fg: int, bg: int) -> list[bytes]:
    """How a run of characters is drawn: CELL_H rows of palette indexes (for tests comparing pixels)."""
    table = _colour_table(fg, bg)
    cells = [_CELLS.get(c) or _CELLS["?"] for c in text]
    return [b"".join(cell[py] for cell in cells).translate(table) for py in range(CELL_H)]
