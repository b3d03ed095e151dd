"""The way forward: a release installed from a bundle, verified first, then unpacked with its own venv, the
appliance's VM snapshotted, the server stopped, its data backed up (:mod:`.backup`) and migrated by the new
release, ``current`` switched atomically, the server started and its health checked (:mod:`.health`), and
the release committed.

Nothing is touched before the bundle is verified (signature, key, payload, channel, version, disk space).
Each phase is journaled before it begins (:mod:`.journal`); a failure in any phase takes the way back
(:mod:`.rollback`), and so does the next start after a kill before the commit (:mod:`.recovery`).

Releases live in ``opt/podium/releases/<version>``: a venv made at that path (so its scripts keep pointing
at it whatever ``current`` says), the appliance files in ``rootfs/``, and ``release.json``, written last,
which marks it complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from ..box.server import ServerApi, admin_command
from ..box.system import run, run_async
from ..box.xenstore import open_store
from ..errors import ApplianceError
from ..layout import write_atomic
from . import health, pgdump
from .bundle import Manifest, extract_payload, mib, verify_bundle
from .context import Context
from .journal import Journal
from .releases import Outcome, State
from .rollback import WayBack
from .signing import Keyring, UpdateRefused

log = logging.getLogger(__name__)

#: The phases of an upgrade, in order. Until ``commit`` the way back is taken on failure.
PHASES = ("unpack", "install", "snapshot", "stop", "backup", "migrate", "switch", "start", "health", "commit")
SNAPSHOT_PREFIX = "podium-update "


def release_env() -> dict[str, str]:
    """The environment for a release's pip and Python: nothing of the caller's Python settings. A PYTHONPATH
    (the image build runs the first install from unpacked wheels on it) would make pip see Podium as installed
    already and install nothing, and the trial import succeed on code outside the release."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull}


