"""A task on a pool that Podium waits for: an ``Async.*`` call's, or the one a transfer runs under.

The pool tells a task's progress and end through ``event.from``, like any other object's change, and the
pool's watcher already follows those events into the cache. So a :class:`TaskHandle` does not ask the pool
again and again how its task is doing: it waits for its task's record through its client's
:class:`~.client.TaskWatch` (the pool's cache, see :meth:`podium.cache.PoolCache.task_ended`), which wakes
it when that record ends pending, and fails it at once when the pool's connection is lost meanwhile.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import XapiError, XapiFailure

if TYPE_CHECKING:
    from .client import XapiClient

DEFAULT_TIMEOUT = 3600.0


@dataclass
class TaskHandle:
    """One task on its pool: wait for its result, cancel it, forget it."""

    client: XapiClient
    ref: str

    async def result(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Wait for the task to end; its result (XML text), or its failure raised as :class:`XapiFailure`."""
        watch = self.client.tasks
        if watch is None:
            raise XapiError(
                f"cannot wait for task {self.ref}: {self.client} has no watcher following its events"
            )
        try:
            record = await watch.task_ended(self.ref, timeout)
        except TimeoutError:
            raise XapiError(f"the pool's task {self.ref} did not end within {timeout:.0f} s") from None
        if record.get("status") == "success":
            return str(record.get("result", ""))
        info = [str(x) for x in record.get("error_info") or []] or [
            "TASK_CANCELLED" if record.get("status") == "cancelled" else "UNKNOWN"
        ]
        raise XapiFailure(info[0], info[1:], str(record.get("name_label", "")))

    async def failure(self, wait: float) -> XapiFailure | None:
        """The failure the task ends in, if it ends in one within ``wait`` seconds."""
        try:
            await self.result(wait)
        except XapiFailure as f:
            return f
        except XapiError:
            pass
        return None

    async def cancel(self) -> None:
        """Ask the pool to stop (best effort)."""
        try:
            await self.client.call("task.cancel", self.ref)
        except XapiError:
            pass

    async def destroy(self) -> None:
        """Forget the task on the pool (best effort)."""
        try:
            await self.client.call("task.destroy", self.ref)
        except XapiError:
            pass


async def create_task(client: XapiClient, label: str) -> TaskHandle:
    """A new task of Podium's own (for a transfer: the pool reports on it as the transfer goes)."""
    return TaskHandle(client, str(await client.call("task.create", label, "Podium transfer")))


async def call_async(client: XapiClient, method: str, *args: Any) -> TaskHandle:
    """``Async.<method>``: the task the pool runs it under."""
    return TaskHandle(client, str(await client.call(f"Async.{method}", *args)))


def task_refs(result: str) -> list[str]:
    """The references in a task's XML-RPC result (``/import`` answers the new VMs')."""
    if not result.strip():
        return []
    try:
        root = ET.fromstring(result)
    except ET.ParseError:
        return [result.strip()] if result.strip().startswith("OpaqueRef:") else []
    return [el.text for el in root.iter("value") if el.text and el.text.startswith("OpaqueRef:")]
