"""The console's font, framebuffer drawing, damage reports and the guest terminal's behaviour."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xapisim.screen import (
    BLACK,
    BLUE,
    CELL_H,
    CELL_W,
    COLS,
    FULL,
    GREY,
    HEIGHT,
    WHITE,
    WIDTH,
    Rect,
    Screen,
    glyph,
    render_text,
)
from xapisim.terminal import BACKSPACE, CONTROL_L, RETURN, STATUS_ROW, TOP, Terminal, banner

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def cell_pixels(screen: Screen, row: int, col: int, width: int = 1) -> list[bytes]:
    x, y = col * CELL_W, row * CELL_H
    return [
        bytes(screen.pixels[(y + r) * WIDTH + x : (y + r) * WIDTH + x + width * CELL_W])
        for r in range(CELL_H)
    ]


def text_of(term: Terminal, row: int) -> str:
    return term.screen.text[row].rstrip()


def test_font_draws_letters_as_their_shapes():
    # 'T': a full top bar, then the middle column only; 'L': the left column, then a full bottom bar.
    assert glyph("T")[:7] == [0b11111, *[0b00100] * 6]
    assert glyph("L")[:7] == [*[0b10000] * 6, 0b11111]
    assert glyph(" ") == [0] * 8
    assert glyph("\u00e9") == glyph("?")  # outside the font: shown as '?'
    assert len({tuple(glyph(chr(c))) for c in range(33, 127)}) == 94  # every printable glyph is distinct


def test_screen_put_draws_glyphs_doubled_with_colours():
    screen = Screen(GREY, BLACK)
    screen.put(3, 5, "Hi")
    pixels = cell_pixels(screen, 3, 5, 2)
    assert pixels == render_text("Hi", GREY, BLACK)
    # 'H' row 0 is #...# : each font pixel is 2x2, one background column on each side of the cell
    assert pixels[0][:CELL_W] == bytes(
        [BLACK, GREY, GREY, BLACK, BLACK, BLACK, BLACK, BLACK, BLACK, GREY, GREY, BLACK]
    )
    assert pixels[0] == pixels[1]
    assert set(bytes(screen.pixels[: 3 * CELL_H * WIDTH])) == {BLACK}  # nothing above


def test_screen_reports_only_changed_cells():
    screen = Screen()
    damage: list[Rect] = []
    screen.on_damage.append(damage.append)
    screen.put(2, 0, "hello")
    assert damage == [Rect(0, 2 * CELL_H, 5 * CELL_W, CELL_H)]
    damage.clear()
    screen.put(2, 0, "help!")  # only the last two characters change
    assert damage == [Rect(3 * CELL_W, 2 * CELL_H, 2 * CELL_W, CELL_H)]
    damage.clear()
    screen.put(2, 0, "help!")
    assert damage == []


def test_screen_line_colours_and_scroll():
    screen = Screen()
    screen.line(0, "status", WHITE, BLUE)
    assert cell_pixels(screen, 0, 0, 6) == render_text("status", WHITE, BLUE)
    assert screen.pixels[(CELL_H - 1) * WIDTH + WIDTH - 1] == BLUE  # the whole line takes the colours
    screen.put(5, 0, "five")
    screen.put(6, 0, "six")
    damage: list[Rect] = []
    screen.on_damage.append(damage.append)
    screen.scroll(5, 6)
    assert screen.text[5].rstrip() == "six" and screen.text[6].strip() == ""
    assert cell_pixels(screen, 5, 0, 3) == render_text("six", GREY, BLACK)
    assert set(b for row in cell_pixels(screen, 6, 0, COLS) for b in row) == {BLACK}
    assert Rect(0, 5 * CELL_H, WIDTH, 2 * CELL_H) in damage


def test_screen_cursor_is_reverse_video():
    screen = Screen()
    screen.put(1, 0, "ab")
    screen.move_cursor((1, 1))
    assert cell_pixels(screen, 1, 1) == render_text("b", BLACK, GREY)
    screen.move_cursor(None)
    assert cell_pixels(screen, 1, 1) == render_text("b", GREY, BLACK)


def test_rect_minus_leaves_the_outside():
    rect = Rect(0, 0, 10, 10)
    pieces = rect.minus(Rect(2, 3, 4, 4))
    assert sum(p.w * p.h for p in pieces) == 100 - 16
    assert all(p.intersect(Rect(2, 3, 4, 4)).empty for p in pieces)
    assert rect.minus(Rect(20, 20, 5, 5)) == [rect]
    assert rect.minus(FULL) == []


@given(
    st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(1, 30), st.integers(1, 30)),
    st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(1, 30), st.integers(1, 30)),
)
def test_rect_minus_covers_exactly_the_difference(a, b):
    rect, cut = Rect(*a), Rect(*b)
    pieces = rect.minus(cut)
    covered = {(x, y) for p in pieces for x in range(p.x, p.x + p.w) for y in range(p.y, p.y + p.h)}
    expected = {
        (x, y)
        for x in range(rect.x, rect.x + rect.w)
        for y in range(rect.y, rect.y + rect.h)
        if not (cut.x <= x < cut.x + cut.w and cut.y <= y < cut.y + cut.h)
    }
    assert covered == expected
    assert sum(p.w * p.h for p in pieces) == len(expected)  # no overlap


def make_terminal(name: str = "web-01 (prod)") -> Terminal:
    return Terminal(name, "6fa82329-d329-2b0f-a13a-8b8bde847ee1", "dt16", now=lambda: NOW)


def type_keys(term: Terminal, text: str) -> None:
    for ch in text:
        term.key(ord(ch), True)
        term.key(ord(ch), False)


def test_terminal_shows_name_uuid_and_login_prompt():
    term = make_terminal()
    assert text_of(term, STATUS_ROW) == " web-01 (prod)".ljust(COLS - 9) + "22:13:20"
    lines = [text_of(term, r) for r in range(TOP, TOP + 8)]
    assert lines[: len(banner("web-01 (prod)", "6fa82329-d329-2b0f-a13a-8b8bde847ee1", "dt16"))] == banner(
        "web-01 (prod)", "6fa82329-d329-2b0f-a13a-8b8bde847ee1", "dt16"
    )
    assert lines[7] == "web-01-prod login:"
    assert term.screen.cursor == (TOP + 7, len("web-01-prod login: "))


def test_terminal_login_then_shell_with_echo_and_backspace():
    term = make_terminal()
    row = term.row
    type_keys(term, "rooX")
    term.key(BACKSPACE, True)
    type_keys(term, "t")
    assert text_of(term, row) == "web-01-prod login: root"
    term.key(RETURN, True)
    type_keys(term, "s3cret")
    assert text_of(term, row + 1) == "Password:"  # not echoed
    term.key(RETURN, True)
    assert text_of(term, row + 2).startswith("Last login: Tue Nov 14 22:13:20 2023")
    type_keys(term, "echo hello")
    term.key(RETURN, True)
    assert text_of(term, row + 3) == "[root@web-01-prod ~]# echo hello"
    assert text_of(term, row + 4) == "hello"
    type_keys(term, "frobnicate")
    term.key(RETURN, True)
    assert text_of(term, row + 6) == "-bash: frobnicate: command not found"
    term.key(CONTROL_L, True)
    type_keys(term, "l")
    term.key(CONTROL_L, False)
    assert text_of(term, TOP) == "[root@web-01-prod ~]#" and text_of(term, TOP + 1) == ""


def test_terminal_scrolls_at_the_bottom():
    term = make_terminal()
    type_keys(term, "u")
    term.key(RETURN, True)
    term.key(RETURN, True)
    for n in range(40):
        type_keys(term, f"echo {n}")
        term.key(RETURN, True)
    assert term.row == HEIGHT // CELL_H - 1
    assert text_of(term, term.row - 1) == "39"
    assert text_of(term, STATUS_ROW).startswith(" web-01 (prod)")  # the status line does not scroll


def test_terminal_tick_blinks_and_moves_the_clock():
    clock = [NOW]
    term = Terminal("vm", "uuid", "host", now=lambda: clock[0])
    damage: list[Rect] = []
    term.screen.on_damage.append(damage.append)
    cursor = term.screen.cursor
    term.tick()
    assert term.screen.cursor is None and damage == [
        Rect(cursor[1] * CELL_W, cursor[0] * CELL_H, CELL_W, CELL_H)
    ]
    damage.clear()
    clock[0] += 1
    term.tick()
    assert term.screen.cursor == cursor
    assert text_of(term, STATUS_ROW).endswith("22:13:21")
    assert all(r.y == 0 or r.y == cursor[0] * CELL_H for r in damage)  # only the cursor and the clock changed
    assert 0 < sum(r.w for r in damage if r.y == 0) <= 2 * CELL_W  # one digit of the clock


@pytest.mark.parametrize("name", ["x" * 80, "Ünïcode VM"])
def test_terminal_survives_long_and_unusual_names(name):
    term = make_terminal(name)
    assert text_of(term, STATUS_ROW).endswith("22:13:20")  # the clock is never overwritten
    assert term.hostname
