"""The text console of a simulated guest: a banner naming the VM, a login prompt, a tiny shell, a clock.

One :class:`Terminal` per running VM is shared by every client of its consoles, as the guest's one tty
is shared by vncterm and the text console on a real host: keys typed by one client show on all. The
status line shows the VM's name and a clock; the clock and the cursor's blink change the screen every
``tick`` (driven from outside through :meth:`Terminal.tick`, so tests can leave it still).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from .screen import BLACK, BLUE, COLS, GREY, ROWS, WHITE, Screen

# X11 keysyms a text console reacts to.
RETURN, KP_ENTER, BACKSPACE = 0xFF0D, 0xFF8D, 0xFF08
CONTROL_L, CONTROL_R = 0xFFE3, 0xFFE4

STATUS_ROW = 0  # the status line: VM name on the left, clock on the right
TOP, BOTTOM = 1, ROWS - 1  # the scrolling text area
NAME_COL = 1
CLOCK_WIDTH = 8
KERNEL = "4.19.0+1"


def hostname_of(name_label: str) -> str:
    """A guest hostname derived from a VM's name, as an installer would propose it."""
    return re.sub(r"[^a-z0-9-]+", "-", name_label.lower()).strip("-")[:32] or "localhost"


def banner(name: str, uuid: str, host: str) -> list[str]:
    """The lines a freshly started console shows above its login prompt."""
    return [
        "",
        "Simulated guest console (xapisim)",
        f"VM:   {name}",
        f"UUID: {uuid}",
        f"Host: {host}",
        f"Kernel {KERNEL} on an x86_64",
        "",
    ]


