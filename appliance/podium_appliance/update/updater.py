"""The updater of one appliance, as its service and ``podium-appliance update`` call it: each operation runs
alone (the lock), first finishes what a killed updater left (:mod:`.recovery`), and its outcome is kept in
the updater's state for the status and the history.

The operations themselves: the way forward in :mod:`.installer`, the way back in :mod:`.rollback`.
"""

from __future__ import annotations

from pathlib import Path

from ..layout import Layout, Settings
from .bundle import Manifest
from .config import UpdateConfig
from .context import Context
from .installer import Installer
from .journal import Report
from .recovery import recover
from .releases import Outcome, State
from .rollback import WayBack


class Updater:
    """Upgrades, rollbacks and recovery of one appliance (under its layout's root)."""

    def __init__(
        self,
        layout: Layout,
        settings: Settings | None = None,
        config: UpdateConfig | None = None,
        report: Report | None = None,
    ) -> None:
        self.context = Context.load(layout, settings, config, report)

    @property
    def config(self) -> UpdateConfig:
        return self.context.config

    def verify(self, bundle: Path, *, channel: str | None = None, force: bool = False) -> Manifest:
        """Everything an install would check first, nothing changed (an uploaded bundle, at once)."""
        return Installer(self.context).verify(bundle, channel=channel, force=force)

    async def apply(
        self, bundle: Path, *, channel: str | None = None, force: bool = False, snapshot: bool | None = None
    ) -> Outcome:
        """Install a bundle. Raises UpdateRefused (nothing changed) or returns the outcome: the new release
        running, or the previous one back after a failure (``ok`` false, the reason in the message)."""
        with self.context.steps.locked():
            await recover(self.context)
            installer = Installer(self.context)
            outcome = await installer.install(bundle, channel=channel, force=force, snapshot=snapshot)
            State(self.context.layout).record(outcome)
            return outcome

    async def rollback(self, *, force: bool = False) -> Outcome:
        """On demand: back to the release this one was upgraded from (see :meth:`.WayBack.on_demand`)."""
        with self.context.steps.locked():
            await recover(self.context)
            outcome = await WayBack(self.context).on_demand(force=force)
            State(self.context.layout).record(outcome)
            return outcome

    async def recover(self) -> Outcome | None:
        """At start: finish what a killed updater left (see :mod:`.recovery`). None if nothing."""
        with self.context.steps.locked():
            return await recover(self.context)
