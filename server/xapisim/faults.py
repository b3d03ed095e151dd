"""Failures a test asks for through the control surface: a XAPI call, or a raw disk upload, that fails on demand.

A fault names what it fails: a method (``VBD.create``; it matches the plain call and ``Async.VBD.create``
alike, under either of xapi's names: ``VBD_create`` too) or a transfer path, ``/import_raw_vdi`` or
``/export``. It carries the XAPI error to raise (code, then parameters), how many matching calls pass
first (``skip``) and how many then fail (``times``; 0: every one until the faults are cleared). A call
that meets a fault fails after xapi's own checks (method, parameter count, session, types), changing
nothing: its error comes on the wire, or on the task of an ``Async`` call. An upload to
``/import_raw_vdi`` that meets one fails as a disk write error would: the body is read, then the task
fails with the error (the answer was HTTP 200, before the body, as xapi's). An ``/export`` that meets one
fails as a disk read error after the last disk: the XVA stops before its end, the connection closes as
after a whole one, and only the task says it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import Failure

TRANSFER_PATHS = ("/import_raw_vdi", "/export")


@dataclass
class Fault:
    """One pending fault."""

    method: str
    error: list[str]
    skip: int = 0
    times: int = 1
    fired: int = 0

    def describe(self) -> dict[str, Any]:
        """The fault as the control surface shows it."""
        return {
            "method": self.method,
            "error": self.error,
            "skip": self.skip,
            "times": self.times,
            "fired": self.fired,
        }


class Faults:
    """The simulator's pending faults, in the order they were asked for."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Arm a fault."""
        self._pending.append(fault)

    def take(self, method: str) -> Failure | None:
        """The failure a call of ``method`` must end in now, if a fault says so (counting it)."""
        for fault in self._pending:
            if fault.method != method:
                continue
            if fault.skip > 0:
                fault.skip -= 1
                return None
            fault.fired += 1
            if fault.times and fault.fired >= fault.times:
                self._pending.remove(fault)
            return Failure(fault.error[0], *fault.error[1:])
        return None

    def clear(self) -> int:
        """Forget every pending fault; returns how many there were."""
        count = len(self._pending)
        self._pending.clear()
        return count

    def describe(self) -> list[dict[str, Any]]:
        """The pending faults as the control surface shows them."""
        return [f.describe() for f in self._pending]
