"""Unattended first boot: the ``vm-data/*`` keys that Xen Orchestra's deploy writes into XenStore.

``vm-data/admin-account`` (JSON ``{"email": …, "password": …}``), ``vm-data/ip``, ``netmask``, ``gateway``,
``dns``, ``ntp``. They are read once and erased (the password must not stay readable in XenStore). Where
no XenStore exists (tests, a laptop) a folder stands in: ``var/lib/podium-appliance/xenstore/vm-data/<key>``.
The guest metrics (:mod:`.guest_metrics`) write their keys through the same stores.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import system
from .errors import ApplianceError
from .layout import Layout, Settings
from .network import NetworkConfig, static_config

log = logging.getLogger(__name__)

KEYS = ("admin-account", "ip", "netmask", "gateway", "dns", "ntp")


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


@dataclass
class Deploy:
    """What the deploy asked for; ``problems`` are keys that were present but unusable."""

    admin_email: str = ""
    admin_password: str = ""
    network: NetworkConfig | None = None
    ntp: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing was asked."""
        return not (self.admin_email or self.network or self.ntp or self.problems)


def read_deploy(store: Store) -> Deploy:
    """Read the deploy keys (each checked), then erase them all: whatever they held, they are gone."""
    values = {key: store.read(f"vm-data/{key}") for key in KEYS}
    for key, value in values.items():
        if value is not None:
            store.remove(f"vm-data/{key}")
    deploy = Deploy()
    if values["admin-account"] is not None:
        _admin(deploy, values["admin-account"])
    if values["ip"]:
        try:
            deploy.network = static_config(
                values["ip"] or "", values["netmask"] or "", values["gateway"] or "", values["dns"] or ""
            )
        except ApplianceError as e:
            deploy.problems.append(f"vm-data/ip: {e.message}")
    if values["ntp"]:
        deploy.ntp = [s for s in values["ntp"].replace(",", " ").split() if s]
    present = [k for k, v in values.items() if v is not None]
    log.info("deploy keys found in XenStore: %s (erased)", ", ".join(present) or "none")
    return deploy


def _admin(deploy: Deploy, text: str) -> None:
    try:
        account = json.loads(text)
        email, password = account["email"], account["password"]
        if not (isinstance(email, str) and isinstance(password, str) and "@" in email and password):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        # Never echo the value: it holds a password.
        deploy.problems.append('vm-data/admin-account: expected JSON {"email": "…", "password": "…"}')
        return
    deploy.admin_email, deploy.admin_password = email.strip(), password