class Terminal:
    """A guest's console: draws into :attr:`screen`, takes keys, writes its output to listeners too."""

    def __init__(
        self, name: str, uuid: str, host: str, hostname: str = "", now: Callable[[], float] = time.time
    ) -> None:
        self.screen = Screen(GREY, BLACK)
        self.name, self.uuid, self.host = name, uuid, host
        self.hostname = hostname or hostname_of(name)
        self.now = now
        self.host_ref = ""  # where the domain whose console this is runs (set by its owner)
        self.on_output: list[Callable[[str], None]] = []  # text as a serial console would carry it
        self.row, self.col = TOP, 0
        self.mode = "login"  # login, password or shell
        self.user = ""
        self.prompt = ""
        self.input = ""
        self.ctrl = False
        self.blink_on = True
        self.clock = ""
        self._status()
        self._start()

    # -- output --------------------------------------------------------------------------------
    def _status(self) -> None:
        self.clock = time.strftime("%H:%M:%S", time.gmtime(self.now()))
        room = COLS - CLOCK_WIDTH - NAME_COL - 2
        name = self.name if len(self.name) <= room else self.name[: room - 1] + "~"
        left = " " * NAME_COL + name
        self.screen.line(STATUS_ROW, left.ljust(COLS - CLOCK_WIDTH - 1) + self.clock + " ", WHITE, BLUE)

    def write(self, text: str) -> None:
        """Print text at the cursor: newlines start a line, the area scrolls, long lines wrap."""
        for n, part in enumerate(text.split("\n")):
            if n:
                self._newline()
            while part:
                room = COLS - self.col
                self.screen.put(self.row, self.col, part[:room])
                self.col += min(room, len(part))
                part = part[room:]
                if self.col >= COLS:
                    self._newline()
        for listener in self.on_output:
            listener(text.replace("\n", "\r\n"))
        self._show_cursor()

    def _newline(self) -> None:
        self.col = 0
        if self.row < BOTTOM:
            self.row += 1
        else:
            self.screen.scroll(TOP, BOTTOM)

    def clear(self) -> None:
        """Blank the text area and put the cursor at its top."""
        for row in range(TOP, BOTTOM + 1):
            self.screen.put(row, 0, " " * COLS)
        self.row, self.col = TOP, 0
        for listener in self.on_output:
            listener("\x1b[H\x1b[2J")
        self._show_cursor()

    def _show_cursor(self) -> None:
        self.screen.move_cursor((self.row, self.col) if self.blink_on and self.col < COLS else None)

    def _ask(self, prompt: str) -> None:
        self.prompt, self.input = prompt, ""
        self.write(prompt)

    def _start(self) -> None:
        self.mode, self.user = "login", ""
        self.write("\n".join(banner(self.name, self.uuid, self.host)) + "\n")
        self._ask(f"{self.hostname} login: ")

    # -- input ---------------------------------------------------------------------------------
    def key(self, keysym: int, down: bool) -> None:
        """A key was pressed (``down``) or released; printable keys, Return, BackSpace and Ctrl-C/L act."""
        if keysym in (CONTROL_L, CONTROL_R):
            self.ctrl = down
            return
        if not down:
            return
        if self.ctrl and keysym in (ord("c"), ord("C")):
            self.write("^C\n")
            self._prompt_again()
        elif self.ctrl and keysym in (ord("l"), ord("L")):
            self.clear()
            self._ask(self.prompt)
        elif keysym in (RETURN, KP_ENTER):
            self._enter()
        elif keysym == BACKSPACE:
            self._backspace()
        elif 0x20 <= keysym <= 0x7E and self.col < COLS - 1:
            self.input += chr(keysym)
            if self.mode != "password":
                self.write(chr(keysym))

    def _backspace(self) -> None:
        if not self.input:
            return
        self.input = self.input[:-1]
        if self.mode != "password" and self.col > 0:
            self.col -= 1
            self.screen.put(self.row, self.col, " ")
            for listener in self.on_output:
                listener("\b \b")
            self._show_cursor()

    def _prompt_again(self) -> None:
        if self.mode == "shell":
            self._ask(self._shell_prompt())
        else:
            self._start()

    def _shell_prompt(self) -> str:
        return f"[{self.user}@{self.hostname} ~]{'#' if self.user == 'root' else '$'} "

    def _enter(self) -> None:
        line = self.input
        self.write("\n")
        if self.mode == "login":
            if not line.strip():
                self._ask(self.prompt)
                return
            self.user, self.mode = line.strip(), "password"
            self._ask("Password: ")
        elif self.mode == "password":
            self.mode = "shell"
            self.write(f"Last login: {time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime(self.now()))}\n")
            self._ask(self._shell_prompt())
        else:
            self._run(line.strip())

    def _run(self, command: str) -> None:
        word, _, rest = command.partition(" ")
        if word in ("exit", "logout"):
            self.clear()
            self._start()
            return
        if word == "clear":
            self.clear()
        elif word == "echo":
            self.write(rest + "\n")
        elif word == "hostname":
            self.write(self.hostname + "\n")
        elif word == "whoami":
            self.write(self.user + "\n")
        elif word == "uname":
            full = f"Linux {self.hostname} {KERNEL} #1 SMP x86_64 GNU/Linux"
            self.write((full if rest.strip() == "-a" else "Linux") + "\n")
        elif word == "date":
            self.write(time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(self.now())) + "\n")
        elif word:
            self.write(f"-bash: {word}: command not found\n")
        self._ask(self._shell_prompt())

    # -- time ----------------------------------------------------------------------------------
    def tick(self) -> None:
        """Let time pass: the cursor blinks and the clock shows the new second."""
        self.blink_on = not self.blink_on
        self._show_cursor()
        if time.strftime("%H:%M:%S", time.gmtime(self.now())) != self.clock:
            self._status()


async def serve_text(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, term: Terminal) -> None:
    """A vt100 console: the guest tty's bytes both ways (what xenconsoled's pty carries)."""

    def out(text: str) -> None:
        if not writer.is_closing():
            writer.write(text.encode())

    term.on_output.append(out)
    try:
        out("\r\n" + term.prompt + ("" if term.mode == "password" else term.input))
        last = 0
        while data := await reader.read(4096):
            for byte in data:
                if byte == 0x0A and last == 0x0D:
                    pass  # CR LF is one Return
                elif byte in (0x0D, 0x0A):
                    term.key(RETURN, True)
                elif byte in (0x08, 0x7F):
                    term.key(BACKSPACE, True)
                elif byte < 0x20:  # control characters: Ctrl-<letter>
                    term.key(CONTROL_L, True)
                    term.key(byte + 0x60, True)
                    term.key(CONTROL_L, False)
                else:
                    term.key(byte, True)
                last = byte
            await writer.drain()
    finally:
        term.on_output.remove(out)
