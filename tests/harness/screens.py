"""A simulated VM console's screen as a VNC client reads it: the pixels text should have, and a wait for the
screen to show something (used by the simulator's console tests and the server's console proxy tests)."""

from __future__ import annotations

import asyncio
import time

import asyncvnc
import numpy as np

from xapisim.screen import BLACK, CELL_H, CELL_W, GREY, PALETTE, render_text


def expected(text: str, fg: int, bg: int) -> np.ndarray:
    """The RGB pixels of ``text`` drawn with the simulator's font."""
    palette = np.array(PALETTE, dtype=np.uint8)
    return palette[np.array([list(row) for row in render_text(text, fg, bg)], dtype=np.uint8)]


def shows(screen: np.ndarray, row: int, col: int, text: str, fg: int = GREY, bg: int = BLACK) -> bool:
    y, x = row * CELL_H, col * CELL_W
    return np.array_equal(screen[y : y + CELL_H, x : x + len(text) * CELL_W, :3], expected(text, fg, bg))


async def wait_for_screen(client: asyncvnc.Client, check, timeout: float = 5.0) -> np.ndarray:
    """Read incremental updates until the screen passes ``check``."""
    deadline = time.monotonic() + timeout
    while True:
        screen = client.video.as_rgba()
        if check(screen):
            return screen
        client.video.refresh()
        await asyncio.wait_for(client.read(), max(0.1, deadline - time.monotonic()))
