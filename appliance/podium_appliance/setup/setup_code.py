"""The one-time setup code: shown only on the VM's console, required by the wizard, erased when set up.

Whoever can see the console (the pool's administrator, in XO Lite, XenCenter or Podium itself) can claim
the appliance; someone who merely reaches its address on the network cannot. The code has 59 bits from an
alphabet without look-alike characters. Wrong codes are slowed down twice over (see :class:`Limiter`): per
client address, by a wait that grows but never exceeds a minute (someone sharing the administrator's
address behind NAT cannot lock them out), and for the whole appliance, by a rate that keeps guessing the
code hopeless. A new code (``podium-appliance setup-code --new`` at the console) lifts every wait. Every
attempt is logged with its address, never the code typed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import ApplianceError
from ..layout import Layout, write_atomic

log = logging.getLogger(__name__)

ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: read off a console and typed by hand
GROUPS, GROUP_LENGTH = 3, 4

# Why these limits make guessing hopeless: a code is 12 characters from 30, so there are
# 30**12 = 5.3e17 codes (58.9 bits). GLOBAL_RATE lets at most 10 wrong codes a second be checked on the
# whole appliance, whatever the number of addresses they come from (plus a burst of GLOBAL_BURST once):
# a year of guessing at that rate is 10 * 3.16e7 = 3.2e8 codes, a chance of 3.2e8 / 5.3e17 = 6e-10 of
# finding the code (6e-9 over ten years). The per-address wait keeps one noisy address from using up
# the global rate that everyone else shares; it is capped, so it is never a lockout. The table of
# addresses is bounded: someone with more addresses than it holds escapes the per-address wait, never the
# global rate. The counts live in the wizard's memory, for the current code: a new code starts afresh
# (its guesses are new ones), and so does a restarted wizard, which nobody on the network can cause.
FREE_FAILURES = 5  # per address: typing mistakes cost nothing ...
MAX_DELAY_SECONDS = 60.0  # ... then a wait of 1, 2, 4 … s after each wrong code, never more than this
FORGET_SECONDS = 3600.0  # an address quiet this long starts afresh
MAX_ADDRESSES = 4096  # the table is bounded: the address whose last failure is oldest is forgotten first
GLOBAL_RATE, GLOBAL_BURST = 10.0, 100.0  # wrong codes checked per second on the whole appliance
CONSOLE_HINT = (
    "At the appliance's console, 'podium-appliance setup-code --new' makes a new code and ends the wait."
)


@dataclass
class _Address:
    failures: int
    last: float


class Limiter:
    """How long a client must wait before its next code is checked; clock values from time.monotonic."""

    def __init__(self) -> None:
        self.addresses: OrderedDict[str, _Address] = OrderedDict()  # oldest last failure first
        self.tokens = GLOBAL_BURST
        self.refilled: float | None = None

    @staticmethod
    def key(client: str) -> str:
        """What is counted: the address, or for IPv6 its /64 (one host has a whole /64 to pick from)."""
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            return client
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)

    @staticmethod
    def delay(failures: int) -> float:
        """The wait after ``failures`` wrong codes from one address: capped, so never a lockout."""
        if failures < FREE_FAILURES:
            return 0.0
        return min(2.0 ** (failures - FREE_FAILURES), MAX_DELAY_SECONDS)

    def _refill(self, now: float) -> None:
        if self.refilled is not None:
            self.tokens = min(GLOBAL_BURST, self.tokens + (now - self.refilled) * GLOBAL_RATE)
        self.refilled = now

    def address_wait(self, key: str, now: float) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        entry = self.addresses.get(key)
        if entry is None:
            return 0.0
        if now - entry.last > FORGET_SECONDS:
            del self.addresses[key]
            return 0.0
        return max(0.0, entry.last + self.delay(entry.failures) - now)

    def global_wait(self, now: float) -> float:
        """Seconds before the appliance checks another code from anyone (0: now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / GLOBAL_RATE

    def failed(self, key: str, now: float) -> int:
        """Count a wrong code; returns how many ``key`` has typed (since it was last forgotten)."""
        self._refill(now)
        self.tokens = max(0.0, self.tokens - 1)
        entry = self.addresses.pop(key, None)
        if entry is None or now - entry.last > FORGET_SECONDS:
            entry = _Address(0, now)
        entry.failures += 1
        entry.last = now
        self.addresses[key] = entry  # the most recent at the end
        while len(self.addresses) > MAX_ADDRESSES:
            self.addresses.popitem(last=False)
        return entry.failures

    def succeeded(self, key: str) -> None:
        """The right code: that address starts afresh."""
        self.addresses.pop(key, None)


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
        self.limiter = Limiter()
        self._limited_code = ""  # the digest of the code the limiter counts for: a new code starts afresh

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
        """Accept the code typed by ``client`` or raise; wrong codes make the next ones wait (see Limiter)."""
        now = time.monotonic()
        code = self.current()
        if code is None:
            raise ApplianceError("This appliance has no setup code: it is set up already.")
        digest = hashlib.sha256(code.encode()).hexdigest()
        if digest != self._limited_code:  # a new code (setup-code --new): every wait is lifted
            self.limiter, self._limited_code = Limiter(), digest
        key = self.limiter.key(client)
        wait = self.limiter.address_wait(key, now)
        if wait > 0:
            log.warning(
                "setup code attempt from %s refused: wrong codes from its address, %.0f s to wait",
                client,
                wait,
            )
            raise ApplianceError(
                f"Too many wrong codes from your address: try again in {math.ceil(wait)} s. {CONSOLE_HINT}"
            )
        wait = self.limiter.global_wait(now)
        if wait > 0:
            log.warning("setup code attempt from %s refused: too many wrong codes on the appliance", client)
            raise ApplianceError(
                f"Too many wrong codes are being tried on this appliance: try again in {math.ceil(wait)} s."
                f" {CONSOLE_HINT}"
            )
        if not hmac.compare_digest(normalize(typed).encode(), code.encode()):
            count = self.limiter.failed(key, now)
            next_wait = self.limiter.delay(count)
            log.warning(
                "wrong setup code from %s (%d from its address; next attempt in %.0f s)",
                client,
                count,
                next_wait,
            )
            then = f" Wait {next_wait:.0f} s before the next try." if next_wait else ""
            raise ApplianceError(
                "That is not the setup code. It is shown on the appliance's console, as "
                f"'Podium setup code: XXXX-XXXX-XXXX'.{then}"
            )
        self.limiter.succeeded(key)
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
