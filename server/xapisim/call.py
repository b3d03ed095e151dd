"""One API call as its handler sees it: :class:`Call`, and :data:`Handler`, the shape of every handler.

Both the routing (:mod:`.dispatch`) and the implementations (:mod:`.generic`, :mod:`.messages`) need
them; they live here so that neither imports the other for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import Failure
from .values import new_ref

if TYPE_CHECKING:
    from .database import Database
    from .simulator import Host, Pool, Simulator

# A handler takes the call, then the call's arguments after the session, checked and converted.
Handler = Callable[..., Awaitable[Any]]


@dataclass
class Call:
    """One call in progress: where it arrived, who made it, and the task that tracks it if Async.

    ``method`` is the message the call runs, as ``Class.message`` whatever the spelling the client used
    (``VM_start`` and ``Async.VM.start`` run ``VM.start``); ``label`` is the name the client called it
    by, which names its task as xapi names it (``method`` when not given).
    """

    sim: Simulator
    pool: Pool
    host: Host
    method: str
    session: str | None = None
    task: str | None = None
    op_key: str = field(default_factory=new_ref)
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or self.method

    @property
    def db(self) -> Database:
        """The database of the pool the call arrived at."""
        return self.pool.db

    async def work(self, seconds: float | None = None, steps: int = 5) -> None:
        """Let simulated time pass for an operation, reporting progress and honouring task.cancel."""
        total = self.sim.op_seconds if seconds is None else seconds
        for i in range(steps):
            self.check_cancelled()
            if total > 0:
                await asyncio.sleep(total / steps)
            if self.task and self.db.get("task", self.task):
                progress = round((i + 1) / (steps + 1), 2)
                self.db.update("task", self.task, progress=progress)
        self.check_cancelled()

    def check_cancelled(self) -> None:
        """Raise TASK_CANCELLED when task.cancel was called on this call's task."""
        if not self.task:
            return
        record = self.db.get("task", self.task)
        if record is not None and record["status"] == "cancelling":
            raise Failure("TASK_CANCELLED", self.task)
