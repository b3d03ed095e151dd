"""The one-time setup code: shown only on the VM's console, required by the wizard, erased when set up.

Whoever can see the console (the pool's administrator, in XO Lite, XenCenter or Podium itself) can claim
the appliance; someone who merely reaches its address on the network cannot. The code has 60 bits from an
alphabet without look-alike characters; a client that types wrong codes is slowed down, and every attempt is
logged with its address (never the code typed).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import deque

from .errors import ApplianceError
from .layout import Layout, write_atomic

log = logging.getLogger(__name__)

ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: read off a console and typed by hand
GROUPS, GROUP_LENGTH = 3, 4
MAX_FAILURES, WINDOW_SECONDS = 5, 60.0  # per client address


def generate() -> str:
    """A new code, ``XXXX-XXXX-XXXX``."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    return "-".join(chars[i : i + GROUP_LENGTH] for i in range(0, len(chars), GROUP_LENGTH))


def normalize(text: str) -> str:
    """What a person typed, as the code is stored: upper case, grouped (spaces and dashes anywhere)."""
    chars = "".join(c for c in text.upper() if c.isalnum())
    return "-".join(chars[i : i + GROUP_LENGTH] for i in range(0, len(chars), GROUP_LENGTH))


class SetupCode:
    """The code in its 0600 file, and the checks of codes typed in the wizard."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._failures: dict[str, deque[float]] = {}

    def current(self) -> str | None:
        """The code, or None when there is none (set up, or not generated yet)."""
        try:
            return self.layout.setup_code.read_text().strip() or None
        except FileNotFoundError:
            return None

    def ensure(self) -> str:
        """The code, generated the first time."""
        code = self.current()
        if code is None:
            code = generate()
            write_atomic(self.layout.setup_code, code + "\n", mode=0o600)
            log.info("a new setup code was generated (shown on the console)")
        return code

    def renew(self) -> str:
        """Replace the code (the console's answer to a code that may have been seen)."""
        self.erase()
        return self.ensure()

    def erase(self) -> None:
        """Forget the code for good (setup is complete)."""
        self.layout.setup_code.unlink(missing_ok=True)

    def check(self, client: str, typed: str) -> None:
        """Accept the code typed by ``client`` or raise; too many failures from one client wait."""
        now = time.monotonic()
        failures = self._failures.setdefault(client, deque())
        while failures and now - failures[0] > WINDOW_SECONDS:
            failures.popleft()
        if len(failures) >= MAX_FAILURES:
            wait = WINDOW_SECONDS - (now - failures[0])
            log.warning("setup code attempt from %s refused: too many wrong codes", client)
            raise ApplianceError(f"Too many wrong codes from your address: try again in {wait:.0f} s.")
        code = self.current()
        if code is None:
            raise ApplianceError("This appliance has no setup code: it is set up already.")
        if not hmac.compare_digest(normalize(typed).encode(), code.encode()):
            failures.append(now)
            log.warning("wrong setup code from %s (%d in the last minute)", client, len(failures))
            raise ApplianceError(
                "That is not the setup code. It is shown on the appliance's console, as "
                "'Podium setup code: XXXX-XXXX-XXXX'."
            )
        failures.clear()
        log.info("setup code accepted from %s", client)


def console_text(code: str, urls: list[str]) -> str:
    """The lines the console shows until setup is complete."""
    where = " or ".join(urls) if urls else "https://<this appliance's address>/"
    return f"Podium setup: open {where}\nPodium setup code: {code}\n"


def issue_text(code: str | None) -> str:
    """The getty issue text: agetty fills in the address (``\\4``) each time it shows the prompt."""
    lines = ["Podium appliance: https://\\4/"]
    if code:
        lines.append(f"Podium setup code: {code}")
    return "\n".join(lines) + "\n\n"


def write_issue(layout: Layout, code: str | None) -> None:
    """Show (or, with None, stop showing) the code above the console's login prompt."""
    write_atomic(layout.issue, issue_text(code), mode=0o600)  # agetty reads it as root


def require_code(layout: Layout) -> str:
    """The current code, or an error saying the appliance is set up already."""
    code = SetupCode(layout).current()
    if code is None:
        raise ApplianceError("no setup code: the appliance is set up already (or first boot has not run)")
    return code