def readable_by_all(tree: Path) -> None:
    """Open a release's code to every user (go+rX, go-w), whatever the umask it was made under: the updater
    runs with systemd's UMask=0077, the server as its own user, and a release holds no secret."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o7777
        wanted = 0o055 if path.is_dir() or mode & 0o100 else 0o044
        if (mode | wanted) & ~0o022 != mode:
            os.chmod(path, (mode | wanted) & ~0o022)


class Installer:
    """Upgrades of one appliance, from a bundle to a committed release."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.layout, self.settings, self.config = context.layout, context.settings, context.config
        self.releases, self.backups, self.steps = context.releases, context.backups, context.steps

    # -- verification -----------------------------------------------------------------------------------
    def verify(self, bundle: Path, *, channel: str | None = None, force: bool = False) -> Manifest:
        """Everything checked before anything is touched: signature, key, payload, channel, version, space."""
        current = self.releases.current()
        manifest = verify_bundle(
            bundle,
            Keyring.load(self.layout),
            channel=channel or self.config.channel,
            installed_version=current,
            force=force,
        )
        if manifest.version == current and not self.releases.holds(current, manifest.payload_sha256):
            raise UpdateRefused(
                f"this is another build of {current}, the running release: it cannot replace it in place; "
                "build it with a new version"
            )
        self._check_space(manifest)
        if self.backups.postgres_url():
            pgdump.check_tools()
        return manifest

    def _check_space(self, manifest: Manifest) -> None:
        """Room for the unpacked payload and its venv (about three times the wheels), the data's backup,
        and the reserve that must stay free."""
        need = 0 if self.releases.complete(manifest.version) else 4 * manifest.payload_size
        if self.context.server_set_up:
            need += self.backups.data_size()
        reserve = self.config.reserve_mib << 20
        where = self.layout.root
        for candidate in (self.layout.releases, self.layout.update_state):
            if candidate.exists():
                where = candidate
        st = os.statvfs(where)
        free = st.f_bavail * st.f_frsize
        if free < need + reserve:
            raise UpdateRefused(
                f"not enough disk space for {manifest.version}: {mib(free)} free, the install needs "
                f"{mib(need)} and {mib(reserve)} must stay free; remove old files or grow the disk"
            )

    # -- upgrade ----------------------------------------------------------------------------------------
    async def install(
        self, bundle: Path, *, channel: str | None = None, force: bool = False, snapshot: bool | None = None
    ) -> Outcome:
        """Install a bundle (the caller holds the lock). Raises UpdateRefused (nothing changed) or returns
        the outcome: the new release running, or the previous one back after a failure (``ok`` false, the
        reason in the message)."""
        self.steps.progress("verify", f"verifying {bundle.name}")
        manifest = await asyncio.to_thread(self.verify, bundle, channel=channel, force=force)
        source = self.releases.current()
        journal = Journal("upgrade", manifest.version, source, "verify", bundle=str(bundle))
        try:
            return await self._upgrade(journal, bundle, manifest, snapshot)
        except ApplianceError as e:
            return await WayBack(self.context).after_failure(journal, e.message)

    async def _upgrade(
        self, journal: Journal, bundle: Path, manifest: Manifest, snapshot: bool | None
    ) -> Outcome:
        target, source = manifest.version, journal.source
        release = self.releases.path(target)
        set_up = self.context.server_set_up
        if self.releases.holds(target, manifest.payload_sha256):
            self.steps.enter(journal, "unpack", f"{target} is unpacked already")
        else:
            self.steps.enter(journal, "unpack", f"unpacking {target}")
            await asyncio.to_thread(self._unpack, bundle, manifest)
            self.steps.enter(journal, "install", f"installing {target} and its dependencies in {release}")
            await asyncio.to_thread(self._install, manifest)
        token = ""
        if set_up and source is not None:
            token = await asyncio.to_thread(
                health.issue_token, self.layout, self.settings, self.releases.path(source)
            )
            if self.config.snapshot if snapshot is None else snapshot:
                self.steps.enter(journal, "snapshot", "snapshotting the appliance's VM")
                await self._snapshot(token, source, target)
            self.steps.enter(journal, "stop", "stopping the server")
            await run_async(self.settings.command("server_stop"), "stopping the Podium server")
            self.steps.enter(journal, "backup", "backing up the data")
            await asyncio.to_thread(self.backups.take, target)
        if set_up:
            self.steps.enter(journal, "migrate", "migrating the database")
            said = await asyncio.to_thread(self._migrate, release)
            self._note_migration(target, said)
        self.steps.enter(journal, "switch", f"switching to {target}")
        await asyncio.to_thread(self.context.switch_to, target)
        if set_up:
            self.steps.enter(journal, "start", f"starting {target}")
            await run_async(self.settings.command("server_start"), "starting the Podium server")
            self.steps.enter(journal, "health", f"checking {target}'s health")
            await health.check(self.settings, self.config.health_seconds, target, token)
        self.steps.enter(journal, "commit", f"{target} is healthy")
        await asyncio.to_thread(self.commit, journal)
        if manifest.keys:  # key rotation: statements signed by keys trusted here (checked again)
            with contextlib.suppress(UpdateRefused):
                changed = Keyring.load(self.layout).accept(manifest.keys)
                if changed:
                    log.info("update keys: %s", "; ".join(changed))
        if token:
            await health.forget_token(self.settings, token)
        return Outcome("upgrade", True, target, f"{target} is installed and running", source, target)

    def _unpack(self, bundle: Path, manifest: Manifest) -> None:
        shutil.rmtree(self.releases.staging, ignore_errors=True)
        self.layout.releases.mkdir(parents=True, exist_ok=True)
        extract_payload(bundle, manifest, self.releases.staging)

    def _install(self, manifest: Manifest) -> None:
        """A venv at the release's own path, Podium and its dependencies from the bundle's wheels only."""
        target = manifest.version
        release = self.releases.path(target)
        self.releases.remove(target)
        run(
            self.settings.command("venv_create", path=str(release)),
            "creating the release's venv",
            timeout=300,
        )
        wheels = self.releases.staging / "wheels"
        env = release_env()
        python = str(release / "bin" / "python")
        pip = [python, "-m", "pip", "install", "--isolated", "--no-index", "--find-links", str(wheels)]
        pip += ["--no-cache-dir", "--disable-pip-version-check", "--progress-bar", "off", f"podium=={target}"]
        done = subprocess.run(pip, capture_output=True, text=True, env=env, timeout=900, check=False)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise ApplianceError(
                f"installing {target}'s wheels failed: {lines[-1] if lines else done.returncode}"
            )
        trial = [python, "-c", "import podium, podium_appliance; print(podium.__version__)"]
        tried = subprocess.run(trial, capture_output=True, text=True, env=env, timeout=120, check=False)
        said = tried.stdout
        if tried.returncode != 0:
            lines = [line for line in tried.stderr.splitlines() if line.strip()]
            raise ApplianceError(f"trying {target}'s code failed: {lines[-1] if lines else tried.returncode}")
        if said.strip() != target:
            raise ApplianceError(f"the bundle's code says it is version {said.strip()}, not {target}")
        readable_by_all(release)
        rootfs = self.releases.staging / "rootfs"
        if rootfs.is_dir():
            os.rename(rootfs, release / "rootfs")
        record = {
            "manifest": manifest.to_dict(),
            "installed": time.time(),
            "payload": {"sha256": manifest.payload_sha256},
        }
        write_atomic(release / "release.json", json.dumps(record, indent=1) + "\n")
        shutil.rmtree(self.releases.staging, ignore_errors=True)

    def _migrate(self, release: Path) -> str:
        """The database migrated by the new release's own code (what it printed: the revisions)."""
        argv = [*admin_command(self.layout, self.settings, release), "migrate"]
        return run(argv, "migrating the database", timeout=120)

    def _note_migration(self, target: str, said: str) -> None:
        """Whether the schema changed (then going back to the previous release needs the backup)."""
        state = State(self.layout)
        before, arrow, after = said.strip().partition(" -> ")  # "0001 -> 0002", or "0001 -> 0001 (…)"
        changed = bool(arrow) and before.split()[-1:] != after.split()[:1]
        state.data["releases"].setdefault(target, {})["schema_changed"] = changed
        state.save()

    async def _snapshot(self, token: str, source: str, target: str) -> None:
        """Snapshot the appliance's own VM through the server (which holds the pools' connections), then
        keep only the newest ``snapshots_keep`` of these. Skipped, and said, when no pool holds the VM."""
        store = open_store(self.layout, self.settings)
        where = store.read("vm") if store is not None else None
        uuid = (where or "").rstrip("/").rpartition("/")[2]
        if not uuid:
            self.steps.progress("snapshot", "no snapshot: this appliance does not know its VM (no XenStore)")
            return
        async with ServerApi(self.settings) as api:
            await api.call("session.signIn", {"token": token})
            found = await api.call("xo.getAllObjects", {"filter": {"id": uuid}})
            if not found:
                self.steps.progress(
                    "snapshot", f"no snapshot: no connected pool holds this appliance's VM {uuid}"
                )
                return
            name = f"{SNAPSHOT_PREFIX}{source} → {target}"
            await api.call("vm.snapshot", {"id": uuid, "name": name})
            mine = await api.call(
                "xo.getAllObjects", {"filter": {"type": "VM-snapshot", "$snapshot_of": uuid}}
            )
            ours = sorted(
                (o for o in mine.values() if str(o.get("name_label", "")).startswith(SNAPSHOT_PREFIX)),
                key=lambda o: (o.get("snapshot_time", 0), o.get("name_label", "")),
            )
            for old in ours[: max(0, len(ours) - self.config.snapshots_keep)]:
                await api.call("vm.delete", {"id": old["id"]})
            self.steps.progress("snapshot", f"snapshot {name!r} taken")

    # -- commit -----------------------------------------------------------------------------------------
    def commit(self, journal: Journal) -> None:
        """The upgrade to ``journal.target`` is for good: recorded, the journal cleared, old releases pruned."""
        state = State(self.layout)
        entry = state.data["releases"].setdefault(journal.target, {})
        entry.update(installed=time.time(), source=journal.source)
        state.data["bad"] = [v for v in state.data["bad"] if v != journal.target]
        state.save()
        self.steps.clear()
        self._prune(state)

    def _prune(self, state: State) -> None:
        """Keep the newest ``keep_releases`` releases (the running one always), their backups only."""
        current = self.releases.current()
        installed = self.releases.installed()
        keep = set(installed[-self.config.keep_releases :]) | ({current} if current else set())
        for version in installed:
            if version not in keep:
                self.releases.remove(version)
                state.data["releases"].pop(version, None)
        for leftover in self.layout.releases.glob(".removing-*") if self.layout.releases.exists() else []:
            shutil.rmtree(leftover, ignore_errors=True)
        sources = {version: entry.get("source") for version, entry in state.data["releases"].items()}
        self.backups.prune(keep, sources)
        state.save()
