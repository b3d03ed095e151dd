"""What is installed and what happened: the releases and ``current``, the updater's state (history, versions
that failed, where each release came from), and the status both show."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from ..errors import ApplianceError
from ..layout import Layout, fsync_dir, write_atomic
from .journal import read_journal

log = logging.getLogger(__name__)


def version_key(text: str) -> Version:
    """A release's version, comparable; an error naming it when it is not a version."""
    try:
        return Version(text)
    except InvalidVersion:
        raise ApplianceError(f"{text!r} is not a release version") from None


@dataclass
class Outcome:
    """What an operation ended with, for the status and the history."""

    operation: str
    ok: bool
    running: str | None  # the release running at the end
    message: str
    source: str | None = None
    target: str | None = None
    at: float = field(default_factory=time.time)


class Releases:
    """The installed releases and the ``current`` symlink."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def path(self, version: str) -> Path:
        return self.layout.releases / version

    @property
    def staging(self) -> Path:
        """Where a bundle's payload is unpacked before its release is installed (gone in between)."""
        return self.layout.releases / ".staging"

    def complete(self, version: str) -> bool:
        """Installed through to its last file (``release.json`` is written last)."""
        return (self.path(version) / "release.json").is_file()

    def current(self) -> str | None:
        """The version ``current`` points to, or None before the first install."""
        try:
            return Path(os.readlink(self.layout.current)).name
        except FileNotFoundError:
            return None

    def installed(self) -> list[str]:
        """Complete releases, oldest version first."""
        if not self.layout.releases.is_dir():
            return []
        found = []
        for entry in self.layout.releases.iterdir():
            if not entry.name.startswith(".") and self.complete(entry.name):
                with contextlib.suppress(ApplianceError):
                    version_key(entry.name)
                    found.append(entry.name)
        return sorted(found, key=version_key)

    def holds(self, version: str, payload_sha256: str) -> bool:
        """Whether ``version`` is installed, complete, from this very payload (the same build)."""
        return (
            self.complete(version) and self.info(version).get("payload", {}).get("sha256") == payload_sha256
        )

    def info(self, version: str) -> dict[str, Any]:
        """The manifest a release was installed from, and when."""
        data: dict[str, Any] = json.loads((self.path(version) / "release.json").read_text())
        return data

    def switch(self, version: str) -> None:
        """Point ``current`` at a release: a new symlink renamed over the old one, so it is one or the other."""
        link = self.layout.current
        tmp = link.with_name(f".{link.name}.new")
        tmp.unlink(missing_ok=True)
        os.symlink(f"releases/{version}", tmp)
        os.replace(tmp, link)
        fsync_dir(link.parent)

    def remove(self, version: str) -> None:
        """Delete a release (first renamed aside, so a half-deleted one never looks complete)."""
        path = self.path(version)
        if not path.exists():
            return
        aside = path.with_name(f".removing-{version}")
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(path, aside)
        shutil.rmtree(aside, ignore_errors=True)


class State:
    """The updater's memory: releases it installed (from which, with which backup), versions that failed
    their health check, the last outcome and check. ``update_state/state.json``, written atomically."""

    def __init__(self, layout: Layout) -> None:
        self.path = layout.update_state / "state.json"
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.data = {}
        except (OSError, ValueError) as e:
            log.error("update state %s unreadable (%s): starting afresh", self.path, e)
            self.data = {}
        self.data.setdefault("releases", {})
        self.data.setdefault("bad", [])
        self.data.setdefault("history", [])

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1) + "\n", mode=0o600)

    def record(self, outcome: Outcome) -> None:
        self.data["last"] = asdict(outcome)
        self.data["history"] = [*self.data["history"], asdict(outcome)][-20:]
        self.save()


def status(layout: Layout) -> dict[str, Any]:
    """What is installed, what runs, what happened last (no network, no lock: always answers)."""
    releases = Releases(layout)
    state = State(layout)
    journal = None
    with contextlib.suppress(ApplianceError):
        journal = read_journal(layout)
    return {
        "current": releases.current(),
        "installed": releases.installed(),
        "bad": state.data["bad"],
        "last": state.data.get("last"),
        "last_check": state.data.get("last_check"),
        "interrupted": asdict(journal) if journal else None,
        "python": sys.version.split()[0],
    }
