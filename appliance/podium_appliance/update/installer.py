"""Installing a release: verify it all, unpack it with its own venv, back up and migrate the data, switch
``current`` atomically, restart, check health; on any failure the previous release and data come back by
themselves.

Each phase is written to a journal (``update_state/journal.json``) before it begins. An updater killed at any
moment finds the journal at its next start and :meth:`Updater.recover` ends the story: before the new release
passed its health check, the way back (previous release, data from the backup); after, the commit. So the
appliance always ends on a release that passed a health check, with its data, whatever happened.

Releases live in ``opt/podium/releases/<version>`` (a venv made at that path, so its scripts keep pointing at
it whatever ``current`` says; the appliance files in ``rootfs/``; ``release.json`` written last marks it
complete). The data folder is copied to ``update_state/backups/<version>`` before the release ``<version>``
touches it, with a dump of the database when it is PostgreSQL (:mod:`.pgdump`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from ..completion import ServerApi, wait_healthy
from ..errors import ApplianceError
from ..layout import Layout, Settings, fsync_dir, write_atomic
from ..system import run, run_async
from ..xenstore import open_store
from . import pgdump
from .bundle import Manifest, extract_payload, mib, verify_bundle
from .config import UpdateConfig
from .releases import (
    Journal,
    Outcome,
    Releases,
    Report,
    State,
    copy_tree,
    read_journal,
    readable_by_all,
    tree_size,
    version_key,
)
from .signing import Keyring, UpdateRefused

log = logging.getLogger(__name__)

#: The phases of an upgrade, in order. Until ``commit`` the way back is taken on failure.
PHASES = ("unpack", "install", "snapshot", "stop", "backup", "migrate", "switch", "start", "health", "commit")
#: How much of the whole each phase is, for a progress bar.
WEIGHTS = {"verify": 5, "unpack": 10, "install": 45, "snapshot": 5, "stop": 3, "backup": 5, "migrate": 5,
           "switch": 1, "start": 5, "health": 15, "commit": 1}  # fmt: skip
TOKEN_DESCRIPTION = "podium-updater health check"
SNAPSHOT_PREFIX = "podium-update "
#: For tests: stop (SIGSTOP) the updater as it enters this phase, so a test can SIGKILL it exactly there.
STOP_AT_ENV = "PODIUM_UPDATE_STOP_AT"


class Busy(ApplianceError):
    """Another update is under way."""


def release_env() -> dict[str, str]:
    """The environment for a release's pip and Python: nothing of the caller's Python settings. A PYTHONPATH
    (the image build runs the first install from unpacked wheels on it) would make pip see Podium as installed
    already and install nothing, and the trial import succeed on code outside the release."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull}


