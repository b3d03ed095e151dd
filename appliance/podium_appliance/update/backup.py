"""The server's data, kept safe across an upgrade: its folder (and its database when that is PostgreSQL, see
:mod:`.pgdump`) copied to ``update_state/backups/<version>`` before the release ``<version>`` touches it,
and put back from there when the way back needs it. A backup is complete once its ``complete`` file is
written (last); one without it is never restored.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import tomllib
from pathlib import Path

from ..errors import ApplianceError
from ..layout import Layout, fsync_dir, fsync_tree, write_atomic
from . import pgdump


class DataBackups:
    """The backups of one appliance's server data, one folder per release that touched it."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.folder = layout.update_state / "backups"

    def _server_config(self) -> dict[str, object]:
        try:
            return tomllib.loads(self.layout.server_toml.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    def data_dir(self) -> Path:
        """The server's data folder, as its configuration names it."""
        # written by setup as the path the server opens (under the root prefix already)
        return Path(str(self._server_config().get("data_dir", self.layout.server_data)))

    def postgres_url(self) -> str:
        """The server's database URL when it is PostgreSQL (outside the data folder), else ""."""
        url = str(self._server_config().get("database_url", ""))
        return url if pgdump.is_postgres(url) else ""

    def data_size(self) -> int:
        """What a backup of the data folder takes (0 without one)."""
        return tree_size(self.data_dir()) if self.data_dir().exists() else 0

    def complete(self, version: str) -> bool:
        """A backup taken before ``version`` touched the data, through to its end."""
        return (self.folder / version / "complete").exists()

    def take(self, target: str) -> None:
        """The data as it is before ``target`` touches it; ``complete`` is written last."""
        dest = self.folder / target
        shutil.rmtree(dest, ignore_errors=True)
        data = self.data_dir()
        dest.mkdir(parents=True, mode=0o700)
        if data.exists():
            copy_tree(data, dest / "data")
        if url := self.postgres_url():
            pgdump.backup(url, dest)
        write_atomic(dest / "complete", json.dumps({"data_dir": str(data), "at": time.time()}) + "\n")

    def restore(self, target: str) -> None:
        """The data folder from the backup taken before ``target`` touched it: copied beside, then renamed
        over (the failed data is kept aside as ``<data>.failed-<target>`` for diagnosis)."""
        backup = self.folder / target
        if not self.complete(target):
            raise ApplianceError(f"the backup of the data taken before {target} is missing or incomplete")
        data = self.data_dir()
        restoring = data.with_name(f".{data.name}.restoring")
        failed = data.with_name(f"{data.name}.failed-{target}")
        shutil.rmtree(restoring, ignore_errors=True)
        if (backup / "data").exists():
            copy_tree(backup / "data", restoring)
        else:
            restoring.mkdir(mode=0o700)
        if pgdump.has_backup(backup) and (url := self.postgres_url()):
            pgdump.restore(url, backup)  # first: a failure here leaves the data folder as it was too
        if data.exists():
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(data, failed)
        os.rename(restoring, data)
        fsync_dir(data.parent)

    def prune(self, kept: set[str], sources: dict[str, str | None]) -> None:
        """Keep only the backups that are a way back between kept releases: a backup is the way back from
        its release to that release's ``source``."""
        if not self.folder.exists():
            return
        for backup in self.folder.iterdir():
            if backup.name not in kept or sources.get(backup.name) not in kept:
                shutil.rmtree(backup, ignore_errors=True)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder with modes, times and owners (the data belongs to the server's user), synced to disk."""
    shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
    if os.geteuid() == 0:
        for folder, _dirs, files in os.walk(dst):
            for name in [".", *files]:
                path = Path(folder, name)
                st = os.lstat(src / path.relative_to(dst))
                os.lchown(path, st.st_uid, st.st_gid)
    fsync_tree(dst)


def tree_size(path: Path) -> int:
    """The bytes of the files below ``path`` (those that vanish meanwhile not counted)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
