"""XenStore, the key-value store a Xen guest shares with its host: the VM's own folder, read and written.

On Xen, the real store through xenstore-utils' commands. Where no XenStore exists (tests, a laptop) a folder
stands in, one file per key: ``var/lib/podium-appliance/xenstore/<key>``. First boot reads Xen
Orchestra's deploy keys from it (:mod:`podium_appliance.setup.deploy`), the guest metrics (:mod:`.guest_metrics`) write
their keys to it, and the updater reads the VM's own uuid (``vm``) from it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Protocol

from ..errors import ApplianceError
from ..layout import Layout, Settings
from . import system


class Store(Protocol):
    """Read, write and remove keys relative to the VM's own XenStore folder."""

    def read(self, key: str) -> str | None:
        """The key's value, or None when absent."""

    def write(self, key: str, value: str) -> None:
        """Set the key, making its parents as needed; an ApplianceError when the store refuses."""

    def remove(self, key: str) -> None:
        """Erase the key and the keys below it (absent is fine)."""


class CommandStore:
    """The real XenStore, through xenstore-read / xenstore-write / xenstore-rm (package xenstore-utils)."""

    def read(self, key: str) -> str | None:
        """The key's value, or None when absent."""
        done = subprocess.run(["xenstore-read", key], capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n") if done.returncode == 0 else None

    def write(self, key: str, value: str) -> None:
        """Set the key, making its parents as needed."""
        # "--": a value starting with "-" is not an option
        system.run(["xenstore-write", "--", key, value], f"writing {key} to XenStore", timeout=10)

    def remove(self, key: str) -> None:
        """Erase the key and the keys below it."""
        subprocess.run(["xenstore-rm", key], capture_output=True, check=False)


class FileStore:
    """A folder standing in for XenStore: one file per key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise ApplianceError(f"bad XenStore key {key!r}")
        return self.folder / key

    def read(self, key: str) -> str | None:
        """The key's value, or None when absent."""
        try:
            return self._path(key).read_text().rstrip("\n")
        except FileNotFoundError:
            return None

    def write(self, key: str, value: str) -> None:
        """Set the key, making its parents as needed."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)

    def remove(self, key: str) -> None:
        """Erase the key and the keys below it, as xenstore-rm does."""
        path = self._path(key)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def open_store(layout: Layout, settings: Settings) -> Store | None:
    """The XenStore this appliance has: the real one on Xen, else the stand-in folder if it exists."""
    real = shutil.which("xenstore-read") and (Path("/proc/xen").exists() or Path("/dev/xen/xenbus").exists())
    if settings.xenstore == "xenstore" or (settings.xenstore == "auto" and real):
        return CommandStore()
    if settings.xenstore in ("file", "auto") and layout.xenstore_standin.is_dir():
        return FileStore(layout.xenstore_standin)
    return None