class Updater:
    """Upgrades, rollbacks and recovery of one appliance (under its layout's root)."""

    def __init__(
        self,
        layout: Layout,
        settings: Settings | None = None,
        config: UpdateConfig | None = None,
        report: Report | None = None,
    ) -> None:
        self.layout = layout
        self.settings = settings or layout.settings()
        self.config = config or UpdateConfig.load(layout)
        self.releases = Releases(layout)
        self.report = report or (lambda event: None)
        self.journal_path = layout.update_state / "journal.json"
        self.backups = layout.update_state / "backups"
        self.staging = layout.releases / ".staging"

    # -- small parts ------------------------------------------------------------------------------------
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

    def journal(self) -> Journal | None:
        return read_journal(self.layout)

    def _enter(self, journal: Journal, phase: str, message: str) -> None:
        journal.phase = phase
        write_atomic(self.journal_path, json.dumps(asdict(journal)) + "\n", mode=0o600)
        log.info("%s %s: %s", journal.operation, journal.target, message)
        self._progress(phase, message)
        if os.environ.get(STOP_AT_ENV) == f"{journal.operation}:{phase}":
            os.kill(os.getpid(), signal.SIGSTOP)  # a test SIGKILLs us here

    def _progress(self, phase: str, message: str) -> None:
        """An event for the progress bar: the share of the whole done before this phase."""
        done = 0
        for name, weight in WEIGHTS.items():
            if name == phase:
                break
            done += weight
        self.report(
            {"phase": phase, "message": message, "percent": round(100 * done / sum(WEIGHTS.values()), 1)}
        )

    def _clear_journal(self) -> None:
        self.journal_path.unlink(missing_ok=True)

    @property
    def server_set_up(self) -> bool:
        """The server has a configuration (setup is complete or under way): it runs and must keep running."""
        return self.layout.server_toml.exists()

    def _server_config(self) -> dict[str, object]:
        try:
            return tomllib.loads(self.layout.server_toml.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    def _data_dir(self) -> Path:
        """The server's data folder, as its configuration names it."""
        # written by setup as the path the server opens (under the root prefix already)
        return Path(str(self._server_config().get("data_dir", self.layout.server_data)))

    def _postgres_url(self) -> str:
        """The server's database URL when it is PostgreSQL (outside the data folder), else ""."""
        url = str(self._server_config().get("database_url", ""))
        return url if self.server_set_up and pgdump.is_postgres(url) else ""

    def _admin(self, release: Path, *args: str, what: str, timeout: float = 120) -> str:
        argv = self.settings.command(
            "server_admin", config=str(self.layout.server_toml), release=str(release)
        )
        return run([*argv, *args], what, timeout=timeout)

    def _keyring(self) -> Keyring:
        return Keyring.load(self.layout)

    # -- verification -----------------------------------------------------------------------------------
    def verify(self, bundle: Path, *, channel: str | None = None, force: bool = False) -> Manifest:
        """Everything checked before anything is touched: signature, key, payload, channel, version, space."""
        current = self.releases.current()
        manifest = verify_bundle(
            bundle, self._keyring(), channel=channel or self.config.channel,
            installed_version=current, force=force,
        )  # fmt: skip
        if manifest.version == current and not (
            self.releases.complete(current)
            and self.releases.info(current).get("payload", {}).get("sha256") == manifest.payload_sha256
        ):
            raise UpdateRefused(
                f"this is another build of {current}, the running release: it cannot replace it in place; "
                "build it with a new version"
            )
        self._check_space(manifest)
        if self._postgres_url():
            pgdump.check_tools()
        return manifest

    def _check_space(self, manifest: Manifest) -> None:
        """Room for the unpacked payload and its venv (about three times the wheels), the data's backup,
        and the reserve that must stay free."""
        need = 0 if self.releases.complete(manifest.version) else 4 * manifest.payload_size
        if self.server_set_up and self._data_dir().exists():
            need += tree_size(self._data_dir())
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
    async def apply(
        self, bundle: Path, *, channel: str | None = None, force: bool = False, snapshot: bool | None = None
    ) -> Outcome:
        """Install a bundle. Raises UpdateRefused (nothing changed) or returns the outcome: the new release
        running, or the previous one back after a failure (``ok`` false, the reason in the message)."""
        with self.locked():
            await self._recover_locked()
            self._progress("verify", f"verifying {bundle.name}")
            manifest = await asyncio.to_thread(self.verify, bundle, channel=channel, force=force)
            source = self.releases.current()
            journal = Journal("upgrade", manifest.version, source, "verify", bundle=str(bundle))
            try:
                outcome = await self._upgrade(journal, bundle, manifest, snapshot)
            except ApplianceError as e:
                outcome = await self._fail(journal, e.message)
            State(self.layout).record(outcome)
            return outcome

    async def _upgrade(
        self, journal: Journal, bundle: Path, manifest: Manifest, snapshot: bool | None
    ) -> Outcome:
        target, source = manifest.version, journal.source
        release = self.releases.path(target)
        if (
            self.releases.complete(target)
            and self.releases.info(target).get("payload", {}).get("sha256") == manifest.payload_sha256
        ):
            self._enter(journal, "unpack", f"{target} is unpacked already")
        else:
            self._enter(journal, "unpack", f"unpacking {target}")
            await asyncio.to_thread(self._unpack, bundle, manifest)
            self._enter(journal, "install", f"installing {target} and its dependencies in {release}")
            await asyncio.to_thread(self._install, manifest)
        token = ""
        if self.server_set_up and source is not None:
            token = await asyncio.to_thread(self._issue_token, source)
            if self.config.snapshot if snapshot is None else snapshot:
                self._enter(journal, "snapshot", "snapshotting the appliance's VM")
                await self._snapshot(token, source, target)
            self._enter(journal, "stop", "stopping the server")
            await run_async(self.settings.command("server_stop"), "stopping the Podium server")
            self._enter(journal, "backup", "backing up the data")
            await asyncio.to_thread(self._backup, target)
        if self.server_set_up:
            self._enter(journal, "migrate", "migrating the database")
            said = await asyncio.to_thread(self._admin, release, "migrate", what="migrating the database")
            self._note_migration(target, said)
        self._enter(journal, "switch", f"switching to {target}")
        await asyncio.to_thread(self._switch_to, target)
        if self.server_set_up:
            self._enter(journal, "start", f"starting {target}")
            await run_async(self.settings.command("server_start"), "starting the Podium server")
            self._enter(journal, "health", f"checking {target}'s health")
            await self._health(target, token)
        self._enter(journal, "commit", f"{target} is healthy")
        await asyncio.to_thread(self._commit, journal)
        if manifest.keys:  # key rotation: statements signed by keys trusted here (checked again)
            with contextlib.suppress(UpdateRefused):
                changed = self._keyring().accept(manifest.keys)
                if changed:
                    log.info("update keys: %s", "; ".join(changed))
        if token:
            await self._forget_token(token)
        return Outcome("upgrade", True, target, f"{target} is installed and running", source, target)

    def _unpack(self, bundle: Path, manifest: Manifest) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.layout.releases.mkdir(parents=True, exist_ok=True)
        extract_payload(bundle, manifest, self.staging)

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
        wheels = self.staging / "wheels"
        env = release_env()
        pip = [str(release / "bin" / "python"), "-m", "pip", "install", "--isolated", "--no-index",
               "--find-links", str(wheels), "--no-cache-dir", "--disable-pip-version-check",
               "--progress-bar", "off", f"podium=={target}"]  # fmt: skip
        done = subprocess.run(pip, capture_output=True, text=True, env=env, timeout=900, check=False)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise ApplianceError(
                f"installing {target}'s wheels failed: {lines[-1] if lines else done.returncode}"
            )
        trial = [
            str(release / "bin" / "python"),
            "-c",
            "import podium, podium_appliance; print(podium.__version__)",
        ]
        tried = subprocess.run(trial, capture_output=True, text=True, env=env, timeout=120, check=False)
        said = tried.stdout
        if tried.returncode != 0:
            lines = [line for line in tried.stderr.splitlines() if line.strip()]
            raise ApplianceError(f"trying {target}'s code failed: {lines[-1] if lines else tried.returncode}")
        if said.strip() != target:
            raise ApplianceError(f"the bundle's code says it is version {said.strip()}, not {target}")
        readable_by_all(release)
        rootfs = self.staging / "rootfs"
        if rootfs.is_dir():
            os.rename(rootfs, release / "rootfs")
        record = {"manifest": manifest.to_dict(), "installed": time.time(),
                  "payload": {"sha256": manifest.payload_sha256}}  # fmt: skip
        write_atomic(release / "release.json", json.dumps(record, indent=1) + "\n")
        shutil.rmtree(self.staging, ignore_errors=True)

    def _issue_token(self, source: str) -> str:
        """A short-lived token of an admin, from the running release, for the health check's sign-in."""
        said = self._admin(
            self.releases.path(source), "issue-token", "--ttl", "900", "--description", TOKEN_DESCRIPTION,
            what="getting a credential for the health check",
        )  # fmt: skip
        token = said.strip().splitlines()[-1] if said.strip() else ""
        if not token:
            raise ApplianceError("getting a credential for the health check: the server printed no token")
        return token

    def _backup(self, target: str) -> None:
        """The data as it is before ``target`` touches it; ``complete`` is written last."""
        dest = self.backups / target
        shutil.rmtree(dest, ignore_errors=True)
        data = self._data_dir()
        dest.mkdir(parents=True, mode=0o700)
        if data.exists():
            copy_tree(data, dest / "data")
        if url := self._postgres_url():
            pgdump.backup(url, dest)
        write_atomic(dest / "complete", json.dumps({"data_dir": str(data), "at": time.time()}) + "\n")

    def _note_migration(self, target: str, said: str) -> None:
        """Whether the schema changed (then going back to the previous release needs the backup)."""
        state = State(self.layout)
        before, arrow, after = said.strip().partition(" -> ")  # "0001 -> 0002", or "0001 -> 0001 (…)"
        changed = bool(arrow) and before.split()[-1:] != after.split()[:1]
        state.data["releases"].setdefault(target, {})["schema_changed"] = changed
        state.save()

    def _switch_to(self, version: str) -> None:
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

    async def _health(self, target: str, token: str) -> None:
        """The health check: ``/api/health``, the version that answers, a signed-in call that reads the
        database and the objects."""
        await wait_healthy(self.settings, self.config.health_seconds)
        async with ServerApi(self.settings) as api:
            version = await api.call("system.getServerVersion", {})
            if version != target:
                raise ApplianceError(f"the server answers as version {version}, not {target}")
            if token:
                await api.call("session.signIn", {"token": token})
                user = await api.call("session.getUser", {})
                if user.get("permission") != "admin":
                    raise ApplianceError("the health check's sign-in is not an admin's")
                await api.call("user.getAll", {})
                await api.call("xo.getAllObjects", {"filter": {"type": "pool"}})

    async def _forget_token(self, token: str) -> None:
        with contextlib.suppress(ApplianceError, OSError, TimeoutError):
            async with ServerApi(self.settings) as api:
                await api.call("session.signIn", {"token": token})
                await api.call("token.deleteOwn", {"pattern": TOKEN_DESCRIPTION})

    async def _snapshot(self, token: str, source: str, target: str) -> None:
        """Snapshot the appliance's own VM through the server (which holds the pools' connections), then
        keep only the newest ``snapshots_keep`` of these. Skipped, and said, when no pool holds the VM."""
        store = open_store(self.layout, self.settings)
        where = store.read("vm") if store is not None else None
        uuid = (where or "").rstrip("/").rpartition("/")[2]
        if not uuid:
            self._progress("snapshot", "no snapshot: this appliance does not know its VM (no XenStore)")
            return
        async with ServerApi(self.settings) as api:
            await api.call("session.signIn", {"token": token})
            found = await api.call("xo.getAllObjects", {"filter": {"id": uuid}})
            if not found:
                self._progress("snapshot", f"no snapshot: no connected pool holds this appliance's VM {uuid}")
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
            self._progress("snapshot", f"snapshot {name!r} taken")

    def _commit(self, journal: Journal) -> None:
        state = State(self.layout)
        entry = state.data["releases"].setdefault(journal.target, {})
        entry.update(installed=time.time(), source=journal.source)
        state.data["bad"] = [v for v in state.data["bad"] if v != journal.target]
        state.save()
        self._clear_journal()
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
        if self.backups.exists():  # a backup is a way back from its release to that release's source
            for backup in self.backups.iterdir():
                source = state.data["releases"].get(backup.name, {}).get("source")
                if backup.name not in keep or source not in keep:
                    shutil.rmtree(backup, ignore_errors=True)
        state.save()

    # -- the way back -----------------------------------------------------------------------------------
    async def _fail(self, journal: Journal, reason: str) -> Outcome:
        """An upgrade failed in ``journal.phase``: take the way back, mark the release bad if it was its
        own fault (not an interruption)."""
        log.error("upgrade to %s failed in %s: %s", journal.target, journal.phase, reason)
        self._progress(journal.phase, f"failed: {reason}")
        if journal.phase in ("start", "health", "migrate"):
            state = State(self.layout)
            if journal.target not in state.data["bad"]:
                state.data["bad"].append(journal.target)
                state.save()
        await self._back(journal, reason)
        running = self.releases.current()
        return Outcome(
            "upgrade", False, running,
            f"{journal.target} failed ({reason}); {running or 'nothing'} is running again",
            journal.source, journal.target,
        )  # fmt: skip

    async def _back(self, journal: Journal, reason: str) -> None:
        """The way back from an upgrade stopped in ``journal.phase`` (an error, or a kill found later)."""
        phase = journal.phase
        source, target = journal.source, journal.target
        if phase in ("verify", "unpack", "install", "snapshot"):
            # nothing live was touched: drop the half-made release, make sure the server runs
            half_made = not self.releases.complete(target) or phase in ("unpack", "install")
            if half_made and target != source:
                await asyncio.to_thread(self.releases.remove, target)
            shutil.rmtree(self.staging, ignore_errors=True)
            if self.server_set_up and source is not None:
                await self._start_checked(source)
            self._clear_journal()
            return
        journal.operation, journal.restore_data = "rollback", phase not in ("stop", "backup")
        await self._rollback_to(journal, reason)

    async def _rollback_to(self, journal: Journal, reason: str) -> None:
        """Stop, data back from the backup (when it was touched), previous release, start, health. Each
        part can be done again: a rollback that is itself killed is finished at the next start."""
        source, target = journal.source, journal.target
        if source is None:
            # the first install has no way back: leave no half-made release, nothing to start
            self._enter(journal, "rollback", f"removing {target}")
            await asyncio.to_thread(self.releases.remove, target)
            self.layout.current.unlink(missing_ok=True)
            self._clear_journal()
            return
        self._enter(journal, "rollback", f"putting {source} back ({reason})")
        if self.server_set_up:
            with contextlib.suppress(ApplianceError):
                await asyncio.to_thread(
                    run, self.settings.command("server_stop"), "stopping the Podium server"
                )
            if journal.restore_data:
                await asyncio.to_thread(self._restore, target)
        await asyncio.to_thread(self._switch_to, source)
        if self.server_set_up:
            await self._start_checked(source)
        self._clear_journal()

    async def _start_checked(self, version: str) -> None:
        await run_async(self.settings.command("server_start"), "starting the Podium server")
        try:
            await self._health(version, "")
        except ApplianceError as e:
            raise ApplianceError(f"{version} was put back but does not answer either: {e.message}") from e

    def _restore(self, target: str) -> None:
        """The data folder from the backup taken before ``target`` touched it: copied beside, then renamed
        over (the failed data is kept aside as ``<data>.failed-<target>`` for diagnosis)."""
        backup = self.backups / target
        if not (backup / "complete").exists():
            raise ApplianceError(f"the backup of the data taken before {target} is missing or incomplete")
        data = self._data_dir()
        restoring = data.with_name(f".{data.name}.restoring")
        failed = data.with_name(f"{data.name}.failed-{target}")
        shutil.rmtree(restoring, ignore_errors=True)
        if (backup / "data").exists():
            copy_tree(backup / "data", restoring)
        else:
            restoring.mkdir(mode=0o700)
        if pgdump.has_backup(backup) and (url := self._postgres_url()):
            pgdump.restore(url, backup)  # first: a failure here leaves the data folder as it was too
        if data.exists():
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(data, failed)
        os.rename(restoring, data)
        fsync_dir(data.parent)

    async def rollback(self, *, force: bool = False) -> Outcome:
        """On demand: back to the release this one was upgraded from. When the upgrade changed the database
        schema, the data comes back as it was before that upgrade (``force`` accepts losing what changed
        since); otherwise the data is kept as it is."""
        with self.locked():
            await self._recover_locked()
            current = self.releases.current()
            if current is None:
                raise UpdateRefused("nothing is installed: there is nothing to roll back")
            state = State(self.layout)
            entry = state.data["releases"].get(current, {})
            source = entry.get("source")
            if not source or not self.releases.complete(source):
                raise UpdateRefused(
                    f"{current} was not installed by an upgrade from a release still kept here: no way back"
                )
            changed = bool(entry.get("schema_changed"))
            if changed and not force:
                raise UpdateRefused(
                    f"{current} changed the database schema: going back to {source} restores the data as it "
                    "was before the upgrade, and what changed since is lost; repeat with --force to accept"
                )
            if changed and not (self.backups / current / "complete").exists():
                raise UpdateRefused(f"the backup of the data from before {current} is gone: no way back")
            journal = Journal("rollback", current, source, "rollback", restore_data=changed)
            try:
                await self._rollback_to(journal, "asked for")
                outcome = Outcome("rollback", True, source, f"{source} is running again", current, source)
                state = State(self.layout)
                state.data["bad"] = sorted({*state.data["bad"], current}, key=version_key)
                state.save()
            except ApplianceError as e:
                outcome = Outcome("rollback", False, self.releases.current(), e.message, current, source)
            State(self.layout).record(outcome)
            return outcome

    # -- after a kill -----------------------------------------------------------------------------------
    async def recover(self) -> Outcome | None:
        """At start: finish what a killed updater left (see the module's docstring). None if nothing."""
        with self.locked():
            return await self._recover_locked()

    async def _recover_locked(self) -> Outcome | None:
        journal = self.journal()
        if journal is None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return None
        log.warning(
            "an interrupted %s to %s (in %s) is finished now",
            journal.operation,
            journal.target,
            journal.phase,
        )
        self._progress(
            "recover", f"finishing an interrupted {journal.operation} (it stopped in {journal.phase})"
        )
        if journal.operation == "upgrade" and journal.phase == "commit":
            await asyncio.to_thread(self._commit, journal)
            outcome = Outcome("upgrade", True, journal.target, f"{journal.target} was committed after an "
                              "interruption", journal.source, journal.target)  # fmt: skip
        elif journal.operation == "upgrade":
            await self._back(journal, f"interrupted in {journal.phase}")
            outcome = Outcome("upgrade", False, self.releases.current(),
                              f"the upgrade to {journal.target} was interrupted in {journal.phase}; "
                              f"{self.releases.current() or 'nothing'} is running", journal.source, journal.target)  # fmt: skip
        else:
            await self._rollback_to(journal, f"interrupted rollback ({journal.phase})")
            outcome = Outcome("rollback", True, self.releases.current(),
                              f"an interrupted rollback was finished; {self.releases.current()} is running",
                              journal.target, journal.source)  # fmt: skip
        State(self.layout).record(outcome)
        return outcome
