"""The way back: the previous release and its data put back, after an upgrade failed (at once, by itself),
after an updater was killed before its upgrade's commit (at its next start, see :mod:`.recovery`), or on
demand (``podium-appliance update rollback``, ``updater.rollback``).

How far back depends on the phase the upgrade stopped in: before the server was stopped nothing live was
touched (only the half-made release is dropped); once it was, the server is stopped again, the data comes
back from the backup when the new release may have changed it (from ``migrate`` on), the previous release
is switched back and must pass the health check. Each part can be done again: a way back that is itself
killed is finished at the next start, from the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil

from ..box.system import run, run_async
from ..errors import ApplianceError
from . import health
from .context import Context
from .journal import Journal
from .releases import Outcome, State, version_key
from .signing import UpdateRefused

log = logging.getLogger(__name__)

#: The phases an upgrade stops in before anything live is touched: its way back only drops what it made.
BEFORE_THE_SERVER = ("verify", "unpack", "install", "snapshot")
#: The phases a failure in is the new release's own fault: it is marked bad (scheduled checks skip it).
ITS_OWN_FAULT = ("start", "health", "migrate")


class WayBack:
    """Rollbacks of one appliance."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.layout, self.settings = context.layout, context.settings
        self.releases, self.backups, self.steps = context.releases, context.backups, context.steps

    async def after_failure(self, journal: Journal, reason: str) -> Outcome:
        """An upgrade failed in ``journal.phase``: take the way back, mark the release bad if it was its
        own fault (not an interruption)."""
        log.error("upgrade to %s failed in %s: %s", journal.target, journal.phase, reason)
        self.steps.progress(journal.phase, f"failed: {reason}")
        if journal.phase in ITS_OWN_FAULT:
            state = State(self.layout)
            if journal.target not in state.data["bad"]:
                state.data["bad"].append(journal.target)
                state.save()
        await self.back(journal, reason)
        running = self.releases.current()
        message = f"{journal.target} failed ({reason}); {running or 'nothing'} is running again"
        return Outcome("upgrade", False, running, message, journal.source, journal.target)

    async def back(self, journal: Journal, reason: str) -> None:
        """The way back from an upgrade stopped in ``journal.phase`` (an error, or a kill found later)."""
        phase = journal.phase
        source, target = journal.source, journal.target
        if phase in BEFORE_THE_SERVER:
            # nothing live was touched: drop the half-made release, make sure the server runs
            half_made = not self.releases.complete(target) or phase in ("unpack", "install")
            if half_made and target != source:
                await asyncio.to_thread(self.releases.remove, target)
            shutil.rmtree(self.releases.staging, ignore_errors=True)
            if self.context.server_set_up and source is not None:
                await self._start_checked(source)
            self.steps.clear()
            return
        journal.operation, journal.restore_data = "rollback", phase not in ("stop", "backup")
        await self.rollback_to(journal, reason)

    async def rollback_to(self, journal: Journal, reason: str) -> None:
        """Stop, data back from the backup (when it was touched), previous release, start, health. Each
        part can be done again: a rollback that is itself killed is finished at the next start."""
        source, target = journal.source, journal.target
        if source is None:
            # the first install has no way back: leave no half-made release, nothing to start
            self.steps.enter(journal, "rollback", f"removing {target}")
            await asyncio.to_thread(self.releases.remove, target)
            self.layout.current.unlink(missing_ok=True)
            self.steps.clear()
            return
        self.steps.enter(journal, "rollback", f"putting {source} back ({reason})")
        if self.context.server_set_up:
            with contextlib.suppress(ApplianceError):
                stop = self.settings.command("server_stop")
                await asyncio.to_thread(run, stop, "stopping the Podium server")
            if journal.restore_data:
                await asyncio.to_thread(self.backups.restore, target)
        await asyncio.to_thread(self.context.switch_to, source)
        if self.context.server_set_up:
            await self._start_checked(source)
        self.steps.clear()

    async def _start_checked(self, version: str) -> None:
        await run_async(self.settings.command("server_start"), "starting the Podium server")
        try:
            await health.check(self.settings, self.context.config.health_seconds, version, "")
        except ApplianceError as e:
            raise ApplianceError(f"{version} was put back but does not answer either: {e.message}") from e

    async def on_demand(self, *, force: bool = False) -> Outcome:
        """Back to the release this one was upgraded from (the caller holds the lock). When the upgrade
        changed the database schema, the data comes back as it was before that upgrade (``force`` accepts
        losing what changed since); otherwise the data is kept as it is."""
        current = self.releases.current()
        if current is None:
            raise UpdateRefused("nothing is installed: there is nothing to roll back")
        entry = State(self.layout).data["releases"].get(current, {})
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
        if changed and not self.backups.complete(current):
            raise UpdateRefused(f"the backup of the data from before {current} is gone: no way back")
        journal = Journal("rollback", current, source, "rollback", restore_data=changed)
        try:
            await self.rollback_to(journal, "asked for")
            state = State(self.layout)
            state.data["bad"] = sorted({*state.data["bad"], current}, key=version_key)
            state.save()
        except ApplianceError as e:
            return Outcome("rollback", False, self.releases.current(), e.message, current, source)
        return Outcome("rollback", True, source, f"{source} is running again", current, source)
