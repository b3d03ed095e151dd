"""The operation under way: one at a time (a lock across processes), each phase written to the journal
(``update_state/journal.json``) before it begins, and its progress reported.

The journal is what lets an updater killed at any moment finish at its next start (:mod:`.recovery`). That
start may run another release's code than the one that wrote the journal (an upgrade switches releases
halfway): the file's fields, their meaning and the names of operations and phases never change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ApplianceError
from ..layout import Layout, write_atomic

log = logging.getLogger(__name__)

#: Where progress goes: ``{"phase", "message", "percent"}`` events (a terminal bar, the service's stream).
Report = Callable[[dict[str, Any]], None]
#: How much of the whole each phase of an upgrade is, for a progress bar.
WEIGHTS = {
    "verify": 5,
    "unpack": 10,
    "install": 45,
    "snapshot": 5,
    "stop": 3,
    "backup": 5,
    "migrate": 5,
    "switch": 1,
    "start": 5,
    "health": 15,
    "commit": 1,
}
#: For tests: stop (SIGSTOP) the updater as it enters this phase, so a test can SIGKILL it exactly there.
STOP_AT_ENV = "PODIUM_UPDATE_STOP_AT"


@dataclass
class Journal:
    """The operation under way, as persisted before each phase."""

    operation: str  # "upgrade" or "rollback"
    target: str
    source: str | None  # the release running before (None at the first install)
    phase: str
    started: float = field(default_factory=time.time)
    restore_data: bool = True  # a rollback puts the backup of the data back
    bundle: str = ""


class Busy(ApplianceError):
    """Another update is under way."""


def journal_path(layout: Layout) -> Path:
    """Where the journal is kept while an operation is under way (absent otherwise)."""
    return layout.update_state / "journal.json"


def read_journal(layout: Layout) -> Journal | None:
    """The operation a killed updater left unfinished, if any."""
    path = journal_path(layout)
    try:
        return Journal(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise ApplianceError(f"the update journal {path} is unreadable: {e}") from e


class Steps:
    """How one appliance's update operations go: alone, each phase journaled before it begins, reported."""

    def __init__(self, layout: Layout, report: Report | None = None) -> None:
        self.layout = layout
        self.report = report or (lambda event: None)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One operation at a time, across processes (the service, a CLI run by hand)."""
        self.layout.update_state.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.layout.update_state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.pread(fd, 32, 0).decode(errors="replace").strip()
                raise Busy(f"another update is under way (process {other or '?'}); wait for it") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def enter(self, journal: Journal, phase: str, message: str) -> None:
        """Journal ``phase`` (durably), then say it has begun."""
        journal.phase = phase
        write_atomic(journal_path(self.layout), json.dumps(asdict(journal)) + "\n", mode=0o600)
        log.info("%s %s: %s", journal.operation, journal.target, message)
        self.progress(phase, message)
        if os.environ.get(STOP_AT_ENV) == f"{journal.operation}:{phase}":
            os.kill(os.getpid(), signal.SIGSTOP)  # a test SIGKILLs us here

    def progress(self, phase: str, message: str) -> None:
        """An event for the progress bar: the share of the whole done before this phase."""
        done = 0
        for name, weight in WEIGHTS.items():
            if name == phase:
                break
            done += weight
        percent = round(100 * done / sum(WEIGHTS.values()), 1)
        self.report({"phase": phase, "message": message, "percent": percent})

    def clear(self) -> None:
        """The operation is over, whichever way: no journal left to finish."""
        journal_path(self.layout).unlink(missing_ok=True)
