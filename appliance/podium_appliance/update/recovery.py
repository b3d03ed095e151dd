"""After a kill: an updater stopped at any moment (a crash, a power cut, systemd restarting it) left its
journal (:mod:`.journal`), and its next start ends the story from there, before anything else.

An upgrade that reached its ``commit`` phase had passed its health check: it is committed. An upgrade
stopped in any earlier phase takes the way back from that phase (:mod:`.rollback`), and so does a rollback
that was itself killed. So the appliance always ends on a release that passed a health check, with its data.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

from .context import Context
from .installer import Installer
from .journal import read_journal
from .releases import Outcome, State
from .rollback import WayBack

log = logging.getLogger(__name__)


async def recover(context: Context) -> Outcome | None:
    """Finish what a killed updater left (the caller holds the lock); None when there was nothing."""
    journal = read_journal(context.layout)
    if journal is None:
        shutil.rmtree(context.releases.staging, ignore_errors=True)
        return None
    operation, target, source, phase = journal.operation, journal.target, journal.source, journal.phase
    log.warning("an interrupted %s to %s (in %s) is finished now", operation, target, phase)
    context.steps.progress("recover", f"finishing an interrupted {operation} (it stopped in {phase})")
    running = context.releases.current
    if operation == "upgrade" and phase == "commit":
        await asyncio.to_thread(Installer(context).commit, journal)
        message = f"{target} was committed after an interruption"
        outcome = Outcome("upgrade", True, target, message, source, target)
    elif operation == "upgrade":
        await WayBack(context).back(journal, f"interrupted in {phase}")
        # journal.phase as the way back left it (as before the updater was split: the message is shown)
        stopped = journal.phase
        message = f"the upgrade to {target} was interrupted in {stopped}; {running() or 'nothing'} is running"
        outcome = Outcome("upgrade", False, running(), message, source, target)
    else:
        await WayBack(context).rollback_to(journal, f"interrupted rollback ({phase})")
        message = f"an interrupted rollback was finished; {running()} is running"
        outcome = Outcome("rollback", True, running(), message, target, source)
    State(context.layout).record(outcome)
    return outcome
