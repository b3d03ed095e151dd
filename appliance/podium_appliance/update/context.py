"""What every update operation of one appliance works with: its layout and settings, the updater's settings,
the installed releases, the data's backups and the steps (lock, journal, progress); and the one move both
ways make, switching ``current`` to a release with its own system files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..box.system import run
from ..layout import Layout, Settings, write_atomic
from .backup import DataBackups
from .config import UpdateConfig
from .journal import Report, Steps
from .releases import Releases


@dataclass
class Context:
    """One appliance, as its update operations see it."""

    layout: Layout
    settings: Settings
    config: UpdateConfig
    releases: Releases
    backups: DataBackups
    steps: Steps

    @classmethod
    def load(
        cls,
        layout: Layout,
        settings: Settings | None = None,
        config: UpdateConfig | None = None,
        report: Report | None = None,
    ) -> Context:
        """The appliance under ``layout``, its settings read from its files unless given."""
        return cls(
            layout,
            settings or layout.settings(),
            config or UpdateConfig.load(layout),
            Releases(layout),
            DataBackups(layout),
            Steps(layout, report),
        )

    @property
    def server_set_up(self) -> bool:
        """The server has a configuration (setup is complete or under way): it runs and must keep running."""
        return self.layout.server_toml.exists()

    def switch_to(self, version: str) -> None:
        """Make ``version`` the running release's files: ``current``, then its system files."""
        self.releases.switch(version)
        self._sync_rootfs(version)

    def _sync_rootfs(self, version: str) -> None:
        """Put the release's own files (systemd units, …) in place; configuration files only when absent.
        Files the previous release installed and this one does not have are removed."""
        rootfs = self.releases.path(version) / "rootfs"
        record = self.layout.update_state / "rootfs-files.json"
        try:
            before = set(json.loads(record.read_text()))
        except (OSError, ValueError):
            before = set()
        now: set[str] = set()
        units_changed = False
        if rootfs.is_dir():
            for path in sorted(p for p in rootfs.rglob("*") if p.is_file() and not p.is_symlink()):
                rel = path.relative_to(rootfs).as_posix()
                dest = self.layout.path(rel)
                content = path.read_bytes()
                if rel.startswith("etc/podium/"):
                    if not dest.exists():
                        write_atomic(dest, content, mode=0o644)
                    continue
                now.add(rel)
                if not dest.exists() or dest.read_bytes() != content:
                    write_atomic(dest, content, mode=path.stat().st_mode & 0o7777)
                    units_changed |= "systemd" in rel
        for rel in sorted(before - now):
            self.layout.path(rel).unlink(missing_ok=True)
            units_changed |= "systemd" in rel
        write_atomic(record, json.dumps(sorted(now)) + "\n", mode=0o600)
        if units_changed:
            run(self.settings.command("units_reload"), "reloading systemd's units")
